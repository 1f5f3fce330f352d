//! `ima-keeper`: the command line. See the library's docs for the parts.
//!
//! Exit status: 0 success, 1 failure (including a failed `verify`), 2 usage.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use ima_keeper::archive::{bank_file, Access, Archive};
use ima_keeper::export::{export, Flavour, Options, Outcome};
use ima_keeper::full_log::{Format, FullLog};
use ima_keeper::notice;
use ima_keeper::record::Bank;
use ima_keeper::securityfs::{Retry, SecurityFs};
use ima_keeper::status;
use ima_keeper::view::mount::{mount, MountOptions};

/// Set by SIGTERM and SIGINT: `run` finishes its current step and exits.
static STOP: AtomicBool = AtomicBool::new(false);

/// How often `run` checks its thresholds.
const POLL: Duration = Duration::from_secs(5);
/// How often a sleeping `run` looks at [`STOP`].
const WAKE: Duration = Duration::from_millis(200);

/// Keeps the IMA measurement records the kernel exports and deletes, and
/// serves archive ++ live.
#[derive(Parser)]
#[command(name = "ima-keeper", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export whenever a threshold is crossed or the interval has elapsed,
    /// until SIGTERM or SIGINT.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flavour: FlavourArgs,
        /// Export at least this often, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        interval: u64,
        /// Export when the current list holds this many records.
        #[arg(long, value_name = "N")]
        threshold_records: Option<u64>,
        /// Export when the current sha1 list is this many bytes long.
        #[arg(long, value_name = "N")]
        threshold_bytes: Option<u64>,
    },
    /// Export once.
    Export {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flavour: FlavourArgs,
    },
    /// Print archive ++ live, every record since boot.
    Cat {
        #[command(flatten)]
        common: Common,
        /// As ascii_runtime_measurements shows it (the default).
        #[arg(long, conflicts_with = "binary")]
        ascii: bool,
        /// As binary_runtime_measurements holds it.
        #[arg(long)]
        binary: bool,
        /// Which bank's template digests to print.
        #[arg(long, value_enum, default_value_t = BankArg::Sha1)]
        bank: BankArg,
    },
    /// Replay archive ++ live against PCR 10 in both banks.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Records archived and live, the last export, the archive's size.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Mount a read-only view whose ascii_runtime_measurements and
    /// binary_runtime_measurements (sha1, and _sha1, _sha256 twins) are
    /// archive ++ live; serve it until SIGTERM or SIGINT (or an unmount).
    View {
        #[command(flatten)]
        common: Common,
        /// Where to mount the view (an existing directory).
        mountpoint: PathBuf,
        /// Let every user read the view (FUSE allow_other; files 0444, else
        /// 0440 and only the mounting user).
        #[arg(long)]
        allow_other: bool,
    },
}

#[derive(Args)]
struct Common {
    /// The archive directory (must exist; an empty one starts a new archive).
    #[arg(long, value_name = "DIR")]
    archive: PathBuf,
    /// Where IMA's securityfs files are.
    #[arg(long, value_name = "PATH", default_value = "/sys/kernel/security/ima")]
    securityfs: PathBuf,
    /// The TPM's sysfs directory, with pcr-sha1/10 and pcr-sha256/10.
    #[arg(long, value_name = "PATH", default_value = "/sys/class/tpm/tpm0")]
    tpm_sysfs: PathBuf,
    /// How often to retry opening measurement files another process holds.
    #[arg(long, value_name = "N", default_value_t = 8)]
    busy_retries: u32,
    /// Delay before the first retry, in milliseconds; it doubles each time.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    busy_delay_ms: u64,
}

impl Common {
    fn kernel(&self) -> SecurityFs {
        let retry = Retry {
            retries: self.busy_retries,
            first_delay: Duration::from_millis(self.busy_delay_ms),
        };
        SecurityFs::new(&self.securityfs, &self.tpm_sysfs, retry)
    }
}

#[derive(Args)]
struct FlavourArgs {
    /// Export with A, read _staged, D (instead of delete-N).
    #[arg(long, conflicts_with = "keep")]
    stage: bool,
    /// Delete-N, leaving the last N records in the kernel.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
}

impl FlavourArgs {
    fn options(&self) -> Options {
        Options {
            flavour: if self.stage {
                Flavour::Stage
            } else {
                Flavour::DeleteN {
                    keep: self.keep.unwrap_or(0),
                }
            },
            ambiguity_retries: 3,
            ambiguity_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BankArg {
    Sha1,
    Sha256,
}

impl From<BankArg> for Bank {
    fn from(bank: BankArg) -> Bank {
        match bank {
            BankArg::Sha1 => Bank::Sha1,
            BankArg::Sha256 => Bank::Sha256,
        }
    }
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            notice(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; `Ok(false)` for a check that failed.
fn dispatch(command: Command) -> Result<bool> {
    match command {
        Command::Run {
            common,
            flavour,
            interval,
            threshold_records,
            threshold_bytes,
        } => {
            let thresholds = Thresholds {
                interval: Duration::from_secs(interval),
                records: threshold_records,
                bytes: threshold_bytes,
            };
            run(&common, &flavour.options(), &thresholds)?;
        }
        Command::Export { common, flavour } => {
            let mut archive = Archive::open(&common.archive, Access::Append)?;
            export_and_report(&common.kernel(), &mut archive, &flavour.options())?;
        }
        Command::Cat {
            common,
            ascii: _,
            binary,
            bank,
        } => {
            let kernel = common.kernel();
            let mut archive = Archive::open(&common.archive, Access::Read)?;
            let log = FullLog::read(&kernel, &mut archive)?;
            if let Some(caveat) = log.overlap().caveat() {
                notice(&caveat);
            }
            let mut out = BufWriter::new(io::stdout().lock());
            let format = if binary {
                Format::Binary(bank.into())
            } else {
                Format::Ascii(bank.into())
            };
            log.write(format, &mut out)?;
            out.flush()?;
        }
        Command::Verify { common } => {
            let kernel = common.kernel();
            let mut archive = Archive::open(&common.archive, Access::Read)?;
            let Some(verification) = FullLog::read(&kernel, &mut archive)?.verify()? else {
                bail!("cannot verify without PCR 10: {}", kernel.why_no_pcr());
            };
            verification
                .report
                .iter()
                .for_each(|line| println!("{line}"));
            println!("{}", if verification.ok { "OK" } else { "FAILED" });
            return Ok(verification.ok);
        }
        Command::Status { common } => status_report(&common)?,
        Command::View {
            common,
            mountpoint,
            allow_other,
        } => view(&common, &mountpoint, MountOptions { allow_other })?,
    }
    Ok(true)
}

/// When `run` exports.
struct Thresholds {
    interval: Duration,
    records: Option<u64>,
    bytes: Option<u64>,
}

impl Thresholds {
    /// Whether an export is due: the interval has elapsed since the last one
    /// (or there was none), or the current list crossed a threshold.
    fn due(&self, since_last: Option<Duration>, kernel: &SecurityFs) -> Result<bool> {
        if since_last.is_none_or(|since| since >= self.interval) {
            return Ok(true);
        }
        if let Some(limit) = self.records {
            if kernel.current_count()? >= limit {
                return Ok(true);
            }
        }
        match self.bytes {
            Some(limit) => Ok(kernel.current_bytes()? >= limit),
            None => Ok(false),
        }
    }
}

/// The `run` loop: export when due, until SIGTERM or SIGINT. A failed export
/// is reported and retried at the next poll with the archive opened afresh.
fn run(common: &Common, options: &Options, thresholds: &Thresholds) -> Result<()> {
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, &STOP)?;
    }
    let kernel = common.kernel();
    let mut archive = Some(Archive::open(&common.archive, Access::Append)?);
    let mut last_export: Option<Instant> = None;
    while !STOP.load(Ordering::SeqCst) {
        let attempt = thresholds
            .due(last_export.map(|at| at.elapsed()), &kernel)
            .and_then(|due| {
                if !due {
                    return Ok(());
                }
                last_export = Some(Instant::now());
                let archive = match &mut archive {
                    Some(archive) => archive,
                    None => archive.insert(Archive::open(&common.archive, Access::Append)?),
                };
                export_and_report(&kernel, archive, options).map(drop)
            });
        if let Err(err) = attempt {
            notice(&format!("{err:#}"));
            archive = None;
        }
        let slept = Instant::now();
        while slept.elapsed() < POLL && !STOP.load(Ordering::SeqCst) {
            thread::sleep(WAKE);
        }
    }
    notice("stopping");
    Ok(())
}

/// The `view` command: mount, serve until SIGTERM or SIGINT or an unmount
/// from outside, unmount.
fn view(common: &Common, mountpoint: &Path, options: MountOptions) -> Result<()> {
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, &STOP)?;
    }
    let session = mount(common.kernel(), &common.archive, mountpoint, options)?;
    println!(
        "view of archive {} ++ live mounted on {}",
        common.archive.display(),
        mountpoint.display()
    );
    io::stdout().flush()?;
    while !STOP.load(Ordering::SeqCst) && !session.guard.is_finished() {
        thread::sleep(WAKE);
    }
    if session.guard.is_finished() {
        notice(&format!("{}: unmounted from outside", mountpoint.display()));
        return session
            .join()
            .map_err(|err| anyhow!("serving the view: {err}"));
    }
    notice("stopping");
    session
        .umount_and_join()
        .map_err(|err| anyhow!("unmounting {}: {err}", mountpoint.display()))
}

/// Exports once, records it in the status file and prints one line.
fn export_and_report(
    kernel: &SecurityFs,
    archive: &mut Archive,
    options: &Options,
) -> Result<Outcome> {
    let outcome = export(kernel, archive, options)?;
    let flavour = match options.flavour {
        Flavour::Stage => "stage",
        Flavour::DeleteN { .. } => "delete-N",
    };
    status::save(archive.dir(), flavour, &outcome)?;
    println!(
        "exported ({flavour}): {} records archived, {} deleted from the kernel, {} in the archive",
        outcome.archived,
        outcome.deleted,
        archive.len()
    );
    Ok(outcome)
}

/// Prints `status`.
fn status_report(common: &Common) -> Result<()> {
    let kernel = common.kernel();
    let mut archive = Archive::open(&common.archive, Access::Read)?;
    let log = FullLog::read(&kernel, &mut archive)?;
    let archive = log.archive();
    println!("archive: {}", archive.dir().display());
    println!("records archived: {}", archive.len());
    for bank in Bank::ALL {
        println!("{}: {} bytes", bank_file(bank), archive.bank_len(bank));
    }
    let lists = log.lists();
    println!(
        "records live: {} ({} staged, {} current), {} of them already archived",
        lists.staged.len() + lists.current.len(),
        lists.staged.len(),
        lists.current.len(),
        log.overlap().k
    );
    println!("records since boot: {}", log.len());
    if let Some(caveat) = log.overlap().caveat() {
        println!("note: {caveat}");
    }
    if let Err(err) = kernel.check_export_delete() {
        println!("note: {err:#}");
    }
    match status::load(archive.dir())? {
        Some(last) => println!(
            "last export: at unix time {} ({} s ago), {}: {} archived, {} deleted; {} exports \
             recorded",
            last.unix_time,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |now| now.as_secs().saturating_sub(last.unix_time)),
            last.flavour,
            last.archived,
            last.deleted,
            last.exports
        ),
        None => println!("last export: none"),
    }
    Ok(())
}
