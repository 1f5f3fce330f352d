//! One export: move records from the kernel into the archive, then delete
//! them from the kernel, in either flavour of the ABI.
//!
//! Both flavours take the writer set first, so the lists only grow at their
//! end until the export is over, read the lists with PCR 10 around the read,
//! and reconcile them with the archive ([`crate::reconcile`]). A staged list
//! left by an earlier keeper (killed between `A` and `D`) is settled first:
//! what the archive lacks of it is appended, then `D`.
//!
//! - delete-N: append the current records the archive lacks, up to the last
//!   `keep`, then `N` with the number of leading current records the archive
//!   now holds.
//! - stage: `A`, read the staged list, append what the archive lacks, `D`.
//!
//! Every delete comes after the commit of the append that archived its
//! records ([`crate::archive::Pending::commit`]); an error anywhere before
//! stops the export with nothing deleted that is not archived. What an
//! interrupted export left (records archived but not deleted, records
//! staged) is named in one line on stderr when the next export finds it.

use std::thread;
use std::time::Duration;

use anyhow::{bail, ensure, Result};

use crate::archive::Archive;
use crate::kernel::{Kernel, Lists, Snapshot, Step, Writer};
use crate::notice;
use crate::reconcile::{reconcile, Verdict};
use crate::record::Record;

/// Which command deletes the exported records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Write `N` to the original file; leave the last `keep` records live.
    DeleteN {
        /// Records to leave in the kernel's current list.
        keep: usize,
    },
    /// `A`, read `_staged`, `D`.
    Stage,
}

/// How to export.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which command deletes.
    pub flavour: Flavour,
    /// How often to read the lists again when the overlap is ambiguous.
    pub ambiguity_retries: u32,
    /// How long to wait before reading again.
    pub ambiguity_delay: Duration,
}

/// What an export did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records appended to the archive.
    pub archived: usize,
    /// Records deleted from the kernel.
    pub deleted: usize,
}

/// Runs one export of `options.flavour` from `kernel` into `archive`.
pub fn export(kernel: &dyn Kernel, archive: &mut Archive, options: &Options) -> Result<Outcome> {
    let mut retries = 0;
    loop {
        let mut writer = kernel.writer()?;
        let snapshot = Snapshot::take(kernel, || writer.read_lists())?;
        writer.reached(Step::Read)?;
        let overlap = reconcile(archive, &snapshot)?;
        let caveat = overlap.caveat().unwrap_or_default();
        match overlap.verdict {
            Verdict::Verified => {}
            Verdict::Unverified => notice(&caveat),
            Verdict::Ambiguous(_) if retries < options.ambiguity_retries => {
                notice(&format!("{caveat}; reading the lists again"));
                drop(writer);
                thread::sleep(options.ambiguity_delay);
                retries += 1;
                continue;
            }
            Verdict::Ambiguous(_) | Verdict::Unreplayable(_) => {
                bail!("{caveat}: not exporting, nothing deleted")
            }
        }
        if overlap.k > 0 {
            notice(&format!(
                "{} live records are archived already (an earlier export stopped between its \
                 commit and its delete): not archiving them again",
                overlap.k
            ));
        }
        let run = Run {
            writer: writer.as_mut(),
            archive,
            outcome: Outcome::default(),
        };
        return match options.flavour {
            Flavour::DeleteN { keep } => run.delete_n(&snapshot.lists, overlap.k, keep),
            Flavour::Stage => run.stage(&snapshot.lists, overlap.k),
        };
    }
}

/// An export under way, holding the writer set.
struct Run<'a> {
    writer: &'a mut dyn Writer,
    archive: &'a mut Archive,
    outcome: Outcome,
}

impl Run<'_> {
    /// The delete-N flavour; `archived` leading live records are archived.
    fn delete_n(mut self, lists: &Lists, archived: usize, keep: usize) -> Result<Outcome> {
        let archived = self.settle_staged(&lists.staged, archived)?;
        let current = &lists.current;
        let wanted = current.len().saturating_sub(keep);
        if archived < wanted {
            self.append(&current[archived..wanted])?;
        }
        let n = archived.max(wanted);
        if n > 0 {
            self.writer.delete_head(n)?;
            self.outcome.deleted += n;
        }
        Ok(self.outcome)
    }

    /// The stage flavour; `archived` leading live records are archived.
    fn stage(mut self, lists: &Lists, archived: usize) -> Result<Outcome> {
        let archived = self.settle_staged(&lists.staged, archived)?;
        if !self.writer.stage()? {
            return Ok(self.outcome);
        }
        self.writer.reached(Step::Stage)?;
        let staged = self.writer.read_lists()?.staged;
        ensure!(
            staged.starts_with(&lists.current),
            "the staged list after A does not start with the {} current records read before it",
            lists.current.len()
        );
        self.append(&staged[archived..])?;
        self.writer.delete_staged()?;
        self.outcome.deleted += staged.len();
        Ok(self.outcome)
    }

    /// Archives what the archive lacks of a leftover staged list, then `D`.
    /// Returns how many leading current records the archive holds.
    fn settle_staged(&mut self, staged: &[Record], archived: usize) -> Result<usize> {
        if staged.is_empty() {
            return Ok(archived);
        }
        notice(&format!(
            "{} records were left staged by an earlier export (stopped between A and D): \
             settling them first",
            staged.len()
        ));
        self.append(&staged[archived.min(staged.len())..])?;
        self.writer.delete_staged()?;
        self.outcome.deleted += staged.len();
        Ok(archived.saturating_sub(staged.len()))
    }

    /// Appends `records` to the archive and makes them durable.
    fn append(&mut self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let pending = self.archive.write(records)?;
        self.writer.reached(Step::Append)?;
        pending.commit()?;
        self.writer.reached(Step::Durable)?;
        self.outcome.archived += records.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::archive::{bank_file, Access};
    use crate::fake_kernel::FakeKernel;
    use crate::record::Bank;
    use crate::testdata::{measurement, violation};

    const FLAVOURS: [Flavour; 3] = [
        Flavour::DeleteN { keep: 0 },
        Flavour::DeleteN { keep: 2 },
        Flavour::Stage,
    ];

    fn options(flavour: Flavour) -> Options {
        Options {
            flavour,
            ambiguity_retries: 2,
            ambiguity_delay: Duration::ZERO,
        }
    }

    /// Opens the archive in `dir` afresh, as a restarted keeper does, and exports.
    fn export_once(kernel: &FakeKernel, dir: &Path, flavour: Flavour) -> Result<Outcome> {
        let mut archive = Archive::open(dir, Access::Append)?;
        export(kernel, &mut archive, &options(flavour))
    }

    fn archived(dir: &Path) -> Vec<Record> {
        let archive = Archive::open(dir, Access::Read).unwrap();
        archive.tail(archive.len()).unwrap()
    }

    /// The invariant: archive ++ live is every record, once, in order.
    fn assert_nothing_lost_or_doubled(kernel: &FakeKernel, dir: &Path, context: &str) {
        let full = [archived(dir), kernel.live()].concat();
        assert_eq!(full, kernel.every(), "{context}");
    }

    /// The invariant after a crash: archive ++ live[k..] is every record,
    /// once, in order, for the overlap k that reconciliation finds.
    fn assert_reconciles(kernel: &FakeKernel, dir: &Path, context: &str) {
        let archive = Archive::open(dir, Access::Read).unwrap();
        let snapshot = Snapshot::take(kernel, || kernel.read_lists()).unwrap();
        let overlap = reconcile(&archive, &snapshot).unwrap();
        assert_eq!(overlap.verdict, Verdict::Verified, "{context}");
        let live = kernel.live();
        let full = [archived(dir), live[overlap.k..].to_vec()].concat();
        assert_eq!(full, kernel.every(), "{context}");
    }

    #[test]
    fn delete_n_keeps_the_last_records() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(10);
        let outcome = export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 3 }).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                archived: 7,
                deleted: 7
            }
        );
        assert_eq!(kernel.live(), kernel.every()[7..]);
        assert_nothing_lost_or_doubled(&kernel, dir.path(), "keep 3");
        let outcome = export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 3 }).unwrap();
        assert_eq!(outcome, Outcome::default());
    }

    #[test]
    fn stage_moves_everything() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(4);
        kernel.add(violation());
        let outcome = export_once(&kernel, dir.path(), Flavour::Stage).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                archived: 5,
                deleted: 5
            }
        );
        assert!(kernel.live().is_empty());
        assert_nothing_lost_or_doubled(&kernel, dir.path(), "stage");
        // An empty current list: A finds nothing, nothing happens.
        let outcome = export_once(&kernel, dir.path(), Flavour::Stage).unwrap();
        assert_eq!(outcome, Outcome::default());
    }

    #[test]
    fn adders_running_during_the_export() {
        for flavour in FLAVOURS {
            let dir = tempfile::tempdir().unwrap();
            let kernel = FakeKernel::new(true);
            kernel.add_after_each_read(2);
            kernel.add_measurements(5);
            for _ in 0..3 {
                export_once(&kernel, dir.path(), flavour).unwrap();
                kernel.add(violation());
            }
            assert_nothing_lost_or_doubled(&kernel, dir.path(), &format!("{flavour:?}"));
        }
    }

    #[test]
    fn crash_at_every_step_then_restart() {
        for crash_flavour in FLAVOURS {
            for restart_flavour in FLAVOURS {
                for step in Step::ALL {
                    for nth in 1..=2 {
                        let context = format!(
                            "{crash_flavour:?} killed {step} #{nth}, restarted {restart_flavour:?}"
                        );
                        let dir = tempfile::tempdir().unwrap();
                        let kernel = FakeKernel::new(true);
                        kernel.add_measurements(3);
                        kernel.add(violation());
                        export_once(&kernel, dir.path(), crash_flavour).unwrap();
                        kernel.add(violation());
                        kernel.add_measurements(4);
                        kernel.crash_at(Some((step, nth)));
                        // Killed (an error) if the export reaches the step.
                        let _ = export_once(&kernel, dir.path(), crash_flavour);
                        assert_reconciles(&kernel, dir.path(), &context);
                        kernel.crash_at(None);
                        kernel.add(violation());
                        kernel.add_measurements(2);
                        export_once(&kernel, dir.path(), restart_flavour).unwrap();
                        assert_nothing_lost_or_doubled(&kernel, dir.path(), &context);
                        export_once(&kernel, dir.path(), restart_flavour).unwrap();
                        assert_nothing_lost_or_doubled(&kernel, dir.path(), &context);
                    }
                }
            }
        }
    }

    #[test]
    fn crash_leaves_the_archived_records_live_until_reconciled() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(5);
        kernel.crash_at(Some((Step::Durable, 1)));
        let err = export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 0 }).unwrap_err();
        assert_eq!(err.to_string(), "injected crash after the fsync");
        assert_eq!(archived(dir.path()).len(), 5);
        assert_eq!(kernel.live().len(), 5);
        kernel.crash_at(None);
        let outcome = export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 0 }).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                archived: 0,
                deleted: 5
            }
        );
    }

    #[test]
    fn record_listed_before_its_extend() {
        // A keeper killed after its commit; the restart reads the lists while
        // the kernel has listed a new record and not yet extended PCR 10 with
        // it, so both readings of PCR 10 lack it.
        for flavour in FLAVOURS {
            let dir = tempfile::tempdir().unwrap();
            let kernel = FakeKernel::new(true);
            kernel.add_measurements(5);
            kernel.crash_at(Some((Step::Durable, 1)));
            export_once(&kernel, dir.path(), flavour).unwrap_err();
            kernel.crash_at(None);
            kernel.list_before_extend(measurement(100));
            export_once(&kernel, dir.path(), flavour).unwrap();
            kernel.extend_listed();
            assert_nothing_lost_or_doubled(&kernel, dir.path(), &format!("{flavour:?}"));
        }
    }

    #[test]
    fn record_extended_between_the_banks_of_a_reading() {
        // A record added between the TPM's sha1 and sha256 readings of PCR 10,
        // after a keeper was killed before and after its commit.
        for step in [Step::Read, Step::Durable] {
            for flavour in FLAVOURS {
                let context = format!("{flavour:?} killed {step}");
                let dir = tempfile::tempdir().unwrap();
                let kernel = FakeKernel::new(true);
                kernel.add_measurements(5);
                kernel.crash_at(Some((step, 1)));
                export_once(&kernel, dir.path(), flavour).unwrap_err();
                kernel.crash_at(None);
                kernel.add_between_banks(vec![measurement(100)]);
                export_once(&kernel, dir.path(), flavour).expect(&context);
                assert_nothing_lost_or_doubled(&kernel, dir.path(), &context);
            }
        }
    }

    #[test]
    fn stage_left_staged_is_settled_first() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(3);
        kernel.crash_at(Some((Step::Stage, 1)));
        export_once(&kernel, dir.path(), Flavour::Stage).unwrap_err();
        assert_eq!(kernel.lists().staged.len(), 3);
        kernel.crash_at(None);
        kernel.add_measurements(2);
        let outcome = export_once(&kernel, dir.path(), Flavour::Stage).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                archived: 5,
                deleted: 5
            }
        );
        assert_nothing_lost_or_doubled(&kernel, dir.path(), "settled");
    }

    #[test]
    fn failed_archive_write_deletes_nothing() {
        for flavour in FLAVOURS {
            let dir = tempfile::tempdir().unwrap();
            let kernel = FakeKernel::new(true);
            kernel.add_measurements(5);
            let mut archive = Archive::open(dir.path(), Access::Append).unwrap();
            let sha256 = dir.path().join(bank_file(Bank::Sha256));
            fs::remove_file(&sha256).unwrap();
            fs::create_dir(&sha256).unwrap();
            let err = export(&kernel, &mut archive, &options(flavour)).unwrap_err();
            assert!(format!("{err:#}").contains("sha256.bin"), "{err:#}");
            assert_eq!(kernel.live(), kernel.every(), "{flavour:?}");
        }
    }

    #[test]
    fn ambiguous_overlap_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add_measurements(1);
        kernel.add(violation());
        export_once(&kernel, dir.path(), Flavour::Stage).unwrap();
        // A second, identical violation lands between the PCR reading and
        // the read of the lists: overlaps 0 and 1 both replay, until the
        // lists are read again.
        kernel.add_on_next_read(vec![violation()]);
        let outcome = export_once(&kernel, dir.path(), Flavour::Stage).unwrap();
        assert_eq!(outcome.archived, 1);
        assert_nothing_lost_or_doubled(&kernel, dir.path(), "ambiguous");
        assert_eq!(archived(dir.path()).len(), 3);
    }

    #[test]
    fn archive_of_another_boot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = FakeKernel::new(true);
        earlier.add_measurements(3);
        export_once(&earlier, dir.path(), Flavour::Stage).unwrap();
        let kernel = FakeKernel::new(true);
        kernel.add(violation());
        let err = export_once(&kernel, dir.path(), Flavour::Stage).unwrap_err();
        assert!(err.to_string().contains("nothing deleted"), "{err}");
        assert_eq!(kernel.live().len(), 1);
    }

    #[test]
    fn without_tpm_the_largest_overlap_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(false);
        kernel.add_measurements(4);
        kernel.crash_at(Some((Step::Durable, 1)));
        export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 1 }).unwrap_err();
        kernel.crash_at(None);
        export_once(&kernel, dir.path(), Flavour::DeleteN { keep: 1 }).unwrap();
        assert_nothing_lost_or_doubled(&kernel, dir.path(), "no TPM");
    }
}
