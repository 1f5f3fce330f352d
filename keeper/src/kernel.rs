//! What the keeper needs from the kernel, as a trait: hold the lists as a
//! reader and read them, become the single writer and run the commands, read
//! PCR 10.
//!
//! [`crate::securityfs`] implements it on `/sys/kernel/security/ima`; the
//! unit tests use an in-memory fake that can stop at any [`Step`].

use std::fmt;

use anyhow::Result;

use crate::record::Record;
use crate::replay::{Pcr10, PcrEvidence};

/// The measurement lists at one moment: the staged list, then the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists {
    /// Records staged with `A` and not yet deleted with `D`.
    pub staged: Vec<Record>,
    /// The current list.
    pub current: Vec<Record>,
}

impl Lists {
    /// Every live record: staged, then current.
    pub fn live(&self) -> Vec<Record> {
        [self.staged.as_slice(), self.current.as_slice()].concat()
    }
}

/// The lists with the PCR 10 evidence taken around the read.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The lists.
    pub lists: Lists,
    /// PCR 10 read just before the lists and again just after, or `None`
    /// without a TPM.
    pub pcr: Option<PcrEvidence>,
}

impl Snapshot {
    /// Reads PCR 10 from `kernel`, then the lists with `read`, then PCR 10
    /// again, so that the first reading holds no record the lists lack.
    pub fn take(kernel: &dyn Kernel, read: impl FnOnce() -> Result<Lists>) -> Result<Snapshot> {
        let before = kernel.pcr10()?;
        let lists = read()?;
        let pcr = match before {
            Some(before) => {
                let after = kernel.pcr10()?;
                Some(PcrEvidence {
                    quiet: after.as_ref() == Some(&before),
                    before,
                })
            }
            None => None,
        };
        Ok(Snapshot { lists, pcr })
    }
}

/// The kernel side of the measurement list.
pub trait Kernel {
    /// PCR 10 in every bank the TPM exposes; `None` without a TPM.
    fn pcr10(&self) -> Result<Option<Pcr10>>;

    /// Takes the reader set: every list file held open for reading. While
    /// any reader holds the files no writer can open them, so no `A`, `D` or
    /// `N` runs until the returned reader is dropped.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;

    /// Reads both lists under one reader set, so staged ++ current is
    /// consistent.
    fn read_lists(&self) -> Result<Lists> {
        self.reader()?.read_lists()
    }

    /// Becomes the single writer of the measurement files; the lists can only
    /// grow at the end until the returned writer is dropped.
    fn writer(&self) -> Result<Box<dyn Writer + '_>>;
}

/// The reader set: the list files held open for reading.
pub trait Reader {
    /// Reads both lists through the reader's files.
    fn read_lists(&mut self) -> Result<Lists>;
}

/// The single writer of the measurement files.
pub trait Writer {
    /// Reads both lists through the writer's files.
    fn read_lists(&mut self) -> Result<Lists>;

    /// `A`: moves the current list to the staged list. `Ok(false)` if the
    /// current list was empty.
    fn stage(&mut self) -> Result<bool>;

    /// `D`: deletes every staged record.
    fn delete_staged(&mut self) -> Result<()>;

    /// `N`: deletes the first `n` records of the current list.
    fn delete_head(&mut self, n: usize) -> Result<()>;

    /// Called by the exporter when it has finished `step`; the fake kernel
    /// fails here to simulate a keeper killed at that point, the real one
    /// pauses there if asked ([`crate::pause`]).
    fn reached(&mut self, step: Step) -> Result<()>;
}

/// Points of an export at which a keeper can be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The lists were read; nothing written yet.
    Read,
    /// Records were written to the archive files, not yet committed.
    Append,
    /// The archive was committed and made durable; nothing deleted yet.
    Durable,
    /// `A` ran; the staged records are not yet read or deleted.
    Stage,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 4] = [Step::Read, Step::Append, Step::Durable, Step::Stage];
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Read => "after the read",
            Step::Append => "after the append",
            Step::Durable => "after the fsync",
            Step::Stage => "between A and D",
        })
    }
}
