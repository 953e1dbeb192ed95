//! `jarvis mine start`: checks first (nothing is touched when one fails),
//! then the provider's sandboxed `start` under the session lock, then a
//! bounded wait until the miner's vLLM answers.

use super::escape::one_line;
use super::output::{GOOD, eprintln, paint, println};
use super::session::{mine_error, open};
use super::{CliError, CliResult, exit};
use crate::config::MiningConfig;
use crate::docker::ImageProgress;
use crate::doctor::check_address;
use crate::host::dry_run::Plan;
use crate::lifecycle::{StartOptions, Waiting};
use crate::sandbox::SandboxLimits;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// `[mining.extra].start_wait_seconds` when not set: loading a large model
/// into vLLM (and a first download into the Hugging Face cache) takes
/// minutes.
pub const DEFAULT_START_WAIT_SECONDS: i64 = 1800;
/// The largest wait accepted (a day).
const MAX_START_WAIT_SECONDS: i64 = 86_400;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine start
  PEARLD_RPC_PASSWORD=... HF_TOKEN=... jarvis mine start   # HF_TOKEN for gated models
  jarvis mine start --no-wait                              # return once the container runs
  jarvis mine start --dry-run                              # the containers it would create, nothing done
  jarvis mine start --dry-run --json --facts h100x8.json   # the plan for another host's GPUs")]
pub struct StartArgs {
    /// Print the plan (containers, images, devices, env names, ports, mounts) and change nothing.
    #[arg(long, conflicts_with_all = ["wait", "no_wait"])]
    dry_run: bool,
    /// With --dry-run: print the plan as one JSON object.
    #[arg(long, requires = "dry_run")]
    json: bool,
    /// With --dry-run: plan for the GPUs of this facts file (as `doctor --facts`).
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    facts: Option<std::path::PathBuf>,
    /// Wait up to SECONDS for vLLM to answer (default [mining.extra].start_wait_seconds, else 1800).
    #[arg(long, value_name = "SECONDS", conflicts_with = "no_wait",
          value_parser = clap::value_parser!(u64).range(1..=MAX_START_WAIT_SECONDS as u64))]
    wait: Option<u64>,
    /// Return as soon as the miner is started, without waiting for vLLM.
    #[arg(long)]
    no_wait: bool,
}

pub fn run(args: &StartArgs, limits: SandboxLimits) -> CliResult {
    let opened = open(limits)?;
    let mining = opened.config.mining.as_ref().ok_or_else(|| {
        CliError::invalid_input("no [mining] section in config - run `jarvis mine init`")
    })?;
    preflight(mining)?;
    if args.dry_run {
        let facts = args
            .facts
            .as_deref()
            .map(super::doctor::load_facts)
            .transpose()?;
        if let Err(err) = &opened.docker {
            return Err(CliError {
                code: exit::DOCKER_UNAVAILABLE,
                message: format!("Docker unavailable: {err}"),
            });
        }
        let plan = opened.miner().dry_run(facts.as_ref()).map_err(mine_error)?;
        return super::output::print(args.json, &plan, write_plan).map(|()| ExitCode::SUCCESS);
    }
    let ready_wait = match (args.no_wait, args.wait) {
        (true, _) => None,
        (false, Some(seconds)) => Some(Duration::from_secs(seconds)),
        (false, None) => ready_wait(mining)?,
    };
    let processes = opened
        .registry
        .get(&mining.provider)
        .is_some_and(crate::lifecycle::runs_processes);
    if let (false, Err(err)) = (processes, &opened.docker) {
        return Err(CliError {
            code: exit::DOCKER_UNAVAILABLE,
            message: format!("Docker unavailable: {err}"),
        });
    }
    let options = StartOptions {
        image_progress: progress_sink(),
        ready_wait,
        on_wait: wait_sink(),
    };
    let report = match opened.miner().start(options) {
        Ok(report) => report,
        Err(failure) => {
            for repair in &failure.repairs {
                eprintln!("note: {repair}");
            }
            for line in failure.cleanup.lines() {
                eprintln!("{line}");
            }
            let failure = *failure;
            return Err(mine_error(failure.error));
        }
    };
    for repair in &report.repairs {
        eprintln!("note: {repair}");
    }
    let endpoint = match (&report.session, &report.process_session) {
        (Some(session), _) => session.vllm_endpoint.clone(),
        (None, Some(session)) => format!(
            "gateway {}, pids {} and {}",
            session.gateway_url, session.gateway_pid, session.miner_loop_pid
        ),
        (None, None) => String::new(),
    };
    if report.already_running {
        println!(
            "{} is already running ({endpoint}). Run `jarvis mine status` for live stats.",
            mining.provider
        );
    } else if report.waited || processes {
        println!(
            "{} {} ({endpoint}). Run `jarvis mine status` for live stats.",
            paint(GOOD, "Started"),
            mining.provider
        );
    } else {
        println!(
            "{} {} ({endpoint}), without waiting for vLLM to answer \
             (--no-wait, or [mining.extra].start_wait_seconds = 0). Run `jarvis mine status` to see it come up.",
            paint(GOOD, "Started"),
            mining.provider
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The dry run's plan, one block per container.
fn write_plan(out: &mut impl std::io::Write, plan: &Plan) -> std::io::Result<()> {
    writeln!(
        out,
        "Dry run: nothing was created. `jarvis mine start` would create {} container{}:",
        plan.containers.len(),
        if plan.containers.len() == 1 { "" } else { "s" }
    )?;
    for container in &plan.containers {
        let devices = match container.device_ids.as_slice() {
            [] => container.gpus.clone(),
            ids => format!("devices {}", ids.join(",")),
        };
        writeln!(out, "\n{}", one_line(&container.name))?;
        let rows = [
            ("image", container.image.clone()),
            ("args", container.args.join(" ")),
            ("gpus", devices),
            ("env", container.env.join(" ")),
            ("ports", join(&container.ports)),
            ("mounts", container.mounts.join(" ")),
            ("network", container.network.clone()),
            ("restart", container.restart.clone()),
        ];
        for (label, value) in rows {
            writeln!(out, "  {label:<8} {}", one_line(&value))?;
        }
    }
    if let Some(session) = &plan.session {
        writeln!(
            out,
            "\nsession record: {} (worker 0 of {})",
            one_line(&session.vllm_endpoint),
            session.workers.len().max(1)
        )?;
    }
    Ok(())
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `[mining.extra].start_wait_seconds`: how long `start` waits for vLLM
/// (`None` for 0: not at all).
pub(super) fn ready_wait(mining: &MiningConfig) -> Result<Option<Duration>, CliError> {
    let seconds = match mining.extra.get("start_wait_seconds") {
        None => DEFAULT_START_WAIT_SECONDS,
        Some(toml::Value::Integer(n)) if (0..=MAX_START_WAIT_SECONDS).contains(n) => *n,
        Some(other) => {
            return Err(CliError::invalid_input(format!(
                "[mining.extra].start_wait_seconds must be a whole number of seconds from 0 (do not wait) \
                 to {MAX_START_WAIT_SECONDS}, got {other}: fix it in the config"
            )));
        }
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds as u64)))
}

/// Readiness progress: a spinner with the time waited on a terminal, one
/// line otherwise.
pub(super) fn wait_sink() -> Box<dyn FnMut(&Waiting)> {
    if !std::io::stderr().is_terminal() {
        let mut said = false;
        return Box::new(move |wait| {
            if !said {
                said = true;
                eprintln!(
                    "waiting up to {} s for vLLM at {} to answer",
                    wait.limit.as_secs(),
                    wait.endpoint
                );
            }
        });
    }
    let spinner = ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear);
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg}").expect("valid progress template"),
    );
    Box::new(move |wait| {
        spinner.set_message(format!(
            "waiting for vLLM at {} ({} s of {} s)",
            wait.endpoint,
            wait.elapsed.as_secs(),
            wait.limit.as_secs()
        ));
        spinner.tick();
    })
}

/// The checks that need no Docker and no provider: wallet, model, password.
pub fn preflight(mining: &MiningConfig) -> Result<(), CliError> {
    check_address(&mining.wallet_address).map_err(|why| CliError {
        code: exit::INVALID_WALLET,
        message: format!("Invalid wallet address: {why}: fix [mining].wallet_address"),
    })?;
    let local = crate::config::extra_string(&mining.extra, "local_model_path")
        .ok()
        .flatten();
    let model = mining.model();
    if mining.provider == "vllm-pearl" && local.is_none() && pearl_catalog::find(&model).is_none() {
        return Err(CliError {
            code: exit::UNKNOWN_MODEL,
            message: format!(
                "unknown model '{model}': it is not in the Pearl model registry (see `jarvis mine models`); fix [mining.extra].model"
            ),
        });
    }
    let password_env = mining.pearld_password_env();
    if std::env::var_os(&password_env).is_none() {
        return Err(CliError {
            code: exit::MISSING_SECRET,
            message: format!(
                "environment variable '{password_env}' is not set; set it before running `jarvis mine start` (it holds the pearld RPC password)"
            ),
        });
    }
    Ok(())
}

/// Pull/build progress: bars per layer on a terminal, plain lines otherwise.
pub fn progress_sink() -> Box<dyn FnMut(ImageProgress) + Send> {
    if !std::io::stderr().is_terminal() {
        return Box::new(|event| match event {
            ImageProgress::Phase(text)
            | ImageProgress::Status(text)
            | ImageProgress::BuildLine(text) => {
                eprintln!("{text}")
            }
            ImageProgress::Layer { .. } | ImageProgress::Done(_) => {}
        });
    }
    let bars = MultiProgress::new();
    let mut layers: HashMap<String, ProgressBar> = HashMap::new();
    let style = ProgressStyle::with_template(
        "{prefix:>12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .expect("valid progress template");
    Box::new(move |event| match event {
        ImageProgress::Layer {
            id,
            status,
            current,
            total,
        } => {
            let bar = layers.entry(id.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(one_line(&id.chars().take(12).collect::<String>()).to_string());
                bar
            });
            if let Some(total) = total {
                bar.set_length(total);
            }
            if let Some(current) = current {
                bar.set_position(current);
            }
            // indicatif draws past the escaping writer: escape first.
            bar.set_message(one_line(&status).to_string());
        }
        ImageProgress::Phase(text)
        | ImageProgress::Status(text)
        | ImageProgress::BuildLine(text) => {
            let _ = bars.println(one_line(&text).to_string());
        }
        ImageProgress::Done(_) => {
            for bar in layers.values() {
                bar.finish();
            }
        }
    })
}
