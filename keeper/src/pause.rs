//! A test hook: with `IMA_KEEPER_PAUSE_AT=STEP` in its environment, the
//! keeper stops for good when an export on the real kernel reaches STEP, a
//! point between two steps of the export ([`Step`]: `read`, `append`,
//! `durable`, `stage`), after one line on stderr, so that a test can kill it
//! exactly there (guest/keeper.sh does). Unset, it does nothing. The unit
//! tests' fake kernel fails at the same points instead.

use std::ffi::OsStr;
use std::thread;

use anyhow::{anyhow, Result};

use crate::kernel::Step;
use crate::notice;

/// The hook's environment variable.
pub const PAUSE_AT: &str = "IMA_KEEPER_PAUSE_AT";

/// The name of `step` in [`PAUSE_AT`].
fn name(step: Step) -> &'static str {
    match step {
        Step::Read => "read",
        Step::Append => "append",
        Step::Durable => "durable",
        Step::Stage => "stage",
    }
}

/// The step that a value of [`PAUSE_AT`] names; `None` if it is unset.
fn requested(value: Option<&OsStr>) -> Result<Option<Step>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match Step::ALL.into_iter().find(|&step| value == name(step)) {
        Some(step) => Ok(Some(step)),
        None => Err(anyhow!(
            "{PAUSE_AT}={}: not one of {}",
            value.to_string_lossy(),
            Step::ALL.map(name).join(", ")
        )),
    }
}

/// Called at `step` of an export: waits until killed if [`PAUSE_AT`] names
/// `step`; fails if it names no step.
pub fn pause_if_asked(step: Step) -> Result<()> {
    if requested(std::env::var_os(PAUSE_AT).as_deref())? == Some(step) {
        notice(&format!("paused at {} ({PAUSE_AT})", name(step)));
        loop {
            thread::park();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_by_its_name() {
        assert_eq!(requested(None).unwrap(), None);
        for step in Step::ALL {
            assert_eq!(requested(Some(OsStr::new(name(step)))).unwrap(), Some(step));
        }
        let err = requested(Some(OsStr::new("fsync"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IMA_KEEPER_PAUSE_AT=fsync: not one of read, append, durable, stage"
        );
    }
}
