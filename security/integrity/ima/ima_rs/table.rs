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
//! 256 bits, a collision as hard to find as one of SHA-256.
//!
//! Keys are never removed (`ima_flush_htable` replaces the whole table), so
//! they are stored in the order they come, packed in 4 KiB blocks, and found
//! through a hash table of 32-bit key indexes that grows by linear hashing:
//! each insertion splits at most one bucket, so no insertion rehashes the
//! table, and there is a bucket per key. A key then costs 44 bytes (its
//! 40-byte entry and its bucket's head), which is what a deleted record
//! costs. The hash is SipHash with a secret seed (`glue.c`): template
//! digests are chosen by whoever chooses the measured files, and must not
//! be able to fill one bucket.

use core::{ffi::c_void, mem::size_of};
use kernel::prelude::*;

/// Bytes of the template digest a key keeps (256 bits).
const KEY_DIGEST: usize = 32;

/// What duplicate lookup compares: the PCR and the template digest in IMA's
/// hash algorithm (the same algorithm for every key of a boot), cut to
/// [`KEY_DIGEST`] bytes or padded with zeroes to them.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    pcr: u32,
    digest: [u8; KEY_DIGEST],
}

// The hash reads a key as bytes: it has no padding.
kernel::static_assert!(size_of::<Key>() == 4 + KEY_DIGEST);

extern "C" {
    fn ima_rs_key_hash(key: *const c_void, len: usize) -> u64;
}

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

    fn hash(&self) -> u64 {
        // SAFETY: `self` is `size_of::<Key>()` readable bytes without
        // padding; the function only reads them.
        unsafe { ima_rs_key_hash(core::ptr::from_ref(self).cast(), size_of::<Key>()) }
    }
}

/// No key: the end of a bucket's chain.
const NONE: u32 = u32::MAX;

/// A key and the index of the next key of its bucket.
#[derive(Clone, Copy)]
struct Entry {
    key: Key,
    next: u32,
}

/// Bytes of a block of entries or of bucket heads: one slab object each.
const BLOCK: usize = 4096;
const ENTRIES_PER_BLOCK: usize = BLOCK / size_of::<Entry>();
const HEADS_PER_BLOCK: usize = BLOCK / size_of::<u32>();

/// Room for one more key, and the key: what [`DigestTable::reserve`]
/// allocates before the record is committed, so that inserting the key
/// after that cannot fail.
pub(crate) struct Slot(Key);

/// The set of known (digest, PCR) pairs.
///
/// # Invariants
///
/// - `entries` holds `len` keys, the key of index `i` at
///   `entries[i / ENTRIES_PER_BLOCK][i % ENTRIES_PER_BLOCK]`; every block
///   holds `ENTRIES_PER_BLOCK` entries, those past `len` unused.
/// - `heads` holds the first key index of each of the `buckets` buckets,
///   or [`NONE`], the same way, `HEADS_PER_BLOCK` a block.
/// - A key is in the chain of bucket [`DigestTable::bucket`] of its hash.
/// - `buckets` is 0 with no key, `(1 << level) + split` with
///   `split < 1 << level` otherwise, and at least `len`.
/// - No key is in the table twice.
/// - When a [`Slot`] exists, both kinds of blocks have room for one more.
pub(crate) struct DigestTable {
    entries: KVec<KVec<Entry>>,
    heads: KVec<KVec<u32>>,
    len: usize,
    buckets: usize,
    level: u32,
    split: usize,
}

impl DigestTable {
    /// An empty table; allocates nothing.
    pub(crate) fn new() -> Self {
        Self {
            entries: KVec::new(),
            heads: KVec::new(),
            len: 0,
            buckets: 0,
            level: 0,
            split: 0,
        }
    }

    /// The bucket of the keys of hash `hash`: the hash's `level` low bits,
    /// or one more bit for the buckets already split in this round.
    fn bucket(&self, hash: u64) -> usize {
        let low = (hash & ((1u64 << self.level) - 1)) as usize;
        if low < self.split {
            (hash & ((2u64 << self.level) - 1)) as usize
        } else {
            low
        }
    }

    fn head(&self, bucket: usize) -> u32 {
        self.heads[bucket / HEADS_PER_BLOCK][bucket % HEADS_PER_BLOCK]
    }

    fn set_head(&mut self, bucket: usize, index: u32) {
        self.heads[bucket / HEADS_PER_BLOCK][bucket % HEADS_PER_BLOCK] = index;
    }

    fn entry(&self, index: u32) -> &Entry {
        let i = index as usize;
        &self.entries[i / ENTRIES_PER_BLOCK][i % ENTRIES_PER_BLOCK]
    }

    fn entry_mut(&mut self, index: u32) -> &mut Entry {
        let i = index as usize;
        &mut self.entries[i / ENTRIES_PER_BLOCK][i % ENTRIES_PER_BLOCK]
    }

    fn find(&self, key: &Key) -> bool {
        if self.buckets == 0 {
            return false;
        }
        let mut index = self.head(self.bucket(key.hash()));
        while index != NONE {
            let entry = self.entry(index);
            if entry.key == *key {
                return true;
            }
            index = entry.next;
        }
        false
    }

    /// Whether `digest` was already recorded for `pcr`.
    pub(crate) fn contains(&self, pcr: u32, digest: &[u8]) -> bool {
        self.find(&Key::new(pcr, digest))
    }

    /// Makes room for the key of `digest` for `pcr`, which must not be in
    /// the table, and returns it, to be inserted by [`DigestTable::insert`]
    /// before the table is changed otherwise.
    pub(crate) fn reserve(&mut self, pcr: u32, digest: &[u8]) -> Result<Slot> {
        // Key indexes are `u32`, `NONE` excluded.
        if self.len >= NONE as usize {
            return Err(ENOMEM);
        }
        if self.len == self.entries.len() * ENTRIES_PER_BLOCK {
            let unused = Entry {
                key: Key::new(0, &[]),
                next: NONE,
            };
            let block = KVec::from_elem(unused, ENTRIES_PER_BLOCK, GFP_KERNEL)?;
            self.entries.push(block, GFP_KERNEL)?;
        }
        if self.buckets == self.heads.len() * HEADS_PER_BLOCK {
            let block = KVec::from_elem(NONE, HEADS_PER_BLOCK, GFP_KERNEL)?;
            self.heads.push(block, GFP_KERNEL)?;
        }
        // INVARIANT: Both kinds of blocks have room for one more.
        Ok(Slot(Key::new(pcr, digest)))
    }

    /// Adds a bucket: bucket 0 to an empty table, else the buddy of bucket
    /// `split`, which gets the keys of `split` whose hash has bit `level`.
    /// Needs room for one more head.
    fn add_bucket(&mut self) {
        let new = self.buckets;
        self.set_head(new, NONE);
        self.buckets += 1;
        if new == 0 {
            return;
        }
        let old = self.split;
        let mut index = self.head(old);
        self.set_head(old, NONE);
        while index != NONE {
            let entry = *self.entry(index);
            let to = if entry.key.hash() & (1u64 << self.level) != 0 {
                new
            } else {
                old
            };
            self.entry_mut(index).next = self.head(to);
            self.set_head(to, index);
            index = entry.next;
        }
        self.split += 1;
        if self.split == 1 << self.level {
            self.level += 1;
            self.split = 0;
        }
    }

    /// Records the key of `slot`.
    pub(crate) fn insert(&mut self, slot: Slot) {
        // The slot's room: at most one head is added, then one entry.
        if self.buckets == 0 {
            self.add_bucket();
        }
        let key = slot.0;
        let bucket = self.bucket(key.hash());
        // CAST: `reserve` keeps `len` below `NONE`.
        let index = self.len as u32;
        let next = self.head(bucket);
        *self.entry_mut(index) = Entry { key, next };
        self.set_head(bucket, index);
        self.len += 1;
        if self.len > self.buckets {
            self.add_bucket();
        }
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

    fn insert(table: &mut DigestTable, pcr: u32, digest: &[u8]) -> Result {
        let slot = table.reserve(pcr, digest)?;
        table.insert(slot);
        Ok(())
    }

    #[test]
    fn keys_per_pcr_and_digest() -> Result {
        let mut table = DigestTable::new();
        assert!(!table.contains(10, &digest(1, 0, 1)));
        insert(&mut table, 10, &digest(1, 0, 1))?;
        assert!(table.contains(10, &digest(1, 0, 1)));
        assert!(!table.contains(11, &digest(1, 0, 1)));
        // The last byte a key keeps tells digests apart.
        assert!(!table.contains(10, &digest(1, KEY_DIGEST - 1, 2)));
        // Bytes past it do not.
        assert!(table.contains(10, &digest(1, KEY_DIGEST, 2)));
        // A SHA-1 digest is padded: its own 20 bytes decide.
        insert(&mut table, 10, &[3; 20])?;
        assert!(table.contains(10, &[3; 20]));
        assert!(!table.contains(10, &digest(3, 19, 4)[..20]));
        Ok(())
    }

    /// The digest of key `i`: its bytes, then zeroes.
    fn numbered(i: u32) -> [u8; 20] {
        let mut d = [0; 20];
        d[..4].copy_from_slice(&i.to_le_bytes());
        d
    }

    /// Keys inserted across many bucket splits and several blocks of both
    /// kinds stay found, each once, and others are not.
    #[test]
    fn keys_found_across_growth() -> Result {
        const KEYS: u32 = 5000;
        let mut table = DigestTable::new();
        for i in 0..KEYS {
            insert(&mut table, 10, &numbered(i))?;
            // The newest key, and the first, after each split.
            assert!(table.contains(10, &numbered(i)));
            assert!(table.contains(10, &numbered(0)));
        }
        assert_eq!(table.len, KEYS as usize);
        assert_eq!(table.buckets, KEYS as usize);
        assert!(table.heads.len() > 1 && table.entries.len() > 1);
        let mut chained = 0;
        for bucket in 0..table.buckets {
            let mut index = table.head(bucket);
            while index != NONE {
                chained += 1;
                index = table.entry(index).next;
            }
        }
        assert_eq!(chained, KEYS);
        for i in 0..KEYS {
            assert!(table.contains(10, &numbered(i)));
            assert!(!table.contains(11, &numbered(i)));
        }
        assert!(!table.contains(10, &numbered(KEYS)));
        Ok(())
    }
}
