//! `jarvis mine stop`: the provider stops its session, then the host
//! removes whatever is left and says what it removed.

use super::CliResult;
use super::output::{eprintln, println};
use super::session::{mine_error, open_tolerant};
use crate::sandbox::SandboxLimits;
use std::process::ExitCode;

pub fn run(limits: SandboxLimits) -> CliResult {
    let opened = open_tolerant(limits)?;
    if opened.config.mining.is_none()
        && opened.config_error.is_none()
        && !opened.paths.sidecar().exists()
    {
        println!("no [mining] section - nothing to stop");
        return Ok(ExitCode::SUCCESS);
    }
    let report = opened.miner().stop().map_err(mine_error)?;
    for repair in &report.repairs {
        eprintln!("note: {repair}");
    }
    for line in report.cleanup.lines() {
        println!("{line}");
    }
    if let Some(failure) = report.provider_failure {
        // The provider's failure is still the command's result.
        let mut error = mine_error(failure);
        let after = if report.cleanup.removed.is_empty() && report.cleanup.stopped.is_empty() {
            "nothing of the session was left for the host to remove"
        } else {
            "the host removed what the session left running (listed above)"
        };
        error.message = format!("{}\n{after}", error.message);
        return Err(error);
    }
    if let Some(endpoint) = &report.forgot_attached {
        println!("Forgot the attached miner at {endpoint} (it keeps running).");
    } else {
        println!(
            "{}",
            if report.stopped {
                "Mining stopped."
            } else {
                "Nothing was running."
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
