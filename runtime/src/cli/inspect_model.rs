//! `jarvis mine inspect-model`: is a Pearl artifact complete, before any
//! GPU time is spent on it? (library: `model_check::inspect`)

use super::output::{BAD, GOOD, HEADING, paint, println};
use super::{CliError, CliResult, exit, output_error};
use crate::model_check::hf_api::{self, Hub};
use crate::model_check::http::Secret;
use crate::model_check::inspect::{self, ModelSource};
use crate::model_check::{Check, Line, report};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine inspect-model
  jarvis mine inspect-model --model pearl-ai/Gemma-4-31B-it-pearl --allow-planned
  jarvis mine inspect-model --model ./staging/gemma-4-31b-pearl --output inspect.json
  HF_ENDPOINT=https://hf-mirror.example jarvis mine inspect-model --hf-token-env MY_HF_TOKEN")]
pub struct InspectModelArgs {
    /// A model id on Hugging Face (the API at $HF_ENDPOINT, else https://huggingface.co), or a
    /// local model directory: an existing path is inspected locally.
    #[arg(long, value_name = "ID|DIR", default_value = pearl_catalog::DEFAULT_PEARL_MODEL)]
    model: String,
    /// Let a planned (not yet validated) registry model pass the registry check.
    #[arg(long)]
    allow_planned: bool,
    /// The environment variable holding a Hugging Face token for gated or private models (sent
    /// only to the Hub; never printed or recorded).
    #[arg(long, value_name = "ENV", default_value = hf_api::DEFAULT_TOKEN_ENV)]
    hf_token_env: String,
    /// Also write the result to FILE as JSON (schema_version 1), even when a check fails.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Longest each Hugging Face request may take, in seconds (or e.g. 500ms).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = super::parse_duration)]
    timeout: Duration,
}

pub fn run(args: &InspectModelArgs) -> CliResult {
    check_output_path(args.output.as_deref())?;
    if args.hf_token_env.is_empty() || args.hf_token_env.contains(['=', '\0']) {
        return Err(CliError::invalid_input(format!(
            "--hf-token-env '{}' is not an environment variable name",
            args.hf_token_env
        )));
    }
    let source = inspect::model_source(&args.model)
        .map_err(|err| CliError::invalid_input(err.to_string()))?;
    let inspection = match &source {
        ModelSource::Local(dir) => {
            inspect::local(dir, &args.model, args.allow_planned, &args.hf_token_env)
        }
        ModelSource::Hub(id) => {
            let token = std::env::var(&args.hf_token_env)
                .ok()
                .filter(|token| !token.is_empty())
                .map(Secret::new);
            let endpoint = std::env::var(hf_api::ENDPOINT_ENV).ok();
            let hub = Hub::new(endpoint.as_deref(), token, &args.hf_token_env, args.timeout)
                .map_err(CliError::invalid_input)?;
            inspect::hub(&hub, id, args.allow_planned, &args.hf_token_env)
        }
    };
    let lines: Vec<Line> = inspection.checks.iter().cloned().map(Line::Check).collect();
    write_report("Pearl Model Inspection", &inspection.model, &lines)?;
    if let Some(path) = &args.output {
        write_artifact(path, &inspection.artifact(), "Inspection")?;
    }
    finish(
        inspection.passed(),
        inspection.registry.not_a_pearl_model(&inspection.model),
        "Artifact inspection passed.",
        "Pearl model artifact inspection failed.",
    )
}

/// An `--output` that is a directory is refused before any work is done.
pub(super) fn check_output_path(output: Option<&Path>) -> Result<(), CliError> {
    match output {
        Some(path) if path.is_dir() => Err(CliError::invalid_input(format!(
            "--output {} is a directory: give a file path, e.g. {}",
            path.display(),
            path.join("artifact.json").display()
        ))),
        _ => Ok(()),
    }
}

/// The heading, the `model:` line, then one row per line: two spaces, the
/// name in 22 columns, the info in 45, then `OK` or `FAIL` (a note has none).
pub(super) fn write_report(heading: &str, model: &str, lines: &[Line]) -> Result<(), CliError> {
    let mut out = super::output::stdout();
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{}", paint(HEADING, heading))?;
        writeln!(out, "{:<20}{model}", "model:")?;
        for line in lines {
            match line {
                Line::Check(Check { name, ok, info }) => {
                    let status = if *ok {
                        paint(GOOD, "OK")
                    } else {
                        paint(BAD, "FAIL")
                    };
                    writeln!(out, "  {name:<22} {info:<45} {status}")?;
                }
                Line::Note { name, info } => writeln!(out, "  {name:<22} {info}")?,
            }
        }
        Ok(())
    };
    write().map_err(output_error)
}

/// Writes the artifact (atomically) and says where.
pub(super) fn write_artifact(path: &Path, text: &str, what: &str) -> Result<(), CliError> {
    report::write_artifact(path, text).map_err(|err| {
        CliError::failure(format!(
            "cannot write the {} artifact to {}: {err}",
            what.to_lowercase(),
            path.display()
        ))
    })?;
    println!("{what} artifact written to {}", path.display());
    Ok(())
}

/// Exit 0 with `passed`; else exit 5 when the model is not a Pearl model
/// the registry knows, and 1 for any other failed check.
pub(super) fn finish(
    passed: bool,
    not_a_pearl_model: Option<String>,
    passed_text: &str,
    failed_text: &str,
) -> CliResult {
    if passed {
        println!("{passed_text}");
        return Ok(ExitCode::SUCCESS);
    }
    Err(match not_a_pearl_model {
        Some(reason) => CliError {
            code: exit::UNKNOWN_MODEL,
            message: format!("{failed_text} {reason}"),
        },
        None => CliError::failure(failed_text),
    })
}
