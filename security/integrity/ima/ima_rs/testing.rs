// SPDX-License-Identifier: GPL-2.0

//! Helpers for the crate's KUnit tests: records copied from entries that
//! IMA's C code makes, added to a queue of the test's own.

use crate::{
    entry::{free_entry, Record, TemplateEntry},
    list::RecordList,
    queue::{AddError, State},
};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, sync::rcu, workqueue};

extern "C" {
    /// An entry for these tests (`glue.c`): `fill` in every digest byte,
    /// `data_len` bytes of data in the first field of IMA's current template.
    fn ima_rs_test_entry(pcr: u32, fill: u8, data_len: u32) -> *mut TemplateEntry;
}

/// The system's unbound workqueue (`system_dfl_wq`), on which a test's
/// worker runs on another CPU than the test, where there is one. The Rust
/// workqueue module names only `system_unbound_wq`, which this kernel
/// marks deprecated.
pub(crate) fn unbound_queue() -> &'static workqueue::Queue {
    // SAFETY: `system_dfl_wq` is allocated at boot, before any initcall
    // that could queue work, and never freed.
    unsafe { workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// Template data bytes of the records [`add`] makes.
pub(crate) const DATA_LEN: u32 = 10;

/// Binary size of a test record with `data_len` bytes of data: PCR, SHA-1
/// digest, name length, "ima-ng", data length, then the two fields of
/// ima-ng, each a length and its data.
pub(crate) const fn binary_size(data_len: u32) -> usize {
    4 + 20 + 4 + 6 + 4 + 2 * 4 + data_len as usize
}

/// Binary size of a record made by [`add`].
pub(crate) const SIZE: usize = binary_size(DATA_LEN);

/// A fresh record, copied from an entry that IMA's C code made.
pub(crate) fn record(pcr: u32, fill: u8, data_len: u32) -> Result<Record> {
    // SAFETY: The helper has no precondition.
    let entry = NonNull::new(unsafe { ima_rs_test_entry(pcr, fill, data_len) }).ok_or(ENOMEM)?;
    // SAFETY: The entry is valid until it is freed below.
    let record = Record::new(unsafe { entry.as_ref() });
    // SAFETY: The entry is this function's, and no longer used.
    unsafe { free_entry(entry) };
    record
}

/// An empty queue of the test's own.
pub(crate) fn new_state() -> Result<Pin<KBox<State>>> {
    KBox::pin_init(State::new(), GFP_KERNEL)
}

/// Adds a fresh record with `data_len` bytes of data; `Ok(true)` if it was
/// added, `Ok(false)` if it was refused as a duplicate.
pub(crate) fn add_record(
    state: &State,
    pcr: u32,
    fill: u8,
    data_len: u32,
    violation: bool,
) -> Result<bool> {
    match state.add(record(pcr, fill, data_len)?, violation, true, || 0) {
        Ok(_) => Ok(true),
        Err(AddError::Duplicate) => Ok(false),
        Err(_) => Err(EINVAL),
    }
}

/// Adds a fresh record of [`DATA_LEN`] bytes of data; see [`add_record`].
pub(crate) fn add(state: &State, pcr: u32, fill: u8, violation: bool) -> Result<bool> {
    add_record(state, pcr, fill, DATA_LEN, violation)
}

/// The digest fill bytes of a list's records, in order.
pub(crate) fn fills(list: &RecordList) -> Result<KVec<u8>> {
    let mut v = KVec::new();
    let rcu = rcu::read_lock();
    for record in list.iter(&rcu) {
        v.push(record.digest()[0], GFP_ATOMIC)?;
    }
    Ok(v)
}
