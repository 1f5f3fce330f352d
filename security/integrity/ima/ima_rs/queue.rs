// SPDX-License-Identifier: GPL-2.0

//! The measurement queue: the current and staged record lists, the digest
//! table and the counters, and the extend lock that orders every change to
//! them with the TPM extend.

use crate::{
    command::Command,
    entry::Record,
    list::RecordList,
    mediation::{Users, Writer},
    table::{DigestTable, Key, Slot},
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        lock::{mutex::MutexBackend, Guard},
        rcu, Mutex, SetOnce,
    },
    try_pin_init,
};

/// What the extend lock protects besides the lists' positions.
pub(crate) struct Queue {
    table: DigestTable,
    /// Set once measurement is suspended for a reboot or kexec.
    suspended: bool,
}

/// Proof that the extend lock is held: lists are appended to and cut
/// only with it.
pub(crate) type ExtendGuard<'a> = Guard<'a, Queue, MutexBackend>;

/// Everything the queue owns, allocated once by [`init`] and never freed.
///
/// # Invariants
///
/// `second_is_current` says which list is the current one; the other one is
/// the staged list. It changes only with the extend lock held.
#[pin_data]
pub(crate) struct State {
    #[pin]
    queue: Mutex<Queue>,
    /// The open measurement files; a lock of its own, as in C, so that
    /// opening never waits for a TPM extend.
    #[pin]
    users: Mutex<Users<Writer>>,
    #[pin]
    first: RecordList,
    #[pin]
    second: RecordList,
    second_is_current: Atomic<bool>,
    /// Records added since boot, restored ones included, deleted ones too.
    records_since_boot: Atomic<usize>,
    /// Their size in the binary format.
    size_since_boot: Atomic<usize>,
    violations: Atomic<isize>,
}

static STATE: SetOnce<&'static State> = SetOnce::new();

/// Allocates the queue; called once, from `ima_init()`.
pub(crate) fn init() -> Result {
    let state = KBox::pin_init(State::new(), GFP_KERNEL)?;
    // SAFETY: The state is leaked below, so it is never moved (nor freed).
    let state = KBox::leak(unsafe { Pin::into_inner_unchecked(state) });
    if !STATE.populate(state) {
        return Err(EBUSY);
    }
    Ok(())
}

/// The queue, once [`init`] has succeeded (IMA does not run without it).
#[inline]
pub(crate) fn state() -> Option<&'static State> {
    STATE.copy()
}

/// Why a record was not added.
pub(crate) enum AddError {
    /// Measurement is suspended (`-ENODEV`).
    Suspended,
    /// The digest is known for this PCR (`-EEXIST`).
    Duplicate,
    /// The digest table or the list could not take the record: no memory
    /// (`-ENOMEM`), or a key of another length than the table's (`-EINVAL`).
    Failed(Error),
}

impl From<AddError> for Error {
    fn from(e: AddError) -> Error {
        match e {
            AddError::Suspended => ENODEV,
            AddError::Duplicate => EEXIST,
            AddError::Failed(e) => e,
        }
    }
}

impl State {
    /// An empty queue: IMA's own is made once by [`init`], tests make
    /// their own.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(State {
            queue <- new_mutex!(Queue {
                table: DigestTable::new(),
                suspended: false,
            }),
            users <- new_mutex!(Users::new()),
            first <- RecordList::new(),
            second <- RecordList::new(),
            second_is_current: Atomic::new(false),
            records_since_boot: Atomic::new(0),
            size_since_boot: Atomic::new(0),
            violations: Atomic::new(0),
        }? Error)
    }

    /// The two lists: the staged one, then the current one.
    fn lists(&self) -> (&RecordList, &RecordList) {
        if self.second_is_current.load(Acquire) {
            (&self.first, &self.second)
        } else {
            (&self.second, &self.first)
        }
    }

    /// The list new records go to.
    pub(crate) fn current(&self) -> &RecordList {
        self.lists().1
    }

    /// The list of staged records (empty when nothing is staged).
    pub(crate) fn staged(&self) -> &RecordList {
        self.lists().0
    }

    /// Adds `record` to the current list and extends its PCR, atomically
    /// with respect to every other change of the queue. Unless it is a
    /// violation or `use_table` is off (`CONFIG_IMA_DISABLE_HTABLE`), a
    /// record whose digest is known for its PCR is refused.
    ///
    /// `extend` extends the PCR (the TPM's result is returned: the record
    /// stays even if the extend failed, as in C). A refused record is
    /// freed.
    pub(crate) fn add(
        &self,
        record: Record,
        violation: bool,
        use_table: bool,
        extend: impl FnOnce() -> c_int,
    ) -> Result<c_int, AddError> {
        let key = use_table.then(|| Key::new(record.pcr(), record.digest()));
        let mut queue = self.queue.lock();
        if queue.suspended {
            return Err(AddError::Suspended);
        }
        let known = key.as_ref().is_some_and(|key| queue.table.contains(key));
        if known && !violation {
            return Err(AddError::Duplicate);
        }
        let slot: Option<Slot> = key
            .filter(|_| !known)
            .map(|key| queue.table.reserve(key))
            .transpose()
            .map_err(AddError::Failed)?;
        let size = record.binary_size();
        self.current()
            .push(&queue, record)
            .map_err(AddError::Failed)?;
        if let Some(slot) = slot {
            queue.table.insert(slot);
        }
        self.count_since_boot(size);
        Ok(extend())
    }

    /// Appends a record carried over by kexec to the current list. Restored
    /// records are not entered in the digest table.
    pub(crate) fn restore(&self, record: Record) -> Result {
        let queue = self.queue.lock();
        let size = record.binary_size();
        self.current().push(&queue, record)?;
        self.count_since_boot(size);
        Ok(())
    }

    /// Stages the whole current list (`A`) in O(1): the current list
    /// becomes the staged one and the empty staged list the current one.
    pub(crate) fn stage(&self) -> Result {
        let queue = self.queue.lock();
        let (staged, current) = self.lists();
        if !staged.is_empty() {
            return Err(EEXIST);
        }
        if current.is_empty() {
            return Err(ENOENT);
        }
        if queue.suspended {
            return Err(EACCES);
        }
        // INVARIANT: The extend lock is held.
        let second_is_current = self.second_is_current.load(Relaxed);
        self.second_is_current.store(!second_is_current, Release);
        Ok(())
    }

    /// Deletes every staged record (`D`): cut in O(1) under the extend
    /// lock, freed after it. With `flush` the digest table is replaced by an
    /// empty one as well, so that deleted events can be recorded again; the
    /// old one, a 4 KiB block per hundred events since the last flush, is
    /// freed after the lock too.
    pub(crate) fn delete_staged(&self, flush: bool) -> Result {
        let mut queue = self.queue.lock();
        let staged = self.staged();
        if staged.is_empty() {
            return Err(ENOENT);
        }
        if queue.suspended {
            return Err(ESTALE);
        }
        let cut = staged.cut_all(&queue);
        let old_table = flush.then(|| core::mem::replace(&mut queue.table, DigestTable::new()));
        drop(queue);
        drop(old_table);
        cut.free();
        Ok(())
    }

    /// Deletes the first `n` records of the current list (`N`), or none
    /// if it holds fewer (`ENOENT`): cut in O(1) under the extend lock,
    /// freed after it.
    pub(crate) fn delete_current_front(&self, n: usize) -> Result {
        let queue = self.queue.lock();
        let current = self.current();
        if n > current.len() {
            return Err(ENOENT);
        }
        if queue.suspended {
            return Err(ESTALE);
        }
        let cut = current.cut_front(&queue, n).ok_or(ENOENT)?;
        drop(queue);
        cut.free();
        Ok(())
    }

    /// Runs `f` on the staged and the current list with the extend lock
    /// held: no record is added, staged or deleted until it returns.
    pub(crate) fn with_lists<R>(
        &self,
        f: impl FnOnce(&RecordList, &RecordList, &rcu::Guard) -> R,
    ) -> R {
        let _queue = self.queue.lock();
        let (staged, current) = self.lists();
        f(staged, current, &rcu::read_lock())
    }

    /// Runs a command written to a measurement file.
    pub(crate) fn execute(&self, command: Command, flush: bool) -> Result {
        match command {
            Command::Stage => self.stage(),
            Command::DeleteStaged => self.delete_staged(flush),
            Command::DeleteFirst(n) => self.delete_current_front(n),
        }
    }

    /// Admits an open of a measurement file by `task`; see [`Users::open`].
    pub(crate) fn open_file(&self, write: bool, task: Writer) -> Result {
        self.users.lock().open(write, task)
    }

    /// Releases an open admitted by [`State::open_file`], in whatever task.
    pub(crate) fn release_file(&self, write: bool) {
        self.users.lock().release(write);
    }

    fn count_since_boot(&self, size: usize) {
        self.records_since_boot.add(1, Relaxed);
        let total = self.size_since_boot.load(Relaxed).saturating_add(size);
        self.size_since_boot.store(total, Relaxed);
    }

    /// Records since boot, and their binary size.
    pub(crate) fn since_boot(&self) -> (usize, usize) {
        let _queue = self.queue.lock();
        (
            self.records_since_boot.load(Relaxed),
            self.size_since_boot.load(Relaxed),
        )
    }

    /// Stops every further change of the queue (reboot, kexec).
    pub(crate) fn suspend(&self) {
        self.queue.lock().suspended = true;
    }

    /// Counts a violation; the counter never goes down.
    pub(crate) fn add_violation(&self) {
        self.violations.add(1, Relaxed);
    }

    /// Violations since boot.
    pub(crate) fn violations(&self) -> isize {
        self.violations.load(Relaxed)
    }
}

#[kunit_tests(ima_rs_queue)]
mod tests {
    use super::*;
    use crate::{
        list::CHUNK,
        testing::{add, binary_size, fills, new_state, record, unbound_queue, DATA_LEN, SIZE},
    };
    use kernel::{
        sync::{rcu, Arc, Completion},
        time::{
            delay::{fsleep, udelay},
            Delta,
        },
    };

    #[test]
    fn add_iterate_count() -> Result {
        let state = new_state()?;
        let mut extends = 0;
        for fill in 1..=3u8 {
            let r = state.add(record(10, fill, u32::from(fill))?, false, true, || {
                extends += 1;
                0
            });
            assert!(r.is_ok());
        }
        assert_eq!(extends, 3);
        assert_eq!(state.current().len(), 3);
        assert_eq!(&fills(state.current())?[..], &[1, 2, 3]);
        assert!(state.current().cursor(&rcu::read_lock(), 3).is_none());
        let sizes = binary_size(1) + binary_size(2) + binary_size(3);
        assert_eq!(state.current().binary_size(), sizes);
        assert_eq!(state.since_boot(), (3, sizes));
        assert!(state.staged().is_empty());
        Ok(())
    }

    #[test]
    fn duplicates_per_pcr() -> Result {
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        assert!(!add(&state, 10, 1, false)?);
        assert!(add(&state, 11, 1, false)?);
        // A violation is recorded whatever the table says.
        assert!(add(&state, 10, 1, true)?);
        assert_eq!(state.current().len(), 3);
        assert_eq!(state.since_boot().0, 3);
        Ok(())
    }

    #[test]
    fn restored_records_not_in_table() -> Result {
        let state = new_state()?;
        state.restore(record(10, 7, DATA_LEN)?)?;
        assert!(add(&state, 10, 7, false)?);
        assert!(!add(&state, 10, 7, false)?);
        assert_eq!(state.current().len(), 2);
        assert_eq!(state.current().binary_size(), 2 * SIZE);
        Ok(())
    }

    #[test]
    fn delete_first_n() -> Result {
        let state = new_state()?;
        for fill in 1..=6u8 {
            assert!(add(&state, 10, fill, false)?);
        }
        let size = SIZE;
        assert_eq!(state.delete_current_front(0), Ok(()));
        assert_eq!(&fills(state.current())?[..], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(state.delete_current_front(1), Ok(()));
        assert_eq!(&fills(state.current())?[..], &[2, 3, 4, 5, 6]);
        assert_eq!(state.current().binary_size(), 5 * size);
        assert_eq!(state.delete_current_front(2), Ok(()));
        assert_eq!(&fills(state.current())?[..], &[4, 5, 6]);
        assert_eq!(state.current().binary_size(), 3 * size);
        assert_eq!(state.delete_current_front(4), Err(ENOENT));
        assert_eq!(&fills(state.current())?[..], &[4, 5, 6]);
        assert_eq!(state.delete_current_front(3), Ok(()));
        assert!(state.current().is_empty());
        assert_eq!(state.current().binary_size(), 0);
        // Deleted digests stay known; new records go on after the cut.
        assert!(!add(&state, 10, 1, false)?);
        assert!(add(&state, 10, 9, false)?);
        assert_eq!(&fills(state.current())?[..], &[9]);
        assert_eq!(state.since_boot(), (7, 7 * size));
        Ok(())
    }

    #[test]
    fn stage_and_delete() -> Result {
        let state = new_state()?;
        assert_eq!(state.stage(), Err(ENOENT));
        assert_eq!(state.delete_staged(false), Err(ENOENT));
        for fill in 1..=3u8 {
            assert!(add(&state, 10, fill, false)?);
        }
        assert_eq!(state.stage(), Ok(()));
        assert!(state.current().is_empty());
        assert_eq!(state.current().binary_size(), 0);
        assert_eq!(state.staged().binary_size(), 3 * SIZE);
        assert!(add(&state, 10, 4, false)?);
        assert!(add(&state, 10, 5, false)?);
        // Staged records come before the current ones.
        assert_eq!(&fills(state.staged())?[..], &[1, 2, 3]);
        assert_eq!(&fills(state.current())?[..], &[4, 5]);
        assert_eq!(state.stage(), Err(EEXIST));
        assert_eq!(state.delete_staged(false), Ok(()));
        assert!(state.staged().is_empty());
        assert_eq!(state.staged().binary_size(), 0);
        assert_eq!(&fills(state.current())?[..], &[4, 5]);
        // Stage again: the emptied list takes the new records.
        assert_eq!(state.stage(), Ok(()));
        assert!(add(&state, 10, 6, false)?);
        assert_eq!(&fills(state.staged())?[..], &[4, 5]);
        assert_eq!(&fills(state.current())?[..], &[6]);
        assert_eq!(state.since_boot().0, 6);
        Ok(())
    }

    #[test]
    fn table_replaced_on_flush() -> Result {
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert_eq!(state.delete_staged(false), Ok(()));
        assert!(!add(&state, 10, 1, false)?);
        assert!(add(&state, 10, 2, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert_eq!(state.delete_staged(true), Ok(()));
        // The table was replaced while it held entries: both digests are
        // new again, and the current list refuses duplicates of itself.
        assert!(add(&state, 10, 1, false)?);
        assert!(add(&state, 10, 2, false)?);
        assert!(!add(&state, 10, 2, false)?);
        assert_eq!(&fills(state.current())?[..], &[1, 2]);
        Ok(())
    }

    /// Records the racing appender adds.
    const RACE_ADDS: u8 = 200;

    /// Delete-N runs while a work item appends: the appends land in the
    /// chunk that the cut records are taken from, and none may be lost or
    /// cut twice, nor their bytes miscounted.
    #[test]
    fn delete_first_n_racing_append() -> Result {
        let state = Arc::pin_init(State::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        for fill in 1..=20u8 {
            assert!(add(&state, 10, fill, false)?);
        }
        let (appender, finished) = (state.clone(), done.clone());
        unbound_queue().try_spawn(GFP_KERNEL, move || {
            for fill in 21..21 + RACE_ADDS {
                // A failure shows as a wrong count below.
                let _ = add(&appender, 11, fill, false);
            }
            finished.complete_all();
        })?;
        let mut deleted = 0;
        while deleted < 20 {
            if state.delete_current_front(2).is_ok() {
                deleted += 2;
            }
        }
        done.wait_for_completion();
        let total = 20 + usize::from(RACE_ADDS);
        assert_eq!(state.since_boot().0, total);
        assert_eq!(state.current().len(), total - 20);
        assert_eq!(state.current().binary_size(), (total - 20) * SIZE);
        // What is left is exactly the appended records, in order.
        let left = fills(state.current())?;
        assert_eq!(left.len(), usize::from(RACE_ADDS));
        assert!(left.iter().zip(21u8..).all(|(&f, want)| f == want));
        Ok(())
    }

    #[test]
    fn suspended_changes_nothing() -> Result {
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        assert!(add(&state, 10, 2, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert!(add(&state, 10, 3, false)?);
        state.suspend();
        let r = state.add(record(10, 4, DATA_LEN)?, false, true, || 0);
        assert!(matches!(r, Err(AddError::Suspended)));
        assert_eq!(state.delete_staged(false), Err(ESTALE));
        assert_eq!(state.delete_current_front(1), Err(ESTALE));
        assert_eq!(&fills(state.staged())?[..], &[1, 2]);
        assert_eq!(&fills(state.current())?[..], &[3]);

        // With nothing staged, staging is refused for the suspension.
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        state.suspend();
        assert_eq!(state.stage(), Err(EACCES));
        assert_eq!(&fills(state.current())?[..], &[1]);
        Ok(())
    }

    /// N on an empty current list (everything staged) and N beyond any
    /// count are refused and change nothing.
    #[test]
    fn delete_first_n_refused() -> Result {
        let state = new_state()?;
        for fill in 1..=3u8 {
            assert!(add(&state, 10, fill, false)?);
        }
        assert_eq!(state.delete_current_front(usize::MAX), Err(ENOENT));
        assert_eq!(state.stage(), Ok(()));
        assert_eq!(state.delete_current_front(1), Err(ENOENT));
        assert_eq!(state.delete_current_front(usize::MAX), Err(ENOENT));
        assert_eq!(&fills(state.staged())?[..], &[1, 2, 3]);
        assert!(state.current().is_empty());
        assert_eq!(state.staged().binary_size(), 3 * SIZE);
        assert_eq!(state.current().binary_size(), 0);
        Ok(())
    }

    /// As in C, a list's own error comes before suspension's: EEXIST and
    /// ENOENT before EACCES, ENOENT before ESTALE.
    #[test]
    fn error_precedence() -> Result {
        let state = new_state()?;
        state.suspend();
        assert_eq!(state.stage(), Err(ENOENT));
        assert_eq!(state.delete_staged(false), Err(ENOENT));
        assert_eq!(state.delete_current_front(1), Err(ENOENT));

        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert!(add(&state, 10, 2, false)?);
        state.suspend();
        assert_eq!(state.stage(), Err(EEXIST));
        assert_eq!(state.delete_current_front(2), Err(ENOENT));
        assert_eq!(state.delete_current_front(1), Err(ESTALE));
        assert_eq!(state.delete_staged(false), Err(ESTALE));
        assert_eq!(&fills(state.staged())?[..], &[1]);
        assert_eq!(&fills(state.current())?[..], &[2]);
        Ok(())
    }

    /// With `ima_flush_htable`, `D` empties the whole table as C does:
    /// digests of records still in the current list are forgotten too.
    #[test]
    fn flush_with_current_records() -> Result {
        let state = new_state()?;
        assert!(add(&state, 10, 1, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert!(add(&state, 10, 2, false)?);
        assert_eq!(state.delete_staged(true), Ok(()));
        assert_eq!(&fills(state.current())?[..], &[2]);
        assert!(add(&state, 10, 2, false)?);
        assert!(add(&state, 10, 1, false)?);
        assert!(!add(&state, 10, 1, false)?);
        assert_eq!(&fills(state.current())?[..], &[2, 2, 1]);
        Ok(())
    }

    /// Without the table (`CONFIG_IMA_DISABLE_HTABLE`) every record is
    /// added, and none is remembered for later.
    #[test]
    fn without_table() -> Result {
        let state = new_state()?;
        for _ in 0..2 {
            let r = state.add(record(10, 1, DATA_LEN)?, false, false, || 0);
            assert!(matches!(r, Ok(0)));
        }
        assert!(add(&state, 10, 1, false)?);
        assert_eq!(&fills(state.current())?[..], &[1, 1, 1]);
        assert_eq!(state.since_boot(), (3, 3 * SIZE));
        Ok(())
    }

    /// A failed TPM extend is returned, and the record stays, as in C.
    #[test]
    fn failed_extend_keeps_record() -> Result {
        let state = new_state()?;
        let r = state.add(record(10, 1, DATA_LEN)?, false, true, || EIO.to_errno());
        assert!(matches!(r, Ok(tpm) if tpm == EIO.to_errno()));
        assert_eq!(&fills(state.current())?[..], &[1]);
        assert!(!add(&state, 10, 1, false)?);
        assert_eq!(state.since_boot(), (1, SIZE));
        Ok(())
    }

    /// Records the racing appender adds while commands run.
    const COMMAND_RACE_ADDS: u8 = 240;

    /// `A` and `D` run while a work item appends: every record ends up
    /// either deleted or current, once, in order.
    #[test]
    fn stage_and_delete_racing_append() -> Result {
        let state = Arc::pin_init(State::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let (appender, finished) = (state.clone(), done.clone());
        unbound_queue().try_spawn(GFP_KERNEL, move || {
            for fill in 1..=COMMAND_RACE_ADDS {
                // A failure shows as a missing record below.
                let _ = add(&appender, 10, fill, false);
            }
            finished.complete_all();
        })?;
        let mut seen = KVec::new();
        while seen.len() < usize::from(COMMAND_RACE_ADDS) / 2 {
            if state.stage().is_ok() {
                // Only this test runs commands: the staged list stands
                // still until it deletes it.
                seen.extend_from_slice(&fills(state.staged())?, GFP_KERNEL)?;
                assert_eq!(state.delete_staged(false), Ok(()));
            }
            fsleep(Delta::from_micros(100));
        }
        done.wait_for_completion();
        seen.extend_from_slice(&fills(state.current())?, GFP_KERNEL)?;
        assert_eq!(seen.len(), usize::from(COMMAND_RACE_ADDS));
        assert!(seen.iter().zip(1u8..).all(|(&f, want)| f == want));
        assert_eq!(state.since_boot().0, usize::from(COMMAND_RACE_ADDS));
        assert_eq!(state.current().binary_size(), state.current().len() * SIZE);
        Ok(())
    }

    /// A reader that found the last of `records` staged records keeps it
    /// across a delete of its list on another CPU: the delete returns
    /// without waiting for the reader, and the record is freed only once
    /// the reader has left its RCU read-side critical section. A record
    /// freed at once would read as zeroes: the suites' kunitconfig sets
    /// CONFIG_INIT_ON_FREE_DEFAULT_ON. Meaningful on SMP.
    fn reader_keeps_record(records: usize) -> Result {
        let state = Arc::pin_init(State::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let deleted = Arc::new(Atomic::new(false), GFP_KERNEL)?;
        for _ in 0..records {
            state
                .add(record(10, 7, DATA_LEN)?, false, false, || 0)
                .map_err(Error::from)?;
        }
        assert_eq!(state.stage(), Ok(()));
        let rcu = rcu::read_lock();
        let cursor = state.staged().cursor(&rcu, records - 1).ok_or(ENOENT)?;
        let record = cursor.record().ok_or(ENOENT)?;
        let (deleter, finished, flag) = (state.clone(), done.clone(), deleted.clone());
        unbound_queue().try_spawn(GFP_ATOMIC, move || {
            let _ = deleter.delete_staged(false);
            flag.store(true, Relaxed);
            finished.complete_all();
        })?;
        // On SMP the delete runs on another CPU and returns within a second
        // though this reader stays; on one CPU it cannot run before the
        // reader leaves.
        if cfg!(CONFIG_SMP) {
            for _ in 0..1000 {
                if deleted.load(Relaxed) {
                    break;
                }
                udelay(Delta::from_micros(1000));
            }
            assert!(deleted.load(Relaxed));
            assert!(state.staged().is_empty());
        }
        assert!(record.digest().iter().all(|&b| b == 7));
        drop(rcu);
        done.wait_for_completion();
        assert!(deleted.load(Relaxed));
        assert!(state.staged().is_empty());
        Ok(())
    }

    /// A record freed alone, by `kvfree_rcu`: its chunk stays.
    #[test]
    fn reader_keeps_record_across_delete() -> Result {
        reader_keeps_record(1)
    }

    /// A record freed with its chunk, which the delete empties, by the
    /// chunk's RCU callback.
    #[test]
    fn reader_keeps_record_of_deleted_chunk() -> Result {
        reader_keeps_record(CHUNK)
    }
}
