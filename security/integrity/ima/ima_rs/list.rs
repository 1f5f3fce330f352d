// SPDX-License-Identifier: GPL-2.0

//! An ordered list of measurement records.
//!
//! Records are kept in an XArray, indexed by their position since the list
//! was created; the live records are those at `[head, tail)`. Finding the
//! record at a position, which every `read()` of a measurement file does
//! first, is a lookup instead of a walk from the head of a linked list, and
//! cutting the first N records or all of them only moves `head`: the records
//! left behind are freed later, outside the extend lock, by
//! [`RecordList::free`]. Positions are never reused.
//!
//! Only the holder of the extend lock appends or cuts. Readers take nothing
//! but the XArray's spinlock for a lookup, so they never wait for a TPM
//! extend, and they see a record once `tail` has been published past it.
//! A reader keeps an RCU read-side critical section from its lookup until it
//! is done with the record, and [`RecordList::free`] waits for a grace period
//! before it frees what a cut took off: no reader ever sees a freed record.

use crate::entry::{Record, TemplateEntry};
use core::ops::Range;
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        rcu,
    },
    xarray::{AllocKind, XArray},
};

/// Records freed per hold of the XArray lock.
const FREE_BATCH: usize = 64;

/// A list of records.
///
/// # Invariants
///
/// - `head <= tail`, and `records` holds a record at every index of
///   `[head, tail)`; indices below `head` are empty or being freed by
///   [`RecordList::free`].
/// - `size` is the sum of [`TemplateEntry::binary_size`] over `[head, tail)`.
/// - `head`, `tail` and `size` change only under the extend lock.
#[pin_data]
pub(crate) struct RecordList {
    #[pin]
    records: XArray<Record>,
    head: Atomic<usize>,
    tail: Atomic<usize>,
    size: Atomic<usize>,
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

    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.tail.load(Acquire) - self.head.load(Relaxed)
    }

    /// Whether the list holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the records take in the binary format.
    pub(crate) fn binary_size(&self) -> usize {
        self.size.load(Relaxed)
    }

    /// Appends `record`. The caller holds the extend lock.
    ///
    /// On failure the record is handed back, so that the caller can return
    /// its ownership to C.
    pub(crate) fn push(&self, record: Record) -> Result<(), (Error, Record)> {
        let tail = self.tail.load(Relaxed);
        let size = record.binary_size();
        let mut records = self.records.lock();
        match records.store(tail, record, GFP_KERNEL) {
            Ok(_) => {}
            Err(e) => return Err((e.error, e.value)),
        }
        drop(records);
        self.size
            .store(self.size.load(Relaxed).saturating_add(size), Relaxed);
        // INVARIANT: The slot at `tail` is filled before `tail` moves past
        // it; the release pairs with the acquire in `len()` and `get()`.
        self.tail.store(tail + 1, Release);
        Ok(())
    }

    /// The record at `pos` (counted from the first live record), as a
    /// pointer for C code that formats it.
    ///
    /// The record stays valid until the caller leaves the RCU read-side
    /// critical section it called this in, or, without one, for as long as
    /// the caller keeps cuts away (see [`RecordList::iter`]).
    pub(crate) fn get(&self, pos: usize) -> Option<*mut TemplateEntry> {
        let index = self.head.load(Relaxed).checked_add(pos)?;
        if index >= self.tail.load(Acquire) {
            return None;
        }
        let records = self.records.lock();
        records
            .get(index)
            .map(|entry| core::ptr::from_ref(entry).cast_mut())
    }

    /// The records, in order, including those appended while it runs.
    ///
    /// # Safety
    ///
    /// No record of the list may be cut until the caller is done with the
    /// iterator and the references it returned: the caller holds the extend
    /// lock, or the lock that orders every cut.
    pub(crate) unsafe fn iter(&self) -> impl Iterator<Item = &TemplateEntry> + '_ {
        (0..).map_while(move |pos| {
            // SAFETY: `get` returns a live record, and the caller keeps it
            // from being cut, hence from being freed, while it is in use.
            self.get(pos).map(|entry| unsafe { &*entry })
        })
    }

    /// Binary size of the first `n` records, or `None` if there are fewer.
    ///
    /// # Safety
    ///
    /// As for [`RecordList::iter`]; only appends may happen meanwhile.
    pub(crate) unsafe fn front_size(&self, n: usize) -> Option<usize> {
        if n > self.len() {
            return None;
        }
        // SAFETY: The caller keeps cuts away.
        let records = unsafe { self.iter() };
        Some(records.take(n).fold(0, |size: usize, entry| {
            size.saturating_add(entry.binary_size())
        }))
    }

    /// Cuts the first `n` records, of `size` bytes, off the list in O(1).
    /// The caller holds the extend lock, has checked `n <= len()` and frees
    /// the returned positions with [`RecordList::free`] once it has dropped
    /// the lock.
    pub(crate) fn cut_front(&self, n: usize, size: usize) -> Range<usize> {
        let head = self.head.load(Relaxed);
        self.size.store(self.size.load(Relaxed) - size, Relaxed);
        // INVARIANT: The caller checked `n <= len()`, so `head + n <= tail`.
        self.head.store(head + n, Release);
        head..head + n
    }

    /// Cuts every record off the list in O(1); see [`RecordList::cut_front`].
    pub(crate) fn cut_all(&self) -> Range<usize> {
        let head = self.head.load(Relaxed);
        let tail = self.tail.load(Relaxed);
        self.size.store(0, Relaxed);
        // INVARIANT: `head` becomes `tail`: the list is empty.
        self.head.store(tail, Release);
        head..tail
    }

    /// Frees the records at `positions`, which a cut took off the list,
    /// without the extend lock, once every reader that could have looked
    /// them up has left its RCU read-side critical section.
    pub(crate) fn free(&self, positions: Range<usize>) {
        if positions.is_empty() {
            return;
        }
        rcu::synchronize_rcu();
        for chunk_start in positions.clone().step_by(FREE_BATCH) {
            let chunk_end = positions.end.min(chunk_start.saturating_add(FREE_BATCH));
            // The XArray lock is taken per batch: a long list is freed
            // without holding it for long.
            let mut records = self.records.lock();
            for index in chunk_start..chunk_end {
                drop(records.remove(index));
            }
        }
    }
}
