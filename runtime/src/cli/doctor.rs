//! `jarvis mine doctor`: gather facts, run every provider's sandboxed
//! `detect`, print one row per check.

use super::escape::one_line;
use super::output::{BAD, DIM, GOOD, HEADING, paint};
use super::session::{paths_and_config, sandbox_and_registry};
use super::{CliError, CliResult, exit};
use crate::doctor::{self, Check, DoctorInput, DoctorReport, SECTIONS};
use crate::sandbox::SandboxLimits;
use clap::Args;
use host_gpu::HardwareFacts;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct DoctorArgs {
    /// Print one JSON object (`checks`, `providers`) instead of rows.
    #[arg(long)]
    json: bool,
    /// Use hardware facts from this JSON file instead of probing this host
    /// (see docs/facts.md); for what-if checks such as "would an 8×H200 box do?".
    #[arg(long, value_name = "FILE")]
    facts: Option<PathBuf>,
    /// Model to check (default: [mining.extra].model, else the default Pearl model).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// Inference engine to check providers against.
    #[arg(long, value_name = "ID", default_value = doctor::DEFAULT_ENGINE)]
    engine: String,
    /// Exit 1 when the configured (or default) provider is unsupported.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &DoctorArgs, limits: SandboxLimits) -> CliResult {
    let (paths, config) = paths_and_config()?;
    let facts = match &args.facts {
        Some(file) => load_facts(file)?,
        None => host_gpu::gather(&host_gpu::GatherOptions::default()),
    };
    let (sandbox, registry, policy) = sandbox_and_registry(&paths, limits)?;
    let report = doctor::run(
        &sandbox,
        &registry,
        &DoctorInput {
            paths: &paths,
            config: &config,
            facts: &facts,
            policy: &policy,
            model: args.model.clone(),
            engine: Some(args.engine.clone()),
        },
    );
    super::output::print(args.json, &report, write_report)?;
    if args.strict && !report.selected_supported() {
        return Ok(ExitCode::from(exit::FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load_facts(file: &Path) -> Result<HardwareFacts, CliError> {
    crate::facts::load(file).map_err(|err| CliError::invalid_input(err.to_string()))
}

/// The reference's row: two spaces, name (22), info (45), OK/FAIL.
fn write_row(out: &mut impl Write, check: &Check) -> std::io::Result<()> {
    let verdict = if check.ok {
        paint(GOOD, "OK")
    } else {
        paint(BAD, "FAIL")
    };
    writeln!(
        out,
        "  {:<22} {:<45} {verdict}",
        check.name,
        one_line(&check.info)
    )
}

fn write_report(out: &mut impl Write, report: &DoctorReport) -> std::io::Result<()> {
    writeln!(out, "{}", paint(HEADING, "Pearl Mining Doctor"))?;
    for section in SECTIONS {
        writeln!(out, "\n{}", paint(HEADING, section))?;
        for check in report.checks.iter().filter(|c| c.section == section) {
            write_row(out, check)?;
        }
        if section == "Provider capability" {
            for provider in &report.providers {
                write!(out, "  {:<22} ", one_line(&provider.id))?;
                match (&provider.error, provider.supported) {
                    (Some(error), _) => {
                        write!(out, "{} - {}", paint(BAD, "ERROR"), one_line(error))?
                    }
                    (None, true) => write!(out, "{}", paint(GOOD, "SUPPORTED"))?,
                    (None, false) => write!(
                        out,
                        "{} - {}",
                        paint(BAD, "UNSUPPORTED"),
                        one_line(provider.reason.as_deref().unwrap_or("unsupported"))
                    )?,
                }
                let mut notes = Vec::new();
                if provider.selected {
                    notes.push(
                        if report.configured {
                            "configured"
                        } else {
                            "default"
                        }
                        .to_owned(),
                    );
                }
                if provider.source != "builtin" {
                    notes.push(provider.source.to_owned());
                }
                if provider.hidden_gpus > 0 {
                    notes.push(format!(
                        "policy hides {} GPU{}: see `jarvis mine policy show --provider {}`",
                        provider.hidden_gpus,
                        if provider.hidden_gpus == 1 { "" } else { "s" },
                        one_line(&provider.id)
                    ));
                }
                if notes.is_empty() {
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", paint(DIM, format!(" ({})", notes.join(", "))))?;
                }
            }
        }
    }
    Ok(())
}
