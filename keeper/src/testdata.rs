//! Synthetic records for the unit tests, built the way IMA builds them: the
//! template data is the template's fields, each with a u32 length, and the
//! template digest in each bank is the hash of that data.

use crate::record::{Bank, Record};
use crate::replay::{Pcr10, Replay};

/// Template data of `fields`, each prefixed by its u32 length.
pub(crate) fn template_data(fields: &[&[u8]]) -> Vec<u8> {
    let mut data = Vec::new();
    for field in fields {
        data.extend_from_slice(&(field.len() as u32).to_le_bytes());
        data.extend_from_slice(field);
    }
    data
}

/// A `d-ng` field: `algo:` NUL, then the file digest.
pub(crate) fn digest_field(algo: &str, digest: &[u8]) -> Vec<u8> {
    let mut field = format!("{algo}:\0").into_bytes();
    field.extend_from_slice(digest);
    field
}

/// An `n-ng` field: the file name with its terminating NUL.
pub(crate) fn name_field(path: &str) -> Vec<u8> {
    format!("{path}\0").into_bytes()
}

/// A record of `template` with `data`, digests computed as IMA does.
pub(crate) fn record(template: &str, data: Vec<u8>) -> Record {
    Record {
        pcr: 10,
        template_name: template.to_string(),
        digests: Bank::ALL.map(|bank| bank.hash(&[&data])),
        template_data: data,
    }
}

/// The `n`-th distinct ima-ng measurement of a file.
pub(crate) fn measurement(n: u32) -> Record {
    let path = format!("/usr/bin/prog{n:04}");
    let file_digest = Bank::Sha256.hash(&[path.as_bytes()]);
    record(
        "ima-ng",
        template_data(&[&digest_field("sha256", &file_digest), &name_field(&path)]),
    )
}

/// A violation record: zero template digests; every one is byte-identical.
pub(crate) fn violation() -> Record {
    let data = template_data(&[&digest_field("sha256", &[0; 32]), &name_field("/tmp/log")]);
    Record {
        pcr: 10,
        template_name: "ima-ng".to_string(),
        template_data: data,
        digests: Bank::ALL.map(|bank| vec![0; bank.digest_len()]),
    }
}

/// `records` as `bank`'s binary list.
pub(crate) fn encode_list(records: &[Record], bank: Bank) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        record.encode(bank, &mut out).unwrap();
    }
    out
}

/// Bytes `record` takes in `bank`'s binary list.
pub(crate) fn encoded_len(record: &Record, bank: Bank) -> usize {
    encode_list(std::slice::from_ref(record), bank).len()
}

/// PCR 10 after `records`, in both banks, as a TPM would show it.
pub(crate) fn pcr_after(records: &[Record]) -> Pcr10 {
    let mut replay = Replay::default();
    replay.extend_all(records);
    Pcr10::new(
        Some(replay.value(Bank::Sha1).to_vec()),
        Some(replay.value(Bank::Sha256).to_vec()),
    )
    .unwrap()
}
