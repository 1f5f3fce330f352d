//! Opening an archive: every check of the module docs of [`super`], and the
//! truncation of an interrupted append; catching up with the appends of
//! another keeper, verifying only what they added.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use super::format::{Chunk, Commit, CHUNKS, COMMIT};
use super::{bank_file, read_range, Access, Archive};
use crate::notice;
use crate::record::{parse_list, zip_banks, Bank, Entry, Position};

impl Archive {
    /// Checks the files against `commit` and loads the record index; see the
    /// module docs for what is checked.
    pub(super) fn verify(&mut self, commit: Commit) -> Result<()> {
        let names = [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS];
        let committed = [commit.bank_lens[0], commit.bank_lens[1], commit.chunks_len];
        let (files, surplus) = self.open_files(&commit)?;
        self.verify_new_chunks(commit, &files)?;
        if !surplus.is_empty() && self.access == Access::Append {
            for (name, committed) in names.iter().zip(committed) {
                truncate(&self.path(name), committed)?;
            }
            notice(&format!(
                "archive {}: dropped the uncommitted bytes of an interrupted append ({})",
                self.dir.display(),
                surplus.join(", ")
            ));
        }
        Ok(())
    }

    /// Takes in what other keepers committed since the archive was opened:
    /// reads `COMMIT` again and verifies only the chunks added since. An
    /// archive that changed other than by appending is an error; after an
    /// error the archive must be opened afresh.
    pub fn catch_up(&mut self) -> Result<()> {
        let path = self.path(COMMIT);
        let commit = match fs::read_to_string(&path) {
            Ok(text) => {
                Commit::parse(&text).map_err(|reason| anyhow!("{}: {reason}", path.display()))?
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.is_empty() => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("{}", path.display())),
        };
        if commit == self.commit {
            return Ok(());
        }
        ensure!(
            commit.records >= self.commit.records
                && commit.chunks_len >= self.commit.chunks_len
                && (0..2).all(|i| commit.bank_lens[i] >= self.commit.bank_lens[i]),
            "{}: now records {} records, {} when the archive was opened: it changed other than \
             by appending (replaced?)",
            path.display(),
            commit.records,
            self.commit.records
        );
        let (files, _) = self.open_files(&commit)?;
        self.verify_new_chunks(commit, &files)
    }

    /// Opens the bank files and `chunks` and checks that each holds at least
    /// what `commit` records; also returns what lies past that, for messages.
    fn open_files(&self, commit: &Commit) -> Result<(Vec<File>, Vec<String>)> {
        let names = [bank_file(Bank::Sha1), bank_file(Bank::Sha256), CHUNKS];
        let committed = [commit.bank_lens[0], commit.bank_lens[1], commit.chunks_len];
        let mut files = Vec::new();
        let mut surplus = Vec::new();
        for (name, committed) in names.iter().zip(committed) {
            let path = self.path(name);
            let file = File::open(&path)
                .with_context(|| format!("{}: COMMIT records {committed} bytes", path.display()))?;
            let len = file
                .metadata()
                .with_context(|| format!("{}", path.display()))?
                .len();
            ensure!(
                len >= committed,
                "{}: holds {len} bytes, COMMIT records {committed}: truncated at byte {len}",
                path.display()
            );
            if len > committed {
                surplus.push(format!("{name} {} bytes", len - committed));
            }
            files.push(file);
        }
        Ok((files, surplus))
    }

    /// Verifies the chunks that `commit` has beyond the verified ones (all
    /// of them for a fresh archive) and takes `commit` as the verified state.
    fn verify_new_chunks(&mut self, commit: Commit, files: &[File]) -> Result<()> {
        let chunks_path = self.path(CHUNKS);
        let start = self.commit.chunks_len;
        let mut chunks_text = vec![0; (commit.chunks_len - start) as usize];
        files[2]
            .read_exact_at(&mut chunks_text, start)
            .with_context(|| format!("{}", chunks_path.display()))?;
        self.chunks_hasher.update(&chunks_text);
        ensure!(
            self.chunks_hasher.clone().finalize().to_vec() == commit.chunks_sha256,
            "{}: checksum mismatch in bytes [0, {}) (COMMIT records another sha256)",
            chunks_path.display(),
            commit.chunks_len
        );
        let chunks_text = String::from_utf8(chunks_text)
            .map_err(|err| anyhow!("{}: not text: {err}", chunks_path.display()))?;
        let mut line_start = start as usize;
        for line in chunks_text.split_terminator('\n') {
            let number = self.chunk_count;
            let chunk = Chunk::parse(line).ok_or_else(|| {
                anyhow!(
                    "{}: line {} (byte {line_start}) is malformed: {line:?}",
                    chunks_path.display(),
                    number + 1
                )
            })?;
            self.verify_chunk(number, &chunk, files)?;
            line_start += line.len() + 1;
        }
        ensure!(
            self.starts.len() == commit.records && self.commit.bank_lens == commit.bank_lens,
            "{}: the chunks hold {} records and end at bytes {:?}, COMMIT records {} and {:?}",
            chunks_path.display(),
            self.starts.len(),
            self.commit.bank_lens,
            commit.records,
            commit.bank_lens
        );
        self.commit = commit;
        Ok(())
    }

    /// Verifies chunk `number` (see the module docs) and adds its records to
    /// the index and the replay.
    fn verify_chunk(&mut self, number: usize, chunk: &Chunk, files: &[File]) -> Result<()> {
        let first_index = self.starts.len();
        let mut entries: [Vec<Entry>; 2] = Default::default();
        let mut offsets: [Vec<u64>; 2] = Default::default();
        let mut damaged = None;
        for bank in Bank::ALL {
            let path = self.path(bank_file(bank));
            let range = self.commit.bank_lens[bank.index()]..chunk.ends[bank.index()];
            let bytes = read_range(&path, &files[bank.index()], &range)?;
            let parsed = parse_list(
                &bytes,
                bank,
                Position {
                    offset: range.start,
                    index: first_index,
                },
            )
            .map_err(|err| anyhow!("{}: {err}", path.display()))?;
            ensure!(
                parsed.len() == chunk.records,
                "{}: bytes [{}, {}) (chunk {number}) hold {} records, {CHUNKS} says {}",
                path.display(),
                range.start,
                range.end,
                parsed.len(),
                chunk.records
            );
            if damaged.is_none() && Sha256::digest(&bytes).to_vec() != chunk.sha256[bank.index()] {
                damaged = Some((bank, range.clone()));
            }
            offsets[bank.index()] = entry_offsets(&parsed, range.start);
            entries[bank.index()] = parsed;
        }
        let [sha1, sha256] = entries;
        let zipped = zip_banks(sha1, sha256, first_index);
        if let Some((bank, range)) = damaged {
            let suspect = match &zipped {
                Err(mismatch) => Some((
                    mismatch.index,
                    format!("its {} differs from the other bank's", mismatch.field),
                )),
                Ok(records) => records
                    .iter()
                    .position(|record| !record.digest_matches_data(bank))
                    .map(|i| {
                        (
                            first_index + i,
                            "its template digest does not match its data".to_string(),
                        )
                    }),
            };
            let suspect = suspect
                .map(|(index, why)| {
                    let offset = offsets[bank.index()][index - first_index];
                    format!("; record {index} at byte {offset}: {why}")
                })
                .unwrap_or_default();
            bail!(
                "{}: checksum mismatch in bytes [{}, {}) (chunk {number}){suspect}",
                self.path(bank_file(bank)).display(),
                range.start,
                range.end
            );
        }
        let records = zipped.map_err(|mismatch| {
            anyhow!(
                "archive {}: {mismatch} although both checksums match",
                self.dir.display()
            )
        })?;
        self.starts
            .extend((0..records.len()).map(|i| [offsets[0][i], offsets[1][i]]));
        self.replay.extend_all(&records);
        self.commit.bank_lens = chunk.ends;
        self.chunk_count += 1;
        Ok(())
    }
}

/// Cuts the file at `path` back to `len` bytes, durably.
fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(len).and_then(|()| file.sync_all()))
        .with_context(|| format!("{}: truncating to {len} bytes", path.display()))
}

/// Offset of each of `entries` in a file where the first starts at `start`.
fn entry_offsets(entries: &[Entry], start: u64) -> Vec<u64> {
    entries
        .iter()
        .scan(start, |at, entry| {
            let offset = *at;
            *at += entry.encoded_len() as u64;
            Some(offset)
        })
        .collect()
}
