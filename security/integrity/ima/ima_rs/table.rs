// SPDX-License-Identifier: GPL-2.0

//! The digest table: which (template digest, PCR) pairs were measured.
//!
//! IMA records an event only once per PCR: a record whose template digest is
//! already in the table is not added again. The table keeps its own copy of
//! the key, so that a deleted record can be freed whole while its digest
//! stays known; a C list keeps the record's queue entry, template entry and
//! digest array for that.
//!
//! A key keeps the PCR and the digest's first 256 bits: all of a SHA-1 or
//! SHA-256 digest; with a SHA-384 or SHA-512 template digest, two events
//! count as one only if their digests agree on 256 bits, a collision as
//! hard to find as one of SHA-256. A boot has one template hash algorithm,
//! so a key's length follows from the digest's alone, and a key can be
//! made, and hashed, before the table is locked; the first key of a table
//! sets the length of all its keys.
//!
//! Keys are never removed (`ima_flush_htable` replaces the whole table), so
//! they are stored in the order they come, packed in 4 KiB blocks, and found
//! through a hash table of 32-bit key handles that grows by linear hashing:
//! each insertion splits at most one bucket, so no insertion rehashes the
//! table, and there is a bucket per key. A handle is a key's block and its
//! slot in the block, so that finding a key's entry takes a shift and a
//! mask, not a division. A key's entry keeps its hash, so that a split
//! moves keys without hashing them again and a lookup compares a key's
//! words only when the hashes agree. A key then costs its entry (the hash,
//! the handle of the next key of its bucket and the key: 32 bytes with
//! SHA-1, 44 with SHA-256 or longer) and its bucket's 4-byte head, which is
//! what a deleted record costs. The hash is hsiphash, the kernel's hash
//! table function, with a secret seed (`glue.c`): template digests are
//! chosen by whoever chooses the measured files, and must not be able to
//! fill one bucket.

use core::{ffi::c_void, mem::size_of};
use kernel::prelude::*;

/// Most bytes of the template digest a key keeps (256 bits).
const KEY_DIGEST_MAX: usize = 32;

/// Most words of a key: the PCR, then the digest.
const KEY_WORDS_MAX: usize = 1 + KEY_DIGEST_MAX / size_of::<u32>();

/// What duplicate lookup compares: the PCR, then the template digest in
/// IMA's hash algorithm, cut to [`KEY_DIGEST_MAX`] bytes and padded with
/// zeroes to whole 32-bit words; and the hash of those words.
///
/// # Invariants
///
/// `len` is at most [`KEY_WORDS_MAX`]; the words past it are zero. `hash`
/// is the [`hash`] of the first `len` words.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    words: [u32; KEY_WORDS_MAX],
    len: usize,
    hash: u32,
}

extern "C" {
    fn ima_rs_key_hash(key: *const c_void, len: usize) -> u32;
}

/// The hash of the words of a key.
fn hash(words: &[u32]) -> u32 {
    // SAFETY: `words` is `size_of_val(words)` readable bytes; the function
    // only reads them.
    unsafe { ima_rs_key_hash(words.as_ptr().cast(), core::mem::size_of_val(words)) }
}

impl Key {
    /// The key of `digest` for `pcr`.
    pub(crate) fn new(pcr: u32, digest: &[u8]) -> Self {
        let digest = &digest[..digest.len().min(KEY_DIGEST_MAX)];
        let len = 1 + digest.len().div_ceil(size_of::<u32>());
        let mut words = [0; KEY_WORDS_MAX];
        words[0] = pcr;
        for (word, bytes) in words[1..].iter_mut().zip(digest.chunks(size_of::<u32>())) {
            let mut b = [0; size_of::<u32>()];
            copy(&mut b, bytes);
            *word = u32::from_ne_bytes(b);
        }
        let hash = hash(&words[..len]);
        // INVARIANT: With at most `KEY_DIGEST_MAX` bytes of digest, `len` is
        // at most `KEY_WORDS_MAX`; only words below it were set, and they
        // were hashed.
        Self { words, len, hash }
    }

    fn words(&self) -> &[u32] {
        &self.words[..self.len]
    }
}

/// Copies `from` into the start of `to`, which is at least as long.
///
/// `copy_from_slice()` of slices whose lengths are known only at run time
/// ends in a call to its length-mismatch panic, which objtool (x86_64) does
/// not know never returns: it warns that the function falls through.
fn copy<T: Copy>(to: &mut [T], from: &[T]) {
    for (to, from) in to.iter_mut().zip(from) {
        *to = *from;
    }
}

/// No key: the end of a bucket's chain. Not a handle: its slot is
/// [`SLOTS_MAX`].
const NONE: u32 = u32::MAX;

/// Bits of a handle that hold the key's slot in its block; the others hold
/// the block.
const SLOT_BITS: u32 = 8;
const SLOTS_MAX: usize = (1 << SLOT_BITS) - 1;
const BLOCKS_MAX: usize = 1 << (u32::BITS - SLOT_BITS);

/// Where an entry keeps its key's hash, the handle of the next key of its
/// bucket, and the key's words.
const HASH: usize = 0;
const NEXT: usize = 1;
const WORDS: usize = 2;

/// Bytes of a block of entries or of bucket heads: one slab object each.
const BLOCK: usize = 4096;
const WORDS_PER_BLOCK: usize = BLOCK / size_of::<u32>();

/// Room for one more key, and the key: what [`DigestTable::reserve`]
/// allocates before the record is committed, so that inserting the key
/// after that cannot fail.
pub(crate) struct Slot(Key);

/// The set of known (digest, PCR) pairs.
///
/// # Invariants
///
/// - Every key has `key_words` words, 0 before the first key is reserved.
///   The entry of a key is its hash, the handle of the next key of its
///   bucket or [`NONE`], and its words: `WORDS + key_words` words.
///   `per_block` entries fit in a block, at most [`SLOTS_MAX`] (0 before
///   the first key).
/// - `entries` holds `len` entries, `per_block` a block: the `i`-th key is
///   in slot `i % per_block` of block `i / per_block`, and its handle is
///   the block shifted left by [`SLOT_BITS`] plus the slot. There are at
///   most [`BLOCKS_MAX`] blocks; each holds [`WORDS_PER_BLOCK`] words,
///   those past `len` entries unused.
/// - `heads` holds the handle of the first key of each of the `buckets`
///   buckets, or [`NONE`], [`WORDS_PER_BLOCK`] a block.
/// - A key is in the chain of bucket [`DigestTable::bucket`] of its hash.
/// - `buckets` is 0 with no key, `(1 << level) + split` with
///   `split < 1 << level` otherwise, and at least `len`.
/// - No key is in the table twice.
/// - When a [`Slot`] exists, both kinds of blocks have room for one more.
pub(crate) struct DigestTable {
    entries: KVec<KVec<u32>>,
    heads: KVec<KVec<u32>>,
    key_words: usize,
    per_block: usize,
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
            key_words: 0,
            per_block: 0,
            len: 0,
            buckets: 0,
            level: 0,
            split: 0,
        }
    }

    /// The bucket of the keys of hash `hash`: the hash's `level` low bits,
    /// or one more bit for the buckets already split in this round.
    fn bucket(&self, hash: u32) -> usize {
        let hash = u64::from(hash);
        let low = (hash & ((1u64 << self.level) - 1)) as usize;
        if low < self.split {
            (hash & ((2u64 << self.level) - 1)) as usize
        } else {
            low
        }
    }

    fn head(&self, bucket: usize) -> u32 {
        self.heads[bucket / WORDS_PER_BLOCK][bucket % WORDS_PER_BLOCK]
    }

    fn set_head(&mut self, bucket: usize, handle: u32) {
        self.heads[bucket / WORDS_PER_BLOCK][bucket % WORDS_PER_BLOCK] = handle;
    }

    /// Where the entry of the key of handle `handle` is: its block, and
    /// its first word in the block.
    fn place(&self, handle: u32) -> (usize, usize) {
        let (block, slot) = (handle >> SLOT_BITS, handle as usize & SLOTS_MAX);
        (block as usize, slot * (WORDS + self.key_words))
    }

    /// The entry of the key of handle `handle`.
    fn entry(&self, handle: u32) -> &[u32] {
        let (block, at) = self.place(handle);
        &self.entries[block][at..at + WORDS + self.key_words]
    }

    fn entry_mut(&mut self, handle: u32) -> &mut [u32] {
        let (block, at) = self.place(handle);
        let stride = WORDS + self.key_words;
        &mut self.entries[block][at..at + stride]
    }

    /// Whether `key` is known. A key of another length than the table's
    /// never is.
    pub(crate) fn contains(&self, key: &Key) -> bool {
        if self.buckets == 0 {
            return false;
        }
        let mut handle = self.head(self.bucket(key.hash));
        while handle != NONE {
            let entry = self.entry(handle);
            if entry[HASH] == key.hash && entry[WORDS..] == *key.words() {
                return true;
            }
            handle = entry[NEXT];
        }
        false
    }

    /// Makes room for `key`, which must not be in the table, and returns
    /// it, to be inserted by [`DigestTable::insert`] before the table is
    /// changed otherwise. A key of another length than the table's first
    /// is refused (`EINVAL`): a boot has one template hash algorithm.
    pub(crate) fn reserve(&mut self, key: Key) -> Result<Slot> {
        if self.len == 0 {
            // INVARIANT: The first key sets the length of all.
            self.key_words = key.len;
            self.per_block = (WORDS_PER_BLOCK / (WORDS + key.len)).min(SLOTS_MAX);
        } else if key.len != self.key_words {
            return Err(EINVAL);
        }
        if self.len == self.entries.len() * self.per_block {
            // Handles are `u32`.
            if self.entries.len() == BLOCKS_MAX {
                return Err(ENOMEM);
            }
            let block = KVec::from_elem(0, WORDS_PER_BLOCK, GFP_KERNEL)?;
            self.entries.push(block, GFP_KERNEL)?;
        }
        if self.buckets == self.heads.len() * WORDS_PER_BLOCK {
            let block = KVec::from_elem(NONE, WORDS_PER_BLOCK, GFP_KERNEL)?;
            self.heads.push(block, GFP_KERNEL)?;
        }
        // INVARIANT: Both kinds of blocks have room for one more.
        Ok(Slot(key))
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
        let mut handle = self.head(old);
        self.set_head(old, NONE);
        while handle != NONE {
            let entry = self.entry(handle);
            let next = entry[NEXT];
            let to = if u64::from(entry[HASH]) & (1u64 << self.level) != 0 {
                new
            } else {
                old
            };
            let head = self.head(to);
            self.entry_mut(handle)[NEXT] = head;
            self.set_head(to, handle);
            handle = next;
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
        let bucket = self.bucket(key.hash);
        let (block, in_block) = (self.len / self.per_block, self.len % self.per_block);
        // CAST: `reserve` keeps the blocks below `BLOCKS_MAX`, and a slot is
        // below `SLOTS_MAX`.
        let handle = ((block as u32) << SLOT_BITS) | in_block as u32;
        let next = self.head(bucket);
        let entry = self.entry_mut(handle);
        entry[HASH] = key.hash;
        entry[NEXT] = next;
        copy(&mut entry[WORDS..], key.words());
        self.set_head(bucket, handle);
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
        let slot = table.reserve(Key::new(pcr, digest))?;
        table.insert(slot);
        Ok(())
    }

    fn known(table: &DigestTable, pcr: u32, digest: &[u8]) -> bool {
        table.contains(&Key::new(pcr, digest))
    }

    #[test]
    fn keys_per_pcr_and_digest() -> Result {
        let mut table = DigestTable::new();
        assert!(!known(&table, 10, &digest(1, 0, 1)));
        insert(&mut table, 10, &digest(1, 0, 1))?;
        assert!(known(&table, 10, &digest(1, 0, 1)));
        assert!(!known(&table, 11, &digest(1, 0, 1)));
        // The last byte a key keeps tells digests apart.
        assert!(!known(&table, 10, &digest(1, KEY_DIGEST_MAX - 1, 2)));
        // Bytes past it do not.
        assert!(known(&table, 10, &digest(1, KEY_DIGEST_MAX, 2)));
        assert_eq!(table.key_words, KEY_WORDS_MAX);

        // A SHA-1 table keeps whole SHA-1 digests, in entries of 8 words.
        let mut table = DigestTable::new();
        insert(&mut table, 10, &[3; 20])?;
        assert!(known(&table, 10, &[3; 20]));
        assert!(!known(&table, 10, &digest(3, 19, 4)[..20]));
        assert_eq!((table.key_words, table.per_block), (6, 128));
        // A key of another length is neither found nor taken.
        assert!(!known(&table, 10, &digest(3, 0, 3)));
        let other = Key::new(10, &digest(3, 0, 3));
        assert!(matches!(table.reserve(other), Err(EINVAL)));
        Ok(())
    }

    /// The digest of key `i`: its bytes, then zeroes.
    fn numbered(i: u32) -> [u8; 48] {
        let mut d = [0; 48];
        d[..4].copy_from_slice(&i.to_le_bytes());
        d
    }

    /// Keys of `len`-byte digests inserted across many bucket splits and
    /// several blocks of both kinds stay found, each once and in the bucket
    /// of the hash of its words, and others are not.
    fn keys_found_across_growth(len: usize) -> Result {
        const KEYS: u32 = 5000;
        let mut table = DigestTable::new();
        for i in 0..KEYS {
            insert(&mut table, 10, &numbered(i)[..len])?;
            // The newest key, and the first, after each split.
            assert!(known(&table, 10, &numbered(i)[..len]));
            assert!(known(&table, 10, &numbered(0)[..len]));
        }
        assert_eq!(table.len, KEYS as usize);
        assert_eq!(table.buckets, KEYS as usize);
        assert!(table.heads.len() > 1 && table.entries.len() > 1);
        let mut chained = 0;
        for bucket in 0..table.buckets {
            let mut handle = table.head(bucket);
            while handle != NONE {
                let entry = table.entry(handle);
                assert_eq!(entry[HASH], hash(&entry[WORDS..]));
                assert_eq!(table.bucket(entry[HASH]), bucket);
                chained += 1;
                handle = entry[NEXT];
            }
        }
        assert_eq!(chained, KEYS);
        for i in 0..KEYS {
            assert!(known(&table, 10, &numbered(i)[..len]));
            assert!(!known(&table, 11, &numbered(i)[..len]));
        }
        assert!(!known(&table, 10, &numbered(KEYS)[..len]));
        Ok(())
    }

    #[test]
    fn sha1_keys_found_across_growth() -> Result {
        keys_found_across_growth(20)
    }

    #[test]
    fn sha384_keys_found_across_growth() -> Result {
        keys_found_across_growth(48)
    }
}
