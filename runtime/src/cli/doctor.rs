//! `jarvis mine doctor`: gather facts, run every provider's sandboxed
//! `detect`, print one row per check, then the verdict and next steps.

use super::escape::one_line;
use super::output::{BAD, DIM, GOOD, HEADING, WARN, paint};
use super::probe_progress::ProbeProgress;
use super::session::{paths_and_config, sandbox_and_registry};
use super::{CliError, CliResult, exit};
use crate::config::Config;
use crate::doctor::{self, Check, DoctorInput, DoctorReport, FactsSource, SECTIONS, Status};
use crate::paths::Paths;
use crate::sandbox::SandboxLimits;
use clap::Args;
use host_gpu::HardwareFacts;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine doctor
  jarvis mine doctor --strict          # exit 1 unless ready to mine
  jarvis mine doctor --facts docs/facts/h200x8.json --json")]
pub struct DoctorArgs {
    /// Print one JSON object (`checks`, `providers`, `verdict`, `next_steps`) instead of rows.
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
    /// Exit 1 unless the verdict is "ready", printing why on stderr.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &DoctorArgs, limits: SandboxLimits) -> CliResult {
    let (paths, config) = paths_and_config()?;
    // Loading the providers needs no facts: it runs while the probes wait
    // on Docker, pearld and python3.
    let (probed, loaded) = std::thread::scope(|scope| {
        let loaded = scope.spawn(|| {
            let started = Instant::now();
            let loaded = sandbox_and_registry(&paths, limits);
            if let Ok((_, registry, _)) = &loaded {
                tracing::info!(
                    "loaded {} providers in {:?}",
                    registry.providers.len(),
                    started.elapsed()
                );
            }
            loaded
        });
        let probed = probe(&paths, &config, args.facts.as_deref());
        (
            probed,
            loaded.join().expect("loading providers does not panic"),
        )
    });
    let (facts, source, node) = probed?;
    let (sandbox, registry, policy) = loaded?;
    let report = doctor::run(
        &sandbox,
        &registry,
        &DoctorInput {
            paths: &paths,
            config: &config,
            facts: &facts,
            facts_source: source,
            node,
            policy: &policy,
            model: args.model.clone(),
            engine: Some(args.engine.clone()),
        },
    );
    tracing::info!(
        "judged for {} ({:?}): {}",
        report.selected_provider,
        report.selected_by,
        report.verdict.summary
    );
    super::output::print(args.json, &report, write_report)?;
    if args.strict && !report.ready() {
        return Err(CliError {
            code: exit::FAILURE,
            message: format!("doctor --strict: {}", strict_reason(&report)),
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// The facts (probed, or from `--facts`) and the pearld row, probed at the
/// same time; a terminal shows what is still being waited for.
fn probe(
    paths: &Paths,
    config: &Config,
    facts_file: Option<&Path>,
) -> Result<(HardwareFacts, FactsSource, Check), CliError> {
    let mining = config.mining.as_ref();
    let node_label = mining.map_or_else(String::new, |m| {
        format!(
            "pearld at {} (up to {} s)",
            one_line(&m.pearld_rpc_url()),
            doctor::PEARLD_TIMEOUT.as_secs()
        )
    });
    let host_label = "this host's probes (NVML, Docker, python3, disk)".to_owned();
    let mut labels = Vec::new();
    if mining.is_some() {
        labels.push(node_label.clone());
    }
    if facts_file.is_none() {
        labels.push(host_label.clone());
    }
    let progress = ProbeProgress::start(labels);
    let result = std::thread::scope(|scope| {
        let node = scope.spawn(|| {
            let started = Instant::now();
            let node = doctor::probe_node(mining, paths.config_file());
            progress.finished(&node_label);
            if mining.is_some() {
                tracing::info!(
                    "probe: pearld answered in {:?}: {}",
                    started.elapsed(),
                    node.info
                );
            }
            node
        });
        let facts = match facts_file {
            Some(file) => load_facts(file).map(|facts| (facts, FactsSource::File)),
            None => {
                let started = Instant::now();
                let facts = gather(paths);
                progress.finished(&host_label);
                tracing::info!(
                    "probe: host facts in {:?} ({} GPUs, Docker {})",
                    started.elapsed(),
                    facts.gpus.len(),
                    match facts.docker.as_ref().and_then(|d| d.reachable) {
                        Some(true) => "reachable",
                        Some(false) => "unreachable",
                        None => "not probed",
                    }
                );
                Ok((facts, FactsSource::Probed))
            }
        };
        let node = node.join().expect("the pearld probe does not panic");
        facts.map(|(facts, source)| (facts, source, node))
    });
    progress.stop();
    result
}

/// This host's facts, with the Pearl-package probe's answer reused while
/// `python3` and its import path are unchanged, and the Docker daemon's
/// version while its socket is (the ping always runs).
/// Without a usable cache directory every probe simply runs.
pub fn gather(paths: &Paths) -> HardwareFacts {
    let cache = paths.probe_cache();
    let cache = cache
        .create_dir_all_with_mode(0o700)
        .and_then(|()| cache.open_dir())
        .map(host_gpu::CacheDir::new)
        .ok();
    host_gpu::gather(&host_gpu::GatherOptions {
        python: cache
            .clone()
            .map_or(host_gpu::PythonProbe::Run, host_gpu::PythonProbe::Cached),
        docker_cache: cache,
        ..host_gpu::GatherOptions::default()
    })
}

pub fn load_facts(file: &Path) -> Result<HardwareFacts, CliError> {
    crate::facts::load(file).map_err(|err| CliError::invalid_input(err.to_string()))
}

/// What `--strict` exits 1 for: the verdict and its first problem.
fn strict_reason(report: &DoctorReport) -> String {
    let verdict = &report.verdict;
    match verdict.problems.first() {
        Some(problem) => format!(
            "{} (first: {}: {}; fix: {})",
            verdict.summary, problem.check, problem.problem, problem.fix
        ),
        None => verdict.summary.clone(),
    }
}

const NAME_WIDTH: usize = 22;
const INFO_WIDTH: usize = 45;
/// A provider's reason has no status column to keep clear.
const REASON_WIDTH: usize = 72;
/// The verdict's problems and fixes, indent included.
const VERDICT_WIDTH: usize = 100;

/// The reference's row: two spaces, name (22), info (45), status word.
/// Info that does not fit wraps onto continuation lines under the info
/// column, so the status words stay in one column.
fn write_row(out: &mut impl Write, check: &Check) -> std::io::Result<()> {
    let style = match check.status {
        Status::Ok => GOOD,
        Status::Fail => BAD,
        Status::Info => DIM,
        Status::Unknown => WARN,
    };
    write_columns(
        out,
        &check.name,
        &check.info,
        paint(style, check.status.word()),
    )
}

/// A row in the doctor's columns: `name` (escaped, 22 columns), `info`
/// (escaped, wrapped at 45 under its column), then `status`.
pub(super) fn write_columns(
    out: &mut impl Write,
    name: &str,
    info: &str,
    status: impl std::fmt::Display,
) -> std::io::Result<()> {
    let info = one_line(info).to_string();
    let lines = textwrap::wrap(&info, INFO_WIDTH);
    let first = lines.first().map_or("", |line| line.as_ref());
    writeln!(
        out,
        "  {:<NAME_WIDTH$} {:<INFO_WIDTH$} {status}",
        one_line(name),
        first,
    )?;
    for line in lines.iter().skip(1) {
        writeln!(out, "  {:NAME_WIDTH$} {line}", "")?;
    }
    Ok(())
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
                write_provider(out, report, provider)?;
            }
        }
    }
    write_verdict(out, report)
}

fn write_provider(
    out: &mut impl Write,
    report: &DoctorReport,
    provider: &doctor::ProviderRow,
) -> std::io::Result<()> {
    write!(out, "  {:<NAME_WIDTH$} ", one_line(&provider.id))?;
    let (word, why) = match (&provider.error, provider.supported) {
        (Some(error), _) => (paint(BAD, "ERROR"), Some(error.as_str())),
        (None, true) => (paint(GOOD, "SUPPORTED"), None),
        (None, false) => (
            paint(BAD, "UNSUPPORTED"),
            Some(provider.reason.as_deref().unwrap_or("unsupported")),
        ),
    };
    write!(out, "{word}")?;
    let mut notes = Vec::new();
    if provider.selected {
        notes.push(
            match report.selected_by {
                doctor::SelectedBy::Configured => "configured",
                doctor::SelectedBy::Auto => "what `init` would pick",
                doctor::SelectedBy::Hardware => "suits this hardware",
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
    // Why, and the provider's notes, under the info column. Foreign text:
    // broken at spaces only (not at hyphens, nor inside long words), so
    // nothing in it is split.
    let options = textwrap::Options::new(REASON_WIDTH)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    for text in why
        .into_iter()
        .chain(provider.notes.iter().map(String::as_str))
    {
        for line in textwrap::wrap(&one_line(text).to_string(), &options) {
            writeln!(out, "  {:NAME_WIDTH$} {line}", "")?;
        }
    }
    Ok(())
}

/// `text` wrapped at [`VERDICT_WIDTH`], at spaces only (it may hold foreign
/// text, escaped), the first line after `first`, the rest after `rest`.
fn write_wrapped(out: &mut impl Write, text: &str, first: &str, rest: &str) -> std::io::Result<()> {
    let options = textwrap::Options::new(VERDICT_WIDTH)
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    for line in textwrap::wrap(text, options) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// "Ready to mine with …" or "Not ready: …", then the numbered next steps.
fn write_verdict(out: &mut impl Write, report: &DoctorReport) -> std::io::Result<()> {
    let verdict = &report.verdict;
    writeln!(out)?;
    let style = if verdict.ready { GOOD } else { BAD };
    writeln!(out, "{}", paint(style, one_line(&verdict.summary)))?;
    for (number, problem) in verdict.problems.iter().enumerate() {
        let what = format!(
            "{}: {}",
            one_line(&problem.check),
            one_line(&problem.problem)
        );
        let head = format!("  {}) ", number + 1);
        write_wrapped(out, &what, &head, "     ")?;
        write_wrapped(
            out,
            &one_line(&problem.fix).to_string(),
            "     fix: ",
            "          ",
        )?;
    }
    if verdict.ready {
        writeln!(out, "Next steps:")?;
        for (number, step) in report.next_steps.iter().enumerate() {
            writeln!(out, "  {}) {}", number + 1, one_line(step))?;
        }
    }
    Ok(())
}
