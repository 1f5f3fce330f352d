//! How much of the kernel's live list (staged ++ current) the archive already
//! holds.
//!
//! A keeper killed after its append and before its delete leaves records both
//! in the archive and in the kernel. The overlap `k` is the number of leading
//! live records that the archive holds as its last `k` records; the full log
//! is `archive ++ live[k..]`.
//!
//! Every `k` whose live head equals the archive's tail is a candidate (0
//! always is). Identical records can repeat at the boundary (violations are
//! byte-identical; with `ima_flush_htable` recurring events are recorded
//! again), so PCR 10 decides: a candidate is verified if replaying
//! `archive ++ live[k..]` meets the reading taken just before the lists were
//! read — in each bank at some point of the sequence, since records added
//! after the reading sit at its end (and the banks are read one after the
//! other), or at its very end if a second reading after the lists showed
//! nothing was extended meanwhile (or one record before it: the kernel lists
//! a record just before it extends PCR 10 with it, so the last one's extend
//! may have been under way). Without a TPM the largest candidate is taken,
//! unverified.

use anyhow::Result;

use crate::archive::Archive;
use crate::kernel::Snapshot;
use crate::record::Record;
use crate::replay::{meets, PcrEvidence, Replay};

/// How the overlap was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly one candidate replays to PCR 10.
    Verified,
    /// No TPM: the largest candidate, not checked.
    Unverified,
    /// Several candidates replay to PCR 10 (records identical at the boundary,
    /// all added after the reading); the largest was taken. A later reading
    /// tells them apart.
    Ambiguous(Vec<usize>),
    /// No candidate replays to PCR 10: the archive is not this boot's, or
    /// records were lost or altered. The largest candidate was taken.
    Unreplayable(Vec<usize>),
}

/// The overlap between the archive's tail and the live list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Number of leading live records that the archive already holds.
    pub k: usize,
    /// How `k` was chosen.
    pub verdict: Verdict,
}

impl Overlap {
    /// One line about a choice that was not verified, `None` if it was.
    pub fn caveat(&self) -> Option<String> {
        match &self.verdict {
            Verdict::Verified => None,
            Verdict::Unverified => Some(format!(
                "no TPM: took overlap {} (the largest candidate) without checking it against PCR 10",
                self.k
            )),
            Verdict::Ambiguous(candidates) => Some(format!(
                "overlaps {candidates:?} all replay to PCR 10 (identical records at the archive's end); took {}",
                self.k
            )),
            Verdict::Unreplayable(candidates) => Some(format!(
                "archive ++ live replays to PCR 10 for none of the overlaps {candidates:?} \
                 (an archive of another boot, or records lost or altered); took {}",
                self.k
            )),
        }
    }
}

/// The overlap between `archive` and the live list of `snapshot`.
pub fn reconcile(archive: &Archive, snapshot: &Snapshot) -> Result<Overlap> {
    let live = snapshot.lists.live();
    let tail = archive.tail(live.len())?;
    Ok(overlap(
        &tail,
        archive.replay(),
        &live,
        snapshot.pcr.as_ref(),
    ))
}

/// The overlap of `live` with an archive ending in `tail` whose records
/// replay to `after_archive`, judged by `pcr` (see the module docs).
pub fn overlap(
    tail: &[Record],
    after_archive: &Replay,
    live: &[Record],
    pcr: Option<&PcrEvidence>,
) -> Overlap {
    let candidates: Vec<usize> = (0..=tail.len().min(live.len()))
        .filter(|&k| tail[tail.len() - k..] == live[..k])
        .collect();
    let largest = |ks: &[usize]| ks.last().copied().unwrap_or(0);
    let Some(evidence) = pcr else {
        return Overlap {
            k: largest(&candidates),
            verdict: Verdict::Unverified,
        };
    };
    let verified: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&k| meets(after_archive, &live[k..], evidence).is_some())
        .collect();
    match verified[..] {
        [k] => Overlap {
            k,
            verdict: Verdict::Verified,
        },
        [] => Overlap {
            k: largest(&candidates),
            verdict: Verdict::Unreplayable(candidates),
        },
        _ => Overlap {
            k: largest(&verified),
            verdict: Verdict::Ambiguous(verified),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{measurement, pcr_after, violation};

    /// The overlap of `live` with `archive`, with PCR 10 read after the first
    /// `extended` records of the true sequence `truth`.
    fn decide(
        archive: &[Record],
        live: &[Record],
        truth: &[Record],
        extended: usize,
        quiet: bool,
    ) -> Overlap {
        let mut after_archive = Replay::default();
        after_archive.extend_all(archive);
        let evidence = PcrEvidence {
            before: pcr_after(&truth[..extended]),
            quiet,
        };
        overlap(archive, &after_archive, live, Some(&evidence))
    }

    fn records(ns: &[u32]) -> Vec<Record> {
        ns.iter().map(|&n| measurement(n)).collect()
    }

    #[test]
    fn crash_after_append_before_delete() {
        let archive = records(&[1, 2, 3, 4, 5]);
        let live = records(&[3, 4, 5, 6]);
        let truth = records(&[1, 2, 3, 4, 5, 6]);
        for (extended, quiet) in [(6, true), (6, false)] {
            let decided = decide(&archive, &live, &truth, extended, quiet);
            assert_eq!((decided.k, decided.verdict), (3, Verdict::Verified));
        }
    }

    #[test]
    fn crash_after_append_with_nothing_new_is_told_apart_when_quiet() {
        let archive = records(&[1, 2, 3]);
        let live = records(&[2, 3]);
        let decided = decide(&archive, &live, &archive, 3, true);
        assert_eq!((decided.k, decided.verdict), (2, Verdict::Verified));
        // Not quiet: the reading cannot tell "nothing new" from "2, 3 again".
        let decided = decide(&archive, &live, &archive, 3, false);
        assert_eq!(decided.k, 2);
        assert_eq!(decided.verdict, Verdict::Ambiguous(vec![0, 2]));
    }

    #[test]
    fn crash_after_append_last_record_not_yet_extended() {
        let archive = records(&[1, 2, 3, 4, 5]);
        let live = records(&[3, 4, 5, 6]);
        let truth = records(&[1, 2, 3, 4, 5, 6]);
        let decided = decide(&archive, &live, &truth, 5, true);
        assert_eq!((decided.k, decided.verdict), (3, Verdict::Verified));
    }

    #[test]
    fn crash_before_append() {
        let archive = records(&[1, 2]);
        let live = records(&[3, 4]);
        let truth = records(&[1, 2, 3, 4]);
        let decided = decide(&archive, &live, &truth, 4, true);
        assert_eq!((decided.k, decided.verdict), (0, Verdict::Verified));
    }

    #[test]
    fn repeated_violation_at_the_boundary_is_a_new_record() {
        let archive = vec![measurement(1), violation()];
        let live = vec![violation(), measurement(2)];
        let truth = [archive.clone(), live.clone()].concat();
        for (extended, quiet) in [(4, true), (3, false)] {
            let decided = decide(&archive, &live, &truth, extended, quiet);
            assert_eq!((decided.k, decided.verdict), (0, Verdict::Verified));
        }
    }

    #[test]
    fn repeated_violation_at_the_boundary_is_the_archived_one() {
        let archive = vec![measurement(1), violation()];
        let live = vec![violation(), measurement(2)];
        let truth = vec![measurement(1), violation(), measurement(2)];
        for (extended, quiet) in [(3, true), (3, false)] {
            let decided = decide(&archive, &live, &truth, extended, quiet);
            assert_eq!((decided.k, decided.verdict), (1, Verdict::Verified));
        }
    }

    #[test]
    fn identical_records_added_after_the_reading_are_ambiguous() {
        let archive = vec![measurement(1), violation()];
        let live = vec![violation()];
        let truth = [archive.clone(), live.clone()].concat();
        let decided = decide(&archive, &live, &truth, 2, false);
        assert_eq!(decided.verdict, Verdict::Ambiguous(vec![0, 1]));
        assert!(decided.caveat().unwrap().contains("took 1"));
    }

    #[test]
    fn staged_not_deleted_archive_holds_them() {
        let archive = records(&[1, 2, 3, 4]);
        let live = records(&[3, 4, 5]); // staged 3, 4; current 5
        let truth = records(&[1, 2, 3, 4, 5]);
        let decided = decide(&archive, &live, &truth, 5, true);
        assert_eq!((decided.k, decided.verdict), (2, Verdict::Verified));
    }

    #[test]
    fn staged_not_deleted_archive_lacks_them() {
        let archive = records(&[1, 2]);
        let live = records(&[3, 4, 5]);
        let truth = records(&[1, 2, 3, 4, 5]);
        let decided = decide(&archive, &live, &truth, 5, true);
        assert_eq!((decided.k, decided.verdict), (0, Verdict::Verified));
    }

    #[test]
    fn no_tpm_takes_the_largest_candidate_unverified() {
        let archive = vec![violation(), violation()];
        let live = vec![violation(), violation(), measurement(1)];
        let decided = overlap(&archive, &Replay::default(), &live, None);
        assert_eq!((decided.k, &decided.verdict), (2, &Verdict::Unverified));
        assert!(decided.caveat().unwrap().starts_with("no TPM"));
    }

    #[test]
    fn archive_of_another_boot_does_not_replay() {
        let archive = records(&[100, 101]);
        let live = records(&[1, 2]);
        let decided = decide(&archive, &live, &live, 2, true);
        assert_eq!(decided.verdict, Verdict::Unreplayable(vec![0]));
    }
}
