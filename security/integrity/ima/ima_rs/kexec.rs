// SPDX-License-Identifier: GPL-2.0

//! The measurement lists in the kexec buffer.
//!
//! The next kernel restores its measurement list from a buffer that this one
//! fills when it kexecs: a header (the C `struct ima_kexec_hdr`), then every
//! record in the format of `binary_runtime_measurements`, the staged records
//! first and the current ones after them. The carried list is then the
//! measurement history in order, and it still replays to the PCRs.
//!
//! C formats each record (`ima_measurements_show()`, which also applies
//! `ima_canonical_fmt` to the record's fields); the header is written here.

use crate::{entry::RecordData, queue::State};
use core::mem::MaybeUninit;
use kernel::prelude::*;

extern "C" {
    /// Writes `record` in the binary format to the `len` bytes at `buf`
    /// (`glue.c`). Returns the bytes written, or a negative errno if the
    /// record does not fit.
    fn ima_rs_record_to_binary(record: *const RecordData, buf: *mut u8, len: usize) -> isize;
}

/// Size of the header: version (u16), two reserved fields (u16, u32), the
/// buffer's size in bytes (u64) and its number of records (u64).
pub(crate) const HEADER_LEN: usize = 24;

/// Version of the buffer format.
const VERSION: u16 = 1;

/// The header of a buffer of `len` bytes holding `count` records, in little
/// endian order if `canonical`, in the CPU's order otherwise.
fn header(len: usize, count: u64, canonical: bool) -> [u8; HEADER_LEN] {
    let len = len as u64;
    let (version, len, count) = if canonical {
        (
            VERSION.to_le_bytes(),
            len.to_le_bytes(),
            count.to_le_bytes(),
        )
    } else {
        (
            VERSION.to_ne_bytes(),
            len.to_ne_bytes(),
            count.to_ne_bytes(),
        )
    };
    let mut header = [0; HEADER_LEN];
    header[0..2].copy_from_slice(&version);
    header[8..16].copy_from_slice(&len);
    header[16..24].copy_from_slice(&count);
    header
}

/// A buffer being filled with whole records, behind the room for its header.
///
/// # Invariants
///
/// The first `len` bytes of `buf` are initialised.
struct Writer<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    len: usize,
    count: u64,
}

impl Writer<'_> {
    /// Appends `record`, or fails with `EINVAL` if it does not fit.
    fn put(&mut self, record: &RecordData) -> Result {
        let room = self.buf.get_mut(self.len..).ok_or(EINVAL)?;
        // SAFETY: `record` is a valid record, and `room` is valid for writes
        // of `room.len()` bytes, which C writes without reading them.
        let written =
            unsafe { ima_rs_record_to_binary(record, room.as_mut_ptr().cast::<u8>(), room.len()) };
        // INVARIANT: C wrote `written` bytes behind the first `len`.
        self.len += usize::try_from(written).map_err(|_| EINVAL)?;
        self.count += 1;
        Ok(())
    }
}

/// Fills `buf` with the header and the records of `state`: the staged ones,
/// then the current ones. Returns the bytes used, which are initialised,
/// and whether every record fit; if not (`EINVAL`), the buffer holds the
/// records that did, whole and counted in its header. As for any seq_file,
/// C writes a record only if a byte is left free behind it, so `buf` must
/// be longer than the header and the records' binary sizes.
pub(crate) fn serialize(
    state: &State,
    buf: &mut [MaybeUninit<u8>],
    canonical: bool,
) -> (usize, Result) {
    if buf.len() < HEADER_LEN {
        return (0, Err(EINVAL));
    }
    let mut writer = Writer {
        buf,
        len: HEADER_LEN,
        count: 0,
    };
    let result = state.with_lists(|staged, current, rcu| {
        for list in [staged, current] {
            for record in list.iter(rcu) {
                writer.put(record)?;
            }
        }
        Ok(())
    });
    let header = header(writer.len, writer.count, canonical);
    for (byte, value) in writer.buf.iter_mut().zip(header) {
        byte.write(value);
    }
    (writer.len, result)
}

#[kunit_tests(ima_rs_kexec)]
mod tests {
    use super::*;
    use crate::testing::{add, add_record, binary_size, new_state, SIZE};

    /// Serializes `state` into a buffer of `len` bytes that starts out
    /// uninitialised, as the kexec buffer does; returns the bytes used, as a
    /// vector of that length, and the result.
    fn serialized(state: &State, len: usize, canonical: bool) -> Result<(KVec<u8>, Result)> {
        let mut buf = KVec::<u8>::with_capacity(len, GFP_KERNEL)?;
        let (used, result) = serialize(state, &mut buf.spare_capacity_mut()[..len], canonical);
        // SAFETY: `serialize` initialised the first `used` bytes.
        unsafe { buf.inc_len(used) };
        Ok((buf, result))
    }

    /// The records' bytes and the header's, for `state` as it stands.
    fn records_size(state: &State) -> usize {
        HEADER_LEN + state.staged().binary_size() + state.current().binary_size()
    }

    /// The binary form of a test record, built from the format's definition
    /// rather than by C: PCR, SHA-1 template digest, template name length and
    /// name, template data length, then the ima-ng fields `d-ng` (`data_len`
    /// zero bytes) and `n-ng` (empty), each as its length and its data. UML
    /// and x86 are little endian, so this is also the canonical format.
    fn expected_record(out: &mut KVec<u8>, pcr: u32, fill: u8, data_len: u32) -> Result {
        out.extend_from_slice(&pcr.to_le_bytes(), GFP_KERNEL)?;
        out.extend_from_slice(&[fill; 20], GFP_KERNEL)?;
        out.extend_from_slice(&6u32.to_le_bytes(), GFP_KERNEL)?;
        out.extend_from_slice(b"ima-ng", GFP_KERNEL)?;
        out.extend_from_slice(&(data_len + 8).to_le_bytes(), GFP_KERNEL)?;
        out.extend_from_slice(&data_len.to_le_bytes(), GFP_KERNEL)?;
        for _ in 0..data_len {
            out.push(0, GFP_KERNEL)?;
        }
        out.extend_from_slice(&0u32.to_le_bytes(), GFP_KERNEL)?;
        Ok(())
    }

    #[test]
    fn staged_then_current_byte_exact() -> Result {
        let state = new_state()?;
        assert!(add_record(&state, 10, 1, 3, false)?);
        assert!(add_record(&state, 11, 2, 0, false)?);
        assert_eq!(state.stage(), Ok(()));
        assert!(add_record(&state, 10, 3, 5, false)?);
        // The reboot notifier suspends measurement before the dump.
        state.suspend();

        let mut expected = KVec::new();
        expected.extend_from_slice(&[0; HEADER_LEN], GFP_KERNEL)?;
        expected_record(&mut expected, 10, 1, 3)?;
        expected_record(&mut expected, 11, 2, 0)?;
        expected_record(&mut expected, 10, 3, 5)?;
        let len = expected.len();
        expected[0..2].copy_from_slice(&1u16.to_le_bytes());
        expected[8..16].copy_from_slice(&(len as u64).to_le_bytes());
        expected[16..24].copy_from_slice(&3u64.to_le_bytes());

        for canonical in [false, true] {
            let (buf, result) = serialized(&state, 4096, canonical)?;
            assert_eq!(result, Ok(()));
            assert_eq!(&buf[..], &expected[..]);
        }
        Ok(())
    }

    /// The records' binary sizes, which size the kexec segment (with the
    /// header), are what serializing them takes.
    #[test]
    fn size_accounts_for_every_record() -> Result {
        let state = new_state()?;
        let used = |state: &State| -> Result<usize> {
            let (buf, result) = serialized(state, records_size(state) + 1, false)?;
            result.map(|()| buf.len())
        };
        assert_eq!(records_size(&state), HEADER_LEN);
        assert_eq!(used(&state)?, HEADER_LEN);
        for fill in 1..=4u8 {
            assert!(add_record(&state, 10, fill, u32::from(fill), false)?);
        }
        let four = (1..=4).map(binary_size).sum::<usize>();
        assert_eq!(records_size(&state), HEADER_LEN + four);
        assert_eq!(used(&state)?, HEADER_LEN + four);
        assert_eq!(state.stage(), Ok(()));
        assert!(add(&state, 10, 5, false)?);
        assert_eq!(records_size(&state), HEADER_LEN + four + SIZE);
        assert_eq!(used(&state)?, HEADER_LEN + four + SIZE);
        assert_eq!(state.delete_current_front(1), Ok(()));
        assert_eq!(used(&state)?, HEADER_LEN + four);
        assert_eq!(state.delete_staged(false), Ok(()));
        assert_eq!(used(&state)?, HEADER_LEN);
        assert_eq!(records_size(&state), HEADER_LEN);
        Ok(())
    }

    #[test]
    fn too_small_keeps_whole_records() -> Result {
        let state = new_state()?;
        for fill in 1..=3u8 {
            assert!(add(&state, 10, fill, false)?);
        }
        // Room for the header, one record and part of the next.
        let (buf, result) = serialized(&state, HEADER_LEN + SIZE + SIZE / 2, false)?;
        assert_eq!(result, Err(EINVAL));
        assert_eq!(buf.len(), HEADER_LEN + SIZE);
        assert_eq!(&buf[8..16], &((HEADER_LEN + SIZE) as u64).to_ne_bytes());
        assert_eq!(&buf[16..24], &1u64.to_ne_bytes());
        let (buf, result) = serialized(&state, HEADER_LEN - 1, false)?;
        assert_eq!((buf.len(), result), (0, Err(EINVAL)));
        assert_eq!(state.current().len(), 3);
        Ok(())
    }
}
