//! Helpers of the integration tests: records built as IMA builds them, and a
//! fake machine whose securityfs and TPM sysfs are plain files.

// Each test crate uses its own part of the helpers.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use ima_keeper::archive::{Access, Archive};
use ima_keeper::pause::PAUSE_AT;
use ima_keeper::record::{hex, Bank, Record};
use ima_keeper::replay::Replay;

/// The `n`-th distinct ima-ng record, digests computed as IMA does.
pub fn record(n: u32) -> Record {
    let path = format!("/usr/lib/file{n}\0");
    let mut d_ng = b"sha256:\0".to_vec();
    d_ng.extend(Bank::Sha256.hash(&[path.as_bytes()]));
    let mut data = Vec::new();
    for field in [&d_ng[..], path.as_bytes()] {
        data.extend((field.len() as u32).to_le_bytes());
        data.extend(field);
    }
    Record {
        pcr: 10,
        template_name: "ima-ng".to_string(),
        digests: Bank::ALL.map(|bank| bank.hash(&[&data])),
        template_data: data,
    }
}

/// `records` as `bank`'s binary list.
pub fn list(records: &[Record], bank: Bank) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        record.encode(bank, &mut out).unwrap();
    }
    out
}

/// A fake machine: securityfs and TPM directories and an archive directory.
pub struct Machine {
    _root: tempfile::TempDir,
    pub securityfs: PathBuf,
    pub tpm: PathBuf,
    pub archive: PathBuf,
}

impl Machine {
    /// `live` in the current lists, nothing staged, PCR 10 after `extended`.
    pub fn new(live: &[Record], extended: &[Record]) -> Machine {
        let root = tempfile::tempdir().unwrap();
        let machine = Machine {
            securityfs: root.path().join("ima"),
            tpm: root.path().join("tpm0"),
            archive: root.path().join("archive"),
            _root: root,
        };
        fs::create_dir(&machine.securityfs).unwrap();
        fs::create_dir(&machine.archive).unwrap();
        for bank in Bank::ALL {
            let name = format!("binary_runtime_measurements_{}", bank.name());
            fs::write(machine.securityfs.join(&name), list(live, bank)).unwrap();
            fs::write(machine.securityfs.join(format!("{name}_staged")), b"").unwrap();
        }
        machine.set_pcr(extended);
        machine
    }

    /// Sets PCR 10 in both banks to the replay of `extended`.
    pub fn set_pcr(&self, extended: &[Record]) {
        let mut replay = Replay::default();
        replay.extend_all(extended);
        for bank in Bank::ALL {
            let dir = self.tpm.join(format!("pcr-{}", bank.name()));
            fs::create_dir_all(&dir).unwrap();
            let value = hex(replay.value(bank)).to_uppercase();
            fs::write(dir.join("10"), format!("{value}\n")).unwrap();
        }
    }

    /// Runs `ima-keeper ARGS` on this machine and waits for it.
    pub fn keeper(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `ima-keeper ARGS` on this machine: a subcommand gets `--archive`,
    /// `--securityfs` and `--tpm-sysfs`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ima-keeper"));
        command.args(args).env_remove(PAUSE_AT);
        if args.first().is_some_and(|arg| !arg.starts_with('-')) {
            command
                .arg("--archive")
                .arg(&self.archive)
                .arg("--securityfs")
                .arg(&self.securityfs)
                .arg("--tpm-sysfs")
                .arg(&self.tpm);
        }
        command
    }

    /// Replaces the current lists with `live`.
    pub fn set_live(&self, live: &[Record]) {
        for bank in Bank::ALL {
            let name = format!("binary_runtime_measurements_{}", bank.name());
            fs::write(self.securityfs.join(&name), list(live, bank)).unwrap();
        }
    }

    /// The records the archive holds.
    pub fn archived(&self) -> Vec<Record> {
        let archive = Archive::open(&self.archive, Access::Read).unwrap();
        archive.tail(archive.len()).unwrap()
    }

    /// Appends `records` to the archive, as a keeper would.
    pub fn archive_records(&self, records: &[Record]) {
        let mut archive = Archive::open(&self.archive, Access::Append).unwrap();
        archive.write(records).unwrap().commit().unwrap();
    }
}

/// Output of a command as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The records `record(n)` for each `n` of `range`.
pub fn records(range: std::ops::Range<u32>) -> Vec<Record> {
    range.map(record).collect()
}
