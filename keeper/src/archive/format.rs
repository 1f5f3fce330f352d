//! The archive's text files: `COMMIT`, which says what is committed, and
//! the `chunks` index, one line per append (see [`super`] for the format).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::bank_file;
use crate::record::{hex, parse_hex, Bank};

/// Name of the commit file.
pub(super) const COMMIT: &str = "COMMIT";
/// Name of the commit file while it is written.
const COMMIT_TMP: &str = "COMMIT.tmp";
/// Name of the chunk index.
pub(super) const CHUNKS: &str = "chunks";
/// First line of the commit file: the format and its version.
const MAGIC: &str = "ima-keeper archive 1";

/// The contents of the COMMIT file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Commit {
    /// Committed records.
    pub(super) records: usize,
    /// Committed bytes of each bank file.
    pub(super) bank_lens: [u64; 2],
    /// Committed bytes of `chunks`.
    pub(super) chunks_len: u64,
    /// sha256 of the committed bytes of `chunks`.
    pub(super) chunks_sha256: Vec<u8>,
}

impl Commit {
    pub(super) fn empty() -> Commit {
        Commit {
            chunks_sha256: Sha256::digest(b"").to_vec(),
            ..Commit::default()
        }
    }

    pub(super) fn render(&self) -> String {
        let body = format!(
            "{MAGIC}\nrecords {}\n{} {}\n{} {}\n{CHUNKS} {} {}\n",
            self.records,
            bank_file(Bank::Sha1),
            self.bank_lens[0],
            bank_file(Bank::Sha256),
            self.bank_lens[1],
            self.chunks_len,
            hex(&self.chunks_sha256)
        );
        let check = hex(&Sha256::digest(body.as_bytes()));
        format!("{body}check {check}\n")
    }

    pub(super) fn parse(text: &str) -> Result<Commit, String> {
        let (body, check) = text
            .trim_end_matches('\n')
            .rsplit_once('\n')
            .ok_or("too short")?;
        let body = format!("{body}\n");
        if check != format!("check {}", hex(&Sha256::digest(body.as_bytes()))) {
            return Err("its own checksum (last line) does not match: corrupted".to_string());
        }
        let lines: Vec<&str> = body.lines().collect();
        let [magic, records, sha1, sha256, chunks] = lines[..] else {
            return Err(format!("{} lines, expected 6", lines.len() + 1));
        };
        if magic != MAGIC {
            return Err(format!("line 1 is {magic:?}, expected {MAGIC:?}"));
        }
        let (chunks_len, chunks_sha256) = value(chunks, CHUNKS, 5)?
            .split_once(' ')
            .ok_or("line 5: expected a length and a sha256")?;
        Ok(Commit {
            records: count(value(records, "records", 2)?, 2)? as usize,
            bank_lens: [
                count(value(sha1, bank_file(Bank::Sha1), 3)?, 3)?,
                count(value(sha256, bank_file(Bank::Sha256), 4)?, 4)?,
            ],
            chunks_len: count(chunks_len, 5)?,
            chunks_sha256: parse_hex(chunks_sha256)
                .filter(|digest| digest.len() == 32)
                .ok_or("line 5: bad sha256")?,
        })
    }
}

/// What follows `key` and a space on COMMIT line `number`.
fn value<'a>(line: &'a str, key: &str, number: usize) -> Result<&'a str, String> {
    line.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| format!("line {number} is {line:?}, expected \"{key} ...\""))
}

/// A count on COMMIT line `number`.
fn count(text: &str, number: usize) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("line {number}: {text:?} is not a count"))
}

/// One line of the chunk index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    /// Records appended.
    pub(super) records: usize,
    /// Where the chunk ends in each bank file.
    pub(super) ends: [u64; 2],
    /// sha256 of the chunk's bytes in each bank file.
    pub(super) sha256: [Vec<u8>; 2],
}

impl Chunk {
    pub(super) fn render(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.records,
            self.ends[0],
            self.ends[1],
            hex(&self.sha256[0]),
            hex(&self.sha256[1])
        )
    }

    pub(super) fn parse(line: &str) -> Option<Chunk> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [records, end1, end2, sum1, sum2] = fields[..] else {
            return None;
        };
        let digest = |text: &str| parse_hex(text).filter(|digest| digest.len() == 32);
        Some(Chunk {
            records: records.parse().ok()?,
            ends: [end1.parse().ok()?, end2.parse().ok()?],
            sha256: [digest(sum1)?, digest(sum2)?],
        })
    }
}

/// Replaces COMMIT atomically and durably.
pub(super) fn write_commit(dir: &Path, commit: &Commit) -> Result<()> {
    let tmp = dir.join(COMMIT_TMP);
    let mut file = File::create(&tmp).with_context(|| format!("{}: creating", tmp.display()))?;
    file.write_all(commit.render().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: writing", tmp.display()))?;
    fs::rename(&tmp, dir.join(COMMIT))
        .with_context(|| format!("{}: renaming to {COMMIT}", tmp.display()))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("archive directory {}: fsync", dir.display()))
}
