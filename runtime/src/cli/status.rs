//! `jarvis mine status [--json] [--watch]`: the lifecycle state and live stats.

use super::escape::one_line;
use super::output::{BAD, GOOD, HEADING, paint};
use super::session::{mine_error, open_tolerant};
use super::{CliResult, output_error};
use crate::lifecycle::StatusReport;
use crate::sandbox::SandboxLimits;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine status
  jarvis mine status --watch        # a live table, every 2 s
  jarvis mine status --json")]
pub struct StatusArgs {
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    /// Refresh every INTERVAL seconds until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<u64>,
}

pub fn run(args: &StatusArgs, limits: SandboxLimits) -> CliResult {
    let opened = open_tolerant(limits)?;
    loop {
        let report = opened.miner().status().map_err(mine_error)?;
        let mut out = super::output::stdout();
        if args.watch.is_some() && std::io::stdout().is_terminal() {
            // Clear the screen: our own codes, past the escaping writer.
            let _ = write!(out, "{}", super::output::CLEAR_SCREEN);
        }
        let written = if args.json {
            writeln!(out, "{}", super::output::json(&report, false))
        } else {
            write_report(&mut out, &report)
        };
        written.map_err(output_error)?;
        drop(out);
        match args.watch {
            Some(seconds) => std::thread::sleep(Duration::from_secs(seconds.max(1))),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn row(out: &mut impl Write, label: &str, value: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out, "{:<20}{value}", format!("{label}:"))
}

fn write_report(out: &mut impl Write, report: &StatusReport) -> std::io::Result<()> {
    let restarts = report.restart_count.filter(|n| *n > 0);
    let state = match (report.state.as_str(), report.exit_code, restarts) {
        ("running", _, _) => paint(GOOD, "running".to_owned()),
        ("failed", Some(code), Some(n)) => paint(
            BAD,
            format!("failed (exit code {code}, restarted {n} times)"),
        ),
        ("failed", Some(code), None) => paint(BAD, format!("failed (exit code {code})")),
        ("failed", None, Some(n)) => paint(BAD, format!("failed (restarted {n} times)")),
        ("failed", None, None) => paint(BAD, "failed".to_owned()),
        (other, _, _) => paint(anstyle::Style::new(), other.to_owned()),
    };
    row(out, "state", state)?;
    if let Some(provider) = &report.provider {
        row(out, "provider", one_line(provider))?;
    }
    if let Some(session) = &report.session {
        row(out, "endpoint", one_line(&session.vllm_endpoint))?;
        row(out, "model", one_line(&session.model))?;
    }
    if let Some(container) = &report.container {
        let id: String = container.id.chars().take(12).collect();
        row(
            out,
            "container",
            format!("{} ({})", one_line(&id), one_line(&container.status)),
        )?;
        if let Some(n) = restarts {
            row(out, "restarts", n)?;
        }
    }
    if let Some(stats) = &report.stats {
        row(out, "shares submitted", stats.shares_submitted)?;
        row(out, "shares accepted", stats.shares_accepted)?;
        row(out, "blocks found", stats.blocks_found)?;
        row(out, "hashrate", format!("{:.2}", stats.hashrate))?;
        row(out, "uptime (s)", format!("{:.0}", stats.uptime_seconds))?;
        if let Some(requests) = stats.requests_served {
            row(out, "requests served", requests)?;
        }
        if let (Some(prompt), Some(generated)) = (stats.prompt_tokens, stats.generation_tokens) {
            row(
                out,
                "tokens",
                format!("{prompt} prompt, {generated} generated"),
            )?;
        }
        row(
            out,
            "last share at",
            stats
                .last_share_at
                .map_or("-".into(), |t| format!("{t:.0}")),
        )?;
        row(
            out,
            "last error",
            one_line(stats.last_error.as_deref().unwrap_or("-")),
        )?;
        row(out, "payout target", one_line(&stats.payout_target))?;
        row(out, "fees owed", stats.fees_owed)?;
    }
    if !report.last_lines.is_empty() {
        writeln!(out, "{}", paint(HEADING, "last log lines:"))?;
        for line in &report.last_lines {
            writeln!(out, "  {}", one_line(line))?;
        }
    }
    for repair in &report.repairs {
        writeln!(out, "note: {}", one_line(repair))?;
    }
    Ok(())
}
