// SPDX-License-Identifier: GPL-2.0

//! Who may have the measurement files open: any number of readers, or one
//! writer task.
//!
//! A reader's seq_file position must never point into a list that a write
//! cut while it was reading, so readers and the writer exclude each other
//! across all the measurement files, original and `_staged`. The writer task
//! may open more of them for writing (to stage on one and read another
//! back), but a read-only open of its own would be a reader and is refused.
//!
//! Opens are admitted per task, but releases are counted per open file: the
//! last reference to a file is often dropped by another task (a child that
//! inherited it, a receiver of `SCM_RIGHTS`, a deferred `fput()`), and the
//! files are free again only once every write open has been released.

use kernel::{
    prelude::*,
    sync::aref::ARef,
    task::{CurrentTask, Task},
    warn_on,
};

/// Most readers at once (C's `LONG_MAX`).
const MAX_READERS: usize = isize::MAX as usize;

/// The task that opened the files for writing. A reference keeps its
/// `task_struct`, so that no new task can take its address meanwhile.
pub(crate) struct Writer(ARef<Task>);

impl Writer {
    /// The task running this code.
    pub(crate) fn current(task: &CurrentTask) -> Self {
        Self(ARef::from(&**task))
    }
}

impl PartialEq for Writer {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq::<Task>(&*self.0, &*other.0)
    }
}

/// The open measurement files.
///
/// # Invariants
///
/// `readers` is zero while `writer` is `Some((task, opens))`; then `task`
/// holds the files with `opens >= 1` write opens not yet released.
pub(crate) struct Users<T> {
    readers: usize,
    writer: Option<(T, usize)>,
}

impl<T: PartialEq> Users<T> {
    /// Nobody has a file open.
    pub(crate) const fn new() -> Self {
        Self {
            readers: 0,
            writer: None,
        }
    }

    /// Admits an open by `task`, for writing if `write`: `EBUSY` if the
    /// other kind holds the files (the writer's own read-only open
    /// included), `ENFILE` if readers would overflow.
    pub(crate) fn open(&mut self, write: bool, task: T) -> Result {
        match (&mut self.writer, write) {
            (Some((writer, opens)), true) if *writer == task => {
                *opens = opens.checked_add(1).ok_or(ENFILE)?;
            }
            (Some(_), _) => return Err(EBUSY),
            (None, true) if self.readers > 0 => return Err(EBUSY),
            // INVARIANT: No reader: the writer takes the files.
            (None, true) => self.writer = Some((task, 1)),
            (None, false) if self.readers == MAX_READERS => return Err(ENFILE),
            (None, false) => self.readers += 1,
        }
        Ok(())
    }

    /// Releases an open that [`Users::open`] admitted, whichever task
    /// releases it.
    pub(crate) fn release(&mut self, write: bool) {
        if !write {
            warn_on!(self.readers == 0);
            self.readers = self.readers.saturating_sub(1);
            return;
        }
        match &mut self.writer {
            Some((_, opens)) if *opens > 1 => *opens -= 1,
            // INVARIANT: The last write open: nobody holds the files.
            Some(_) => self.writer = None,
            None => {
                warn_on!(true);
            }
        }
    }
}

#[kunit_tests(ima_rs_mediation)]
mod tests {
    use super::*;

    const T1: usize = 0x1000;
    const T2: usize = 0x2000;

    #[test]
    fn readers_or_one_writer() {
        let mut u = Users::new();
        assert_eq!(u.open(false, T1), Ok(()));
        assert_eq!(u.open(false, T2), Ok(()));
        assert_eq!(u.open(true, T1), Err(EBUSY));
        u.release(false);
        assert_eq!(u.open(true, T2), Err(EBUSY));
        u.release(false);
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(false, T2), Err(EBUSY));
        assert_eq!(u.open(true, T2), Err(EBUSY));
        u.release(true);
        assert_eq!(u.open(false, T2), Ok(()));
        u.release(false);
        assert_eq!(u.open(true, T2), Ok(()));
    }

    #[test]
    fn writer_opens_more_for_writing_only() {
        let mut u = Users::new();
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(false, T1), Err(EBUSY));
        u.release(true);
        // One write open left: still held.
        assert_eq!(u.open(false, T2), Err(EBUSY));
        u.release(true);
        assert_eq!(u.open(false, T2), Ok(()));
    }

    /// Releases of the writer's files in other tasks (an inherited or
    /// passed file closed last elsewhere) count like the writer's own.
    #[test]
    fn released_in_another_task() {
        let mut u = Users::new();
        // Two write opens, both released elsewhere: idle again.
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(true, T1), Ok(()));
        u.release(true);
        u.release(true);
        assert_eq!(u.open(false, T2), Ok(()));
        u.release(false);
        assert_eq!(u.open(true, T2), Ok(()));
        u.release(true);
        // One of two released elsewhere: the writer still holds the files.
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(true, T1), Ok(()));
        u.release(true);
        assert_eq!(u.open(false, T2), Err(EBUSY));
        assert_eq!(u.open(true, T2), Err(EBUSY));
        assert_eq!(u.open(true, T1), Ok(()));
        u.release(true);
        u.release(true);
        assert_eq!(u.open(false, T2), Ok(()));
        assert_eq!(u.open(false, T1), Ok(()));
    }

    #[test]
    fn reader_overflow() {
        let mut u = Users {
            readers: MAX_READERS,
            writer: None,
        };
        assert_eq!(u.open(false, T1), Err(ENFILE));
        assert_eq!(u.open(true, T1), Err(EBUSY));
    }
}
