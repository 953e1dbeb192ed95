//! `jarvis mine stop`: container and sidecar gone.

use super::CliResult;
use super::output::{eprintln, println};
use super::session::{mine_error, open};
use crate::sandbox::SandboxLimits;
use std::process::ExitCode;

pub fn run(limits: SandboxLimits) -> CliResult {
    let opened = open(limits)?;
    if opened.config.mining.is_none() && !opened.paths.sidecar().exists() {
        println!("no [mining] section - nothing to stop");
        return Ok(ExitCode::SUCCESS);
    }
    let report = opened.miner().stop().map_err(mine_error)?;
    for repair in &report.repairs {
        eprintln!("note: {repair}");
    }
    println!(
        "{}",
        if report.stopped {
            "Mining stopped."
        } else {
            "Nothing was running."
        }
    );
    Ok(ExitCode::SUCCESS)
}
