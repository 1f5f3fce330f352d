//! Measurement records in IMA's binary list format.
//!
//! One record of `binary_runtime_measurements_<bank>` is, in the machine's byte
//! order (little-endian here, and everywhere with `ima_canonical_fmt`):
//! `u32 pcr`, the template digest (20 bytes for sha1, 32 for sha256),
//! `u32 name_len`, the template name, `u32 data_len`, the template data.
//! The old "ima" template has no `data_len` field and is not supported.
//!
//! The sha1 and sha256 lists hold the same records in the same order; only the
//! template digest differs. [`Entry`] is one record of one bank's list,
//! [`Record`] a record with both digests, made by [`zip_banks`].

use std::fmt;
use std::num::TryFromIntError;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A TPM bank whose measurement list the keeper handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bank {
    /// SHA-1, 20-byte template digests.
    Sha1,
    /// SHA-256, 32-byte template digests.
    Sha256,
}

impl Bank {
    /// Both banks, in the order used for per-bank arrays.
    pub const ALL: [Bank; 2] = [Bank::Sha1, Bank::Sha256];

    /// The algorithm's name as the kernel spells it in file names.
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
        }
    }

    /// Position of this bank in per-bank arrays.
    pub fn index(self) -> usize {
        match self {
            Bank::Sha1 => 0,
            Bank::Sha256 => 1,
        }
    }

    /// Size of this bank's template digests and PCR values.
    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
        }
    }

    /// Hash of the concatenation of `parts` with this bank's algorithm.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Bank::Sha1 => {
                let mut hasher = Sha1::new();
                parts.iter().for_each(|part| hasher.update(part));
                hasher.finalize().to_vec()
            }
            Bank::Sha256 => {
                let mut hasher = Sha256::new();
                parts.iter().for_each(|part| hasher.update(part));
                hasher.finalize().to_vec()
            }
        }
    }
}

impl fmt::Display for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One record of one bank's binary list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// PCR the record was extended into.
    pub pcr: u32,
    /// Template digest in this bank (all zero for a violation).
    pub digest: Vec<u8>,
    /// Template name, e.g. `ima-ng`.
    pub template_name: String,
    /// Template data, exactly as the list carries it.
    pub template_data: Vec<u8>,
}

impl Entry {
    /// Number of bytes this entry takes in its list.
    pub fn encoded_len(&self) -> usize {
        4 + self.digest.len() + 4 + self.template_name.len() + 4 + self.template_data.len()
    }
}

/// Where a record starts in a list: its byte offset and its index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Byte offset of the record's first byte.
    pub offset: u64,
    /// Number of records before it.
    pub index: usize,
}

/// A list that does not parse: what is wrong and where.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Start of the record that does not parse.
    pub record: Position,
    /// Offset of the field that is wrong.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} (starting at byte {}): byte {}: {}",
            self.record.index, self.record.offset, self.offset, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// Longest template name accepted; the kernel's are at most 15 bytes.
const MAX_TEMPLATE_NAME: u32 = 255;

/// Parses a whole binary list whose first record sits at `first`.
///
/// Offsets in errors count from `first.offset`, so a caller parsing a slice
/// of a file passes the slice's position in that file.
pub fn parse_list(bytes: &[u8], bank: Bank, first: Position) -> Result<Vec<Entry>, ParseError> {
    let mut cursor = Cursor {
        bytes,
        at: 0,
        base: first.offset,
    };
    let mut entries = Vec::new();
    while cursor.at < bytes.len() {
        let record = Position {
            offset: cursor.offset(),
            index: first.index + entries.len(),
        };
        let entry = parse_entry(&mut cursor, bank).map_err(|(offset, reason)| ParseError {
            record,
            offset,
            reason,
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads the fields of one record; errors carry the failing field's offset.
fn parse_entry(cursor: &mut Cursor<'_>, bank: Bank) -> Result<Entry, (u64, String)> {
    let pcr = cursor.u32("PCR index")?;
    let digest = cursor.take(bank.digest_len(), "template digest")?.to_vec();
    let name_at = cursor.offset();
    let name_len = cursor.u32("template name length")?;
    if name_len == 0 || name_len > MAX_TEMPLATE_NAME {
        return Err((
            name_at,
            format!("template name length {name_len} is outside 1..={MAX_TEMPLATE_NAME}"),
        ));
    }
    let name_bytes = cursor.take(name_len as usize, "template name")?;
    let template_name = String::from_utf8(name_bytes.to_vec())
        .map_err(|_| (name_at + 4, "template name is not UTF-8".to_string()))?;
    if template_name == "ima" {
        return Err((
            name_at + 4,
            "template \"ima\" has no data length field and is not supported".to_string(),
        ));
    }
    let data_len = cursor.u32("template data length")?;
    let template_data = cursor.take(data_len as usize, "template data")?.to_vec();
    Ok(Entry {
        pcr,
        digest,
        template_name,
        template_data,
    })
}

/// Reads fields from a byte slice, tracking the offset for errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.base + self.at as u64
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8], (u64, String)> {
        let left = self.bytes.len() - self.at;
        if len > left {
            return Err((
                self.offset(),
                format!("{field} needs {len} bytes, only {left} left (truncated record?)"),
            ));
        }
        let taken = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(taken)
    }

    fn u32(&mut self, field: &str) -> Result<u32, (u64, String)> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// A record with its template digest in both banks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// PCR the record was extended into.
    pub pcr: u32,
    /// Template name, e.g. `ima-ng`.
    pub template_name: String,
    /// Template data, exactly as the lists carry it.
    pub template_data: Vec<u8>,
    /// Template digest per bank, indexed by [`Bank::index`].
    pub digests: [Vec<u8>; 2],
}

impl Record {
    /// This record's template digest in `bank`.
    pub fn digest(&self, bank: Bank) -> &[u8] {
        &self.digests[bank.index()]
    }

    /// Whether this is a violation record (all-zero template digest).
    pub fn is_violation(&self, bank: Bank) -> bool {
        self.digest(bank).iter().all(|&byte| byte == 0)
    }

    /// Whether the template digest in `bank` is the hash of the template data,
    /// as IMA computes it for every template but "ima" (violations excepted).
    pub fn digest_matches_data(&self, bank: Bank) -> bool {
        self.is_violation(bank) || bank.hash(&[&self.template_data]) == self.digest(bank)
    }

    /// Appends this record in `bank`'s binary list format; fails only for a
    /// field too long for the format's u32 length.
    pub fn encode(&self, bank: Bank, out: &mut Vec<u8>) -> Result<(), TryFromIntError> {
        let name_len = u32::try_from(self.template_name.len())?;
        let data_len = u32::try_from(self.template_data.len())?;
        out.extend_from_slice(&self.pcr.to_le_bytes());
        out.extend_from_slice(self.digest(bank));
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(self.template_name.as_bytes());
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(&self.template_data);
        Ok(())
    }
}

/// The sha1 and sha256 lists disagree on a record.
#[derive(Debug, PartialEq, Eq)]
pub struct BankMismatch {
    /// Index of the first record that differs.
    pub index: usize,
    /// Which field differs.
    pub field: &'static str,
}

impl fmt::Display for BankMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {}: the sha1 and sha256 lists differ in the {}",
            self.index, self.field
        )
    }
}

impl std::error::Error for BankMismatch {}

/// Pairs the sha1 and sha256 lists record by record into [`Record`]s.
///
/// Only the common prefix is returned: the two lists are read one after the
/// other, so the later read may hold records added in between. `first_index`
/// is the index of the first entry, for the error.
pub fn zip_banks(
    sha1: Vec<Entry>,
    sha256: Vec<Entry>,
    first_index: usize,
) -> Result<Vec<Record>, BankMismatch> {
    sha1.into_iter()
        .zip(sha256)
        .enumerate()
        .map(|(i, (one, two))| {
            let field = if one.pcr != two.pcr {
                Some("PCR index")
            } else if one.template_name != two.template_name {
                Some("template name")
            } else if one.template_data != two.template_data {
                Some("template data")
            } else {
                None
            };
            match field {
                Some(field) => Err(BankMismatch {
                    index: first_index + i,
                    field,
                }),
                None => Ok(Record {
                    pcr: one.pcr,
                    template_name: one.template_name,
                    template_data: one.template_data,
                    digests: [one.digest, two.digest],
                }),
            }
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes of a hex string (either case); `None` if it is not hex.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{encode_list, encoded_len, measurement, violation};

    fn entries(records: &[Record], bank: Bank) -> Vec<Entry> {
        parse_list(&encode_list(records, bank), bank, Position::default()).unwrap()
    }

    #[test]
    fn round_trip_both_banks() {
        let records = vec![measurement(1), violation(), measurement(2)];
        for bank in Bank::ALL {
            let bytes = encode_list(&records, bank);
            let parsed = parse_list(&bytes, bank, Position::default()).unwrap();
            assert_eq!(parsed.len(), 3);
            assert_eq!(parsed[0].template_name, "ima-ng");
            assert_eq!(parsed[1].digest, vec![0; bank.digest_len()]);
        }
        let zipped = zip_banks(
            entries(&records, Bank::Sha1),
            entries(&records, Bank::Sha256),
            0,
        )
        .unwrap();
        assert_eq!(zipped, records);
        assert!(zipped[0].digest_matches_data(Bank::Sha256));
        assert!(zipped[1].is_violation(Bank::Sha1));
    }

    #[test]
    fn truncated_record_names_its_offset() {
        let records = vec![measurement(1), measurement(2)];
        let bytes = encode_list(&records, Bank::Sha1);
        let second = encoded_len(&records[0], Bank::Sha1) as u64;
        let cut = &bytes[..bytes.len() - 3];
        let err = parse_list(cut, Bank::Sha1, Position::default()).unwrap_err();
        assert_eq!(
            err.record,
            Position {
                offset: second,
                index: 1
            }
        );
        assert!(err.reason.contains("template data needs"), "{err}");
        // The offset of the data field: pcr, digest, name length, name, data length.
        assert_eq!(err.offset, second + 4 + 20 + 4 + 6 + 4);
    }

    #[test]
    fn bad_lengths_name_their_offset() {
        let mut bytes = encode_list(&[measurement(1)], Bank::Sha256);
        bytes[36..40].copy_from_slice(&0u32.to_le_bytes());
        let err = parse_list(&bytes, Bank::Sha256, Position::default()).unwrap_err();
        assert_eq!(err.offset, 36);
        assert!(err.reason.contains("template name length 0"), "{err}");

        let mut bytes = encode_list(&[measurement(1)], Bank::Sha256);
        bytes[46..50].copy_from_slice(&u32::MAX.to_le_bytes());
        let first = Position {
            offset: 1000,
            index: 7,
        };
        let err = parse_list(&bytes, Bank::Sha256, first).unwrap_err();
        assert_eq!(err.record, first);
        assert_eq!(err.offset, 1050);
        let left = bytes.len() - 50;
        assert_eq!(
            err.to_string(),
            format!(
                "record 7 (starting at byte 1000): byte 1050: template data needs 4294967295 \
                 bytes, only {left} left (truncated record?)"
            )
        );
    }

    #[test]
    fn ima_template_is_refused() {
        let mut record = measurement(1);
        record.template_name = "ima".to_string();
        let err = parse_list(
            &encode_list(&[record], Bank::Sha1),
            Bank::Sha1,
            Position::default(),
        )
        .unwrap_err();
        assert!(err.reason.contains("not supported"), "{err}");
    }

    #[test]
    fn zip_reports_the_first_differing_record() {
        let mut other = vec![measurement(1), measurement(2)];
        other[1].template_data[10] ^= 1;
        let err = zip_banks(
            entries(&[measurement(1), measurement(2)], Bank::Sha1),
            entries(&other, Bank::Sha256),
            40,
        )
        .unwrap_err();
        assert_eq!(
            err,
            BankMismatch {
                index: 41,
                field: "template data"
            }
        );
    }

    #[test]
    fn zip_keeps_the_common_prefix() {
        let records = vec![measurement(1), measurement(2), measurement(3)];
        let zipped = zip_banks(
            entries(&records[..2], Bank::Sha1),
            entries(&records, Bank::Sha256),
            0,
        )
        .unwrap();
        assert_eq!(zipped, records[..2]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(parse_hex("00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(parse_hex("0g"), None);
        assert_eq!(parse_hex("abc"), None);
    }
}
