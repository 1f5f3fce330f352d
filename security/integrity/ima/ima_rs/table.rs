// SPDX-License-Identifier: GPL-2.0

//! The digest table: which (template digest, PCR) pairs were measured.
//!
//! IMA records an event only once per PCR: a record whose template digest is
//! already in the table is not added again. The table keeps its own copy of
//! the key, so that a deleted record can be freed whole while its digest
//! stays known; a C list keeps the record's queue entry, template entry and
//! digest array for that.

use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
};

/// Largest digest IMA uses (`HASH_MAX_DIGESTSIZE`, SHA-512).
const MAX_DIGEST: usize = 64;

/// What duplicate lookup compares: the PCR and the template digest in IMA's
/// hash algorithm (the same algorithm for every key of a boot).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    pcr: u32,
    digest: [u8; MAX_DIGEST],
}

impl Key {
    fn new(pcr: u32, digest: &[u8]) -> Self {
        let mut key = Key {
            pcr,
            digest: [0; MAX_DIGEST],
        };
        let len = digest.len().min(MAX_DIGEST);
        key.digest[..len].copy_from_slice(&digest[..len]);
        key
    }
}

/// Memory for one more key, taken before the record is committed, so that
/// adding to the table after it cannot fail.
pub(crate) struct Slot(RBTreeNodeReservation<Key, ()>);

impl Slot {
    /// Allocates the memory of one key.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(RBTreeNodeReservation::new(GFP_KERNEL)?))
    }
}

/// The set of known (digest, PCR) pairs.
pub(crate) struct DigestTable {
    keys: RBTree<Key, ()>,
}

impl DigestTable {
    /// An empty table; allocates nothing.
    pub(crate) fn new() -> Self {
        Self {
            keys: RBTree::new(),
        }
    }

    /// Whether `digest` was already recorded for `pcr`.
    pub(crate) fn contains(&self, pcr: u32, digest: &[u8]) -> bool {
        self.keys.get(&Key::new(pcr, digest)).is_some()
    }

    /// Records `digest` for `pcr` in `slot`.
    pub(crate) fn insert(&mut self, slot: Slot, pcr: u32, digest: &[u8]) {
        self.keys
            .insert(slot.0.into_node(Key::new(pcr, digest), ()));
    }
}
