//! `jarvis mine logs [-n N] [-f]`: the miner container's log, secrets
//! redacted; for a session of host processes (cpu-pearl, apple-mps-pearl),
//! each process's log under `<home>/logs/mining/`.

use super::session::open_docker;
use super::{CliError, CliResult, exit};
use crate::host::LABEL_HOME;
use crate::host::containers::redactor_for;
use crate::paths::Paths;
use crate::process;
use crate::redact::Redactor;
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
    if let Some(logs) = process_logs(&paths)? {
        return print_process_logs(&paths, &logs, args);
    }
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

/// The logs of the processes the host started: the recorded ones, else
/// (after `stop`) every log the host wrote under `<home>/logs/mining/`,
/// each with the secret names to redact.
/// A process log's file name, and the variables whose values it is redacted of.
struct ProcessLog {
    name: String,
    secrets: Vec<String>,
}

fn process_logs(paths: &Paths) -> Result<Option<Vec<ProcessLog>>, CliError> {
    let records = process::table::read(&paths.process_table()).map_err(CliError::failure)?;
    if !records.is_empty() {
        return Ok(Some(
            records
                .into_iter()
                .map(|r| ProcessLog {
                    name: r.log,
                    secrets: r.secrets,
                })
                .collect(),
        ));
    }
    if sidecar::read(&paths.sidecar()).is_ok_and(|r| r.is_some()) {
        return Ok(None);
    }
    let Ok(entries) = paths.mining_logs().read_dir() else {
        return Ok(None);
    };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|e| e.file_type.is_file())
        .filter_map(|e| e.name.into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    Ok((!names.is_empty()).then(|| {
        names
            .into_iter()
            .map(|name| ProcessLog {
                name,
                secrets: DEFAULT_SECRETS.map(String::from).to_vec(),
            })
            .collect()
    }))
}

/// Secrets a process log is redacted of when its record is gone.
const DEFAULT_SECRETS: [&str; 2] = ["PEARLD_RPC_PASSWORD", "HF_TOKEN"];

fn print_process_logs(paths: &Paths, logs: &[ProcessLog], args: &LogsArgs) -> CliResult {
    if args.follow {
        let files: Vec<String> = logs
            .iter()
            .map(|log| process::logs::path(paths, &log.name).to_string())
            .collect();
        return Err(CliError::invalid_input(format!(
            "--follow reads container logs; follow these process logs with `tail -f {}`",
            files.join(" ")
        )));
    }
    let mut out = super::output::stdout();
    for log in logs {
        let redactor = Redactor::for_variables(log.secrets.iter().map(String::as_str));
        let path = process::logs::path(paths, &log.name);
        let lines = process::logs::tail(&path, args.tail, &redactor)
            .map_err(|err| CliError::failure(format!("cannot read {path}: {err}")))?;
        let written = writeln!(out, "==> {path} <==")
            .and_then(|()| lines.iter().try_for_each(|line| writeln!(out, "{line}")));
        if written.is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
