// SPDX-License-Identifier: GPL-2.0

//! Who may have the measurement files open: any number of readers, or one
//! writer task.
//!
//! A reader's seq_file position must never point into a list that a write
//! cut while it was reading, so readers and the writer exclude each other
//! across all the measurement files, original and `_staged`. The writer task
//! may open more of them for writing (to stage on one and read another
//! back), but a read-only open of its own would be a reader and is refused.

use kernel::prelude::*;

/// The task opening or closing a file, as an identity to compare: the
/// address of its `task_struct`, which stays valid while it has a file open.
pub(crate) type TaskId = usize;

/// The open measurement files.
///
/// # Invariants
///
/// `users > 0` counts readers, `users == -1` means `writer` holds the files
/// (then `Some`) with `extra_opens` further write opens.
pub(crate) struct Users {
    users: isize,
    writer: Option<TaskId>,
    extra_opens: usize,
}

impl Users {
    /// Nobody has a file open.
    pub(crate) const fn new() -> Self {
        Self {
            users: 0,
            writer: None,
            extra_opens: 0,
        }
    }

    /// Admits an open by `task`, for writing if `write`: `EBUSY` if the
    /// other kind holds the files, `ENFILE` if readers would overflow.
    pub(crate) fn open(&mut self, write: bool, task: TaskId) -> Result {
        if !write && self.users == isize::MAX {
            return Err(ENFILE);
        }
        if write && self.writer == Some(task) {
            self.extra_opens += 1;
            return Ok(());
        }
        if (write && self.users != 0) || (!write && self.users < 0) {
            return Err(EBUSY);
        }
        if write {
            // INVARIANT: No reader: the writer takes the files.
            self.users = -1;
            self.writer = Some(task);
        } else {
            self.users += 1;
        }
        Ok(())
    }

    /// Releases an open that [`Users::open`] admitted.
    pub(crate) fn release(&mut self, write: bool, task: TaskId) {
        if write && self.writer == Some(task) && self.extra_opens > 0 {
            self.extra_opens -= 1;
        } else if write {
            // INVARIANT: The writer's last open: nobody holds the files.
            self.users = 0;
            self.writer = None;
        } else {
            self.users -= 1;
        }
    }
}

#[kunit_tests(ima_rs_mediation)]
mod tests {
    use super::*;

    const T1: TaskId = 0x1000;
    const T2: TaskId = 0x2000;

    #[test]
    fn readers_or_one_writer() {
        let mut u = Users::new();
        assert_eq!(u.open(false, T1), Ok(()));
        assert_eq!(u.open(false, T2), Ok(()));
        assert_eq!(u.open(true, T1), Err(EBUSY));
        u.release(false, T1);
        assert_eq!(u.open(true, T2), Err(EBUSY));
        u.release(false, T2);
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(false, T2), Err(EBUSY));
        assert_eq!(u.open(true, T2), Err(EBUSY));
        u.release(true, T1);
        assert_eq!(u.open(false, T2), Ok(()));
        u.release(false, T2);
        assert_eq!(u.open(true, T2), Ok(()));
    }

    #[test]
    fn writer_opens_more_for_writing_only() {
        let mut u = Users::new();
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(true, T1), Ok(()));
        assert_eq!(u.open(false, T1), Err(EBUSY));
        u.release(true, T1);
        // One write open left: still held.
        assert_eq!(u.open(false, T2), Err(EBUSY));
        u.release(true, T1);
        assert_eq!(u.open(false, T2), Ok(()));
    }

    #[test]
    fn reader_overflow() {
        let mut u = Users {
            users: isize::MAX,
            writer: None,
            extra_opens: 0,
        };
        assert_eq!(u.open(false, T1), Err(ENFILE));
        assert_eq!(u.open(true, T1), Err(EBUSY));
    }
}
