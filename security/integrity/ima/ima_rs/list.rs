// SPDX-License-Identifier: GPL-2.0

//! An ordered list of measurement records.
//!
//! Records are kept in an XArray, indexed by their position since the list
//! was created; the live records are those at `[head, tail)`. Finding the
//! record at a position, which every `read()` of a measurement file does
//! first, is a lookup instead of a walk from the head of a linked list, and
//! cutting the first N records or all of them only moves `head`: the records
//! cut off are removed later, outside the extend lock, by [`Cut::free`], which
//! takes their bytes off the list's binary size as it removes them. Nothing
//! walks the records to cut them. Positions are never reused.
//!
//! Appending and cutting take the extend lock's guard, so that they are
//! ordered with each other and with the TPM extend. Readers take nothing but
//! an RCU read-side critical section and, for a lookup, the XArray's
//! spinlock, so they never wait for a TPM extend. [`Cut::free`] frees what it
//! removes only after an RCU grace period, without waiting for it: a record a
//! reader found stays valid until its RCU read-side critical section ends,
//! whatever the writers do meanwhile. A reader that looks up a position that
//! is being cut may find nothing there and take it for the end of the list;
//! `ima_fs.c` keeps the seq_file readers and the commands apart anyway.

use crate::{
    entry::{Record, RecordData},
    queue::ExtendGuard,
};
use core::ops::Range;
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        rcu,
    },
    warn_on,
    xarray::{AllocKind, XArray},
};

/// Records removed per hold of the XArray lock, which appends take too: a
/// long cut is freed without holding it for long.
const BATCH: usize = 64;

/// A list of records.
///
/// # Invariants
///
/// - `head <= tail`, and neither ever decreases.
/// - `records` holds a record at every index of `[head, tail)`. An index
///   below `head` holds a record that one [`Cut`] owns until [`Cut::free`]
///   removes it, or nothing.
/// - A record leaves `records` only in [`Cut::free`], and is freed only
///   after an RCU grace period that starts once it has left.
/// - While the extend lock is free, `size` is the sum of
///   [`RecordData::binary_size`] over `[head, tail)` and over the records
///   that a [`Cut`] still holds.
#[pin_data]
pub(crate) struct RecordList {
    #[pin]
    records: XArray<Record>,
    head: Atomic<usize>,
    tail: Atomic<usize>,
    size: Atomic<usize>,
}

/// Records cut off a list, to be freed with [`Cut::free`].
///
/// # Invariants
///
/// Every position in `positions` is below `list.head`, and no other `Cut`
/// holds it. The records at these positions are still in `list.records`,
/// and their sizes still in `list.size`.
#[must_use = "the records cut off are freed by Cut::free"]
pub(crate) struct Cut<'a> {
    list: &'a RecordList,
    positions: Range<usize>,
}

impl RecordList {
    /// Creates an empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            records <- XArray::new(AllocKind::Alloc),
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
        match self.records.lock().store(tail, record, GFP_KERNEL) {
            Ok(None) => {}
            Ok(Some(replaced)) => {
                // Only a push fills `tail`, under the extend lock, and moves
                // `tail` past it. Were the slot taken, a reader could still
                // hold what it replaced: leak it rather than free it.
                warn_on!(true);
                core::mem::forget(replaced);
            }
            Err(e) => return Err(e.error),
        }
        self.size.add(size, Relaxed);
        // INVARIANT: The slot at `tail` is filled before `tail` moves past
        // it; the release pairs with the acquire in `len()` and `get()`.
        self.tail.store(tail + 1, Release);
        Ok(())
    }

    /// The record at `pos` (counted from the first live record), valid as
    /// long as the RCU read-side critical section of `_rcu`.
    pub(crate) fn get<'a>(&'a self, _rcu: &'a rcu::Guard, pos: usize) -> Option<&'a RecordData> {
        let index = self.head.load(Acquire).checked_add(pos)?;
        if index >= self.tail.load(Acquire) {
            return None;
        }
        let record = core::ptr::from_ref(self.records.lock().get(index)?);
        // SAFETY: The record was in `records` during the RCU read-side
        // critical section of `_rcu`: by the type invariants it is freed only
        // after a grace period that starts once it leaves `records`, which
        // ends after that critical section does.
        Some(unsafe { &*record })
    }

    /// The records, in order, including those appended while it runs.
    pub(crate) fn iter<'a>(
        &'a self,
        rcu: &'a rcu::Guard,
    ) -> impl Iterator<Item = &'a RecordData> + 'a {
        (0..).map_while(move |pos| self.get(rcu, pos))
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

impl Cut<'_> {
    /// Removes the records cut off, without the extend lock, takes their
    /// bytes off the list's binary size, and frees them once every reader
    /// that could have found them has left its RCU read-side critical
    /// section, without waiting for that.
    pub(crate) fn free(self) {
        let positions = self.positions;
        let mut batch: [Option<Record>; BATCH] = [const { None }; BATCH];
        for start in positions.clone().step_by(BATCH) {
            let chunk = start..positions.end.min(start.saturating_add(BATCH));
            let mut records = self.list.records.lock();
            for (slot, index) in batch.iter_mut().zip(chunk) {
                *slot = records.remove(index);
            }
            drop(records);
            // Handed over with the XArray lock released.
            let mut size: usize = 0;
            for record in batch.iter_mut().filter_map(Option::take) {
                size = size.saturating_add(record.binary_size());
                record.free_after_grace_period();
            }
            // INVARIANT: These records are no longer held by the cut.
            self.list.size.fetch_sub(size, Relaxed);
        }
    }
}
