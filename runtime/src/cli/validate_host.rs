//! `jarvis mine validate-host`: the NVIDIA release gate (reference §8.3) as
//! one command (library: `release_gate`). Prints one row per criterion as
//! it is judged, then the verdict; writes the artifacts into `--output`.

use super::doctor::{gather, load_facts, write_columns};
use super::output::{BAD, DIM, GOOD, HEADING, WARN, eprintln, paint, println};
use super::session::{paths, sandbox_and_registry};
use super::start::{DEFAULT_START_WAIT_SECONDS, progress_sink, ready_wait, wait_sink};
use super::{CliError, CliResult, exit, output_error};
use crate::config::Config;
use crate::docker::Docker;
use crate::lifecycle::StartOptions;
use crate::release_gate::{self, Criterion, GateInput, Progress, artifacts};
use crate::sandbox::SandboxLimits;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Exit codes: 0 every criterion holds (skipped ones are listed), 11 the gate failed \
(summary.json says which criterion), 2 bad input, 1 the artifacts could not be written.

Examples:
  jarvis mine validate-host                        # pre-flight: GPUs, Docker, disk, doctor, config
  PEARLD_RPC_PASSWORD=... jarvis mine validate-host --start --output gate-h100
  jarvis mine validate-host --facts docs/facts/h100.json --json"
)]
pub struct ValidateHostArgs {
    /// Directory for the artifacts (summary.json, doctor.json, status-before.json, status-after.json,
    /// metrics.txt, log-tail.txt, docker-inspect.json); default ./validate-host-<UTC time>.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Also run the miner: start, /v1/models, one chat completion, share or block evidence, the
    /// pearld probe, stop, and check that nothing is left.
    #[arg(long)]
    start: bool,
    /// Judge the GPUs (and disk) from this facts file instead of NVML, as `doctor --facts` does; a
    /// missing NVIDIA runtime is then not judged, and no GPU container is run.
    #[arg(long, value_name = "FILE")]
    facts: Option<PathBuf>,
    /// Print summary.json instead of rows.
    #[arg(long)]
    json: bool,
    /// Longest one step may wait, in seconds (or e.g. 500ms): each request to the miner, the GPU
    /// container, the wait for share evidence. Start's own wait for vLLM is
    /// [mining.extra].start_wait_seconds.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = super::parse_duration)]
    timeout: Duration,
}

pub fn run(args: &ValidateHostArgs, limits: SandboxLimits) -> CliResult {
    let paths = paths()?;
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(artifacts::default_dir_name(time::OffsetDateTime::now_utc()))
    });
    check_output_dir(&output)?;
    let facts = match &args.facts {
        Some(file) => load_facts(file)?,
        None => gather(&paths),
    };
    // A config that cannot be read is a failed criterion, not the end.
    let (config, config_error) = match Config::load(paths.config_file()) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("{warning}");
            }
            (config, None)
        }
        Err(err) => (Config::default(), Some(err.to_string())),
    };
    let start = match (args.start, config.mining.as_ref()) {
        (false, _) => None,
        (true, mining) => {
            let wait = match mining {
                Some(mining) => ready_wait(mining)?,
                None => None,
            };
            Some(StartOptions {
                image_progress: progress_sink(),
                ready_wait: Some(
                    wait.unwrap_or(Duration::from_secs(DEFAULT_START_WAIT_SECONDS as u64)),
                ),
                on_wait: wait_sink(),
            })
        }
    };
    let (sandbox, registry, policy) = sandbox_and_registry(&paths, limits)?;
    let docker = Docker::connect()
        .map(Arc::new)
        .map_err(|err| err.to_string());
    let input = GateInput {
        paths: &paths,
        config: &config,
        config_error,
        facts: &facts,
        facts_file: args.facts.as_deref(),
        sandbox: &sandbox,
        registry: &registry,
        policy: &policy,
        docker,
        timeout: args.timeout,
        output_dir: &output,
    };
    let mut rows = Rows::new(!args.json);
    if !args.json {
        println!("{}", paint(HEADING, "Pearl NVIDIA release gate"));
        println!("{:<20}{}", "home:", paths.home().display());
        println!("{:<20}{}", "artifacts:", output.display());
    }
    let outcome = release_gate::run(&input, start, &mut rows);
    if let Some(error) = &outcome.summary_error {
        return Err(CliError::failure(format!(
            "cannot write {}: {error}",
            output.join(artifacts::SUMMARY).display()
        )));
    }
    let summary = &outcome.summary;
    if args.json {
        super::output::stdout()
            .write_all(outcome.summary_text.as_bytes())
            .map_err(output_error)?;
    } else {
        let style = if summary.passed() { GOOD } else { BAD };
        println!();
        println!(
            "{}",
            paint(style, format!("Verdict: {}", summary.headline()))
        );
        for criterion in summary.criteria.iter().filter(|c| c.failed()) {
            println!("  {}: {}", criterion.name, criterion.detail);
        }
        let written: Vec<&str> = summary
            .artifacts
            .iter()
            .filter(|(_, outcome)| outcome.as_str() == artifacts::WRITTEN)
            .map(|(name, _)| name.as_str())
            .collect();
        println!("Artifacts in {}: {}", output.display(), written.join(", "));
    }
    if summary.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::GATE_FAILED))
    }
}

/// An `--output` that exists must be a directory (exit 2 before anything
/// runs).
fn check_output_dir(output: &Path) -> Result<(), CliError> {
    match std::fs::metadata(output) {
        Ok(meta) if !meta.is_dir() => Err(CliError::invalid_input(format!(
            "--output {} exists and is not a directory: name a directory for the artifacts",
            output.display()
        ))),
        _ => Ok(()),
    }
}

/// Rows as criteria are judged (text mode), step notes on stderr.
struct Rows {
    text: bool,
}

impl Rows {
    fn new(text: bool) -> Rows {
        Rows { text }
    }
}

impl Progress for Rows {
    fn criterion(&mut self, criterion: &Criterion) {
        if !self.text {
            return;
        }
        let style = match (criterion.passed, criterion.skipped) {
            (true, _) => GOOD,
            (false, true) => WARN,
            (false, false) => BAD,
        };
        let mut out = super::output::stdout();
        let _ = write_columns(
            &mut out,
            &criterion.name,
            &criterion.detail,
            paint(style, criterion.word()),
        );
    }

    fn step(&mut self, what: &str) {
        if self.text {
            eprintln!("{}", paint(DIM, format!("… {what}")));
        }
    }
}
