// SPDX-License-Identifier: GPL-2.0

//! Rust implementation of the IMA measurement list.
//!
//! Selected with `CONFIG_IMA_STAGING_RUST`. The C side of IMA keeps the LSM
//! hooks, template formatting, the TPM extend and securityfs; it calls into
//! this crate through the `extern "C"` functions below, declared in `ima.h`.
//! Each of them is a thin edge over the safe code of the submodules.

use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::c_void,
    prelude::*,
    task::Task,
    uaccess::{UserPtr, UserSlice},
};

// The crate root sits among IMA's C files; its modules live in ima_rs/.
#[path = "ima_rs/command.rs"]
mod command;
#[path = "ima_rs/entry.rs"]
mod entry;
#[path = "ima_rs/kexec.rs"]
mod kexec;
#[path = "ima_rs/list.rs"]
mod list;
#[path = "ima_rs/mediation.rs"]
mod mediation;
#[path = "ima_rs/queue.rs"]
mod queue;
#[path = "ima_rs/table.rs"]
mod table;
#[cfg(CONFIG_KUNIT = "y")]
#[path = "ima_rs/testing.rs"]
mod testing;

pub use entry::TemplateEntry;
use queue::AddError;

extern "C" {
    /// Extends the record's PCR in the TPM (`ima_queue.c`); a violation
    /// extends the invalidating all-ones digest instead.
    fn ima_rs_pcr_extend(entry: *mut TemplateEntry, violation: bool) -> c_int;
}

/// Prefix of this crate's log messages, as `pr_fmt` gives the C files.
const __LOG_PREFIX: &[u8] = b"ima\0";

/// The C `enum binary_lists`.
const BINARY: u32 = 0;
const BINARY_STAGED: u32 = 1;
const BINARY_FULL: u32 = 2;

/// Sets up the queue. Called once from `ima_init()`, before the first
/// record is added or restored.
///
/// Returns 0 or a negative errno.
#[no_mangle]
pub extern "C" fn ima_rs_init() -> c_int {
    match queue::init() {
        Ok(()) => {
            pr_info!("Rust measurement list selected\n");
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Adds a measurement record and extends its PCR; see [`queue::State::add`].
///
/// Returns 0 with the TPM's result in `*tpm_result`, or `-ENODEV`
/// (measurement suspended), `-EEXIST` (known digest) or `-ENOMEM`, in which
/// cases the caller still owns `entry`.
///
/// # Safety
///
/// `entry` must be a valid entry allocated by IMA and owned by the caller,
/// and `tpm_result` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ima_rs_add_entry(
    entry: *mut TemplateEntry,
    violation: bool,
    use_table: bool,
    tpm_result: *mut c_int,
) -> c_int {
    let (Some(state), Some(entry)) = (queue::state(), NonNull::new(entry)) else {
        return ENODEV.to_errno();
    };
    // SAFETY: The record is in the current list, which no one can cut
    // while `add` holds the extend lock.
    let extend = || unsafe { ima_rs_pcr_extend(entry.as_ptr(), violation) };
    // SAFETY: The caller passes a valid entry that it owns.
    match unsafe { state.add(entry, violation, use_table, extend) } {
        Ok(tpm) => {
            // SAFETY: The caller passes a pointer valid for writes.
            unsafe { tpm_result.write(tpm) };
            0
        }
        Err(AddError::Suspended) => ENODEV.to_errno(),
        Err(AddError::Duplicate) => EEXIST.to_errno(),
        Err(AddError::NoMemory) => ENOMEM.to_errno(),
    }
}

/// Appends a record restored from the previous kernel's kexec buffer.
///
/// Returns 0, or a negative errno and the caller still owns `entry`.
///
/// # Safety
///
/// `entry` must be a valid entry allocated by IMA and owned by the caller.
#[no_mangle]
pub unsafe extern "C" fn ima_rs_restore_entry(entry: *mut TemplateEntry) -> c_int {
    let (Some(state), Some(entry)) = (queue::state(), NonNull::new(entry)) else {
        return ENODEV.to_errno();
    };
    // SAFETY: The caller passes a valid entry that it owns.
    errno(unsafe { state.restore(entry) })
}

/// Records and their bytes in the binary format (without the kexec
/// header) in one of the C `enum binary_lists`: the current list, the
/// staged list, or everything added since boot.
fn totals(list: u32) -> (usize, usize) {
    let Some(state) = queue::state() else {
        return (0, 0);
    };
    match list {
        BINARY => (state.current().len(), state.current().binary_size()),
        BINARY_STAGED => (state.staged().len(), state.staged().binary_size()),
        BINARY_FULL => state.since_boot(),
        _ => (0, 0),
    }
}

/// Records in one of the C `enum binary_lists`; see [`totals`].
#[no_mangle]
pub extern "C" fn ima_rs_num_records(list: u32) -> c_long {
    c_long::try_from(totals(list).0).unwrap_or(c_long::MAX)
}

/// Bytes the records of one of the C `enum binary_lists` take in the binary
/// format; see [`totals`].
#[no_mangle]
pub extern "C" fn ima_rs_binary_size(list: u32) -> c_ulong {
    c_ulong::try_from(totals(list).1).unwrap_or(c_ulong::MAX)
}

/// The record at position `pos` of the current (or staged) list, for the
/// seq_file readers, or NULL past the end.
#[no_mangle]
pub extern "C" fn ima_rs_measurement(staged: bool, pos: i64) -> *mut TemplateEntry {
    let (Some(state), Ok(pos)) = (queue::state(), usize::try_from(pos)) else {
        return core::ptr::null_mut();
    };
    let list = if staged {
        state.staged()
    } else {
        state.current()
    };
    list.get(pos).unwrap_or(core::ptr::null_mut())
}

/// Turns a result into 0 or a negative errno.
fn errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Admits an open of a measurement file, for writing if `write`: 0,
/// `-EPERM` (write without CAP_SYS_ADMIN), `-EBUSY` (the files are held by
/// the other kind of user) or `-ENFILE` (too many readers).
#[no_mangle]
pub extern "C" fn ima_rs_measure_open(write: bool) -> c_int {
    let Some(state) = queue::state() else {
        return ENODEV.to_errno();
    };
    // SAFETY: `capable()` may be called from any task context.
    if write && !unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) } {
        return EPERM.to_errno();
    }
    errno(state.open_file(write, current_task()))
}

/// Releases an open admitted by [`ima_rs_measure_open`].
#[no_mangle]
pub extern "C" fn ima_rs_measure_release(write: bool) {
    if let Some(state) = queue::state() {
        state.release_file(write, current_task());
    }
}

fn current_task() -> mediation::TaskId {
    Task::current_raw() as mediation::TaskId
}

/// Handles a write of `len` bytes at user address `buf` to a measurement
/// file (`staged`: a `_staged` one); `flush` is the `ima_flush_htable` boot
/// parameter. Returns `len` or a negative errno (see [`command::parse`] and
/// [`queue::State::execute`]; `-EFAULT` for a bad user pointer).
#[no_mangle]
pub extern "C" fn ima_rs_measurements_write(
    buf: *mut c_void,
    len: usize,
    staged: bool,
    flush: bool,
) -> isize {
    let Some(state) = queue::state() else {
        return ENODEV.to_errno() as isize;
    };
    let run = || -> Result {
        if !(2..=command::MAX_LEN).contains(&len) {
            return Err(EINVAL);
        }
        let mut bytes = KVec::with_capacity(len, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_ptr(buf), len).read_all(&mut bytes, GFP_KERNEL)?;
        state.execute(command::parse(&bytes, staged, flush)?, flush)
    };
    match run() {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Suspends measurement: no record is added or removed afterwards.
#[no_mangle]
pub extern "C" fn ima_rs_suspend() {
    if let Some(state) = queue::state() {
        state.suspend();
    }
}

/// Bytes the kexec buffer needs for the records of both lists, plus `extra`
/// for those added before the kexec happens; see [`kexec::buffer_size`].
#[no_mangle]
pub extern "C" fn ima_rs_kexec_buffer_size(extra: usize) -> usize {
    queue::state().map_or(kexec::HEADER_LEN, |state| kexec::buffer_size(state, extra))
}

/// Fills the kexec buffer of `size` bytes at `buf` with the staged, then
/// the current records, in little endian order if `canonical`; see
/// [`kexec::serialize`]. The bytes used go to `*used`. Returns 0, or
/// `-EINVAL` if not every record fit.
///
/// # Safety
///
/// `buf` must be valid for writes of `size` bytes, which nothing else
/// accesses during the call, and `used` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ima_rs_kexec_serialize(
    buf: *mut u8,
    size: usize,
    canonical: bool,
    used: *mut usize,
) -> c_int {
    let Some(state) = queue::state() else {
        return ENODEV.to_errno();
    };
    // SAFETY: The caller passes a buffer valid for writes of `size` bytes
    // that nothing else accesses meanwhile.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, size) };
    let (len, result) = kexec::serialize(state, buf, canonical);
    // SAFETY: The caller passes a pointer valid for writes.
    unsafe { used.write(len) };
    errno(result)
}

/// Counts a violation.
#[no_mangle]
pub extern "C" fn ima_rs_add_violation() {
    if let Some(state) = queue::state() {
        state.add_violation();
    }
}

/// Violations since boot.
#[no_mangle]
pub extern "C" fn ima_rs_violations() -> c_long {
    queue::state().map_or(0, |state| state.violations() as c_long)
}

#[kunit_tests(ima_rs)]
mod tests {
    use super::*;

    /// IMA initialises before KUnit runs: the C side set the queue up.
    #[test]
    fn initialised_from_c() {
        assert!(queue::state().is_some());
    }
}
