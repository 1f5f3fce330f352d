// SPDX-License-Identifier: GPL-2.0

//! The digest table: which (template digest, PCR) pairs were measured.
//!
//! IMA records an event only once per PCR: a record whose template digest is
//! already in the table is not added again. The table keeps its own copy of
//! the key, so that a deleted record can be freed whole while its digest
//! stays known; a C list keeps the record's queue entry, template entry and
//! digest array for that.
//!
//! A key keeps the first 256 bits of the digest: with a SHA-384 or SHA-512
//! template digest, two events count as one only if their digests agree on
//! 256 bits, a collision as hard to find as one of SHA-256. A table node is
//! then one 64-byte slab object, which is what a deleted record costs.

use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
};

/// Bytes of the template digest a key keeps (256 bits).
const KEY_DIGEST: usize = 32;

/// What duplicate lookup compares: the PCR and the template digest in IMA's
/// hash algorithm (the same algorithm for every key of a boot), cut to
/// [`KEY_DIGEST`] bytes or padded with zeroes to them.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    pcr: u32,
    digest: [u8; KEY_DIGEST],
}

// A tree node (its links, the key, no value) fits the 64-byte slab cache.
kernel::static_assert!(
    core::mem::size_of::<kernel::bindings::rb_node>() + core::mem::size_of::<Key>() <= 64
);

impl Key {
    fn new(pcr: u32, digest: &[u8]) -> Self {
        let mut key = Key {
            pcr,
            digest: [0; KEY_DIGEST],
        };
        let len = digest.len().min(KEY_DIGEST);
        key.digest[..len].copy_from_slice(&digest[..len]);
        key
    }
}

/// One more key, allocated before the record is committed, so that adding
/// it to the table after that cannot fail.
pub(crate) struct Slot(RBTreeNode<Key, ()>);

impl Slot {
    /// Allocates the key of `digest` for `pcr`.
    pub(crate) fn new(pcr: u32, digest: &[u8]) -> Result<Self> {
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
        Ok(Self(reservation.into_node(Key::new(pcr, digest), ())))
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

    /// Records the key of `slot`.
    pub(crate) fn insert(&mut self, slot: Slot) {
        self.keys.insert(slot.0);
    }
}

#[kunit_tests(ima_rs_table)]
mod tests {
    use super::*;

    /// A SHA-384-sized digest of `fill` bytes, with `last` at `at`.
    fn digest(fill: u8, at: usize, last: u8) -> [u8; 48] {
        let mut d = [fill; 48];
        d[at] = last;
        d
    }

    #[test]
    fn keys_per_pcr_and_digest() -> Result {
        let mut table = DigestTable::new();
        table.insert(Slot::new(10, &digest(1, 0, 1))?);
        assert!(table.contains(10, &digest(1, 0, 1)));
        assert!(!table.contains(11, &digest(1, 0, 1)));
        // The last byte a key keeps tells digests apart.
        assert!(!table.contains(10, &digest(1, KEY_DIGEST - 1, 2)));
        // Bytes past it do not.
        assert!(table.contains(10, &digest(1, KEY_DIGEST, 2)));
        // A SHA-1 digest is padded: its own 20 bytes decide.
        table.insert(Slot::new(10, &[3; 20])?);
        assert!(table.contains(10, &[3; 20]));
        assert!(!table.contains(10, &digest(3, 19, 4)[..20]));
        Ok(())
    }
}
