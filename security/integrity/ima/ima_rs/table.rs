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
//! so the first key sets the length of every key of a table.
//!
//! Keys are never removed (`ima_flush_htable` replaces the whole table), so
//! they are stored in the order they come, packed in 4 KiB blocks, and found
//! through a hash table of 32-bit key indexes that grows by linear hashing:
//! each insertion splits at most one bucket, so no insertion rehashes the
//! table, and there is a bucket per key. A key then costs its entry (the
//! key and the index of the next key of its bucket: 28 bytes with SHA-1, 40
//! with SHA-256 or longer) and its bucket's 4-byte head, which is what a
//! deleted record costs. The hash is SipHash with a secret seed (`glue.c`):
//! template digests are chosen by whoever chooses the measured files, and
//! must not be able to fill one bucket.

use core::{ffi::c_void, mem::size_of};
use kernel::prelude::*;

/// Most bytes of the template digest a key keeps (256 bits).
const KEY_DIGEST_MAX: usize = 32;

/// Most words of a key: the PCR, then the digest.
const KEY_WORDS_MAX: usize = 1 + KEY_DIGEST_MAX / size_of::<u32>();

/// What duplicate lookup compares: the PCR, then the template digest in
/// IMA's hash algorithm cut to the table's key length or padded with
/// zeroes to it, in 32-bit words.
///
/// # Invariants
///
/// `len` is at most [`KEY_WORDS_MAX`]; the words past it are zero.
#[derive(Clone, Copy)]
struct Key {
    words: [u32; KEY_WORDS_MAX],
    len: usize,
}

extern "C" {
    fn ima_rs_key_hash(key: *const c_void, len: usize) -> u64;
}

impl Key {
    /// The key of `digest` for `pcr`, of `len` words.
    fn new(pcr: u32, digest: &[u8], len: usize) -> Self {
        let mut words = [0; KEY_WORDS_MAX];
        words[0] = pcr;
        let digest = &digest[..digest.len().min((len - 1) * size_of::<u32>())];
        for (word, bytes) in words[1..].iter_mut().zip(digest.chunks(size_of::<u32>())) {
            let mut b = [0; size_of::<u32>()];
            copy(&mut b, bytes);
            *word = u32::from_ne_bytes(b);
        }
        // INVARIANT: The callers pass at most `KEY_WORDS_MAX` words, and
        // only words below `len` were set.
        Self { words, len }
    }

    fn words(&self) -> &[u32] {
        &self.words[..self.len]
    }

    fn hash(&self) -> u64 {
        let words = self.words();
        // SAFETY: `words` is `size_of_val(words)` readable bytes; the
        // function only reads them.
        unsafe { ima_rs_key_hash(words.as_ptr().cast(), core::mem::size_of_val(words)) }
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

/// The words of the key of a digest of `digest_len` bytes.
fn key_words(digest_len: usize) -> usize {
    1 + digest_len.min(KEY_DIGEST_MAX).div_ceil(size_of::<u32>())
}

/// No key: the end of a bucket's chain.
const NONE: u32 = u32::MAX;

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
///   The entry of a key is its words and then the index of the next key of
///   its bucket, or [`NONE`]: `key_words + 1` words.
/// - `entries` holds `len` entries, `per_block()` a block, the entry of key
///   index `i` the `i % per_block()`-th of block `i / per_block()`; every
///   block holds [`WORDS_PER_BLOCK`] words, those past `len` unused.
/// - `heads` holds the first key index of each of the `buckets` buckets,
///   or [`NONE`], [`WORDS_PER_BLOCK`] a block, the same way.
/// - A key is in the chain of bucket [`DigestTable::bucket`] of its hash.
/// - `buckets` is 0 with no key, `(1 << level) + split` with
///   `split < 1 << level` otherwise, and at least `len`.
/// - No key is in the table twice.
/// - When a [`Slot`] exists, both kinds of blocks have room for one more.
pub(crate) struct DigestTable {
    entries: KVec<KVec<u32>>,
    heads: KVec<KVec<u32>>,
    key_words: usize,
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
            len: 0,
            buckets: 0,
            level: 0,
            split: 0,
        }
    }

    /// Entries a block holds.
    fn per_block(&self) -> usize {
        WORDS_PER_BLOCK / (self.key_words + 1)
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
        self.heads[bucket / WORDS_PER_BLOCK][bucket % WORDS_PER_BLOCK]
    }

    fn set_head(&mut self, bucket: usize, index: u32) {
        self.heads[bucket / WORDS_PER_BLOCK][bucket % WORDS_PER_BLOCK] = index;
    }

    /// The entry of key index `index`: its key's words, then the next index.
    fn entry(&self, index: u32) -> &[u32] {
        let (i, stride) = (index as usize, self.key_words + 1);
        let at = i % self.per_block() * stride;
        &self.entries[i / self.per_block()][at..at + stride]
    }

    fn entry_mut(&mut self, index: u32) -> &mut [u32] {
        let (i, stride) = (index as usize, self.key_words + 1);
        let at = i % self.per_block() * stride;
        let block = i / self.per_block();
        &mut self.entries[block][at..at + stride]
    }

    /// The key of the entry of key index `index`.
    fn key(&self, index: u32) -> Key {
        let mut key = Key {
            words: [0; KEY_WORDS_MAX],
            len: self.key_words,
        };
        copy(&mut key.words, &self.entry(index)[..self.key_words]);
        // INVARIANT: `key_words` is at most `KEY_WORDS_MAX`.
        key
    }

    fn next(&self, index: u32) -> u32 {
        self.entry(index)[self.key_words]
    }

    fn set_next(&mut self, index: u32, next: u32) {
        let at = self.key_words;
        self.entry_mut(index)[at] = next;
    }

    /// Whether `digest` was already recorded for `pcr`.
    pub(crate) fn contains(&self, pcr: u32, digest: &[u8]) -> bool {
        if self.buckets == 0 {
            return false;
        }
        let key = Key::new(pcr, digest, self.key_words);
        let mut index = self.head(self.bucket(key.hash()));
        while index != NONE {
            if self.entry(index)[..self.key_words] == *key.words() {
                return true;
            }
            index = self.next(index);
        }
        false
    }

    /// Makes room for the key of `digest` for `pcr`, which must not be in
    /// the table, and returns it, to be inserted by [`DigestTable::insert`]
    /// before the table is changed otherwise.
    pub(crate) fn reserve(&mut self, pcr: u32, digest: &[u8]) -> Result<Slot> {
        // Key indexes are `u32`, `NONE` excluded.
        if self.len >= NONE as usize {
            return Err(ENOMEM);
        }
        if self.len == 0 {
            // INVARIANT: The first key sets the length of all.
            self.key_words = key_words(digest.len());
        }
        if self.len == self.entries.len() * self.per_block() {
            let block = KVec::from_elem(0, WORDS_PER_BLOCK, GFP_KERNEL)?;
            self.entries.push(block, GFP_KERNEL)?;
        }
        if self.buckets == self.heads.len() * WORDS_PER_BLOCK {
            let block = KVec::from_elem(NONE, WORDS_PER_BLOCK, GFP_KERNEL)?;
            self.heads.push(block, GFP_KERNEL)?;
        }
        // INVARIANT: Both kinds of blocks have room for one more.
        Ok(Slot(Key::new(pcr, digest, self.key_words)))
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
            let next = self.next(index);
            let to = if self.key(index).hash() & (1u64 << self.level) != 0 {
                new
            } else {
                old
            };
            self.set_next(index, self.head(to));
            self.set_head(to, index);
            index = next;
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
        let at = self.key_words;
        let entry = self.entry_mut(index);
        copy(entry, key.words());
        entry[at] = next;
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
        assert!(!table.contains(10, &digest(1, KEY_DIGEST_MAX - 1, 2)));
        // Bytes past it do not.
        assert!(table.contains(10, &digest(1, KEY_DIGEST_MAX, 2)));
        assert_eq!(table.key_words, KEY_WORDS_MAX);

        // A SHA-1 table keeps whole SHA-1 digests, in entries of 7 words.
        let mut table = DigestTable::new();
        insert(&mut table, 10, &[3; 20])?;
        assert!(table.contains(10, &[3; 20]));
        assert!(!table.contains(10, &digest(3, 19, 4)[..20]));
        assert_eq!((table.key_words, table.per_block()), (6, 146));
        Ok(())
    }

    /// The digest of key `i`: its bytes, then zeroes.
    fn numbered(i: u32) -> [u8; 48] {
        let mut d = [0; 48];
        d[..4].copy_from_slice(&i.to_le_bytes());
        d
    }

    /// Keys of `len`-byte digests inserted across many bucket splits and
    /// several blocks of both kinds stay found, each once, and others are
    /// not.
    fn keys_found_across_growth(len: usize) -> Result {
        const KEYS: u32 = 5000;
        let mut table = DigestTable::new();
        for i in 0..KEYS {
            insert(&mut table, 10, &numbered(i)[..len])?;
            // The newest key, and the first, after each split.
            assert!(table.contains(10, &numbered(i)[..len]));
            assert!(table.contains(10, &numbered(0)[..len]));
        }
        assert_eq!(table.len, KEYS as usize);
        assert_eq!(table.buckets, KEYS as usize);
        assert!(table.heads.len() > 1 && table.entries.len() > 1);
        let mut chained = 0;
        for bucket in 0..table.buckets {
            let mut index = table.head(bucket);
            while index != NONE {
                chained += 1;
                index = table.next(index);
            }
        }
        assert_eq!(chained, KEYS);
        for i in 0..KEYS {
            assert!(table.contains(10, &numbered(i)[..len]));
            assert!(!table.contains(11, &numbered(i)[..len]));
        }
        assert!(!table.contains(10, &numbered(KEYS)[..len]));
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
