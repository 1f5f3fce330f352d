//! The view for agents: files named like securityfs's measurement lists whose
//! contents are archive ++ live, every record since boot.
//!
//! Each open file handle serves [`Contents`]: the full log as it was when the
//! file was opened, read under one reader set ([`FullLog::read`]), so it is
//! self-consistent and holds every record the kernel had when the open
//! started. The full log only grows at its end (an export moves records from
//! the live list to the archive; it does not change the log), so a read that
//! reaches past the end of what the handle holds first appends the records
//! added since: a read includes every record the kernel had when it started,
//! and an agent that keeps the file open and reads on from where it stopped
//! (as rust-keylime does) sees new records as it would on securityfs. Bytes
//! once served never change.
//!
//! The view holds no securityfs file between requests: an agent reading it
//! never blocks an export, unlike one that holds `ascii_runtime_measurements`.
//! [`mount`] serves the files over FUSE; the rest of this module is the
//! logic, testable without FUSE.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};

use crate::archive::{Access, Archive};
use crate::full_log::{Format, FullLog};
use crate::kernel::Kernel;
use crate::notice;
use crate::record::Bank;

pub mod mount;

/// The files of the view and what each holds, in directory order.
pub const FILES: [(&str, Format); 6] = [
    ("ascii_runtime_measurements", Format::Ascii(Bank::Sha1)),
    ("binary_runtime_measurements", Format::Binary(Bank::Sha1)),
    ("ascii_runtime_measurements_sha1", Format::Ascii(Bank::Sha1)),
    (
        "binary_runtime_measurements_sha1",
        Format::Binary(Bank::Sha1),
    ),
    (
        "ascii_runtime_measurements_sha256",
        Format::Ascii(Bank::Sha256),
    ),
    (
        "binary_runtime_measurements_sha256",
        Format::Binary(Bank::Sha256),
    ),
];

/// The format of the view file `name`, if there is one of that name.
pub fn format_of(name: &str) -> Option<Format> {
    FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|&(_, format)| format)
}

/// The archive, opened read-only once and caught up at each use.
pub struct ArchiveCache {
    dir: PathBuf,
    archive: Option<Archive>,
}

impl ArchiveCache {
    /// The archive in `dir`, opened at first use.
    pub fn new(dir: &Path) -> ArchiveCache {
        ArchiveCache {
            dir: dir.to_path_buf(),
            archive: None,
        }
    }

    /// Runs `with` on the archive; after an error the archive is opened (and
    /// verified) afresh at the next use.
    pub fn with<T>(&mut self, with: impl FnOnce(&mut Archive) -> Result<T>) -> Result<T> {
        let archive = match &mut self.archive {
            Some(archive) => archive,
            None => self.archive.insert(Archive::open(&self.dir, Access::Read)?),
        };
        let result = with(archive);
        if result.is_err() {
            self.archive = None;
        }
        result
    }
}

/// What one open file of the view serves.
#[derive(Debug)]
pub struct Contents {
    format: Format,
    bytes: Vec<u8>,
    /// Records of the full log in `bytes`.
    records: usize,
}

impl Contents {
    /// The full log in `format` as it is now.
    pub fn open(kernel: &dyn Kernel, archive: &mut Archive, format: Format) -> Result<Contents> {
        let mut contents = Contents {
            format,
            bytes: Vec::new(),
            records: 0,
        };
        contents.grow(kernel, archive)?;
        Ok(contents)
    }

    /// Bytes held so far.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether no byte is held (no record since boot).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Records held so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Up to `size` bytes from `offset`. A read that reaches past what is
    /// held first appends the records added since.
    pub fn read(
        &mut self,
        kernel: &dyn Kernel,
        archive: &mut Archive,
        offset: u64,
        size: u32,
    ) -> Result<&[u8]> {
        if offset.saturating_add(u64::from(size)) > self.len() {
            self.grow(kernel, archive)?;
        }
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let end = start.saturating_add(size as usize).min(self.bytes.len());
        Ok(&self.bytes[start..end])
    }

    /// Appends the records of the full log past those held.
    fn grow(&mut self, kernel: &dyn Kernel, archive: &mut Archive) -> Result<()> {
        let log = FullLog::read(kernel, archive)?;
        if let Some(caveat) = log.overlap().caveat() {
            notice(&format!("view: {caveat}"));
        }
        ensure!(
            log.len() >= self.records,
            "the full log now holds {} records, {} when this file was read before: the archive \
             was replaced or records were lost",
            log.len(),
            self.records
        );
        log.write_from(self.format, self.records, &mut self.bytes)?;
        self.records = log.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{export, Flavour, Options};
    use crate::fake_kernel::FakeKernel;
    use crate::testdata::{encode_list, violation};

    fn export_into(kernel: &FakeKernel, dir: &Path, flavour: Flavour) {
        let mut archive = Archive::open(dir, Access::Append).unwrap();
        let options = Options {
            flavour,
            ambiguity_retries: 0,
            ambiguity_delay: std::time::Duration::ZERO,
        };
        export(kernel, &mut archive, &options).unwrap();
    }

    /// Reads `contents` from its start to the end, `chunk` bytes at a time,
    /// as `cat` does.
    fn read_all(
        contents: &mut Contents,
        kernel: &FakeKernel,
        cache: &mut ArchiveCache,
        chunk: u32,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let offset = out.len() as u64;
            let bytes = cache
                .with(|archive| Ok(contents.read(kernel, archive, offset, chunk)?.to_vec()))
                .unwrap();
            if bytes.is_empty() {
                return out;
            }
            out.extend(bytes);
        }
    }

    fn open(kernel: &FakeKernel, cache: &mut ArchiveCache, name: &str) -> Contents {
        let format = format_of(name).unwrap();
        cache
            .with(|archive| Contents::open(kernel, archive, format))
            .unwrap()
    }

    #[test]
    fn files_are_archive_plus_live() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(5);
        kernel.add(violation());
        export_into(&kernel, dir.path(), Flavour::DeleteN { keep: 2 });
        kernel.add_measurements(3);
        let mut cache = ArchiveCache::new(dir.path());
        for (name, bank) in [
            ("binary_runtime_measurements", Bank::Sha1),
            ("binary_runtime_measurements_sha1", Bank::Sha1),
            ("binary_runtime_measurements_sha256", Bank::Sha256),
        ] {
            let mut contents = open(&kernel, &mut cache, name);
            assert_eq!(contents.records(), 9);
            let bytes = read_all(&mut contents, &kernel, &mut cache, 100);
            assert_eq!(bytes, encode_list(&kernel.every(), bank), "{name}");
        }
        let mut contents = open(&kernel, &mut cache, "ascii_runtime_measurements_sha256");
        let text = String::from_utf8(read_all(&mut contents, &kernel, &mut cache, 7)).unwrap();
        assert_eq!(text.lines().count(), 9, "{text}");
        assert!(text.ends_with(" /usr/bin/prog0008\n"), "{text}");
        assert_eq!(format_of("runtime_measurements_count"), None);
    }

    #[test]
    fn a_read_inside_the_snapshot_is_served_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(4);
        let mut cache = ArchiveCache::new(dir.path());
        let mut contents = open(&kernel, &mut cache, "binary_runtime_measurements");
        let at_open = encode_list(&kernel.every(), Bank::Sha1);
        assert_eq!(contents.len(), at_open.len() as u64);
        // Records added and exported after the open do not change what a
        // read inside the snapshot returns.
        kernel.add_measurements(2);
        export_into(&kernel, dir.path(), Flavour::Stage);
        let head = cache
            .with(|archive| Ok(contents.read(&kernel, archive, 0, 50)?.to_vec()))
            .unwrap();
        assert_eq!(head, at_open[..50]);
        assert_eq!(contents.records(), 4);
    }

    #[test]
    fn a_read_past_the_end_takes_in_new_records_across_exports() {
        for flavour in [Flavour::Stage, Flavour::DeleteN { keep: 1 }] {
            let dir = tempfile::tempdir().unwrap();
            let kernel = FakeKernel::new(true);
            kernel.add_measurements(3);
            let mut cache = ArchiveCache::new(dir.path());
            let mut contents = open(&kernel, &mut cache, "binary_runtime_measurements_sha256");
            let first = read_all(&mut contents, &kernel, &mut cache, 4096);
            assert_eq!(first, encode_list(&kernel.every(), Bank::Sha256));
            // The file stays open, as an agent keeps it: more records, exports
            // that delete some, and the next read goes on where it stopped.
            for round in 0..3 {
                kernel.add_measurements(2);
                export_into(&kernel, dir.path(), flavour);
                kernel.add(violation());
                let offset = contents.len();
                let more = cache
                    .with(|archive| Ok(contents.read(&kernel, archive, offset, 1 << 20)?.to_vec()))
                    .unwrap();
                let every = encode_list(&kernel.every(), Bank::Sha256);
                assert_eq!(
                    [&first[..], &every[first.len()..]].concat(),
                    every,
                    "{flavour:?} round {round}"
                );
                assert_eq!(more, every[offset as usize..], "{flavour:?} round {round}");
            }
            assert_eq!(contents.records(), kernel.every().len());
        }
    }

    #[test]
    fn a_replaced_archive_is_an_error_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        export_into(&kernel, dir.path(), Flavour::Stage);
        let mut cache = ArchiveCache::new(dir.path());
        let mut contents = open(&kernel, &mut cache, "binary_runtime_measurements");
        // Another boot's archive, shorter, takes its place.
        let other = tempfile::tempdir().unwrap();
        let earlier = FakeKernel::new(true);
        earlier.add_measurements(1);
        export_into(&earlier, other.path(), Flavour::Stage);
        for name in ["sha1.bin", "sha256.bin", "chunks", "COMMIT"] {
            std::fs::copy(other.path().join(name), dir.path().join(name)).unwrap();
        }
        let offset = contents.len();
        let err = cache
            .with(|archive| Ok(contents.read(&kernel, archive, offset, 10)?.len()))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("changed other than by appending"),
            "{err:#}"
        );
        // Opened afresh, the archive is that of the other boot: it holds 1.
        let records = cache.with(|archive| Ok(archive.len())).unwrap();
        assert_eq!(records, 1);
    }
}
