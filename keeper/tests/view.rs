//! `ima-keeper view` over FUSE on a fake machine: the files are archive ++
//! live, a file held open takes in new records, writes are refused, SIGTERM
//! unmounts.
//!
//! Mounting needs root and /dev/fuse, so the test is ignored by default:
//! `cargo test -- --ignored` runs it.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::{list, records, text, Machine};
use ima_keeper::record::Bank;

/// The view process; killed and its mount detached if the test fails.
struct Served {
    child: Child,
    mountpoint: PathBuf,
}

impl Served {
    /// Starts `ima-keeper view` on `machine` and waits until it is mounted.
    fn start(machine: &Machine, mountpoint: &Path) -> Served {
        let mut child = machine
            .command(&["view", mountpoint.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.starts_with("view of archive") {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("the view did not mount: {line}{stderr}");
        }
        Served {
            child,
            mountpoint: mountpoint.to_path_buf(),
        }
    }

    /// Sends SIGTERM and returns whether the view exited 0.
    fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        self.child.wait().unwrap().success()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if mounted(&self.mountpoint) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

fn mounted(mountpoint: &Path) -> bool {
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(1) == mountpoint.to_str())
}

#[test]
#[ignore = "mounts FUSE: needs root and /dev/fuse; run with --ignored"]
fn view_serves_archive_plus_live_over_fuse() {
    let all = records(1..11);
    // A keeper archived 1..=4 and deleted 1..=2 (killed before deleting the
    // rest): live holds 3..=6.
    let machine = Machine::new(&all[2..6], &all[..6]);
    machine.archive_records(&all[..4]);
    let mountpoint = tempfile::tempdir().unwrap();
    let served = Served::start(&machine, mountpoint.path());
    let path = |name: &str| mountpoint.path().join(name);

    for (name, bank) in [
        ("binary_runtime_measurements", Bank::Sha1),
        ("binary_runtime_measurements_sha1", Bank::Sha1),
        ("binary_runtime_measurements_sha256", Bank::Sha256),
    ] {
        assert_eq!(
            fs::read(path(name)).unwrap(),
            list(&all[..6], bank),
            "{name}"
        );
    }
    for name in [
        "ascii_runtime_measurements",
        "ascii_runtime_measurements_sha256",
    ] {
        let ascii = text(&fs::read(path(name)).unwrap());
        assert_eq!(ascii.lines().count(), 6, "{name}: {ascii}");
        assert!(ascii.ends_with(" /usr/lib/file6\n"), "{name}: {ascii}");
    }
    let mut names: Vec<String> = fs::read_dir(mountpoint.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(
        fs::metadata(path("ascii_runtime_measurements"))
            .unwrap()
            .len(),
        0
    );

    // A file held open, read to its end, then records are added and the
    // archived ones deleted: reading on gives exactly the new records.
    let mut held = File::open(path("binary_runtime_measurements")).unwrap();
    let mut first = Vec::new();
    held.read_to_end(&mut first).unwrap();
    assert_eq!(first, list(&all[..6], Bank::Sha1));
    machine.set_live(&all[4..9]);
    machine.set_pcr(&all[..9]);
    let mut more = Vec::new();
    held.read_to_end(&mut more).unwrap();
    assert_eq!(more, list(&all[6..9], Bank::Sha1));

    let refused = OpenOptions::new()
        .write(true)
        .open(path("binary_runtime_measurements"))
        .unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(30), "EROFS: {refused}");
    assert!(fs::read(path("runtime_measurements_count")).is_err());

    drop(held);
    assert!(served.stop(), "the view exits 0 on SIGTERM");
    assert!(!mounted(mountpoint.path()), "unmounted");
}
