//! PCR 10 replay and TPM readings.
//!
//! Replaying a list extends, in each bank B and for every record in PCR 10,
//! `pcr = H_B(pcr || digest_B)` from an all-zero PCR, where a violation's
//! all-zero digest is replaced by all-ones (as the kernel, evmctl and Keylime
//! do).

use crate::record::{hex, Bank, Record};

/// The PCR the IMA measurement list is extended into.
pub const IMA_PCR: u32 = 10;

/// PCR 10 per bank as replayed from records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    values: [Vec<u8>; 2],
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            values: Bank::ALL.map(|bank| vec![0; bank.digest_len()]),
        }
    }
}

impl Replay {
    /// Extends both banks with `record` if it belongs to PCR 10.
    pub fn extend(&mut self, record: &Record) {
        if record.pcr != IMA_PCR {
            return;
        }
        for bank in Bank::ALL {
            let ones;
            let digest = if record.is_violation(bank) {
                ones = vec![0xff; bank.digest_len()];
                &ones
            } else {
                record.digest(bank)
            };
            let value = &mut self.values[bank.index()];
            *value = bank.hash(&[value, digest]);
        }
    }

    /// Extends with every record of `records` in order.
    pub fn extend_all<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        records.into_iter().for_each(|record| self.extend(record));
    }

    /// The replayed value in `bank`.
    pub fn value(&self, bank: Bank) -> &[u8] {
        &self.values[bank.index()]
    }
}

/// PCR 10 as the TPM reports it, for the banks it exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcr10 {
    values: [Option<Vec<u8>>; 2],
}

impl Pcr10 {
    /// A reading; `None` for a bank the TPM does not expose. `None` as a whole
    /// if it exposes neither.
    pub fn new(sha1: Option<Vec<u8>>, sha256: Option<Vec<u8>>) -> Option<Pcr10> {
        (sha1.is_some() || sha256.is_some()).then_some(Pcr10 {
            values: [sha1, sha256],
        })
    }

    /// The TPM's value in `bank`, if it exposes that bank.
    pub fn value(&self, bank: Bank) -> Option<&[u8]> {
        self.values[bank.index()].as_deref()
    }

    /// Whether `replay` equals this reading in `bank` (false if not exposed).
    pub fn matches_bank(&self, replay: &Replay, bank: Bank) -> bool {
        self.value(bank) == Some(replay.value(bank))
    }

    /// Whether `replay` equals this reading in every bank the TPM exposes.
    pub fn matches(&self, replay: &Replay) -> bool {
        Bank::ALL
            .iter()
            .all(|&bank| self.value(bank).is_none() || self.matches_bank(replay, bank))
    }

    /// `sha1:<hex> sha256:<hex>` for messages.
    pub fn describe(&self) -> String {
        Bank::ALL
            .iter()
            .filter_map(|&bank| Some(format!("{bank}:{}", hex(self.value(bank)?))))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// PCR 10 read just before a snapshot of the lists, and whether a second
/// reading just after the snapshot gave the same value.
///
/// Each bank is read by a TPM command of its own, so an extend can fall
/// between the two: each bank's value holds the records extended when it
/// was read. Quiet means no extend completed from the first reading to the
/// last, so both banks hold the same records. The kernel lists a record just
/// before it extends PCR 10 with it, both under one lock, so a snapshot can
/// end with one record whose extend is still under way: the reading then
/// holds every record of a quiet snapshot, or every record but its last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrEvidence {
    /// The reading taken before the lists were read.
    pub before: Pcr10,
    /// The reading after the lists were read was the same.
    pub quiet: bool,
}

/// Where a replay of `records`, continued from `start`, meets `evidence`.
///
/// Returns the number of records after which the replay has met the reading
/// in every bank, each bank at the first point it equals its value; with
/// quiet evidence only the end counts, or the record before it (the last
/// record's extend under way), in both banks at once.
pub fn meets(start: &Replay, records: &[Record], evidence: &PcrEvidence) -> Option<usize> {
    let mut replay = start.clone();
    if let (true, Some((last, before_last))) = (evidence.quiet, records.split_last()) {
        replay.extend_all(before_last);
        if evidence.before.matches(&replay) {
            return Some(before_last.len());
        }
        replay.extend(last);
        return evidence.before.matches(&replay).then_some(records.len());
    }
    let met_at = |replay: &Replay, point| {
        Bank::ALL.map(|bank| {
            (evidence.before.value(bank).is_none() || evidence.before.matches_bank(replay, bank))
                .then_some(point)
        })
    };
    let mut met = met_at(&replay, 0);
    for (i, record) in records.iter().enumerate() {
        if met.iter().all(Option::is_some) {
            break;
        }
        replay.extend(record);
        for (first, now) in met.iter_mut().zip(met_at(&replay, i + 1)) {
            *first = first.or(now);
        }
    }
    met.into_iter()
        .try_fold(0, |latest, point| Some(latest.max(point?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{measurement, pcr_after, violation};

    #[test]
    fn violation_extends_all_ones() {
        let mut replay = Replay::default();
        replay.extend(&violation());
        let zeros = [0u8; 32];
        let ones = [0xffu8; 32];
        assert_eq!(
            replay.value(Bank::Sha256),
            Bank::Sha256.hash(&[&zeros, &ones])
        );
        assert_eq!(
            replay.value(Bank::Sha1),
            Bank::Sha1.hash(&[&zeros[..20], &ones[..20]])
        );
    }

    #[test]
    fn other_pcrs_are_skipped() {
        let mut other = measurement(1);
        other.pcr = 11;
        let mut replay = Replay::default();
        replay.extend(&other);
        assert_eq!(replay, Replay::default());
    }

    #[test]
    fn meets_finds_the_prefix_or_insists_on_the_end_when_quiet() {
        let records = [measurement(1), measurement(2), measurement(3)];
        let mut evidence = PcrEvidence {
            before: pcr_after(&records[..1]),
            quiet: false,
        };
        assert_eq!(meets(&Replay::default(), &records, &evidence), Some(1));
        evidence.quiet = true;
        assert_eq!(meets(&Replay::default(), &records, &evidence), None);
        assert_eq!(meets(&Replay::default(), &records[..1], &evidence), Some(1));
        // The last record listed, its extend under way.
        assert_eq!(meets(&Replay::default(), &records[..2], &evidence), Some(1));
        assert_eq!(meets(&Replay::default(), &[], &evidence), None);
        evidence.before = pcr_after(&[]);
        assert_eq!(meets(&Replay::default(), &[], &evidence), Some(0));
    }

    #[test]
    fn each_bank_meets_where_it_was_read() {
        // sha1 read after the first record, sha256 after the second: an
        // extend fell between the two readings.
        let records = [measurement(1), measurement(2), measurement(3)];
        let (first, second) = (pcr_after(&records[..1]), pcr_after(&records[..2]));
        let split = Pcr10::new(
            first.value(Bank::Sha1).map(<[u8]>::to_vec),
            second.value(Bank::Sha256).map(<[u8]>::to_vec),
        )
        .unwrap();
        let mut evidence = PcrEvidence {
            before: split,
            quiet: false,
        };
        assert_eq!(meets(&Replay::default(), &records, &evidence), Some(2));
        assert_eq!(meets(&Replay::default(), &records[1..], &evidence), None);
        evidence.before = Pcr10::new(None, second.value(Bank::Sha256).map(<[u8]>::to_vec)).unwrap();
        assert_eq!(meets(&Replay::default(), &records, &evidence), Some(2));
    }

    #[test]
    fn missing_bank_is_ignored_but_one_is_needed() {
        let records = [measurement(1)];
        let full = pcr_after(&records);
        let sha256_only = Pcr10::new(None, full.value(Bank::Sha256).map(<[u8]>::to_vec)).unwrap();
        let mut replay = Replay::default();
        replay.extend_all(&records);
        assert!(sha256_only.matches(&replay));
        assert!(!sha256_only.matches_bank(&replay, Bank::Sha1));
        assert_eq!(Pcr10::new(None, None), None);
    }
}
