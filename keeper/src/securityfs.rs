//! The real kernel: the measurement files under `/sys/kernel/security/ima`
//! and PCR 10 under `/sys/class/tpm/tpm0`.
//!
//! The kernel lets any number of readers or one writer task hold the
//! measurement files. A reader gets every file it reads O_RDONLY, all held at
//! once so that no command runs between the reads; the writer gets every file
//! it needs (both banks, staged and current) O_RDWR, because its own O_RDONLY
//! opens would fail, and holds them from the read to the last command. An open
//! that finds the files held (EBUSY) is retried with a doubling delay, a
//! bounded number of times, with one line on stderr each time.
//!
//! A kernel without export/delete (CONFIG_IMA_STAGING=n) has no `_staged`
//! files and read-only (0440) originals: reading works, exporting is refused
//! with that explanation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::kernel::{Kernel, Lists, Reader, Step, Writer};
use crate::notice;
use crate::pause::pause_if_asked;
use crate::record::{parse_hex, parse_list, zip_banks, Bank, Entry, Position, Record};
use crate::replay::{Pcr10, IMA_PCR};

/// Linux errno values the kernel's answers are told apart by.
mod errno {
    pub(super) const EPERM: i32 = 1;
    pub(super) const ENOENT: i32 = 2;
    pub(super) const EACCES: i32 = 13;
    pub(super) const EBUSY: i32 = 16;
    pub(super) const EEXIST: i32 = 17;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ERANGE: i32 = 34;
    pub(super) const ESTALE: i32 = 116;
}

/// The measurement files stayed busy (EBUSY) through every retry; a view
/// tells its caller EBUSY rather than EIO.
#[derive(Debug)]
pub struct Busy(String);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// Longest delay between two attempts to open busy files.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How to retry opens that find the measurement files busy.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts after the first one.
    pub retries: u32,
    /// Delay before the first retry; it doubles after each.
    pub first_delay: Duration,
}

/// The measurement files of a securityfs directory and a TPM's sysfs directory.
pub struct SecurityFs {
    dir: PathBuf,
    tpm: PathBuf,
    retry: Retry,
}

/// One open list file.
struct ListFile {
    path: PathBuf,
    file: File,
}

impl SecurityFs {
    /// The IMA files under `dir`, the TPM under `tpm`.
    pub fn new(dir: &Path, tpm: &Path, retry: Retry) -> SecurityFs {
        SecurityFs {
            dir: dir.to_path_buf(),
            tpm: tpm.to_path_buf(),
            retry,
        }
    }

    /// Records in the current list (`runtime_measurements_count`).
    pub fn current_count(&self) -> Result<u64> {
        let path = self.dir.join("runtime_measurements_count");
        let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        text.trim()
            .parse()
            .map_err(|_| anyhow!("{}: {:?} is not a count", path.display(), text.trim()))
    }

    /// Bytes of the current sha1 list, read as a reader.
    pub fn current_bytes(&self) -> Result<u64> {
        let path = self.list_path(Bank::Sha1, false);
        let mut file = self.open_retrying(&path, false)?;
        io::copy(&mut file, &mut io::sink()).with_context(|| format!("{}", path.display()))
    }

    /// Why [`Kernel::pcr10`] found no PCR 10, for messages.
    pub fn why_no_pcr(&self) -> String {
        if self.tpm.exists() {
            format!(
                "{} exposes neither pcr-sha1/{IMA_PCR} nor pcr-sha256/{IMA_PCR} (a TPM 1.2?)",
                self.tpm.display()
            )
        } else {
            format!("no TPM at {}", self.tpm.display())
        }
    }

    fn list_path(&self, bank: Bank, staged: bool) -> PathBuf {
        let suffix = if staged { "_staged" } else { "" };
        self.dir.join(format!(
            "binary_runtime_measurements_{}{suffix}",
            bank.name()
        ))
    }

    /// Refuses, with the reason, a kernel that cannot export and delete.
    pub fn check_export_delete(&self) -> Result<()> {
        for bank in Bank::ALL {
            let original = self.list_path(bank, false);
            let meta =
                fs::metadata(&original).map_err(|err| explain_open(&original, true, &err))?;
            let staged = self.list_path(bank, true);
            let mode = meta.permissions().mode() & 0o777;
            if !staged.exists() {
                bail!(
                    "{} is missing: kernel without export/delete (CONFIG_IMA_STAGING=n); \
                     nothing can be exported",
                    staged.display()
                );
            }
            if mode & 0o222 == 0 {
                bail!(
                    "{} is read-only (mode {mode:o}): kernel without export/delete \
                     (CONFIG_IMA_STAGING=n); nothing can be exported",
                    original.display()
                );
            }
        }
        Ok(())
    }

    /// Opens a list's sha1 and sha256 files, O_RDWR (`write`) or O_RDONLY.
    fn open_pair(&self, staged: bool, write: bool) -> Result<[ListFile; 2]> {
        let open = |bank| -> Result<ListFile> {
            let path = self.list_path(bank, staged);
            let file = self.open_retrying(&path, write)?;
            Ok(ListFile { path, file })
        };
        Ok([open(Bank::Sha1)?, open(Bank::Sha256)?])
    }

    /// Opens `path` O_RDWR (`write`) or O_RDONLY, retrying on EBUSY.
    fn open_retrying(&self, path: &Path, write: bool) -> Result<File> {
        let holder = if write {
            "a reader holds the measurement files open (an attestation agent?)"
        } else {
            "a writer holds the measurement files (an export under way)"
        };
        let mut delay = self.retry.first_delay;
        let mut retried = 0;
        loop {
            match OpenOptions::new().read(true).write(write).open(path) {
                Ok(file) => return Ok(file),
                Err(err) if err.raw_os_error() != Some(errno::EBUSY) => {
                    return Err(explain_open(path, write, &err))
                }
                Err(_) if retried == self.retry.retries => {
                    return Err(anyhow::Error::new(Busy(format!(
                        "{}: busy, {holder}; gave up after {retried} retries",
                        path.display()
                    ))))
                }
                Err(_) => {
                    retried += 1;
                    notice(&format!(
                        "{}: busy, {holder}; retry {retried} of {} in {} ms",
                        path.display(),
                        self.retry.retries,
                        delay.as_millis()
                    ));
                    thread::sleep(delay);
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}

/// Turns a failed open into an error that says what to do about it.
fn explain_open(path: &Path, write: bool, err: &io::Error) -> anyhow::Error {
    let path_text = path.display();
    match err.raw_os_error() {
        Some(errno::EPERM) if write => anyhow!(
            "{path_text}: opening for writing needs CAP_SYS_ADMIN (run ima-keeper as root): {err}"
        ),
        Some(errno::EACCES) => anyhow!("{path_text}: permission denied (run ima-keeper as root)"),
        Some(errno::ENOENT) if path_text.to_string().ends_with("_staged") => {
            anyhow!("{path_text} is missing: kernel without export/delete (CONFIG_IMA_STAGING=n)")
        }
        Some(errno::ENOENT) => anyhow!(
            "{path_text} is missing: is securityfs mounted and IMA enabled (or --securityfs wrong)?"
        ),
        _ => anyhow!("{path_text}: {err}"),
    }
}

impl ListFile {
    /// Reads the whole list through this file, from its start.
    fn read(&mut self, bank: Bank) -> Result<Vec<Entry>> {
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .with_context(|| format!("{}: reading", self.path.display()))?;
        parse_list(&bytes, bank, Position::default())
            .map_err(|err| anyhow!("{}: {err}", self.path.display()))
    }
}

/// Reads and zips a list's two banks. A staged list cannot change while its
/// files are held, so its banks must agree in length; the current list may
/// grow between the two reads, so only the common prefix counts.
fn read_pair(pair: &mut [ListFile; 2], staged: bool) -> Result<Vec<Record>> {
    let [sha1, sha256] = pair;
    let (sha1_entries, sha256_entries) = (sha1.read(Bank::Sha1)?, sha256.read(Bank::Sha256)?);
    let names = format!("{} and {}", sha1.path.display(), sha256.path.display());
    if staged && sha1_entries.len() != sha256_entries.len() {
        bail!(
            "{names}: {} and {} records: the staged banks differ",
            sha1_entries.len(),
            sha256_entries.len()
        );
    }
    zip_banks(sha1_entries, sha256_entries, 0).map_err(|err| anyhow!("{names}: {err}"))
}

impl Kernel for SecurityFs {
    fn pcr10(&self) -> Result<Option<Pcr10>> {
        let mut values = [None, None];
        for bank in Bank::ALL {
            let path = self.tpm.join(format!("pcr-{}/{IMA_PCR}", bank.name()));
            values[bank.index()] = match fs::read_to_string(&path) {
                Ok(text) => Some(
                    parse_hex(text.trim())
                        .filter(|value| value.len() == bank.digest_len())
                        .ok_or_else(|| {
                            anyhow!(
                                "{}: {:?} is not a {bank} PCR value",
                                path.display(),
                                text.trim()
                            )
                        })?,
                ),
                Err(err) if err.kind() == io::ErrorKind::NotFound => None,
                Err(err) => return Err(err).with_context(|| format!("{}", path.display())),
            };
        }
        let [sha1, sha256] = values;
        Ok(Pcr10::new(sha1, sha256))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let has_staged = self.list_path(Bank::Sha1, true).exists();
        let staged = has_staged
            .then(|| self.open_pair(true, false))
            .transpose()?;
        let current = self.open_pair(false, false)?;
        Ok(Box::new(SecurityFsReader { staged, current }))
    }

    fn writer(&self) -> Result<Box<dyn Writer + '_>> {
        self.check_export_delete()?;
        Ok(Box::new(SecurityFsWriter {
            staged: self.open_pair(true, true)?,
            current: self.open_pair(false, true)?,
        }))
    }
}

/// The reader set: every list file, opened O_RDONLY (no staged files on a
/// kernel without export/delete).
struct SecurityFsReader {
    staged: Option<[ListFile; 2]>,
    current: [ListFile; 2],
}

impl Reader for SecurityFsReader {
    fn read_lists(&mut self) -> Result<Lists> {
        Ok(Lists {
            staged: match &mut self.staged {
                Some(pair) => read_pair(pair, true)?,
                None => Vec::new(),
            },
            current: read_pair(&mut self.current, false)?,
        })
    }
}

/// The writer set: every list file, opened O_RDWR.
struct SecurityFsWriter {
    staged: [ListFile; 2],
    current: [ListFile; 2],
}

impl SecurityFsWriter {
    /// The file commands go to: the sha1 staged file or the sha1 original.
    fn command_file(&mut self, staged: bool) -> &mut ListFile {
        let pair = if staged {
            &mut self.staged
        } else {
            &mut self.current
        };
        &mut pair[Bank::Sha1.index()]
    }

    /// Writes `command`; on failure returns the file's path with the error.
    fn command(&mut self, staged: bool, command: &str) -> Result<(), (String, io::Error)> {
        let target = self.command_file(staged);
        target
            .file
            .write_all(command.as_bytes())
            .map_err(|err| (target.path.display().to_string(), err))
    }
}

impl Writer for SecurityFsWriter {
    fn read_lists(&mut self) -> Result<Lists> {
        Ok(Lists {
            staged: read_pair(&mut self.staged, true)?,
            current: read_pair(&mut self.current, false)?,
        })
    }

    fn stage(&mut self) -> Result<bool> {
        match self.command(true, "A\n") {
            Ok(()) => Ok(true),
            Err((_, err)) if err.raw_os_error() == Some(errno::ENOENT) => Ok(false),
            Err((path, err)) => Err(match err.raw_os_error() {
                Some(errno::EEXIST) => anyhow!("{path}: A: something is already staged"),
                Some(errno::EACCES) => {
                    anyhow!("{path}: A: measurement is suspended (kexec under way)")
                }
                _ => anyhow!("{path}: A: {err}"),
            }),
        }
    }

    fn delete_staged(&mut self) -> Result<()> {
        self.command(true, "D\n")
            .map_err(|(path, err)| match err.raw_os_error() {
                Some(errno::ENOENT) => anyhow!("{path}: D: nothing is staged"),
                Some(errno::ESTALE) => anyhow!(
                    "{path}: D: measurement is suspended (kexec under way): the staged records \
                     reappear in the next kernel's list"
                ),
                _ => anyhow!("{path}: D: {err}"),
            })
    }

    fn delete_head(&mut self, n: usize) -> Result<()> {
        self.command(false, &format!("{n}\n"))
            .map_err(|(path, err)| match err.raw_os_error() {
                Some(errno::EINVAL) => anyhow!(
                    "{path}: {n}: refused; a kernel booted with ima_flush_htable allows no \
                     delete-N (use --stage)"
                ),
                Some(errno::ENOENT) => anyhow!("{path}: {n}: the current list holds fewer records"),
                Some(errno::ERANGE) => anyhow!("{path}: {n}: out of range"),
                Some(errno::ESTALE) => anyhow!(
                    "{path}: {n}: measurement is suspended (kexec under way): the records \
                     reappear in the next kernel's list"
                ),
                _ => anyhow!("{path}: {n}: {err}"),
            })
    }

    fn reached(&mut self, step: Step) -> Result<()> {
        pause_if_asked(step)
    }
}
