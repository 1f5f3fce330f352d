//! The view over FUSE (the `fuser` crate, without libfuse: as root it mounts
//! with mount(2), otherwise through the `fusermount3` helper).
//!
//! A read-only directory holding the files of [`super::FILES`]. Opens are
//! served with `FOPEN_DIRECT_IO`, so every read reaches [`Contents::read`]
//! and no page cache keeps old bytes. Like securityfs, `stat` shows size 0;
//! the size of an open file's contents is in `fstat` when the kernel passes
//! the file handle. An open that cannot read the lists fails with EBUSY when
//! the measurement files stayed busy (an export under way through every
//! retry), EIO otherwise; either way the reason goes to stderr in one line.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request, SessionACL,
};
use nix::unistd::{getgid, getuid};

use super::{ArchiveCache, Contents, FILES};
use crate::full_log::Format;
use crate::notice;
use crate::securityfs::{Busy, SecurityFs};

/// Attributes are never cached: the size of an open file changes.
const TTL: Duration = Duration::ZERO;

/// Worker threads: a slow open (retrying busy files) does not hold up
/// lookups and reads of other handles.
const THREADS: usize = 4;

/// How the view is mounted.
#[derive(Clone, Copy, Debug)]
pub struct MountOptions {
    /// Let every user past FUSE's own check (`allow_other`); the files are
    /// then mode 0444 instead of 0440.
    pub allow_other: bool,
}

/// The FUSE file system.
struct ViewFs {
    kernel: SecurityFs,
    uid: u32,
    gid: u32,
    file_mode: u16,
    state: Mutex<State>,
}

struct State {
    archive: ArchiveCache,
    handles: HashMap<u64, Contents>,
    next_handle: u64,
}

/// Mounts the view of the archive in `archive` and the lists of `kernel` on
/// `mountpoint`; it is served until the returned session is dropped or
/// unmounted.
pub fn mount(
    kernel: SecurityFs,
    archive: &Path,
    mountpoint: &Path,
    options: MountOptions,
) -> Result<BackgroundSession> {
    // Fail early, with the archive's own message, on a bad archive.
    let mut cache = ArchiveCache::new(archive);
    cache.with(|_| Ok(()))?;
    let fs = ViewFs {
        kernel,
        uid: getuid().as_raw(),
        gid: getgid().as_raw(),
        file_mode: if options.allow_other { 0o444 } else { 0o440 },
        state: Mutex::new(State {
            archive: cache,
            handles: HashMap::new(),
            next_handle: 1,
        }),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::DefaultPermissions,
        MountOption::FSName("ima-keeper".to_string()),
        MountOption::Subtype("ima-keeper".to_string()),
    ];
    if options.allow_other {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(THREADS);
    fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|err| anyhow!("mounting the view on {}: {err}", mountpoint.display()))
}

/// The inode of the `i`-th file of [`FILES`].
fn file_inode(i: usize) -> INodeNo {
    INodeNo(2 + i as u64)
}

/// The format of the file with inode `ino`.
fn file_format(ino: INodeNo) -> Option<Format> {
    let i = u64::from(ino).checked_sub(2)?;
    FILES
        .get(usize::try_from(i).ok()?)
        .map(|&(_, format)| format)
}

impl ViewFs {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another request leaves the state usable: handles are
        // independent and the archive is caught up at each use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn attr(&self, ino: INodeNo, size: u64) -> FileAttr {
        let (kind, perm, nlink) = if ino == INodeNo::ROOT {
            (FileType::Directory, self.file_mode | 0o111, 2)
        } else {
            (FileType::RegularFile, self.file_mode, 1)
        };
        let now = SystemTime::now();
        FileAttr {
            ino,
            size,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    /// Reads the full log for a new handle.
    fn open_contents(&self, format: Format) -> Result<u64> {
        let mut state = self.state();
        let contents = state
            .archive
            .with(|archive| Contents::open(&self.kernel, archive, format))?;
        let handle = state.next_handle;
        state.next_handle += 1;
        state.handles.insert(handle, contents);
        Ok(handle)
    }
}

/// The errno for a failed read of the full log, told on stderr.
fn errno_for(what: &str, err: &anyhow::Error) -> Errno {
    notice(&format!("view: {what}: {err:#}"));
    if err.downcast_ref::<Busy>().is_some() {
        Errno::EBUSY
    } else {
        Errno::EIO
    }
}

impl Filesystem for ViewFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent == INodeNo::ROOT)
            .then(|| FILES.iter().position(|(file, _)| OsStr::new(file) == name))
            .flatten();
        match found {
            Some(i) => reply.entry(&TTL, &self.attr(file_inode(i), 0), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino != INodeNo::ROOT && file_format(ino).is_none() {
            reply.error(Errno::ENOENT);
            return;
        }
        let size = fh
            .and_then(|fh| self.state().handles.get(&u64::from(fh)).map(Contents::len))
            .unwrap_or(0);
        reply.attr(&TTL, &self.attr(ino, size));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(format) = file_format(ino) else {
            reply.error(Errno::EISDIR);
            return;
        };
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            reply.error(Errno::EROFS);
            return;
        }
        match self.open_contents(format) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::FOPEN_DIRECT_IO),
            Err(err) => reply.error(errno_for("open", &err)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut state = self.state();
        let State {
            archive, handles, ..
        } = &mut *state;
        let Some(contents) = handles.get_mut(&u64::from(fh)) else {
            reply.error(Errno::EBADF);
            return;
        };
        let result = archive.with(|archive| {
            contents
                .read(&self.kernel, archive, offset, size)
                .map(<[u8]>::to_vec)
        });
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(err) => reply.error(errno_for("read", &err)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&u64::from(fh));
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == INodeNo::ROOT {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOTDIR);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
        ]
        .into_iter()
        .chain(
            FILES
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (file_inode(i), FileType::RegularFile, *name)),
        );
        for (i, (ino, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
