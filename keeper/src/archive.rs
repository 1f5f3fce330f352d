//! The append-only archive directory.
//!
//! # Format
//! - `sha1.bin`, `sha256.bin`: the archived records as binary measurement
//!   lists of each bank, concatenated append after append; `cat sha256.bin`
//!   is a valid `binary_runtime_measurements_sha256` prefix.
//! - `chunks`: one text line per append (a chunk): `records sha1_end
//!   sha256_end sha1_sha256 sha256_sha256`, the chunk's record count, where it
//!   ends in each bank file, and the sha256 of its bytes in each bank file.
//! - `COMMIT`: what is committed: the record count, the committed length of
//!   each bank file and of `chunks`, the sha256 of `chunks`' committed bytes,
//!   and a sha256 of the file's own lines. Bytes past the committed lengths
//!   are not part of the archive.
//!
//! So COMMIT vouches for `chunks`, and each line of `chunks` for one chunk of
//! each bank file: a flipped byte is reported with its file and the chunk's
//! byte range, and, when the other bank or the record's own template data
//! tells, the record and its offset. A record that does not parse is reported
//! at its offset.
//!
//! # Commit protocol
//! An append writes the records to both bank files and a line to `chunks`
//! past the committed lengths ([`Archive::write`]), fsyncs the three files,
//! writes `COMMIT.tmp`, fsyncs it, renames it over `COMMIT` and fsyncs the
//! directory ([`Pending::commit`]). Only then are the records archived. A crash
//! before the rename leaves bytes past the committed lengths: opening for
//! writing truncates them and says so in one line.
//!
//! A writer holds an exclusive lock on the directory, so two keepers cannot
//! append to one archive. The directory must exist; an empty one becomes a new
//! archive. A directory without the owner's write bit is refused for writing,
//! even to root, and so is one on a read-only mount.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use nix::errno::Errno;
use nix::unistd::{access, AccessFlags};
use sha2::{Digest, Sha256};

mod format;
mod verify;

use format::{write_commit, Chunk, Commit, CHUNKS, COMMIT};

use crate::record::{parse_list, zip_banks, Bank, Entry, Position, Record};
use crate::replay::Replay;

/// Records read at a time when streaming the archive.
const BATCH: usize = 4096;

/// The archive file holding `bank`'s list.
pub fn bank_file(bank: Bank) -> &'static str {
    match bank {
        Bank::Sha1 => "sha1.bin",
        Bank::Sha256 => "sha256.bin",
    }
}

/// Whether an archive is opened to read it or to append to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only: nothing on disk changes, a missing COMMIT in an empty
    /// directory reads as an empty archive.
    Read,
    /// Append: locks the directory, creates a new archive in an empty one,
    /// truncates an interrupted append.
    Append,
}

/// An open, verified archive.
///
/// # Invariants
/// `starts` holds, for each committed record, its offset in each bank file;
/// `replay` is PCR 10 replayed over the committed records; `chunks_hasher` has
/// hashed exactly `commit.chunks_len` bytes of `chunks`.
pub struct Archive {
    dir: PathBuf,
    access: Access,
    commit: Commit,
    chunks_hasher: Sha256,
    starts: Vec<[u64; 2]>,
    replay: Replay,
    /// Chunks (appends) verified or committed so far.
    chunk_count: usize,
    /// The directory, locked while the archive is open for appending.
    _lock: Option<File>,
}

impl Archive {
    /// Opens and verifies the archive in `dir` (see the module docs).
    pub fn open(dir: &Path, access: Access) -> Result<Archive> {
        let meta =
            fs::metadata(dir).with_context(|| format!("archive directory {}", dir.display()))?;
        ensure!(meta.is_dir(), "archive {}: not a directory", dir.display());
        let lock = match access {
            Access::Read => None,
            Access::Append => Some(lock_for_append(dir, meta.permissions().mode())?),
        };
        let (commit, is_new) = match fs::read_to_string(dir.join(COMMIT)) {
            Ok(text) => (
                Commit::parse(&text)
                    .map_err(|reason| anyhow!("{}: {reason}", dir.join(COMMIT).display()))?,
                false,
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                (start_archive(dir, access)?, true)
            }
            Err(err) => return Err(err).with_context(|| format!("{}", dir.join(COMMIT).display())),
        };
        let mut archive = Archive {
            dir: dir.to_path_buf(),
            access,
            commit: Commit::empty(),
            chunks_hasher: Sha256::new(),
            starts: Vec::new(),
            replay: Replay::default(),
            chunk_count: 0,
            _lock: lock,
        };
        if !is_new {
            archive.verify(commit)?;
        }
        Ok(archive)
    }

    /// Number of archived records.
    pub fn len(&self) -> usize {
        self.commit.records
    }

    /// Whether the archive holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Committed bytes of `bank`'s list.
    pub fn bank_len(&self, bank: Bank) -> u64 {
        self.commit.bank_lens[bank.index()]
    }

    /// PCR 10 replayed over every archived record.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// The archive's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `n` archived records (all of them if there are fewer).
    pub fn tail(&self, n: usize) -> Result<Vec<Record>> {
        self.read_records(self.len() - n.min(self.len())..self.len())
    }

    /// Calls `each` with the archived records in order, a batch at a time.
    pub fn for_each_batch(&self, each: impl FnMut(&[Record]) -> Result<()>) -> Result<()> {
        self.for_each_batch_from(0, each)
    }

    /// Calls `each` with the archived records from the `first` on, in order,
    /// a batch at a time.
    pub fn for_each_batch_from(
        &self,
        first: usize,
        mut each: impl FnMut(&[Record]) -> Result<()>,
    ) -> Result<()> {
        for start in (first..self.len()).step_by(BATCH) {
            each(&self.read_records(start..self.len().min(start + BATCH))?)?;
        }
        Ok(())
    }

    /// Copies `bank`'s committed list to `out`.
    pub fn copy_bank(&self, bank: Bank, out: &mut dyn Write) -> Result<()> {
        self.copy_bank_from(bank, 0, out)
    }

    /// Copies `bank`'s committed list from record `first` on to `out`
    /// (nothing if the archive holds no more than `first` records).
    pub fn copy_bank_from(&self, bank: Bank, first: usize, out: &mut dyn Write) -> Result<()> {
        let Some(start) = self.starts.get(first) else {
            return Ok(());
        };
        let start = start[bank.index()];
        let path = self.path(bank_file(bank));
        let file = File::open(&path).with_context(|| format!("{}", path.display()))?;
        let len = self.bank_len(bank) - start;
        let copied = io::copy(&mut read_from(&path, file, start)?.take(len), out)
            .with_context(|| format!("copying {}", path.display()))?;
        ensure!(copied == len, "{}: shrank while read", path.display());
        Ok(())
    }

    /// Writes `records` past the committed end; they are archived only once
    /// [`Pending::commit`] returns. Bytes of an earlier failed write are
    /// overwritten.
    pub fn write(&mut self, records: &[Record]) -> Result<Pending<'_>> {
        ensure!(
            self.access == Access::Append,
            "archive {} is open read-only",
            self.dir.display()
        );
        let mut next = self.commit.clone();
        let mut sha256 = [Vec::new(), Vec::new()];
        let mut starts: Vec<[u64; 2]> = vec![[0; 2]; records.len()];
        let mut files = Vec::new();
        for bank in Bank::ALL {
            let at = self.bank_len(bank);
            let mut bytes = Vec::new();
            for (record, start) in records.iter().zip(&mut starts) {
                start[bank.index()] = at + bytes.len() as u64;
                record
                    .encode(bank, &mut bytes)
                    .context("a record too long for the list format")?;
            }
            files.push(self.write_at(bank_file(bank), at, &bytes)?);
            sha256[bank.index()] = Sha256::digest(&bytes).to_vec();
            next.bank_lens[bank.index()] = at + bytes.len() as u64;
        }
        let line = Chunk {
            records: records.len(),
            ends: next.bank_lens,
            sha256,
        }
        .render();
        files.push(self.write_at(CHUNKS, self.commit.chunks_len, line.as_bytes())?);
        let mut chunks_hasher = self.chunks_hasher.clone();
        chunks_hasher.update(line.as_bytes());
        next.records += records.len();
        next.chunks_len += line.len() as u64;
        next.chunks_sha256 = chunks_hasher.clone().finalize().to_vec();
        let mut replay = self.replay.clone();
        replay.extend_all(records);
        Ok(Pending {
            archive: self,
            files,
            next,
            chunks_hasher,
            starts,
            replay,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Cuts `name` back to `at` bytes and writes `bytes` there.
    fn write_at(&self, name: &str, at: u64, bytes: &[u8]) -> Result<File> {
        let path = self.path(name);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: opening for append", path.display()))?;
        file.set_len(at)
            .and_then(|()| file.write_all_at(bytes, at))
            .with_context(|| {
                format!(
                    "{}: writing {} bytes at byte {at}",
                    path.display(),
                    bytes.len()
                )
            })?;
        Ok(file)
    }

    /// Reads the committed records `range` from both bank files.
    fn read_records(&self, range: Range<usize>) -> Result<Vec<Record>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries: [Vec<Entry>; 2] = Default::default();
        for bank in Bank::ALL {
            let path = self.path(bank_file(bank));
            let start = self.starts[range.start][bank.index()];
            let end = self
                .starts
                .get(range.end)
                .map_or(self.bank_len(bank), |starts| starts[bank.index()]);
            let file = File::open(&path).with_context(|| format!("{}", path.display()))?;
            let bytes = read_range(&path, &file, &(start..end))?;
            let position = Position {
                offset: start,
                index: range.start,
            };
            entries[bank.index()] = parse_list(&bytes, bank, position)
                .map_err(|err| anyhow!("{}: changed since opened: {err}", path.display()))?;
        }
        let [sha1, sha256] = entries;
        let records = zip_banks(sha1, sha256, range.start).map_err(|err| {
            anyhow!(
                "archive {}: changed since opened: {err}",
                self.dir.display()
            )
        })?;
        ensure!(
            records.len() == range.len(),
            "archive {}: changed since opened",
            self.dir.display()
        );
        Ok(records)
    }
}

/// An append written past the committed end, not yet committed.
pub struct Pending<'a> {
    archive: &'a mut Archive,
    files: Vec<File>,
    next: Commit,
    chunks_hasher: Sha256,
    starts: Vec<[u64; 2]>,
    replay: Replay,
}

impl Pending<'_> {
    /// Makes the append durable: fsync the files, replace COMMIT, fsync the
    /// directory. The records are archived once this returns `Ok`.
    pub fn commit(self) -> Result<()> {
        let archive = self.archive;
        for file in &self.files {
            file.sync_all()
                .with_context(|| format!("archive {}: fsync", archive.dir.display()))?;
        }
        write_commit(&archive.dir, &self.next)?;
        archive.commit = self.next;
        archive.chunks_hasher = self.chunks_hasher;
        archive.starts.extend(self.starts);
        archive.replay = self.replay;
        archive.chunk_count += 1;
        Ok(())
    }
}

/// Refuses a directory without the owner's write bit or that cannot be
/// written (a read-only mount), then takes the lock that keeps a second
/// keeper out. So an export stops before it touches the kernel's lists.
fn lock_for_append(dir: &Path, mode: u32) -> Result<File> {
    ensure!(
        mode & 0o200 != 0,
        "archive directory {} is read-only (mode {:o}): refusing to append to it",
        dir.display(),
        mode & 0o7777
    );
    access(dir, AccessFlags::W_OK).map_err(|errno| match errno {
        Errno::EROFS => anyhow!(
            "archive directory {} is on a read-only file system: refusing to append to it",
            dir.display()
        ),
        _ => anyhow!("archive directory {}: not writable: {errno}", dir.display()),
    })?;
    let lock = File::open(dir).with_context(|| format!("archive directory {}", dir.display()))?;
    lock.try_lock().map_err(|err| match err {
        fs::TryLockError::WouldBlock => {
            anyhow!("archive {} is in use by another ima-keeper", dir.display())
        }
        fs::TryLockError::Error(err) => anyhow!("archive {}: lock: {err}", dir.display()),
    })?;
    Ok(lock)
}

/// Handles a directory without COMMIT: an empty one is a new, empty archive
/// (created on disk when appending); one that holds list bytes is refused.
fn start_archive(dir: &Path, access: Access) -> Result<Commit> {
    for name in [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS] {
        let path = dir.join(name);
        if let Ok(meta) = fs::metadata(&path) {
            ensure!(
                meta.len() == 0,
                "archive {}: no {COMMIT}, but {name} holds {} bytes: not starting a new archive over it",
                dir.display(),
                meta.len()
            );
        }
    }
    let commit = Commit::empty();
    if access == Access::Append {
        for name in [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS] {
            let path = dir.join(name);
            File::create(&path)
                .and_then(|file| file.sync_all())
                .with_context(|| format!("{}: creating", path.display()))?;
        }
        write_commit(dir, &commit)?;
    }
    Ok(commit)
}

/// `file`, positioned at byte `start`.
fn read_from(path: &Path, mut file: File, start: u64) -> Result<File> {
    file.seek(SeekFrom::Start(start))
        .with_context(|| format!("{}: seeking to byte {start}", path.display()))?;
    Ok(file)
}

/// Reads bytes `range` of `file`.
fn read_range(path: &Path, file: &File, range: &Range<u64>) -> Result<Vec<u8>> {
    ensure!(
        range.start <= range.end,
        "{}: chunk ends at byte {} before it starts at {}",
        path.display(),
        range.end,
        range.start
    );
    let mut bytes = vec![0; (range.end - range.start) as usize];
    file.read_exact_at(&mut bytes, range.start)
        .with_context(|| {
            format!(
                "{}: reading bytes [{}, {})",
                path.display(),
                range.start,
                range.end
            )
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{encoded_len, measurement, violation};

    fn records(range: Range<u32>) -> Vec<Record> {
        range.map(measurement).collect()
    }

    fn append(archive: &mut Archive, records: &[Record]) {
        archive.write(records).unwrap().commit().unwrap();
    }

    /// An archive of three chunks: records 1..4, a violation, 4..6.
    fn three_chunks() -> (tempfile::TempDir, Vec<Record>) {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
        let all = [records(1..4), vec![violation()], records(4..6)].concat();
        append(&mut archive, &all[..3]);
        append(&mut archive, &all[3..4]);
        append(&mut archive, &all[4..]);
        (dir, all)
    }

    fn open_err(dir: &Path, access: Access) -> String {
        match Archive::open(dir, access) {
            Ok(_) => panic!("{} opened", dir.display()),
            Err(err) => format!("{err:#}"),
        }
    }

    fn flip(path: &Path, offset: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[offset as usize] ^= 0x40;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn append_and_reopen() {
        let (dir, all) = three_chunks();
        let archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert_eq!(archive.len(), all.len());
        assert_eq!(archive.tail(100).unwrap(), all);
        assert_eq!(archive.tail(2).unwrap(), all[4..]);
        let mut replay = Replay::default();
        replay.extend_all(&all);
        assert_eq!(archive.replay(), &replay);
        for bank in Bank::ALL {
            let mut out = Vec::new();
            archive.copy_bank(bank, &mut out).unwrap();
            assert_eq!(out, crate::testdata::encode_list(&all, bank));
            assert_eq!(archive.bank_len(bank), out.len() as u64);
        }
        let mut streamed = Vec::new();
        archive
            .for_each_batch(|batch| {
                streamed.extend_from_slice(batch);
                Ok(())
            })
            .unwrap();
        assert_eq!(streamed, all);
    }

    #[test]
    fn catch_up_takes_in_appends_and_serves_from_any_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = Archive::open(dir.path(), Access::Read).unwrap();
        reader.catch_up().unwrap();
        assert!(reader.is_empty());
        let all = [records(1..4), vec![violation()], records(4..6)].concat();
        let mut writer = Archive::open(dir.path(), Access::Append).unwrap();
        append(&mut writer, &all[..3]);
        reader.catch_up().unwrap();
        assert_eq!(reader.len(), 3);
        append(&mut writer, &all[3..4]);
        append(&mut writer, &all[4..]);
        reader.catch_up().unwrap();
        reader.catch_up().unwrap();
        assert_eq!(reader.tail(100).unwrap(), all);
        assert_eq!(reader.replay(), writer.replay());
        for bank in Bank::ALL {
            let whole = crate::testdata::encode_list(&all, bank);
            for first in 0..=all.len() {
                let mut out = Vec::new();
                reader.copy_bank_from(bank, first, &mut out).unwrap();
                let skipped = crate::testdata::encode_list(&all[..first], bank).len();
                assert_eq!(out, whole[skipped..], "{bank} from {first}");
            }
        }
        let mut streamed = Vec::new();
        reader
            .for_each_batch_from(2, |batch| {
                streamed.extend_from_slice(batch);
                Ok(())
            })
            .unwrap();
        assert_eq!(streamed, all[2..]);
    }

    #[test]
    fn catch_up_checks_what_was_added() {
        let (dir, all) = three_chunks();
        let mut reader = Archive::open(dir.path(), Access::Read).unwrap();
        let mut writer = Archive::open(dir.path(), Access::Append).unwrap();
        append(&mut writer, &records(7..9));
        let path = dir.path().join(bank_file(Bank::Sha256));
        let end = fs::metadata(&path).unwrap().len();
        flip(&path, end - 3);
        let err = format!("{:#}", reader.catch_up().unwrap_err());
        let start = crate::testdata::encode_list(&all, Bank::Sha256).len();
        assert!(
            err.starts_with(&format!(
                "{}: checksum mismatch in bytes [{start}, {end}) (chunk 3)",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn empty_directory_reads_as_an_empty_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert!(archive.is_empty());
        assert!(!dir.path().join(COMMIT).exists());
    }

    #[test]
    fn interrupted_append_is_truncated_on_open() {
        let (dir, all) = three_chunks();
        let lens: Vec<u64> = [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS]
            .iter()
            .map(|name| fs::metadata(dir.path().join(name)).unwrap().len())
            .collect();
        {
            // Killed after the write, before the commit.
            let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
            drop(archive.write(&records(10..12)).unwrap());
        }
        // A reader ignores the uncommitted bytes and leaves them.
        let archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert_eq!(archive.tail(100).unwrap(), all);
        assert!(fs::metadata(dir.path().join(CHUNKS)).unwrap().len() > lens[2]);
        drop(archive);
        let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
        assert_eq!(archive.tail(100).unwrap(), all);
        for (name, len) in [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS]
            .iter()
            .zip(lens)
        {
            assert_eq!(fs::metadata(dir.path().join(name)).unwrap().len(), len);
        }
        append(&mut archive, &records(20..21));
        drop(archive);
        let archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert_eq!(archive.len(), all.len() + 1);
    }

    #[test]
    fn failed_write_is_overwritten_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
        drop(archive.write(&records(1..5)).unwrap());
        append(&mut archive, &records(7..8));
        drop(archive);
        let archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert_eq!(archive.tail(10).unwrap(), records(7..8));
    }

    #[test]
    fn flipped_template_data_byte_names_the_record() {
        let (dir, all) = three_chunks();
        let second = encoded_len(&all[0], Bank::Sha1) as u64;
        let path = dir.path().join(bank_file(Bank::Sha1));
        flip(&path, second + 50);
        let err = open_err(dir.path(), Access::Read);
        let chunk_end = second * 3;
        assert_eq!(
            err,
            format!(
                "{}: checksum mismatch in bytes [0, {chunk_end}) (chunk 0); record 1 at byte \
                 {second}: its template data differs from the other bank's",
                path.display()
            )
        );
    }

    #[test]
    fn flipped_digest_byte_names_the_record() {
        let (dir, all) = three_chunks();
        let path = dir.path().join(bank_file(Bank::Sha256));
        let starts: Vec<u64> = all
            .iter()
            .scan(0, |at, record| {
                let start = *at;
                *at += encoded_len(record, Bank::Sha256) as u64;
                Some(start)
            })
            .collect();
        flip(&path, starts[5] + 4);
        let err = open_err(dir.path(), Access::Read);
        assert!(
            err.contains(&format!(
                "sha256.bin: checksum mismatch in bytes [{}, {}) (chunk 2); record 5 at byte {}: \
                 its template digest does not match its data",
                starts[4],
                fs::metadata(&path).unwrap().len(),
                starts[5]
            )),
            "{err}"
        );
    }

    #[test]
    fn flipped_length_byte_is_a_parse_error_at_its_offset() {
        let (dir, all) = three_chunks();
        let path = dir.path().join(bank_file(Bank::Sha1));
        let third = (encoded_len(&all[0], Bank::Sha1) * 2) as u64;
        flip(&path, third + 26);
        let err = open_err(dir.path(), Access::Read);
        assert!(
            err.starts_with(&format!(
                "{}: record 2 (starting at byte {third}): byte {}: template name length",
                path.display(),
                third + 24
            )),
            "{err}"
        );
    }

    #[test]
    fn flipped_chunk_index_byte() {
        let (dir, _) = three_chunks();
        let path = dir.path().join(CHUNKS);
        flip(&path, 3);
        let len = fs::metadata(&path).unwrap().len();
        assert_eq!(
            open_err(dir.path(), Access::Read),
            format!(
                "{}: checksum mismatch in bytes [0, {len}) (COMMIT records another sha256)",
                path.display()
            )
        );
    }

    #[test]
    fn flipped_commit_byte() {
        let (dir, _) = three_chunks();
        let path = dir.path().join(COMMIT);
        flip(&path, 30);
        let err = open_err(dir.path(), Access::Append);
        assert!(err.contains("COMMIT: its own checksum"), "{err}");
    }

    #[test]
    fn truncated_below_the_commit() {
        let (dir, _) = three_chunks();
        let path = dir.path().join(bank_file(Bank::Sha256));
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        assert_eq!(
            open_err(dir.path(), Access::Append),
            format!(
                "{}: holds {} bytes, COMMIT records {len}: truncated at byte {}",
                path.display(),
                len - 7,
                len - 7
            )
        );
        // Nothing was "repaired".
        assert_eq!(fs::metadata(&path).unwrap().len(), len - 7);
    }

    #[test]
    fn missing_bank_file() {
        let (dir, _) = three_chunks();
        fs::remove_file(dir.path().join(bank_file(Bank::Sha1))).unwrap();
        let err = open_err(dir.path(), Access::Read);
        assert!(err.contains("sha1.bin: COMMIT records"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = open_err(&missing, Access::Append);
        assert!(
            err.starts_with(&format!("archive directory {}: ", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn read_only_directory_is_refused_for_appending() {
        let (dir, all) = three_chunks();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        let err = open_err(dir.path(), Access::Append);
        assert!(err.contains("is read-only (mode 555)"), "{err}");
        assert_eq!(
            Archive::open(dir.path(), Access::Read).unwrap().len(),
            all.len()
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn second_appender_is_refused() {
        let (dir, _) = three_chunks();
        let _first = Archive::open(dir.path(), Access::Append).unwrap();
        let err = open_err(dir.path(), Access::Append);
        assert!(err.contains("in use by another ima-keeper"), "{err}");
    }

    #[test]
    fn directory_with_lists_but_no_commit_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(bank_file(Bank::Sha1)), b"x").unwrap();
        let err = open_err(dir.path(), Access::Append);
        assert!(
            err.contains("no COMMIT, but sha1.bin holds 1 bytes"),
            "{err}"
        );
    }

    #[test]
    fn read_only_archive_cannot_write() {
        let (dir, _) = three_chunks();
        let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
        let err = archive.write(&records(9..10)).err().unwrap();
        assert!(err.to_string().contains("open read-only"), "{err}");
    }
}
