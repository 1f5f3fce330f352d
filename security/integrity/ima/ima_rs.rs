// SPDX-License-Identifier: GPL-2.0

//! Rust implementation of the IMA measurement list.
//!
//! Selected with `CONFIG_IMA_STAGING_RUST`. The C side of IMA keeps the LSM
//! hooks, template formatting, the TPM extend and securityfs; it calls into
//! this crate through the `extern "C"` functions declared in `ima.h`.

use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};

/// Prefix of this crate's log messages, as `pr_fmt` gives the C files.
const __LOG_PREFIX: &[u8] = b"ima\0";

/// Set once [`ima_rs_init`] has run.
static INITIALISED: Atomic<bool> = Atomic::new(false);

/// Sets up the Rust side of IMA. Called once from `ima_init()`, before the
/// first measurement is recorded.
///
/// Returns 0 (the C convention for success).
#[no_mangle]
pub extern "C" fn ima_rs_init() -> c_int {
    INITIALISED.store(true, Relaxed);
    pr_info!("Rust measurement list selected\n");
    0
}

#[kunit_tests(ima_rs)]
mod tests {
    use super::*;

    /// IMA initialises before KUnit runs, so the C call has happened.
    #[test]
    fn init_called_from_c() {
        assert!(INITIALISED.load(Relaxed));
    }
}
