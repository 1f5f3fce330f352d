// SPDX-License-Identifier: GPL-2.0

//! Rust implementation of the IMA measurement list.
//!
//! Built with `CONFIG_IMA_STAGING_RUST`, instead of `ima_list.c`: the
//! `extern "C"` functions below implement the measurement list interface
//! declared in `ima.h`, which the rest of IMA (the LSM hooks, template
//! formatting, the TPM extend, securityfs) calls. Each of them is a thin
//! edge over the safe code of the submodules.

use core::{mem::MaybeUninit, ptr::NonNull};
use kernel::{
    error::from_result,
    ffi::c_void,
    prelude::*,
    sync::rcu,
    uaccess::{UserPtr, UserSlice},
};

mod command;
mod entry;
mod kexec;
mod list;
mod mediation;
mod queue;
mod table;
#[cfg(CONFIG_KUNIT = "y")]
mod testing;

use entry::{free_entry, Record, RecordData, TemplateEntry};
use queue::State;

extern "C" {
    /// Extends the record's PCR in the TPM (`ima_queue.c`); a violation
    /// extends the invalidating all-ones digest instead.
    fn ima_extend_pcr(entry: *mut TemplateEntry, violation: bool) -> c_int;
}

/// Prefix of this crate's log messages, as `pr_fmt` gives the C files.
const __LOG_PREFIX: &[u8] = b"ima\0";

/// The C `enum binary_lists` (`ima.h` asserts these values).
const BINARY: u32 = 0;
const BINARY_STAGED: u32 = 1;
const BINARY_FULL: u32 = 2;

/// Sets up the queue. Called once from `ima_init()`, before the first
/// record is added or restored.
///
/// Returns 0 or a negative errno.
#[no_mangle]
extern "C" fn ima_list_init() -> c_int {
    from_result(|| {
        queue::init()?;
        pr_info!("Rust measurement list selected\n");
        Ok(0)
    })
}

/// Adds a measurement record, copied from `entry`, and extends its PCR; see
/// [`State::add`].
///
/// Returns 0 with the TPM's result in `*tpm_result`, having freed `entry`,
/// or `-ENODEV` (measurement suspended), `-EEXIST` (known digest),
/// `-ENOMEM`, or `-EINVAL` for a template digest of another length than the
/// first one's (one boot has one hash algorithm: never), in which cases the
/// caller still owns `entry`.
///
/// # Safety
///
/// `entry` must be a valid entry allocated by IMA and owned by the caller,
/// and `tpm_result` must be valid for writes.
#[no_mangle]
unsafe extern "C" fn ima_list_add(
    entry: *mut TemplateEntry,
    violation: bool,
    tpm_result: *mut c_int,
) -> c_int {
    from_result(|| {
        let state = queue::state().ok_or(ENODEV)?;
        let entry = NonNull::new(entry).ok_or(EINVAL)?;
        // SAFETY: The caller passes a valid entry, which stays valid until
        // it is freed below.
        let record = Record::new(unsafe { entry.as_ref() })?;
        // SAFETY: As above, the entry is valid during `add`.
        let extend = || unsafe { ima_extend_pcr(entry.as_ptr(), violation) };
        let use_table = !cfg!(CONFIG_IMA_DISABLE_HTABLE);
        let tpm = state.add(record, violation, use_table, extend)?;
        // SAFETY: The caller passes a pointer valid for writes.
        unsafe { tpm_result.write(tpm) };
        // SAFETY: The caller gave up the entry, copied into the list.
        unsafe { free_entry(entry) };
        Ok(0)
    })
}

/// Appends a record restored from the previous kernel's kexec buffer,
/// copied from `entry`.
///
/// Returns 0, having freed `entry`, or a negative errno and the caller
/// still owns `entry`.
///
/// # Safety
///
/// `entry` must be a valid entry allocated by IMA and owned by the caller.
#[no_mangle]
unsafe extern "C" fn ima_list_restore(entry: *mut TemplateEntry) -> c_int {
    from_result(|| {
        let state = queue::state().ok_or(ENODEV)?;
        let entry = NonNull::new(entry).ok_or(EINVAL)?;
        // SAFETY: The caller passes a valid entry.
        state.restore(Record::new(unsafe { entry.as_ref() })?)?;
        // SAFETY: The caller gave up the entry, copied into the list.
        unsafe { free_entry(entry) };
        Ok(0)
    })
}

/// Records and their bytes in the binary format (without the kexec
/// header) in one of the C `enum binary_lists`: the current list, the
/// staged list, or everything added since boot.
fn totals(state: &State, list: u32) -> (usize, usize) {
    match list {
        BINARY => (state.current().len(), state.current().binary_size()),
        BINARY_STAGED => (state.staged().len(), state.staged().binary_size()),
        BINARY_FULL => state.since_boot(),
        _ => (0, 0),
    }
}

/// Records in one of the C `enum binary_lists`; see [`totals`].
#[no_mangle]
extern "C" fn ima_list_num_records(list: u32) -> c_long {
    let count = queue::state().map_or(0, |state| totals(state, list).0);
    c_long::try_from(count).unwrap_or(c_long::MAX)
}

/// Bytes the records of one of the C `enum binary_lists` take in the binary
/// format; see [`totals`].
#[no_mangle]
extern "C" fn ima_list_binary_size(list: u32) -> c_ulong {
    let size = queue::state().map_or(0, |state| totals(state, list).1);
    c_ulong::try_from(size).unwrap_or(c_ulong::MAX)
}

/// The list a seq_file reads: the current or the staged one.
#[inline]
fn seq_list(staged: bool) -> Option<&'static list::RecordList> {
    let state = queue::state()?;
    Some(if staged {
        state.staged()
    } else {
        state.current()
    })
}

/// A cursor at position `pos` of the current (or staged) list, for the
/// seq_file readers, or NULL past the end. The caller holds
/// `rcu_read_lock()` for as long as it uses the cursor.
#[no_mangle]
extern "C" fn ima_list_seq_start(staged: bool, pos: i64) -> *mut c_void {
    let (Some(list), Ok(pos)) = (seq_list(staged), usize::try_from(pos)) else {
        return core::ptr::null_mut();
    };
    // Nested in the caller's: the cursor stays valid until the caller's
    // read-side critical section ends.
    let rcu = rcu::read_lock();
    list.cursor(&rcu, pos)
        .map_or(core::ptr::null_mut(), list::Cursor::into_raw)
}

/// The cursor after `prev`, a step from it; `_pos` is where the seq_file
/// counts it.
///
/// # Safety
///
/// `prev` must be a cursor of the same list from [`ima_list_seq_start`] or
/// [`ima_list_seq_next`], in the caller's RCU read-side critical section.
#[no_mangle]
unsafe extern "C" fn ima_list_seq_next(staged: bool, prev: *mut c_void, _pos: i64) -> *mut c_void {
    let Some(list) = seq_list(staged) else {
        return core::ptr::null_mut();
    };
    // SAFETY: The caller passes a cursor made in its read-side critical
    // section, which lasts until after this returns.
    let prev = unsafe { list::Cursor::from_raw(prev) };
    list.next(prev)
        .map_or(core::ptr::null_mut(), list::Cursor::into_raw)
}

/// The record at `cursor`, for `ima_list_seq_show()` (`glue.c`), or NULL if
/// a cut has taken it out of the list since the cursor reached it.
///
/// # Safety
///
/// `cursor` must be a cursor from [`ima_list_seq_start`] or
/// [`ima_list_seq_next`], in the caller's RCU read-side critical section,
/// which the caller holds for as long as it uses the record.
#[no_mangle]
unsafe extern "C" fn ima_rs_cursor_record(cursor: *mut c_void) -> *const RecordData {
    // SAFETY: As required above; the record is used in the caller's
    // read-side critical section.
    let cursor = unsafe { list::Cursor::from_raw(cursor) };
    cursor
        .record()
        .map_or(core::ptr::null(), core::ptr::from_ref)
}

/// Admits an open of a measurement file by the current task, for writing
/// if `write` (the caller checked CAP_SYS_ADMIN): 0, `-EBUSY` (the files
/// are held by the other kind of user) or `-ENFILE` (too many users).
#[no_mangle]
extern "C" fn ima_list_open_file(write: bool) -> c_int {
    from_result(|| {
        let state = queue::state().ok_or(ENODEV)?;
        let task = kernel::current!();
        state.open_file(write, mediation::Writer::current(task))?;
        Ok(0)
    })
}

/// Releases an open admitted by [`ima_list_open_file`], in whatever task
/// drops the file's last reference.
#[no_mangle]
extern "C" fn ima_list_release_file(write: bool) {
    if let Some(state) = queue::state() {
        state.release_file(write);
    }
}

/// Runs the command in a write of `len` bytes at `buf` to a measurement
/// file (`staged`: a `_staged` one), `flush` being the `ima_flush_htable`
/// boot parameter. Returns `len`; see [`command::parse`] and
/// [`State::execute`] for the errors, and `EFAULT` for a bad user pointer.
fn write(state: &State, buf: UserPtr, len: usize, staged: bool, flush: bool) -> Result<usize> {
    if !(2..=command::MAX_LEN).contains(&len) {
        return Err(EINVAL);
    }
    let mut bytes = [0; command::MAX_LEN];
    UserSlice::new(buf, len)
        .reader()
        .read_slice(&mut bytes[..len])?;
    state.execute(command::parse(&bytes[..len], staged, flush)?, flush)?;
    Ok(len)
}

/// Handles a write to a measurement file; see [`write`]. Returns `len` or
/// a negative errno.
#[no_mangle]
extern "C" fn ima_list_write(buf: *mut c_void, len: usize, staged: bool, flush: bool) -> isize {
    from_result(|| {
        let state = queue::state().ok_or(ENODEV)?;
        let written = write(state, UserPtr::from_ptr(buf), len, staged, flush)?;
        // `write` accepts at most `command::MAX_LEN` bytes.
        Ok(written as isize)
    })
}

/// Suspends measurement: no record is added or removed afterwards.
#[no_mangle]
extern "C" fn ima_list_suspend() {
    if let Some(state) = queue::state() {
        state.suspend();
    }
}

/// Fills the kexec buffer of `size` bytes at `buf` with the staged, then
/// the current records, in little endian order if `canonical`; see
/// [`kexec::serialize`]. The bytes used go to `*used`, whatever the result.
/// Returns 0, or `-EINVAL` if not every record fit.
///
/// # Safety
///
/// `buf` must be valid for writes of `size` bytes, which nothing else
/// accesses during the call; they need not be initialised. `used` must be
/// valid for writes.
#[no_mangle]
unsafe extern "C" fn ima_list_kexec_serialize(
    buf: *mut u8,
    size: usize,
    canonical: bool,
    used: *mut usize,
) -> c_int {
    // SAFETY: The caller passes a buffer valid for writes of `size` bytes
    // that nothing else accesses meanwhile; `MaybeUninit` makes no claim
    // that they are initialised.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), size) };
    let (len, result) = match queue::state() {
        Some(state) => kexec::serialize(state, buf, canonical),
        None => (0, Err(ENODEV)),
    };
    // SAFETY: The caller passes a pointer valid for writes.
    unsafe { used.write(len) };
    from_result(|| result.map(|()| 0))
}

/// Counts a violation.
#[no_mangle]
extern "C" fn ima_list_count_violation() {
    if let Some(state) = queue::state() {
        state.add_violation();
    }
}

/// Violations since boot.
#[no_mangle]
extern "C" fn ima_list_violations() -> c_long {
    queue::state().map_or(0, |state| state.violations() as c_long)
}

#[kunit_tests(ima_rs)]
mod tests {
    use super::*;
    use crate::testing::{add, new_state, unbound_queue};
    use kernel::{
        sync::{
            atomic::{Acquire, Atomic, Relaxed, Release},
            Arc, Completion,
        },
        time::{delay::fsleep, Delta, Instant, Monotonic},
    };

    /// IMA initialises before KUnit runs: the C side set the queue up.
    #[test]
    fn initialised_from_c() {
        assert!(queue::state().is_some());
    }

    /// Length and pointer errors of a write come before the command runs.
    /// (UML cannot fault on a user address in a kernel thread, which has no
    /// address space: there the conformance suite's bad pointer case in a
    /// guest covers `EFAULT`.)
    #[test]
    fn write_lengths_and_bad_pointer() -> Result {
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        let null = || UserPtr::from_addr(0);
        for len in [0, 1, command::MAX_LEN + 1, usize::MAX] {
            assert_eq!(write(&state, null(), len, false, false), Err(EINVAL));
            assert_eq!(write(&state, null(), len, true, false), Err(EINVAL));
        }
        #[cfg(not(CONFIG_UML))]
        for len in [2, command::MAX_LEN] {
            assert_eq!(write(&state, null(), len, false, false), Err(EFAULT));
            assert_eq!(write(&state, null(), len, true, false), Err(EFAULT));
        }
        assert_eq!(state.current().len(), 1);
        assert!(state.staged().is_empty());
        Ok(())
    }

    /// How long the worker of the counting race appends and cuts.
    const COUNT_TIME: Delta = Delta::from_secs(3);

    /// The most rounds of appends and cuts it runs in that time (far fewer
    /// run).
    const COUNT_MAX_ROUNDS: u32 = 100_000;

    /// Readers of the counts besides the test's own thread.
    const COUNT_READERS: usize = 2;

    /// Reads the counts of both lists until `finished`. Returns the rounds
    /// of reads made and whether a count exceeded `most`.
    fn read_counts(state: &State, finished: &Atomic<bool>, most: usize) -> (u64, bool) {
        let (mut reads, mut over) = (0u64, false);
        while !finished.load(Relaxed) {
            for _ in 0..1000 {
                for list in [BINARY, BINARY_STAGED] {
                    over |= totals(state, list).0 > most;
                }
                reads += 1;
            }
            // Lets the worker run where it shares the CPU (UML).
            fsleep(Delta::from_micros(100));
        }
        (reads, over)
    }

    /// The counts C reads without a lock (`runtime_measurements_count`,
    /// the kexec sizes) stay within what was added while records are
    /// appended, staged and cut on another CPU. A count that loads the end
    /// of a list before its start can see the start move past the end
    /// loaded: with overflow checks that is a panic, without a count near
    /// `usize::MAX`. That window is two loads wide and opens when a
    /// reader's CPU stops between them while the worker appends and cuts,
    /// so three readers run: the x86_64 run gives the guest four vCPUs on a
    /// host of two CPUs, whose scheduler then preempts them mid-read. UML
    /// has one CPU: there this is a sequential check.
    #[test]
    fn counts_while_appending_and_cutting() -> Result {
        let state = Arc::pin_init(State::new(), GFP_KERNEL)?;
        let finished = Arc::new(Atomic::new(false), GFP_KERNEL)?;
        let rounds = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let worker_done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let (worker, flag, done_rounds, completion) = (
            state.clone(),
            finished.clone(),
            rounds.clone(),
            worker_done.clone(),
        );
        unbound_queue().try_spawn(GFP_KERNEL, move || {
            let start = Instant::<Monotonic>::now();
            let mut round = 0;
            while round < COUNT_MAX_ROUNDS && start.elapsed() < COUNT_TIME {
                // Distinct fills keep every record new to the table.
                let fill = (round % 100) as u8;
                let pcr = 10 + round / 100;
                let _ = add(&worker, pcr, fill, false);
                let _ = add(&worker, pcr + COUNT_MAX_ROUNDS, fill, false);
                if round % 4 == 3 {
                    let _ = worker.stage();
                    let _ = worker.delete_staged(false);
                } else {
                    let _ = worker.delete_current_front(worker.current().len());
                }
                round += 1;
            }
            done_rounds.store(round, Relaxed);
            flag.store(true, Relaxed);
            completion.complete_all();
        })?;
        let most = 2 * COUNT_MAX_ROUNDS as usize;
        let left = Arc::new(Atomic::new(COUNT_READERS), GFP_KERNEL)?;
        let readers_over = Arc::new(Atomic::new(false), GFP_KERNEL)?;
        for _ in 0..COUNT_READERS {
            let (reader, flag, left, over) = (
                state.clone(),
                finished.clone(),
                left.clone(),
                readers_over.clone(),
            );
            unbound_queue().try_spawn(GFP_KERNEL, move || {
                if read_counts(&reader, &flag, most).1 {
                    over.store(true, Relaxed);
                }
                left.fetch_sub(1, Release);
            })?;
        }
        let (reads, over) = read_counts(&state, &finished, most);
        worker_done.wait_for_completion();
        // A reader that panicked never finishes: wait a bounded time.
        for _ in 0..1000 {
            if left.load(Acquire) == 0 {
                break;
            }
            fsleep(Delta::from_millis(10));
        }
        assert_eq!(left.load(Acquire), 0);
        assert!(reads > 0);
        assert!(!over);
        assert!(!readers_over.load(Relaxed));
        assert_eq!(state.since_boot().0, 2 * rounds.load(Relaxed) as usize);
        Ok(())
    }
}
