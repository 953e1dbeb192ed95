//! `jarvis mine status [--json] [--watch]`: the lifecycle state and live stats.
//!
//! `--watch` redraws a live table in place on a terminal (state, counts,
//! rates per minute since the watch began, uptime) and prints one plain
//! line per refresh when piped; Ctrl-C ends it cleanly (exit 0).
//!
//! A session with GPUs also gets its GPU section (`gpus.rs`): one NVML
//! sample of its GPUs per status or refresh, and the energy per share since
//! the session started.

mod gpus;
mod workers;

use super::escape::one_line;
use super::output::{BAD, DIM, GOOD, HEADING, paint};
use super::session::{mine_error, open_tolerant};
use super::{CliResult, output_error};
use crate::lifecycle::{Stats, StatusReport};
use crate::sandbox::SandboxLimits;
use crate::telemetry::Sampling;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine status
  jarvis mine status --watch        # a live table, every 2 s
  jarvis mine status --json")]
pub struct StatusArgs {
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    /// Refresh every INTERVAL seconds (default 2) until Ctrl-C.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    watch: Option<u64>,
}

pub fn run(args: &StatusArgs, limits: SandboxLimits) -> CliResult {
    let opened = open_tolerant(limits)?;
    let sampling = Sampling::default();
    let Some(seconds) = args.watch else {
        let report = opened.miner().status().map_err(mine_error)?;
        stats_warning(&report);
        let section = gpus::section(&opened, &report, &sampling);
        let shown = gpus::Shown::new(&report, section.as_ref());
        return super::output::print(args.json, &shown, |out, shown| {
            write_report(out, shown.report, section.as_ref())
        })
        .map(|()| ExitCode::SUCCESS);
    };
    // Ctrl-C ends the wait between refreshes at once.
    let (interrupt, interrupted) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(());
    })
    .map_err(|err| super::CliError::failure(format!("cannot watch for Ctrl-C: {err}")))?;
    let live = !args.json && std::io::stdout().is_terminal();
    let mut first: Option<(Instant, Counts)> = None;
    loop {
        let report = opened.miner().status().map_err(mine_error)?;
        stats_warning(&report);
        let counts = report.stats.as_ref().map(Counts::from);
        let rates = match (&first, &counts) {
            (Some((at, start)), Some(now)) => Some(now.per_minute_since(start, at.elapsed())),
            _ => None,
        };
        if first.is_none() {
            first = counts.map(|c| (Instant::now(), c));
        }
        let section = gpus::section(&opened, &report, &sampling);
        let mut out = super::output::stdout();
        let written = if args.json {
            let shown = gpus::Shown::new(&report, section.as_ref());
            writeln!(out, "{}", super::output::json(&shown, false))
        } else if live {
            // Home and clear: our own codes, past the escaping writer.
            write!(out, "{}", super::output::CLEAR_SCREEN)
                .and_then(|()| write_report(&mut out, &report, section.as_ref()))
                .and_then(|()| write_rates(&mut out, rates.as_ref(), seconds))
        } else {
            write_line(&mut out, &report, rates.as_ref(), section.as_ref())
        };
        written.map_err(output_error)?;
        drop(out);
        match interrupted.recv_timeout(Duration::from_secs(seconds)) {
            Err(RecvTimeoutError::Timeout) => {}
            // Ctrl-C (or the handler gone): leave the last table in place.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// A `stats()` that failed (its deadline, a trap) says so, instead of
/// leaving the counts out silently.
fn stats_warning(report: &StatusReport) {
    if let Some(error) = &report.stats_error {
        super::output::eprintln!("warning: the provider's stats() gave no answer: {error}");
    }
}

/// The counters a rate is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counts {
    accepted: u64,
    submitted: u64,
}

impl From<&Stats> for Counts {
    fn from(stats: &Stats) -> Self {
        Counts {
            accepted: stats.shares_accepted,
            submitted: stats.shares_submitted,
        }
    }
}

/// Per minute since the watch began.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rates {
    accepted: f64,
    submitted: f64,
}

impl Counts {
    fn per_minute_since(&self, start: &Counts, elapsed: Duration) -> Rates {
        let minutes = elapsed.as_secs_f64().max(1.0) / 60.0;
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / minutes;
        Rates {
            accepted: rate(self.accepted, start.accepted),
            submitted: rate(self.submitted, start.submitted),
        }
    }
}

fn row(out: &mut impl Write, label: &str, value: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out, "{:<20}{value}", format!("{label}:"))
}

fn write_rates(out: &mut impl Write, rates: Option<&Rates>, every: u64) -> std::io::Result<()> {
    match rates {
        Some(rates) => row(
            out,
            "rate (per minute)",
            format!(
                "{:.1} shares accepted, {:.1} submitted",
                rates.accepted, rates.submitted
            ),
        )?,
        None => row(out, "rate (per minute)", "n/a (after the next refresh)")?,
    }
    writeln!(
        out,
        "{}",
        paint(DIM, format!("refreshing every {every} s; Ctrl-C to stop"))
    )
}

/// One plain line per refresh, for pipes and logs.
fn write_line(
    out: &mut impl Write,
    report: &StatusReport,
    rates: Option<&Rates>,
    section: Option<&gpus::Section>,
) -> std::io::Result<()> {
    let mut line = format!("{} state={}", now_utc(), report.state);
    if let Some(stats) = &report.stats {
        line.push_str(&format!(
            " accepted={} submitted={} rejected={} blocks={} uptime={}",
            stats.shares_accepted,
            stats.shares_submitted,
            stats.shares_rejected,
            stats.blocks_found,
            duration(stats.uptime_seconds)
        ));
    }
    if let Some(rates) = rates {
        line.push_str(&format!(" accepted_per_min={:.1}", rates.accepted));
    }
    if let Some(section) = section {
        line.push_str(&gpus::line_fields(section));
    }
    writeln!(out, "{}", one_line(&line))
}

fn write_report(
    out: &mut impl Write,
    report: &StatusReport,
    section: Option<&gpus::Section>,
) -> std::io::Result<()> {
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
        ("degraded", _, _) => paint(BAD, "degraded".to_owned()),
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
    if let Some(session) = &report.process_session {
        row(out, "gateway", one_line(&session.gateway_url))?;
    }
    for process in &report.processes {
        let uptime = process
            .uptime_seconds
            .map(|s| format!(", up {}", duration(s as f64)))
            .unwrap_or_default();
        let state = if process.state == "running" {
            paint(GOOD, process.state.to_owned())
        } else {
            paint(BAD, process.state.to_owned())
        };
        row(
            out,
            &one_line(&process.name).to_string(),
            format!("pid {} {state}{uptime}", process.pid),
        )?;
    }
    if let Some(reason) = &report.reason {
        row(out, "reason", one_line(reason))?;
    }
    if let Some(stats) = &report.stats {
        write_stats(out, stats)?;
    }
    workers::write_workers(out, report)?;
    if let Some(section) = section {
        gpus::write_section(out, section)?;
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

fn write_stats(out: &mut impl Write, stats: &Stats) -> std::io::Result<()> {
    row(out, "shares accepted", stats.shares_accepted)?;
    row(out, "shares submitted", stats.shares_submitted)?;
    row(out, "shares rejected", stats.shares_rejected)?;
    row(out, "blocks found", stats.blocks_found)?;
    row(
        out,
        "last share",
        stats
            .last_share_at
            .map_or_else(|| "none yet".to_owned(), |at| moment(at, unix_now())),
    )?;
    row(out, "uptime", duration(stats.uptime_seconds))?;
    // The contract has no "unknown": a provider that cannot tell reports 0.
    row(
        out,
        "hashrate",
        if stats.hashrate > 0.0 {
            format!("{:.2}", stats.hashrate)
        } else {
            "n/a (not reported)".to_owned()
        },
    )?;
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
        "last error",
        one_line(stats.last_error.as_deref().unwrap_or("-")),
    )?;
    row(out, "payout target", one_line(&stats.payout_target))?;
    row(out, "fees owed", stats.fees_owed)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn now_utc() -> String {
    utc(unix_now())
}

/// `2026-12-01 23:30:05 UTC`.
fn utc(at: f64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{at:.0} (not a time)"),
    }
}

/// `2026-12-01 23:30:05 UTC (3m 05s ago)`.
fn moment(at: f64, now: f64) -> String {
    if now >= at {
        format!("{} ({} ago)", utc(at), duration(now - at))
    } else {
        utc(at)
    }
}

/// `1d 02h`, `3h 04m`, `5m 06s`, `7s`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(duration(7.9), "7s");
        assert_eq!(duration(366.0), "6m 06s");
        assert_eq!(duration(3.0 * 3600.0 + 240.0), "3h 04m");
        assert_eq!(duration(86_400.0 * 2.0 + 7200.0), "2d 02h");
        assert_eq!(utc(1_764_631_805.0), "2025-12-01 23:30:05 UTC");
        assert_eq!(
            moment(1_764_631_805.0, 1_764_631_805.0 + 185.0),
            "2025-12-01 23:30:05 UTC (3m 05s ago)"
        );
    }

    #[test]
    fn rates_are_per_minute_since_the_first_sample() {
        let start = Counts {
            accepted: 10,
            submitted: 12,
        };
        let now = Counts {
            accepted: 40,
            submitted: 52,
        };
        let rates = now.per_minute_since(&start, Duration::from_secs(120));
        assert_eq!(
            rates,
            Rates {
                accepted: 15.0,
                submitted: 20.0
            }
        );
        // A counter that went backwards (a restarted miner) is no negative rate.
        let rates = start.per_minute_since(&now, Duration::from_secs(60));
        assert_eq!(rates.accepted, 0.0);
    }
}
