// SPDX-License-Identifier: GPL-2.0

//! An ordered list of measurement records.
//!
//! Records are kept by their position since the list was created, in chunks
//! of [`CHUNK`] consecutive positions, one 4 KiB slab object each, which an
//! XArray holds by `position / CHUNK`; the live records are those at
//! `[head, tail)`. Finding the record at a position, which every `read()` of
//! a measurement file does first, is a lookup instead of a walk from the head
//! of a linked list; a reader then goes on from record to record with a
//! [`Cursor`], a step within a chunk. Cutting the first N records or all of them only
//! moves `head`: the records cut off are freed later, outside the extend
//! lock, by [`Cut::free`], which takes their bytes off the list's binary size
//! as it frees them. A chunk whose positions have all been cut leaves the
//! XArray and is freed with the records still in it by one RCU callback;
//! only the records of a chunk that a cut leaves partly live are taken out
//! of it and freed one by one. Positions are never reused.
//!
//! Appending and cutting take the extend lock's guard, so that they are
//! ordered with each other and with the TPM extend. Readers take nothing but
//! an RCU read-side critical section and, for a lookup, the XArray's
//! spinlock, so they never wait for a TPM extend. Writers change a chunk in
//! the XArray only with the XArray's spinlock held; readers load its record
//! pointers, which are atomic, with or without it. [`Cut::free`] frees
//! chunks and records only after an RCU grace period, without waiting for
//! it: a chunk or a record a reader found stays valid until its RCU
//! read-side critical section ends, whatever the writers do meanwhile. A
//! reader at a position that is being cut may still find the record there,
//! or nothing: a lookup takes nothing for the end of the list, a cursor
//! skips it. `ima_fs.c` keeps the seq_file readers and the commands apart
//! anyway.

use crate::{
    entry::{Record, RecordData},
    queue::ExtendGuard,
};
use core::{
    ffi::c_void,
    mem::{align_of, size_of},
    ops::Range,
    ptr::{null_mut, NonNull},
};
use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        rcu,
    },
    types::Opaque,
    warn_on,
    xarray::{AllocKind, XArray},
};

/// Bytes of a chunk, and its alignment (`Chunk`'s `align` must be this).
const CHUNK_BYTES: usize = 4096;

/// Positions per chunk: as many record pointers as fit in [`CHUNK_BYTES`]
/// beside the chunk's first position, its two counters and its RCU callback
/// head.
pub(crate) const CHUNK: usize = (CHUNK_BYTES
    - size_of::<usize>()
    - 2 * size_of::<Atomic<usize>>()
    - size_of::<bindings::callback_head>())
    / size_of::<*mut RecordData>();

/// Records taken out of a chunk per hold of the XArray lock, which appends
/// take too: a cut that leaves a chunk partly live is freed without holding
/// it for long.
const BATCH: usize = 64;

/// The records of `CHUNK` consecutive positions, from a multiple of `CHUNK`.
///
/// # Invariants
///
/// - `records[i]` is null until the list's `tail` moves past its position.
///   From then on it holds a record from [`Record::into_raw`], which the
///   chunk owns, until a [`Cut`] takes the record out and leaves null, or
///   the chunk is freed with it.
/// - `first` is the position of `records[0]`, a multiple of `CHUNK`.
/// - `taken` is the number of positions that cuts have taken, with their
///   records or not; when it reaches `CHUNK` the chunk leaves the XArray
///   and is freed, with the records left in it, after an RCU grace period.
/// - `bytes` is the sum of [`RecordData::binary_size`] over the records in
///   `records`.
/// - While the chunk is in the XArray, its fields change only with the
///   XArray lock held.
/// - A chunk is aligned to its size, so that the chunk of a slot in
///   `records` is found from the slot's address (see [`Cursor`]).
#[repr(C, align(4096))]
struct Chunk {
    records: [Atomic<*mut RecordData>; CHUNK],
    first: usize,
    taken: Atomic<usize>,
    bytes: Atomic<usize>,
    rcu: Opaque<bindings::callback_head>,
}

kernel::static_assert!(size_of::<Chunk>() == CHUNK_BYTES);
kernel::static_assert!(align_of::<Chunk>() == CHUNK_BYTES);

// SAFETY: A chunk of zero bytes holds null pointers (an `Atomic<T>` has the
// representation of `T`), a first position and counts of zero, and an RCU
// head that `call_rcu()` has not been given.
unsafe impl Zeroable for Chunk {}

// SAFETY: A chunk owns its records, which may be sent to any thread (see
// `Record`), and its RCU head is used only by the thread that gives the
// whole chunk up to `call_rcu()`.
unsafe impl Send for Chunk {}

// SAFETY: Through a shared chunk, its records and counters are accessed
// atomically and its RCU head not at all.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Frees `chunk` and the records left in it once every RCU reader that
    /// could have found them has left its read-side critical section;
    /// returns at once.
    ///
    /// The caller must have made the chunk unreachable to new readers.
    fn free_after_grace_period(chunk: KBox<Self>) {
        let chunk = KBox::into_raw(chunk);
        // SAFETY: `chunk` is valid, and given up above: `free_rcu` takes it
        // back, once, after the grace period. Its RCU head is unused.
        unsafe { bindings::call_rcu((*chunk).rcu.get(), Some(Self::free_rcu)) };
    }

    /// The RCU callback of [`Chunk::free_after_grace_period`].
    ///
    /// # Safety
    ///
    /// `head` must be the RCU head of a chunk given up by
    /// [`Chunk::free_after_grace_period`], and the callback run once for it.
    unsafe extern "C" fn free_rcu(head: *mut bindings::callback_head) {
        let head = Opaque::cast_from(head).cast_mut();
        // SAFETY: By the safety requirements `head` is the `rcu` field of a
        // chunk from `KBox::into_raw`, taken back only here.
        let chunk = unsafe { KBox::from_raw(kernel::container_of!(head, Chunk, rcu)) };
        for slot in &chunk.records {
            if let Some(record) = NonNull::new(slot.load(Relaxed)) {
                // SAFETY: By the type invariants the chunk owns the records
                // left in it, and frees them only here.
                drop(unsafe { Record::from_raw(record) });
            }
        }
    }
}

/// A list of records.
///
/// # Invariants
///
/// - `head <= tail`, and neither ever decreases.
/// - `chunks` holds, at `i`, the chunk of the positions from `i * CHUNK`
///   for every `i` whose chunk has a position in `[head, tail)`, and no
///   chunk whose positions were all cut.
/// - A record is freed only after an RCU grace period that starts once
///   `head` has moved past its position, by [`Cut::free`].
/// - While the extend lock is free, `size` is the sum of
///   [`RecordData::binary_size`] over `[head, tail)` and over the records
///   that a [`Cut`] still holds.
#[pin_data(PinnedDrop)]
pub(crate) struct RecordList {
    #[pin]
    chunks: XArray<KBox<Chunk>>,
    head: Atomic<usize>,
    tail: Atomic<usize>,
    size: Atomic<usize>,
}

/// Records cut off a list, to be freed with [`Cut::free`].
///
/// # Invariants
///
/// Every position in `positions` is below `list.head`, and no other `Cut`
/// holds it. The records at these positions are still in their chunks, and
/// their sizes still in `list.size`.
#[must_use = "the records cut off are freed by Cut::free"]
pub(crate) struct Cut<'a> {
    list: &'a RecordList,
    positions: Range<usize>,
}

impl RecordList {
    /// Creates an empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            chunks <- XArray::new(AllocKind::Alloc),
            head: Atomic::new(0),
            tail: Atomic::new(0),
            size: Atomic::new(0),
        })
    }

    /// The number of records. Needs no lock.
    pub(crate) fn len(&self) -> usize {
        // `head` first: a `tail` loaded after it is at least the `tail` that
        // the cut which stored this `head` saw, so at least `head`. Loaded
        // the other way round, a push and a cut in between could move `head`
        // past it.
        let head = self.head.load(Acquire);
        let tail = self.tail.load(Acquire);
        tail - head
    }

    /// Whether the list holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the records take in the binary format.
    pub(crate) fn binary_size(&self) -> usize {
        self.size.load(Relaxed)
    }

    /// Appends `record`.
    pub(crate) fn push(&self, _extend: &ExtendGuard<'_>, record: Record) -> Result {
        let tail = self.tail.load(Relaxed);
        let size = record.binary_size();
        // The first position of a chunk brings the chunk; allocated before
        // the XArray lock is taken.
        let new_chunk = match tail % CHUNK {
            0 => {
                let mut chunk = KBox::<Chunk>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
                // INVARIANT: `tail` is a multiple of `CHUNK`.
                chunk.first = tail;
                Some(chunk)
            }
            _ => None,
        };
        let mut chunks = self.chunks.lock();
        if let Some(chunk) = new_chunk {
            match chunks.store(tail / CHUNK, chunk, GFP_KERNEL) {
                Ok(None) => {}
                Ok(Some(replaced)) => {
                    // Only a push stores a chunk, at the first position of
                    // it, and positions are not reused. Were it there, its
                    // records could still be in use: leak it.
                    warn_on!(true);
                    core::mem::forget(replaced);
                }
                Err(e) => return Err(e.error),
            }
        }
        // The chunk of `tail` is there: stored above or by the push of its
        // first position, and kept while `tail` is one of its positions.
        let Some(chunk) = chunks.get(tail / CHUNK) else {
            warn_on!(true);
            return Err(EINVAL);
        };
        // INVARIANT: The slot at `tail` is filled before `tail` moves past
        // it, and its bytes counted in the chunk's.
        chunk.records[tail % CHUNK].store(record.into_raw().as_ptr(), Relaxed);
        chunk.bytes.add(size, Relaxed);
        drop(chunks);
        self.size.add(size, Relaxed);
        // The release pairs with the acquire in `len()` and `cursor_at()`: a
        // reader that sees the new `tail` sees the slot filled.
        self.tail.store(tail + 1, Release);
        Ok(())
    }

    /// A cursor at `pos` (counted from the first live record), valid as long
    /// as the RCU read-side critical section of `rcu`.
    pub(crate) fn cursor<'a>(&'a self, _rcu: &'a rcu::Guard, pos: usize) -> Option<Cursor<'a>> {
        let index = self.head.load(Acquire).checked_add(pos)?;
        // SAFETY: `'a` is the read-side critical section of `_rcu`.
        unsafe { self.cursor_at(index) }
    }

    /// A cursor at the position `index`, if below `tail`.
    ///
    /// # Safety
    ///
    /// `'a` must be within an RCU read-side critical section.
    unsafe fn cursor_at<'a>(&'a self, index: usize) -> Option<Cursor<'a>> {
        // The acquire pairs with the release in `push()`: the slot of every
        // position below this `tail`, and the record in it, are seen filled.
        if index >= self.tail.load(Acquire) {
            return None;
        }
        let chunks = self.chunks.lock();
        let chunk = NonNull::from(chunks.get(index / CHUNK)?);
        drop(chunks);
        // SAFETY: The chunk was in `chunks`, so it is freed, if ever, after
        // a grace period that starts once it has left the XArray: after the
        // lookup above, made in the RCU read-side critical section that the
        // caller holds for `'a`, which therefore ends first.
        let chunk = unsafe { chunk.as_ref() };
        // INVARIANT: `index` is below `tail` and in `chunk`, which stays
        // allocated during the critical section of `'a`.
        Some(Cursor {
            chunk,
            slot: index % CHUNK,
        })
    }

    /// A cursor at the position after `cursor`'s, a step within a chunk,
    /// valid in the same RCU read-side critical section.
    #[inline]
    pub(crate) fn next<'a>(&'a self, cursor: Cursor<'a>) -> Option<Cursor<'a>> {
        let index = cursor.chunk.first + cursor.slot + 1;
        if cursor.slot + 1 == CHUNK {
            // SAFETY: By the type invariant of `Cursor`, `'a` is within an
            // RCU read-side critical section.
            return unsafe { self.cursor_at(index) };
        }
        // Acquire: as in `cursor_at()`.
        if index >= self.tail.load(Acquire) {
            return None;
        }
        // INVARIANT: `index` is below `tail`, in the same chunk as `cursor`.
        Some(Cursor {
            chunk: cursor.chunk,
            slot: cursor.slot + 1,
        })
    }

    /// The records, in order, including those appended while it runs.
    pub(crate) fn iter<'a>(
        &'a self,
        rcu: &'a rcu::Guard,
    ) -> impl Iterator<Item = &'a RecordData> + 'a {
        core::iter::successors(self.cursor(rcu, 0), move |&cursor| self.next(cursor))
            .filter_map(|cursor| cursor.record())
    }

    /// Cuts the first `n` records off the list in O(1), or none if there
    /// are fewer.
    pub(crate) fn cut_front(&self, _extend: &ExtendGuard<'_>, n: usize) -> Option<Cut<'_>> {
        let head = self.head.load(Relaxed);
        let len = self.tail.load(Acquire).checked_sub(head)?;
        if n > len {
            return None;
        }
        // Under the extend lock nothing else moves `head`; were it moved
        // meanwhile, cutting nothing keeps every position in one cut only.
        // INVARIANT: `n <= tail - head`, so `head + n <= tail`; the records
        // cut off stay in `size` until the cut frees them.
        self.head.cmpxchg(head, head + n, Release).ok()?;
        Some(Cut {
            list: self,
            positions: head..head + n,
        })
    }

    /// Cuts every record off the list in O(1); see [`RecordList::cut_front`].
    pub(crate) fn cut_all(&self, extend: &ExtendGuard<'_>) -> Cut<'_> {
        self.cut_front(extend, self.len()).unwrap_or(Cut {
            list: self,
            positions: 0..0,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for RecordList {
    fn drop(self: Pin<&mut Self>) {
        // No cut outlives the list, which it borrows: the records left are
        // the live ones. The chunks the cut does not complete, which hold
        // no record, go with the XArray.
        let tail = self.tail.load(Relaxed);
        let head = self.head.xchg(tail, Relaxed);
        let list: &RecordList = &self;
        // INVARIANT: `head` moved past these positions above.
        Cut {
            list,
            positions: head..tail,
        }
        .free();
    }
}

/// Where a reader is in a list: a position's slot in its chunk.
///
/// A cursor goes to C as the address of the slot, from which
/// [`Cursor::from_raw`] finds the chunk: chunks are aligned to their size.
///
/// # Invariants
///
/// `chunk.first + slot` was below the list's `tail` when the cursor was
/// made, and `chunk` stays allocated for `'a`, an RCU read-side critical
/// section in which it was found in the list's XArray.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    chunk: &'a Chunk,
    slot: usize,
}

impl<'a> Cursor<'a> {
    /// The record at the cursor, unless a cut has taken it out of the list.
    #[inline]
    pub(crate) fn record(self) -> Option<&'a RecordData> {
        let record = self.chunk.records[self.slot].load(Relaxed);
        // SAFETY: The position is below `tail`, so the slot, unless a cut
        // took the record out, holds a record, which a cut frees only after
        // a grace period that starts once the record has left the slot:
        // after the load above, made in the RCU read-side critical section
        // of `'a`, which therefore ends first.
        NonNull::new(record).map(|record| unsafe { &*record.as_ptr() })
    }

    /// The cursor as C keeps it: the address of its slot.
    pub(crate) fn into_raw(self) -> *mut c_void {
        core::ptr::from_ref(&self.chunk.records[self.slot])
            .cast_mut()
            .cast()
    }

    /// Takes back a cursor given to C with [`Cursor::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` must come from [`Cursor::into_raw`] in an RCU read-side
    /// critical section that lasts for `'a`.
    pub(crate) unsafe fn from_raw(raw: *mut c_void) -> Self {
        let offset = raw as usize % CHUNK_BYTES;
        let chunk = raw.cast::<u8>().wrapping_sub(offset).cast::<Chunk>();
        // SAFETY: By the safety requirements `raw` is the address of a slot
        // of a chunk that stays allocated during the critical section, and
        // chunks are aligned to `CHUNK_BYTES`: `chunk` is its start, the
        // address of `records[0]` (`repr(C)`).
        let chunk = unsafe { &*chunk };
        // INVARIANT: The slot and the chunk are those of a cursor made in
        // the critical section that lasts for `'a`.
        Self {
            chunk,
            slot: offset / size_of::<Atomic<*mut RecordData>>(),
        }
    }
}

impl Cut<'_> {
    /// Takes the records cut off out of the list without the extend lock,
    /// takes their bytes off the list's binary size, and frees them once
    /// every reader that could have found them has left its RCU read-side
    /// critical section, without waiting for that.
    ///
    /// The positions of a chunk that the cut completes go with the chunk,
    /// in O(1); the others are taken out a batch per hold of the XArray
    /// lock.
    pub(crate) fn free(self) {
        let Range { mut start, end } = self.positions;
        let mut batch: [Option<Record>; BATCH] = [const { None }; BATCH];
        while start < end {
            let index = start / CHUNK;
            let in_chunk = end.min((index + 1) * CHUNK) - start;
            let mut chunks = self.list.chunks.lock();
            let Some(chunk) = chunks.get(index) else {
                // By the invariants a chunk stays until its positions are
                // all taken, and these are not yet: leak rather than guess.
                warn_on!(true);
                return;
            };
            let taken = chunk.taken.load(Relaxed);
            let (count, mut size) = if taken + in_chunk == CHUNK {
                (in_chunk, 0)
            } else {
                let count = in_chunk.min(BATCH);
                let mut size: usize = 0;
                for (slot, pos) in batch.iter_mut().zip(start..start + count) {
                    let record = chunk.records[pos % CHUNK].xchg(null_mut(), Relaxed);
                    // SAFETY: The cut holds `pos`, so by the type invariants
                    // the slot held a record from `Record::into_raw`, which
                    // the chunk no longer holds.
                    *slot = NonNull::new(record).map(|r| unsafe { Record::from_raw(r) });
                    size += slot.as_ref().map_or(0, |r| r.binary_size());
                }
                // Summed under the lock, a batch at most: the chunk's bytes
                // must lose these records before another cut may complete
                // the chunk and take the bytes left in it.
                // INVARIANT: The records taken out leave the chunk's bytes.
                chunk.bytes.fetch_sub(size, Relaxed);
                (count, size)
            };
            // INVARIANT: The positions are counted as taken; once all are,
            // the chunk leaves the XArray, with the bytes left in it.
            chunk.taken.store(taken + count, Relaxed);
            let emptied = if taken + count == CHUNK {
                size += chunk.bytes.load(Relaxed);
                chunks.remove(index)
            } else {
                None
            };
            drop(chunks);
            // Handed over with the XArray lock released.
            if let Some(chunk) = emptied {
                Chunk::free_after_grace_period(chunk);
            }
            for record in batch.iter_mut().filter_map(Option::take) {
                record.free_after_grace_period();
            }
            // INVARIANT: These records are no longer held by the cut.
            self.list.size.fetch_sub(size, Relaxed);
            start += count;
        }
    }
}

#[kunit_tests(ima_rs_list)]
mod tests {
    use super::*;
    use crate::{
        queue::State,
        testing::{fills, new_state, record, unbound_queue, DATA_LEN, SIZE},
    };
    use kernel::sync::{Arc, Completion};

    /// Adds the records of positions `from..from + n`, the one of position
    /// `p` with every digest byte `p % 251`, without the digest table.
    fn add_many(state: &State, from: usize, n: usize) -> Result {
        for p in from..from + n {
            state
                .add(record(10, (p % 251) as u8, DATA_LEN)?, false, false, || 0)
                .map_err(Error::from)?;
        }
        Ok(())
    }

    /// Whether the records of `list` are those of positions `from..`.
    fn holds_from(list: &RecordList, from: usize) -> Result<bool> {
        let v = fills(list)?;
        Ok(v.iter()
            .enumerate()
            .all(|(i, &f)| f == ((from + i) % 251) as u8))
    }

    /// The chunk at `i` of `list`, if it is in the XArray.
    fn has_chunk(list: &RecordList, i: usize) -> bool {
        list.chunks.lock().get(i).is_some()
    }

    /// The records in the chunk at `i` of `list`, and their bytes.
    fn chunk_holds(list: &RecordList, i: usize) -> Option<(usize, usize)> {
        let chunks = list.chunks.lock();
        let chunk = chunks.get(i)?;
        let records = chunk.records.iter().filter(|r| !r.load(Relaxed).is_null());
        Some((records.count(), chunk.bytes.load(Relaxed)))
    }

    #[test]
    fn cuts_across_chunks() -> Result {
        let state = new_state()?;
        add_many(&state, 0, 2 * CHUNK + 10)?;
        let current = state.current();
        assert_eq!(current.len(), 2 * CHUNK + 10);
        assert_eq!(current.binary_size(), (2 * CHUNK + 10) * SIZE);
        assert!(has_chunk(current, 2));
        // Ending just before the end of the first chunk keeps it, with
        // only its live records.
        assert_eq!(state.delete_current_front(CHUNK - 3), Ok(()));
        assert_eq!(chunk_holds(current, 0), Some((3, 3 * SIZE)));
        assert!(holds_from(current, CHUNK - 3)?);
        // Across its end: it goes with its last records, its successor
        // stays with the rest of its own.
        assert_eq!(state.delete_current_front(10), Ok(()));
        assert!(!has_chunk(current, 0));
        assert_eq!(
            chunk_holds(current, 1),
            Some((CHUNK - 7, (CHUNK - 7) * SIZE))
        );
        assert_eq!(fills(current)?.len(), CHUNK + 3);
        assert!(holds_from(current, CHUNK + 7)?);
        assert_eq!(current.binary_size(), (CHUNK + 3) * SIZE);
        // Staged and deleted whole: only the chunk of its tail is left.
        assert_eq!(state.stage(), Ok(()));
        assert_eq!(state.delete_staged(false), Ok(()));
        let staged = state.staged();
        assert!(staged.is_empty());
        assert_eq!(staged.binary_size(), 0);
        assert!(!has_chunk(staged, 1));
        assert!(has_chunk(staged, 2));
        // The other list takes the appends, in a second chunk once its
        // first is full.
        add_many(&state, 0, CHUNK + 1)?;
        assert_eq!(state.current().len(), CHUNK + 1);
        assert!(has_chunk(state.current(), 1));
        // Staged, it hands the appends back to the first list, whose
        // positions go on from where they stopped: in the chunk its cut
        // kept, then in a new one.
        assert_eq!(state.stage(), Ok(()));
        add_many(&state, 2 * CHUNK + 10, CHUNK)?;
        let first = state.current();
        assert!(has_chunk(first, 3));
        assert_eq!(first.len(), CHUNK);
        assert_eq!(first.binary_size(), CHUNK * SIZE);
        assert!(holds_from(first, 2 * CHUNK + 10)?);
        Ok(())
    }

    /// Cuts that free whole chunks run while a work item appends into the
    /// last ones: no record may be lost or freed twice, nor its bytes
    /// miscounted.
    #[test]
    fn chunks_freed_racing_append() -> Result {
        let state = Arc::pin_init(State::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let (filled, appended) = (2 * CHUNK + 8, CHUNK);
        add_many(&state, 0, filled)?;
        let (appender, finished) = (state.clone(), done.clone());
        unbound_queue().try_spawn(GFP_KERNEL, move || {
            // A failure shows as a wrong count below.
            let _ = add_many(&appender, filled, appended);
            finished.complete_all();
        })?;
        // Three at a time, so that cuts straddle the ends of chunks; never
        // more than were filled, so that no cut waits for the appender.
        let cut = 3 * ((2 * CHUNK + 6) / 3);
        for _ in 0..cut / 3 {
            assert_eq!(state.delete_current_front(3), Ok(()));
        }
        done.wait_for_completion();
        let current = state.current();
        let left = filled + appended - cut;
        assert_eq!(current.len(), left);
        assert_eq!(current.binary_size(), left * SIZE);
        assert_eq!(fills(current)?.len(), left);
        assert!(holds_from(current, cut)?);
        assert!(!has_chunk(current, 0) && !has_chunk(current, 1));
        assert!(has_chunk(current, 2) && has_chunk(current, 3));
        Ok(())
    }
}
