//! `jarvis mine logs [-n N] [-f]`: the miner container's log, secrets redacted.

use super::session::open_docker;
use super::{CliError, CliResult, exit};
use crate::host::LABEL_HOME;
use crate::host::containers::redactor_for;
use crate::paths::Paths;
use crate::session::sidecar;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct LogsArgs {
    /// Lines from the end of the log (as `-n` in `audit`).
    #[arg(
        short = 'n',
        long = "tail",
        visible_alias = "lines",
        value_name = "N",
        default_value_t = 200
    )]
    tail: usize,
    /// Keep printing new lines until the container stops (or Ctrl-C).
    #[arg(short, long)]
    follow: bool,
}

pub fn run(args: &LogsArgs) -> CliResult {
    let paths = Paths::from_env().map_err(|err| CliError::failure(err.to_string()))?;
    let docker = open_docker()?;
    // The session's container, else the newest container the host created
    // (a failed session's container is kept for exactly this).
    let from_sidecar = sidecar::read(&paths.sidecar())
        .ok()
        .flatten()
        .map(|r| r.container_id);
    let id = match from_sidecar {
        Some(id) => id,
        None => docker
            .list_labelled(LABEL_HOME, Some(&paths.home().display().to_string()))
            .map_err(|err| CliError::failure(err.to_string()))?
            .into_iter()
            .max_by_key(|c| c.created)
            .map(|c| c.id)
            .ok_or_else(|| {
                CliError::failure("no mining container: start one with `jarvis mine start`")
            })?,
    };
    let state = docker
        .inspect(&id)
        .map_err(|err| CliError::failure(err.to_string()))?
        .ok_or_else(|| CliError::failure(format!("no mining container: {id} no longer exists")))?;
    let redactor = redactor_for(&state.labels);
    // Container output may hold anything: the escaping writer shows it.
    let mut out = super::output::stdout();
    let mut print = |line: &str| writeln!(out, "{}", redactor.redact(line)).is_ok();
    let result = if args.follow {
        docker.follow_logs(&id, args.tail, &mut print)
    } else {
        docker.logs(&id, args.tail).map(|lines| {
            for line in &lines {
                if !print(line) {
                    break;
                }
            }
        })
    };
    result.map_err(|err| CliError {
        code: exit::DOCKER_UNAVAILABLE,
        message: err.to_string(),
    })?;
    Ok(ExitCode::SUCCESS)
}
