//! ima-keeper: keeps the IMA measurement records that the kernel exports and
//! deletes, so that `archive ++ live list` is always every record since boot,
//! in order, once, and replays to PCR 10.
//!
//! Layers, bottom up:
//! - [`record`]: the binary measurement list format, one bank or both zipped;
//!   [`ascii`] renders records like `ascii_runtime_measurements`;
//!   [`replay`] extends PCR 10 from records and holds TPM readings.
//! - [`archive`]: the durable, checksummed, append-only archive directory.
//! - [`kernel`]: what the keeper needs from the kernel, as a trait;
//!   [`securityfs`] implements it on `/sys/kernel/security/ima`.
//! - [`reconcile`]: how much of the live list the archive already holds.
//! - [`export`]: the two export flavours (delete-N and stage), crash-safe;
//!   [`pause`] stops one at a chosen step for tests.
//! - [`full_log`]: archive ++ live for `cat`, `verify` and `status`.
//! - [`status`]: the small file that remembers the last export.
//! - [`view`]: archive ++ live as files for agents, over FUSE.

pub mod archive;
pub mod ascii;
pub mod export;
pub mod full_log;
pub mod kernel;
pub mod pause;
pub mod reconcile;
pub mod record;
pub mod replay;
pub mod securityfs;
pub mod status;
pub mod view;

#[cfg(test)]
mod fake_kernel;
#[cfg(test)]
mod testdata;

/// Prints one line about something the operator should know (a retry, a
/// recovery, an unverified choice) on stderr.
pub fn notice(message: &str) {
    eprintln!("ima-keeper: {message}");
}
