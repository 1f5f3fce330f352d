// SPDX-License-Identifier: GPL-2.0

//! Measurement records: the C `struct ima_template_entry` that IMA makes,
//! and the one allocation, `struct ima_rs_record`, that the Rust list keeps
//! of it.
//!
//! A record holds what the lists serve (the template, the PCR, a digest per
//! slot of `ima_algo_array` and the template fields) in one allocation that
//! `glue.c` lays out; the entry it is copied from is freed once the record
//! is in the list. Rust reads a record through small accessors in `glue.c`,
//! and C's formatting code sees it through a view that `glue.c` builds.

use core::{
    marker::{PhantomData, PhantomPinned},
    mem::ManuallyDrop,
    ptr::NonNull,
};
use kernel::prelude::*;

/// The C `struct ima_template_entry`, opaque to Rust.
#[repr(C)]
pub(crate) struct TemplateEntry {
    _opaque: [u8; 0],
    _pin: PhantomData<(*mut u8, PhantomPinned)>,
}

/// The C `struct ima_rs_record` (`glue.c`), opaque to Rust.
#[repr(C)]
pub(crate) struct RecordData {
    _opaque: [u8; 0],
    _pin: PhantomData<(*mut u8, PhantomPinned)>,
}

extern "C" {
    fn ima_free_template_entry(entry: *mut TemplateEntry);
    fn ima_rs_record_new(entry: *const TemplateEntry) -> *mut RecordData;
    fn ima_rs_record_free(record: *mut RecordData);
    fn ima_rs_record_free_rcu(record: *mut RecordData);
    fn ima_rs_record_pcr(record: *const RecordData) -> u32;
    fn ima_rs_record_digest(record: *const RecordData) -> *const u8;
    fn ima_rs_record_binary_size(record: *const RecordData) -> usize;
    fn ima_rs_digest_size() -> usize;
}

/// Frees an entry made by IMA.
///
/// # Safety
///
/// `entry` must point to a valid entry allocated by IMA that the caller
/// owns and no longer uses.
pub(crate) unsafe fn free_entry(entry: NonNull<TemplateEntry>) {
    // SAFETY: The caller passes a valid entry that it owns and gives up.
    unsafe { ima_free_template_entry(entry.as_ptr()) };
}

impl RecordData {
    /// The PCR the record extends.
    pub(crate) fn pcr(&self) -> u32 {
        // SAFETY: `self` is a valid record (`&self` to an opaque C value is
        // only ever made from a valid pointer).
        unsafe { ima_rs_record_pcr(self) }
    }

    /// The template digest in IMA's hash algorithm: the key of duplicate
    /// lookup.
    pub(crate) fn digest(&self) -> &[u8] {
        // SAFETY: `self` is a valid record; its digest in IMA's hash
        // algorithm holds `ima_rs_digest_size()` bytes and lives as long as
        // the record.
        unsafe { core::slice::from_raw_parts(ima_rs_record_digest(self), ima_rs_digest_size()) }
    }

    /// Bytes the record takes in the binary list and in the kexec buffer.
    pub(crate) fn binary_size(&self) -> usize {
        // SAFETY: `self` is a valid record.
        unsafe { ima_rs_record_binary_size(self) }
    }
}

/// A measurement record owned by a list.
///
/// # Invariants
///
/// `self.0` points to a valid record from `ima_rs_record_new()` that nothing
/// else frees; it is freed, once, when the `Record` is dropped.
pub(crate) struct Record(NonNull<RecordData>);

// SAFETY: A record is plain heap memory with no tie to the thread that made
// it.
unsafe impl Send for Record {}

// SAFETY: A shared `Record` only gives read access to its data.
unsafe impl Sync for Record {}

impl Record {
    /// Copies `entry` into a new record; the entry stays the caller's.
    pub(crate) fn new(entry: &TemplateEntry) -> Result<Self> {
        // SAFETY: `entry` is a valid entry.
        let record = NonNull::new(unsafe { ima_rs_record_new(entry) }).ok_or(ENOMEM)?;
        // INVARIANT: The record is new, and only `Self` frees it.
        Ok(Self(record))
    }

    /// Gives the record up, to be taken back with [`Record::from_raw`].
    pub(crate) fn into_raw(self) -> NonNull<RecordData> {
        ManuallyDrop::new(self).0
    }

    /// Takes back a record given up with [`Record::into_raw`].
    ///
    /// # Safety
    ///
    /// `record` must come from [`Record::into_raw`], and be taken back only
    /// once.
    pub(crate) unsafe fn from_raw(record: NonNull<RecordData>) -> Self {
        // INVARIANT: The caller gives back the sole ownership of a valid
        // record.
        Self(record)
    }

    /// Frees the record once every RCU reader that could have found it has
    /// left its read-side critical section; returns at once. Might sleep.
    ///
    /// The caller must have made the record unreachable to new readers.
    pub(crate) fn free_after_grace_period(self) {
        let record = ManuallyDrop::new(self);
        // SAFETY: By the type invariant the record is valid and owned by
        // `self` alone, which is not dropped: it is freed once, here.
        unsafe { ima_rs_record_free_rcu(record.0.as_ptr()) };
    }
}

impl core::ops::Deref for Record {
    type Target = RecordData;

    fn deref(&self) -> &RecordData {
        // SAFETY: By the type invariant the record is valid while `self`
        // lives.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the record is valid and owned by
        // `self` alone, and this is the only place that frees it.
        unsafe { ima_rs_record_free(self.0.as_ptr()) };
    }
}
