//! The `ima-keeper` binary against a fake securityfs and TPM sysfs made of
//! plain files: usage errors, `cat`, `verify` and `status` of archive ++ live,
//! the refusals that must come before any delete, and exports killed where
//! `IMA_KEEPER_PAUSE_AT` paused them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{list, records, text, Machine};
use ima_keeper::pause::PAUSE_AT;
use ima_keeper::record::Bank;

#[test]
fn unknown_options_exit_2_with_usage() {
    let machine = Machine::new(&[], &[]);
    for args in [
        &["--frobnicate"][..],
        &["cat", "--frobnicate"],
        &["export", "--stage", "--keep", "3"],
    ] {
        let output = machine.keeper(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            text(&output.stderr).contains("Usage"),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn cat_verify_status_of_archive_and_live() {
    let all = records(1..7);
    // A keeper was killed after archiving 1..4 and before deleting them.
    let machine = Machine::new(&all[2..], &all);
    machine.archive_records(&all[..4]);

    let output = machine.keeper(&["cat", "--binary", "--bank", "sha256"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(output.stdout, list(&all, Bank::Sha256));

    let output = machine.keeper(&["cat", "--ascii", "--bank", "sha1"]);
    let ascii = text(&output.stdout);
    assert_eq!(ascii.lines().count(), 6, "{ascii}");
    assert!(ascii.lines().all(|line| line.starts_with("10 ")), "{ascii}");
    assert!(ascii.ends_with(" /usr/lib/file6\n"), "{ascii}");

    let output = machine.keeper(&["verify"]);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(text(&output.stdout).ends_with("OK\n"));

    let output = machine.keeper(&["status"]);
    let status = text(&output.stdout);
    assert!(status.contains("records archived: 4\n"), "{status}");
    assert!(
        status.contains("records live: 4 (0 staged, 4 current), 2 of them already archived"),
        "{status}"
    );
    assert!(status.contains("records since boot: 6\n"), "{status}");
}

#[test]
fn verify_reports_a_mismatch_and_needs_a_tpm() {
    let all = records(1..4);
    let machine = Machine::new(
        &all,
        &records(1..3)
            .into_iter()
            .chain(records(9..10))
            .collect::<Vec<_>>(),
    );
    let output = machine.keeper(&["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let report = text(&output.stdout);
    assert!(
        report.contains("sha1: MISMATCH: no prefix of the 3 records"),
        "{report}"
    );
    assert!(report.ends_with("FAILED\n"), "{report}");

    fs::remove_dir_all(&machine.tpm).unwrap();
    let output = machine.keeper(&["verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot verify without PCR 10: no TPM at"));
}

/// Plain files stand in for securityfs, so an export must stop before it
/// writes a command: these refusals come first.
#[test]
fn export_refuses_a_kernel_without_export_delete() {
    let all = records(1..3);
    let machine = Machine::new(&all, &all);
    for bank in Bank::ALL {
        let staged = format!("binary_runtime_measurements_{}_staged", bank.name());
        fs::remove_file(machine.securityfs.join(staged)).unwrap();
    }
    let output = machine.keeper(&["export", "--stage"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("CONFIG_IMA_STAGING=n"),
        "{}",
        text(&output.stderr)
    );
    // Reading still works on such a kernel; status says it cannot export.
    let output = machine.keeper(&["cat", "--binary"]);
    assert_eq!(output.stdout, list(&all, Bank::Sha1));
    let output = machine.keeper(&["status"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "_staged is missing: kernel without export/delete (CONFIG_IMA_STAGING=n); nothing \
             can be exported\n"
        ),
        "{}",
        text(&output.stdout)
    );

    let machine = Machine::new(&all, &all);
    for bank in Bank::ALL {
        let original = machine
            .securityfs
            .join(format!("binary_runtime_measurements_{}", bank.name()));
        fs::set_permissions(original, fs::Permissions::from_mode(0o440)).unwrap();
    }
    let output = machine.keeper(&["export", "--keep", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("is read-only (mode 440): kernel without export/delete"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn export_refuses_a_bad_archive_directory() {
    let all = records(1..3);
    let machine = Machine::new(&all, &all);
    fs::remove_dir(&machine.archive).unwrap();
    let output = machine.keeper(&["export"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(&format!("archive directory {}", machine.archive.display())),
        "{}",
        text(&output.stderr)
    );

    fs::create_dir(&machine.archive).unwrap();
    machine.archive_records(&all);
    let sha1 = machine.archive.join("sha1.bin");
    let mut bytes = fs::read(&sha1).unwrap();
    bytes[30] ^= 1;
    fs::write(&sha1, bytes).unwrap();
    let output = machine.keeper(&["export"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("checksum mismatch in bytes [0, "),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        fs::read(machine.securityfs.join("binary_runtime_measurements_sha1")).unwrap(),
        list(&all, Bank::Sha1),
        "the kernel's list was left alone"
    );
}

#[test]
fn missing_securityfs_is_explained() {
    let machine = Machine::new(&[], &[]);
    fs::remove_dir_all(&machine.securityfs).unwrap();
    let output = machine.keeper(&["cat"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("is securityfs mounted and IMA enabled"),
        "{}",
        text(&output.stderr)
    );
}

/// A read-only mount of the archive directory is refused before the kernel's
/// lists are touched: the stage flavour writes no `A`.
#[test]
#[ignore = "needs root: mounts in a mount namespace of its own (unshare -m)"]
fn export_refuses_an_archive_on_a_read_only_mount() {
    let all = records(1..4);
    let machine = Machine::new(&all[1..], &all);
    machine.archive_records(&all[..1]);
    let keeper = machine.command(&["export", "--stage"]);
    let output = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#,
        ])
        .arg(&machine.archive)
        .arg(keeper.get_program())
        .args(keeper.get_args())
        .env_remove(PAUSE_AT)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!(
            "archive directory {} is on a read-only file system: refusing to append to it",
            machine.archive.display()
        )),
        "{}",
        text(&output.stderr)
    );
    for bank in Bank::ALL {
        let name = format!("binary_runtime_measurements_{}", bank.name());
        assert_eq!(
            fs::read(machine.securityfs.join(&name)).unwrap(),
            list(&all[1..], bank)
        );
        assert!(fs::read(machine.securityfs.join(format!("{name}_staged")))
            .unwrap()
            .is_empty());
    }
}

/// `IMA_KEEPER_PAUSE_AT` stops a delete-N export at each of its steps; killed
/// there, the next export says what it found and every record is archived
/// once. (The `N` that export writes lands in a plain file, after its reads.)
#[test]
fn killed_where_paused_the_next_export_reconciles() {
    let all = records(1..4);
    for (step, found) in [
        ("read", None),
        (
            "append",
            Some("dropped the uncommitted bytes of an interrupted append"),
        ),
        ("durable", Some("3 live records are archived already")),
    ] {
        let machine = Machine::new(&all, &all);
        let mut keeper = machine
            .command(&["export", "--keep", "0"])
            .env(PAUSE_AT, step)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(keeper.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line,
            format!("ima-keeper: paused at {step} (IMA_KEEPER_PAUSE_AT)\n")
        );
        assert!(keeper.try_wait().unwrap().is_none(), "{step}: not paused");
        keeper.kill().unwrap();
        keeper.wait().unwrap();
        let output = machine.keeper(&["export", "--keep", "0"]);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{step}: {stderr}");
        match found {
            Some(found) => assert!(stderr.contains(found), "{step}: {stderr}"),
            None => assert_eq!(stderr, "", "{step}"),
        }
        assert_eq!(machine.archived(), all, "{step}");
    }
}

/// A value that names no step fails the export before it archives anything;
/// a step the flavour never reaches (delete-N has no `A`) changes nothing.
#[test]
fn pause_at_no_step_or_one_not_reached() {
    let all = records(1..3);
    let machine = Machine::new(&all, &all);
    let output = machine
        .command(&["export"])
        .env(PAUSE_AT, "fsync")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("IMA_KEEPER_PAUSE_AT=fsync: not one of read, append, durable, stage"),
        "{}",
        text(&output.stderr)
    );
    assert!(machine.archived().is_empty());
    let output = machine
        .command(&["export"])
        .env(PAUSE_AT, "stage")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(machine.archived(), all);
}
