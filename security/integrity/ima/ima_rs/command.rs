// SPDX-License-Identifier: GPL-2.0

//! The commands user space writes to the measurement files.
//!
//! `A\n` (stage everything) and `D\n` (delete what is staged) go to the
//! `_staged` files, a decimal `N\n` (delete the first N records) to the
//! original ones. A write is 2 to [`MAX_LEN`] bytes and ends with a newline.

use kernel::prelude::*;

/// Longest write: the largest 64-bit number and a newline.
pub(crate) const MAX_LEN: usize = 21;

/// A parsed write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `A`: stage the whole current list.
    Stage,
    /// `D`: delete every staged record.
    DeleteStaged,
    /// `N`: delete the first N records of the current list.
    DeleteFirst(usize),
}

/// Parses a write of `bytes` to a `_staged` file (`staged`) or to an
/// original one. Booted with `ima_flush_htable` (`flush`), `N` is refused.
///
/// Errors: `EINVAL` for a bad length, a missing newline, a command on the
/// wrong file, `N` with `flush`, zero or anything but a number; `ERANGE`
/// for a number that does not fit an `unsigned long`. As in C, which reads
/// the write as a string, a number ends at the first NUL byte.
pub(crate) fn parse(bytes: &[u8], staged: bool, flush: bool) -> Result<Command> {
    if !(2..=MAX_LEN).contains(&bytes.len()) {
        return Err(EINVAL);
    }
    let Some((b'\n', body)) = bytes.split_last() else {
        return Err(EINVAL);
    };
    match (body, staged) {
        (b"A", true) => Ok(Command::Stage),
        (b"D", true) => Ok(Command::DeleteStaged),
        (_, true) => Err(EINVAL),
        (_, false) if flush => Err(EINVAL),
        (_, false) => {
            let number = body.split(|&c| c == 0).next().unwrap_or(body);
            match parse_count(number)? {
                0 => Err(EINVAL),
                n => Ok(Command::DeleteFirst(n)),
            }
        }
    }
}

/// A decimal `unsigned long` as `kstrtoul(s, 10, ...)` reads it: an optional
/// `+`, digits, and at most one trailing newline.
fn parse_count(s: &[u8]) -> Result<usize> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    if s.is_empty() {
        return Err(EINVAL);
    }
    let mut n: usize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(EINVAL);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(c - b'0')))
            .ok_or(ERANGE)?;
    }
    Ok(n)
}

#[kunit_tests(ima_rs_command)]
mod tests {
    use super::*;

    #[test]
    fn parser_table() {
        use Command::*;
        let table: &[(&[u8], bool, bool, Result<Command>)] = &[
            (b"A\n", true, false, Ok(Stage)),
            (b"D\n", true, false, Ok(DeleteStaged)),
            (b"A\n", true, true, Ok(Stage)),
            (b"D\n", true, true, Ok(DeleteStaged)),
            (b"A\n", false, false, Err(EINVAL)),
            (b"D\n", false, false, Err(EINVAL)),
            (b"1\n", true, false, Err(EINVAL)),
            (b"AA\n", true, false, Err(EINVAL)),
            (b"a\n", true, false, Err(EINVAL)),
            (b"1\n", false, false, Ok(DeleteFirst(1))),
            (b"42\n", false, false, Ok(DeleteFirst(42))),
            (b"+7\n", false, false, Ok(DeleteFirst(7))),
            (b"7\n\n", false, false, Ok(DeleteFirst(7))),
            (b"007\n", false, false, Ok(DeleteFirst(7))),
            (b"1\n", false, true, Err(EINVAL)),
            (b"0\n", false, false, Err(EINVAL)),
            (b"-1\n", false, false, Err(EINVAL)),
            (b"x\n", false, false, Err(EINVAL)),
            (b"1x\n", false, false, Err(EINVAL)),
            (b" 1\n", false, false, Err(EINVAL)),
            (b"+\n", false, false, Err(EINVAL)),
            (b"\n\n", false, false, Err(EINVAL)),
            (b"1", false, false, Err(EINVAL)),
            (b"\n", false, false, Err(EINVAL)),
            (b"", false, false, Err(EINVAL)),
            (b"12", false, false, Err(EINVAL)),
            (
                b"18446744073709551615\n",
                false,
                false,
                Ok(DeleteFirst(usize::MAX)),
            ),
            (b"18446744073709551616\n", false, false, Err(ERANGE)),
            (b"99999999999999999999\n", false, false, Err(ERANGE)),
            (b"000000000000000000001\n", false, false, Err(EINVAL)),
            (b"00000000000000000001\n", false, false, Ok(DeleteFirst(1))),
            // A number ends at a NUL, as C's string parsing has it.
            (b"1\0\n", false, false, Ok(DeleteFirst(1))),
            (b"12\0x\n", false, false, Ok(DeleteFirst(12))),
            (b"1\n\0\n", false, false, Ok(DeleteFirst(1))),
            (b"\0\n", false, false, Err(EINVAL)),
            (b"\x001\n", false, false, Err(EINVAL)),
            (b"A\0\n", true, false, Err(EINVAL)),
            (b"1\0\n", true, false, Err(EINVAL)),
        ];
        for (bytes, staged, flush, want) in table {
            assert_eq!(&parse(bytes, *staged, *flush), want);
        }
    }
}
