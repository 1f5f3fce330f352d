//! The status file: what the last export did, for `ima-keeper status`.
//!
//! `STATUS` in the archive directory holds `key value` lines and is replaced
//! with a rename. It is informational: the archive's contents are defined by
//! COMMIT alone, so it is not fsynced, and a missing or stale one is harmless.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};

use crate::export::Outcome;

const STATUS: &str = "STATUS";
const STATUS_TMP: &str = "STATUS.tmp";

/// The last export, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastExport {
    /// When it finished, in seconds since the epoch.
    pub unix_time: u64,
    /// `stage` or `delete-N`.
    pub flavour: String,
    /// Records it appended to the archive.
    pub archived: usize,
    /// Records it deleted from the kernel.
    pub deleted: usize,
    /// Exports recorded in this archive so far, this one included.
    pub exports: u64,
}

/// Records an export that just finished.
pub fn save(dir: &Path, flavour: &str, outcome: &Outcome) -> Result<()> {
    let exports = load(dir).ok().flatten().map_or(0, |last| last.exports) + 1;
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let text = format!(
        "time {unix_time}\nflavour {flavour}\narchived {}\ndeleted {}\nexports {exports}\n",
        outcome.archived, outcome.deleted
    );
    let tmp = dir.join(STATUS_TMP);
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, dir.join(STATUS)))
        .with_context(|| format!("{}", dir.join(STATUS).display()))
}

/// The last export recorded in `dir`, `None` if none is.
pub fn load(dir: &Path) -> Result<Option<LastExport>> {
    let path = dir.join(STATUS);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("{}", path.display())),
    };
    let value = |key: &str| -> Result<&str> {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .ok_or_else(|| anyhow!("{}: no {key:?} line", path.display()))
    };
    let number = |key: &str| -> Result<u64> {
        value(key)?
            .parse()
            .map_err(|_| anyhow!("{}: {key:?} is not a number", path.display()))
    };
    Ok(Some(LastExport {
        unix_time: number("time")?,
        flavour: value("flavour")?.to_string(),
        archived: number("archived")? as usize,
        deleted: number("deleted")? as usize,
        exports: number("exports")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_counts_exports() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let outcome = Outcome {
            archived: 3,
            deleted: 2,
        };
        save(dir.path(), "stage", &outcome).unwrap();
        save(dir.path(), "delete-N", &outcome).unwrap();
        let last = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            (
                last.flavour.as_str(),
                last.archived,
                last.deleted,
                last.exports
            ),
            ("delete-N", 3, 2, 2)
        );
    }
}
