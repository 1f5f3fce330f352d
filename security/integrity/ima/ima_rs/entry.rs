// SPDX-License-Identifier: GPL-2.0

//! Measurement records: C `struct ima_template_entry` values owned by Rust.
//!
//! The fields of an entry stay private to C (template formatting, the TPM
//! extend and the kexec restore all live there); Rust reads what the list
//! needs through small accessors in `glue.c` and `ima_queue.c`, and frees an
//! entry with IMA's own `ima_free_template_entry()`.

use core::{
    marker::{PhantomData, PhantomPinned},
    mem::ManuallyDrop,
    ptr::NonNull,
};
use kernel::{ffi::c_void, types::ForeignOwnable};

/// The C `struct ima_template_entry`, opaque to Rust.
#[repr(C)]
pub(crate) struct TemplateEntry {
    _opaque: [u8; 0],
    _pin: PhantomData<(*mut u8, PhantomPinned)>,
}

extern "C" {
    fn ima_free_template_entry(entry: *mut TemplateEntry);
    fn ima_rs_entry_pcr(entry: *const TemplateEntry) -> u32;
    fn ima_rs_entry_digest(entry: *const TemplateEntry) -> *const u8;
    fn ima_entry_binary_size(entry: *const TemplateEntry) -> usize;
    fn ima_rs_digest_size() -> usize;
}

impl TemplateEntry {
    /// The PCR the record extends.
    pub(crate) fn pcr(&self) -> u32 {
        // SAFETY: `self` is a valid entry (`&self` to an opaque C value is
        // only ever made from a valid pointer).
        unsafe { ima_rs_entry_pcr(self) }
    }

    /// The template digest in IMA's hash algorithm: the key of duplicate
    /// lookup.
    pub(crate) fn digest(&self) -> &[u8] {
        // SAFETY: `self` is a valid entry; its digest in IMA's hash algorithm
        // holds `ima_rs_digest_size()` bytes and lives as long as the entry.
        unsafe { core::slice::from_raw_parts(ima_rs_entry_digest(self), ima_rs_digest_size()) }
    }

    /// Bytes the record takes in the binary list and in the kexec buffer.
    pub(crate) fn binary_size(&self) -> usize {
        // SAFETY: `self` is a valid entry.
        unsafe { ima_entry_binary_size(self) }
    }
}

/// A measurement record owned by a list.
///
/// # Invariants
///
/// `self.0` points to a valid entry allocated by IMA that nothing else frees;
/// it is freed, once, when the `Record` is dropped.
pub(crate) struct Record(NonNull<TemplateEntry>);

// SAFETY: An entry is plain heap memory with no tie to the thread that made it.
unsafe impl Send for Record {}

// SAFETY: A shared `Record` only gives read access to its entry.
unsafe impl Sync for Record {}

impl Record {
    /// Takes ownership of `entry`.
    ///
    /// # Safety
    ///
    /// `entry` must point to a valid entry allocated by IMA, and the caller
    /// must give up its ownership: only the returned `Record` frees it.
    pub(crate) unsafe fn from_raw(entry: NonNull<TemplateEntry>) -> Self {
        // INVARIANT: The caller passes a valid entry and its ownership.
        Self(entry)
    }

    /// Gives the entry back to its previous owner without freeing it.
    pub(crate) fn into_raw(self) -> NonNull<TemplateEntry> {
        ManuallyDrop::new(self).0
    }
}

impl core::ops::Deref for Record {
    type Target = TemplateEntry;

    fn deref(&self) -> &TemplateEntry {
        // SAFETY: By the type invariant the entry is valid while `self` lives.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the entry is valid and owned by
        // `self` alone, and this is the only place that frees it.
        unsafe { ima_free_template_entry(self.0.as_ptr()) };
    }
}

// SAFETY: `into_foreign` returns the entry's address, which comes from
// kmalloc() and is therefore aligned to at least 8 bytes; `from_foreign` and
// `borrow*` only accept addresses that `into_foreign` returned.
unsafe impl ForeignOwnable for Record {
    const FOREIGN_ALIGN: usize = 8;
    type Borrowed<'a> = &'a TemplateEntry;
    type BorrowedMut<'a> = &'a TemplateEntry;

    fn into_foreign(self) -> *mut c_void {
        self.into_raw().as_ptr().cast()
    }

    unsafe fn from_foreign(ptr: *mut c_void) -> Self {
        // SAFETY: The caller passes a value from `into_foreign`: a non-null
        // entry whose ownership came back to us.
        unsafe { Self::from_raw(NonNull::new_unchecked(ptr.cast())) }
    }

    unsafe fn borrow<'a>(ptr: *mut c_void) -> &'a TemplateEntry {
        // SAFETY: The caller passes a value from `into_foreign` that stays
        // owned by the foreign side for `'a`.
        unsafe { &*ptr.cast::<TemplateEntry>() }
    }

    unsafe fn borrow_mut<'a>(ptr: *mut c_void) -> &'a TemplateEntry {
        // SAFETY: As for `borrow`.
        unsafe { Self::borrow(ptr) }
    }
}
