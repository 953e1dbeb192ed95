//! `jarvis mine start`: checks first (nothing is touched when one fails),
//! then the provider's sandboxed `start` under the session lock.

use super::escape::one_line;
use super::output::{GOOD, eprintln, paint, println};
use super::session::{mine_error, open};
use super::{CliError, CliResult, exit};
use crate::config::MiningConfig;
use crate::docker::ImageProgress;
use crate::doctor::check_address;
use crate::sandbox::SandboxLimits;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

pub fn run(limits: SandboxLimits) -> CliResult {
    let opened = open(limits)?;
    let mining = opened.config.mining.as_ref().ok_or_else(|| {
        CliError::invalid_input("no [mining] section in config - run `jarvis mine init`")
    })?;
    preflight(mining)?;
    if let Err(err) = &opened.docker {
        return Err(CliError {
            code: exit::DOCKER_UNAVAILABLE,
            message: format!("Docker unavailable: {err}"),
        });
    }
    let report = opened.miner().start(progress_sink()).map_err(mine_error)?;
    for repair in &report.repairs {
        eprintln!("note: {repair}");
    }
    let endpoint = report
        .session
        .as_ref()
        .map(|s| s.vllm_endpoint.clone())
        .unwrap_or_default();
    if report.already_running {
        println!(
            "{} is already running ({endpoint}). Run `jarvis mine status` for live stats.",
            mining.provider
        );
    } else {
        println!(
            "{} {} ({endpoint}). Run `jarvis mine status` for live stats.",
            paint(GOOD, "Started"),
            mining.provider
        );
    }
    Ok(ExitCode::SUCCESS)
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
