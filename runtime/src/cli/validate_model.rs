//! `jarvis mine validate-model`: runtime evidence that the running miner
//! serves a Pearl model and mines with it (library: `model_check::validate`).

use super::inspect_model::{check_output_path, finish, write_artifact, write_report};
use super::session::paths;
use super::{CliError, CliResult};
use crate::model_check::validate::{self, Request};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine validate-model
  jarvis mine validate-model --model pearl-ai/Gemma-4-31B-it-pearl --allow-planned \\
      --prompt \"Say hello in one sentence.\" --output validate-gemma.json
  jarvis mine validate-model --vllm-endpoint http://127.0.0.1:8000/v1 \\
      --gateway-metrics-url http://127.0.0.1:8339")]
pub struct ValidateModelArgs {
    /// The model the miner should serve (default: the running session's, else the default
    /// Pearl model).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// The miner's OpenAI-compatible endpoint (default: the running session's), e.g.
    /// http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "URL")]
    vllm_endpoint: Option<String>,
    /// The gateway's metrics URL (default: the running session's); `/metrics` is added when
    /// missing.
    #[arg(long, value_name = "URL")]
    gateway_metrics_url: Option<String>,
    /// Let a planned (not yet validated) registry model pass the registry check.
    #[arg(long)]
    allow_planned: bool,
    /// Also ask the miner this prompt through /chat/completions.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Also write the result to FILE as JSON (schema_version 1), even when a check fails.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Longest the /models and chat requests may take, in seconds (or e.g. 500ms).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = super::parse_duration)]
    timeout: Duration,
}

pub fn run(args: &ValidateModelArgs) -> CliResult {
    check_output_path(args.output.as_deref())?;
    let paths = paths()?;
    let request = Request {
        model: args.model.clone().filter(|m| !m.trim().is_empty()),
        vllm_endpoint: args.vllm_endpoint.clone(),
        gateway_metrics_url: args.gateway_metrics_url.clone(),
        allow_planned: args.allow_planned,
        prompt: args.prompt.clone(),
        timeout: args.timeout,
        sidecar_path: paths.sidecar(),
    };
    let validation = validate::validate(&request, &validate::docker_logs)
        .map_err(|err| CliError::invalid_input(err.to_string()))?;
    write_report(
        "Pearl Model Validation",
        &validation.model,
        &validation.lines,
    )?;
    if let Some(path) = &args.output {
        write_artifact(path, &validation.artifact(), "Validation")?;
    }
    finish(
        validation.passed(),
        validation.registry.not_a_pearl_model(&validation.model),
        "Validation checks passed.",
        "Pearl model validation checks failed.",
    )
}
