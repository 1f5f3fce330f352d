//! The full log since boot: `archive ++ live[k..]`, where `k` live records
//! are already archived ([`crate::reconcile`]).
//!
//! The reader set is taken first: while it is held no export can delete a
//! record. Then the archive catches up with what was committed since it was
//! opened, and the live lists are read. So every record deleted before the
//! lists were read is in the archive, and a record archived but not yet
//! deleted (a keeper killed in between) is recognised by reconciliation:
//! nothing is missing or doubled even while a keeper exports next to us.
//! `cat` prints the full log, `verify` replays it against PCR 10, `status`
//! counts it, and the view ([`crate::view`]) serves it with
//! [`FullLog::write_from`].

use std::io::Write;

use anyhow::{anyhow, Context, Result};

use crate::archive::Archive;
use crate::ascii;
use crate::kernel::{Kernel, Lists, Snapshot};
use crate::reconcile::{reconcile, Overlap, Verdict};
use crate::record::{hex, Bank, Record};
use crate::replay::{PcrEvidence, Replay};

/// The archive and a snapshot of the live lists, reconciled.
pub struct FullLog<'a> {
    archive: &'a Archive,
    lists: Lists,
    live: Vec<Record>,
    overlap: Overlap,
    pcr: Option<PcrEvidence>,
}

/// How the full log is written: as a binary or an ascii list, with the
/// template digests of one bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// As `binary_runtime_measurements_<bank>` holds it.
    Binary(Bank),
    /// As `ascii_runtime_measurements_<bank>` shows it.
    Ascii(Bank),
}

/// The outcome of [`FullLog::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The log replays to PCR 10 in every bank the TPM exposes, and every
    /// record's template digests match its data.
    pub ok: bool,
    /// One line per finding.
    pub report: Vec<String>,
}

impl<'a> FullLog<'a> {
    /// Takes the reader set of `kernel`, catches `archive` up with what was
    /// committed since it was opened, reads the live lists with PCR 10
    /// around the read, and reconciles them with the archive.
    pub fn read(kernel: &dyn Kernel, archive: &'a mut Archive) -> Result<FullLog<'a>> {
        let mut reader = kernel.reader()?;
        archive.catch_up()?;
        let snapshot = Snapshot::take(kernel, || reader.read_lists())?;
        drop(reader);
        let archive = &*archive;
        let overlap = reconcile(archive, &snapshot)?;
        let live = snapshot.lists.live();
        Ok(FullLog {
            archive,
            lists: snapshot.lists,
            live,
            overlap,
            pcr: snapshot.pcr,
        })
    }

    /// How the archive and the live list were reconciled.
    pub fn overlap(&self) -> &Overlap {
        &self.overlap
    }

    /// The live lists as read.
    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    /// The live records the archive does not hold.
    pub fn unarchived(&self) -> &[Record] {
        &self.live[self.overlap.k..]
    }

    /// Number of records in the full log.
    pub fn len(&self) -> usize {
        self.archive.len() + self.unarchived().len()
    }

    /// Whether the full log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The archive the log was read with.
    pub fn archive(&self) -> &Archive {
        self.archive
    }

    /// Writes the full log in `format`.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> Result<()> {
        self.write_from(format, 0, out)
    }

    /// Writes the full log in `format` from record `first` on (nothing if
    /// the log holds no more than `first` records).
    pub fn write_from(&self, format: Format, first: usize, out: &mut dyn Write) -> Result<()> {
        match format {
            Format::Binary(bank) => self.write_binary(bank, first, out),
            Format::Ascii(bank) => self.write_ascii(bank, first, out),
        }
    }

    /// The live records from index `first` of the full log on.
    fn unarchived_from(&self, first: usize) -> &[Record] {
        let unarchived = self.unarchived();
        &unarchived[first
            .saturating_sub(self.archive.len())
            .min(unarchived.len())..]
    }

    /// Writes the full log from record `first` as `bank`'s binary list.
    fn write_binary(&self, bank: Bank, first: usize, out: &mut dyn Write) -> Result<()> {
        self.archive.copy_bank_from(bank, first, out)?;
        let mut bytes = Vec::new();
        for record in self.unarchived_from(first) {
            record
                .encode(bank, &mut bytes)
                .context("a live record too long for the list format")?;
        }
        out.write_all(&bytes).context("writing the live records")
    }

    /// Writes the full log from record `first` as `bank`'s ascii list.
    fn write_ascii(&self, bank: Bank, first: usize, out: &mut dyn Write) -> Result<()> {
        let mut index = first;
        let mut render = |records: &[Record]| -> Result<()> {
            let mut text = Vec::new();
            for record in records {
                ascii::render(record, bank, &mut text)
                    .map_err(|err| anyhow!("record {index}: {err}"))?;
                index += 1;
            }
            out.write_all(&text).context("writing the ascii list")
        };
        self.archive.for_each_batch_from(first, &mut render)?;
        render(self.unarchived_from(first))
    }

    /// Replays the full log against PCR 10 and checks every record's template
    /// digests against its data; `None` without a TPM.
    pub fn verify(&self) -> Result<Option<Verification>> {
        let Some(evidence) = &self.pcr else {
            return Ok(None);
        };
        let total = self.len();
        let mut replay = Replay::default();
        let mut met: [Option<usize>; 2] =
            Bank::ALL.map(|bank| evidence.before.matches_bank(&replay, bank).then_some(0));
        let mut bad_digests: [Vec<usize>; 2] = Default::default();
        let mut index = 0;
        let mut visit = |record: &Record| {
            replay.extend(record);
            index += 1;
            for bank in Bank::ALL {
                if !record.digest_matches_data(bank) {
                    bad_digests[bank.index()].push(index - 1);
                }
                if met[bank.index()].is_none() && evidence.before.matches_bank(&replay, bank) {
                    met[bank.index()] = Some(index);
                }
            }
        };
        self.archive.for_each_batch(|batch| {
            batch.iter().for_each(&mut visit);
            Ok(())
        })?;
        self.unarchived().iter().for_each(&mut visit);

        let mut ok = true;
        let mut report = Vec::new();
        let sizes = format!(
            "{total} records: {} archived, {} live",
            self.archive.len(),
            self.unarchived().len()
        );
        for bank in Bank::ALL {
            let Some(tpm) = evidence.before.value(bank) else {
                report.push(format!(
                    "{bank}: not checked, the TPM does not expose this bank"
                ));
                continue;
            };
            let (line, matched) = match met[bank.index()] {
                Some(m) if m == total => (format!("{bank}: PCR 10 matches the replay of all {sizes}"), true),
                Some(m) if !evidence.quiet => (
                    format!(
                        "{bank}: PCR 10 matches after the first {m} of {sizes}; the last {} were added after PCR 10 was read",
                        total - m
                    ),
                    true,
                ),
                Some(m) if m + 1 == total => (
                    format!(
                        "{bank}: PCR 10 matches the replay of all but the last of {sizes}; the kernel \
                         lists a record just before it extends PCR 10 with it, and that extend was under way"
                    ),
                    true,
                ),
                Some(m) => (
                    format!(
                        "{bank}: MISMATCH: PCR 10 matches after the first {m} of {sizes}, but did not change while the lists were read, so records {m}.. are not in it"
                    ),
                    false,
                ),
                None => (
                    format!(
                        "{bank}: MISMATCH: no prefix of the {sizes} replays to PCR 10 ({}); the full replay gives {}",
                        hex(tpm),
                        hex(replay.value(bank))
                    ),
                    false,
                ),
            };
            ok &= matched;
            report.push(line);
            if let Some(&first) = bad_digests[bank.index()].first() {
                ok = false;
                report.push(format!(
                    "{bank}: MISMATCH: record {first} (and {} more) has a template digest that is not the hash of its template data",
                    bad_digests[bank.index()].len() - 1
                ));
            }
        }
        if let Some(caveat) = self.overlap.caveat() {
            ok &= self.overlap.verdict == Verdict::Unverified;
            report.push(caveat);
        }
        Ok(Some(Verification { ok, report }))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::archive::Access;
    use crate::export::{export, Flavour, Options};
    use crate::fake_kernel::FakeKernel;
    use crate::record::{parse_list, zip_banks, Position};
    use crate::testdata::{encode_list, violation};

    fn exported(kernel: &FakeKernel, dir: &std::path::Path, keep: usize) {
        let mut archive = Archive::open(dir, Access::Append).unwrap();
        let options = Options {
            flavour: Flavour::DeleteN { keep },
            ambiguity_retries: 0,
            ambiguity_delay: std::time::Duration::ZERO,
        };
        export(kernel, &mut archive, &options).unwrap();
    }

    /// `verify` of the full log of `kernel` and the archive in `dir`.
    fn verified(kernel: &FakeKernel, dir: &std::path::Path) -> Verification {
        let mut archive = Archive::open(dir, Access::Read).unwrap();
        FullLog::read(kernel, &mut archive)
            .unwrap()
            .verify()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn binary_full_log_is_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(4);
        kernel.add(violation());
        exported(&kernel, dir.path(), 2);
        kernel.add_measurements(3);
        let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
        let log = FullLog::read(&kernel, &mut archive).unwrap();
        assert_eq!(log.len(), 8);
        for bank in Bank::ALL {
            let mut out = Vec::new();
            log.write(Format::Binary(bank), &mut out).unwrap();
            assert_eq!(out, encode_list(&kernel.every(), bank));
        }
        let sha1 = parse_list(
            &encode_list(&kernel.every(), Bank::Sha1),
            Bank::Sha1,
            Position::default(),
        );
        let sha256 = parse_list(
            &encode_list(&kernel.every(), Bank::Sha256),
            Bank::Sha256,
            Position::default(),
        );
        assert_eq!(
            zip_banks(sha1.unwrap(), sha256.unwrap(), 0).unwrap(),
            kernel.every()
        );
    }

    #[test]
    fn ascii_full_log_has_a_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        exported(&kernel, dir.path(), 1);
        let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
        let log = FullLog::read(&kernel, &mut archive).unwrap();
        let mut out = Vec::new();
        log.write(Format::Ascii(Bank::Sha256), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with(" /usr/bin/prog0003"), "{text}");
    }

    #[test]
    fn verify_passes_and_then_finds_a_tampered_record() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        kernel.add(violation());
        exported(&kernel, dir.path(), 1);
        let verification = verified(&kernel, dir.path());
        assert!(verification.ok, "{:?}", verification.report);
        assert!(verification.report[0].contains("matches the replay of all 4 records"));
        // Another keeper's archive with one record fewer: the replay misses.
        let other = tempfile::tempdir().unwrap();
        let short = FakeKernel::new(true);
        short.add_measurements(2);
        exported(&short, other.path(), 0);
        for name in ["sha1.bin", "sha256.bin", "chunks", "COMMIT"] {
            fs::copy(other.path().join(name), dir.path().join(name)).unwrap();
        }
        let verification = verified(&kernel, dir.path());
        assert!(!verification.ok);
        assert!(
            verification.report[0].starts_with("sha1: MISMATCH: no prefix"),
            "{:?}",
            verification.report
        );
    }

    #[test]
    fn verify_takes_a_last_record_whose_extend_is_under_way() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        exported(&kernel, dir.path(), 1);
        kernel.list_before_extend(crate::testdata::measurement(100));
        let verification = verified(&kernel, dir.path());
        assert!(verification.ok, "{:?}", verification.report);
        assert!(
            verification.report[0].contains("matches the replay of all but the last of 4 records"),
            "{:?}",
            verification.report
        );
        kernel.extend_listed();
    }

    #[test]
    fn verify_needs_a_tpm() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(false);
        kernel.add_measurements(1);
        let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
        assert_eq!(
            FullLog::read(&kernel, &mut archive)
                .unwrap()
                .verify()
                .unwrap(),
            None
        );
    }

    #[test]
    fn an_export_just_before_the_read_is_neither_lost_nor_doubled() {
        for keep in [0, 2] {
            let dir = tempfile::tempdir().unwrap();
            let kernel = FakeKernel::new(true);
            kernel.add_measurements(4);
            exported(&kernel, dir.path(), 1);
            // Opened now, the archive holds 3 records; another keeper
            // archives and deletes more before the reader set is taken.
            let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
            kernel.add_measurements(5);
            let other = dir.path().to_path_buf();
            kernel.before_next_reader(move |kernel| exported(kernel, &other, keep));
            let log = FullLog::read(&kernel, &mut archive).unwrap();
            assert_eq!(log.archive().len(), 9 - keep, "keep {keep}");
            let mut out = Vec::new();
            log.write(Format::Binary(Bank::Sha256), &mut out).unwrap();
            assert_eq!(
                out,
                encode_list(&kernel.every(), Bank::Sha256),
                "keep {keep}"
            );
        }
    }

    #[test]
    fn no_export_runs_while_the_reader_set_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(2);
        let reader = kernel.reader().unwrap();
        let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
        let options = Options {
            flavour: Flavour::Stage,
            ambiguity_retries: 0,
            ambiguity_delay: std::time::Duration::ZERO,
        };
        let err = export(&kernel, &mut archive, &options).unwrap_err();
        assert!(err.to_string().contains("EBUSY"), "{err}");
        drop(reader);
        export(&kernel, &mut archive, &options).unwrap();
        assert!(kernel.live().is_empty());
    }

    #[test]
    fn writing_from_a_record_gives_the_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        kernel.add(violation());
        exported(&kernel, dir.path(), 1);
        kernel.add_measurements(2);
        let mut archive = Archive::open(dir.path(), Access::Read).unwrap();
        let log = FullLog::read(&kernel, &mut archive).unwrap();
        assert_eq!(log.len(), 6);
        for format in [
            Format::Binary(Bank::Sha1),
            Format::Binary(Bank::Sha256),
            Format::Ascii(Bank::Sha1),
            Format::Ascii(Bank::Sha256),
        ] {
            let mut whole = Vec::new();
            log.write(format, &mut whole).unwrap();
            let mut cut = 0;
            for first in 0..=7 {
                let mut suffix = Vec::new();
                log.write_from(format, first, &mut suffix).unwrap();
                assert!(whole.ends_with(&suffix), "{format:?} from {first}");
                assert!(suffix.len() <= whole.len() - cut, "{format:?} from {first}");
                cut = whole.len() - suffix.len();
            }
            let mut past = Vec::new();
            log.write_from(format, 6, &mut past).unwrap();
            assert!(past.is_empty(), "{format:?}");
        }
    }
}
