//! `jarvis mine history [--since DURATION] [--json]`: shares per hour,
//! energy, and joules per accepted share per day, from the mining history
//! `jarvis mine supervise` records (`<home>/telemetry/mining.db`).

use super::output::{DIM, HEADING, WARN, paint, si_joules};
use super::{CliError, CliResult};
use crate::history::{DayRow, History, HourRow, Report};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// What every energy figure is.
const ESTIMATES: &str = "energy figures are estimates: the GPUs' energy counters only (not CPU, \
                         fans or the power supply), over the time the supervisor sampled";

const NO_HISTORY: &str = "no history yet: `jarvis mine supervise` records it";

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine history                 # the last 24 hours
  jarvis mine history --since 7d
  jarvis mine history --since 90m --json")]
pub struct HistoryArgs {
    /// How far back: a number with m (minutes), h (hours) or d (days), such as 90m, 24h or 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_since)]
    since: Since,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// A `--since` duration, as given and in seconds.
#[derive(Debug, Clone, PartialEq)]
struct Since {
    text: String,
    seconds: f64,
}

/// The longest window: the history keeps nothing older (`history::Retention`).
const MAX_DAYS: f64 = 400.0;

/// "90m", "24h", "7d", "1.5h".
fn parse_since(text: &str) -> Result<Since, String> {
    let trimmed = text.trim();
    let hint = "use a number with m, h or d, such as 90m, 24h or 7d";
    let unit = trimmed
        .chars()
        .last()
        .ok_or_else(|| format!("an empty duration: {hint}"))?;
    let scale = match unit {
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return Err(format!("'{trimmed}' has no unit: {hint}")),
    };
    let number: f64 = trimmed[..trimmed.len() - 1]
        .parse()
        .map_err(|_| format!("'{trimmed}' is not a duration: {hint}"))?;
    if !number.is_finite() {
        return Err(format!("'{trimmed}' is not a duration: {hint}"));
    }
    let seconds = number * scale;
    if seconds <= 0.0 {
        return Err(format!("'{trimmed}' must be more than zero: {hint}"));
    }
    if seconds > MAX_DAYS * 86_400.0 {
        return Err(format!(
            "'{trimmed}' is longer than the history keeps (400d)"
        ));
    }
    Ok(Since {
        text: trimmed.to_owned(),
        seconds,
    })
}

/// `--json`'s object: the report, its window and totals.
#[derive(Serialize)]
struct Shown<'a> {
    path: String,
    /// The window as given (`24h`).
    window: &'a str,
    since: f64,
    until: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    last_sample_at: Option<f64>,
    hours: &'a [HourRow],
    days: &'a [DayRow],
    totals: Totals,
    estimates: &'static str,
}

/// The window's sums.
#[derive(Serialize, Default)]
struct Totals {
    shares_submitted: u64,
    shares_accepted: u64,
    shares_rejected: u64,
    blocks_found: u64,
    energy_j: Option<f64>,
    energy_kwh: Option<f64>,
    energy_partial: bool,
    joules_per_share: Option<f64>,
    counter_resets: u64,
}

impl Totals {
    fn of(hours: &[HourRow]) -> Totals {
        let mut totals = Totals::default();
        for hour in hours {
            totals.shares_submitted += hour.shares_submitted;
            totals.shares_accepted += hour.shares_accepted;
            totals.shares_rejected += hour.shares_rejected;
            totals.blocks_found += hour.blocks_found;
            totals.counter_resets += hour.counter_resets;
            totals.energy_partial |= hour.energy_partial;
            if let Some(joules) = hour.energy_j {
                totals.energy_j = Some(totals.energy_j.unwrap_or(0.0) + joules);
            }
        }
        totals.energy_kwh = totals.energy_j.map(|j| j / 3.6e6);
        totals.joules_per_share = totals
            .energy_j
            .filter(|_| totals.shares_accepted > 0)
            .map(|j| j / totals.shares_accepted as f64);
        totals
    }
}

pub fn run(args: &HistoryArgs) -> CliResult {
    let paths = super::session::paths()?;
    let path = paths.mining_history();
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let since = until - args.since.seconds;
    // A history that cannot be opened or read: exit 1, with why and what to do.
    let history =
        History::open_existing(&path).map_err(|err| CliError::failure(err.to_string()))?;
    let (report, note) = match &history {
        Some(history) => (
            history
                .report(since)
                .map_err(|err| CliError::failure(err.to_string()))?,
            None,
        ),
        None => (
            Report {
                since,
                ..Report::default()
            },
            Some(NO_HISTORY),
        ),
    };
    let shown = Shown {
        path: path.to_string(),
        window: &args.since.text,
        since,
        until,
        note,
        last_sample_at: report.last_sample_at,
        hours: &report.hours,
        days: &report.days,
        totals: Totals::of(&report.hours),
        estimates: ESTIMATES,
    };
    super::output::print(args.json, &shown, write_text)?;
    Ok(ExitCode::SUCCESS)
}

fn write_text(out: &mut impl Write, shown: &Shown<'_>) -> std::io::Result<()> {
    if let Some(note) = shown.note {
        writeln!(out, "{note}")?;
        return out.flush();
    }
    if shown.hours.is_empty() {
        writeln!(
            out,
            "no samples in the last {} ({}): `jarvis mine supervise` records one per second while it runs",
            shown.window, shown.path
        )?;
        return out.flush();
    }
    writeln!(
        out,
        "{}",
        paint(
            HEADING,
            format!(
                "Shares and energy per hour, the last {} (UTC)",
                shown.window
            )
        )
    )?;
    writeln!(
        out,
        "{}",
        paint(
            HEADING,
            format!(
                "{:<18} {:>9} {:>9} {:>9} {:>7} {:>13}",
                "HOUR", "ACCEPTED", "SUBMITTED", "REJECTED", "BLOCKS", "ENERGY (kWh)"
            )
        )
    )?;
    for hour in shown.hours {
        writeln!(
            out,
            "{:<18} {:>9} {:>9} {:>9} {:>7} {:>13}",
            hour.hour,
            hour.shares_accepted,
            hour.shares_submitted,
            hour.shares_rejected,
            hour.blocks_found,
            kwh(hour.energy_kwh, hour.energy_partial),
        )?;
    }
    let totals = &shown.totals;
    writeln!(
        out,
        "{:<18} {:>9} {:>9} {:>9} {:>7} {:>13}",
        "total",
        totals.shares_accepted,
        totals.shares_submitted,
        totals.shares_rejected,
        totals.blocks_found,
        kwh(totals.energy_kwh, totals.energy_partial),
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        paint(
            HEADING,
            "Energy per accepted share, per day (estimates, UTC)"
        )
    )?;
    writeln!(
        out,
        "{}",
        paint(
            HEADING,
            format!(
                "{:<12} {:>9} {:>13} {:>17}",
                "DAY", "ACCEPTED", "ENERGY (kWh)", "PER SHARE"
            )
        )
    )?;
    for day in shown.days {
        writeln!(
            out,
            "{:<12} {:>9} {:>13} {:>17}",
            day.day,
            day.shares_accepted,
            kwh(day.energy_kwh, day.energy_partial),
            day.joules_per_share
                .map_or_else(|| "—".to_owned(), si_joules),
        )?;
    }
    if totals.energy_partial {
        writeln!(
            out,
            "{}",
            paint(
                WARN,
                "≥: some GPU samples had no energy reading; that energy is a lower bound"
            )
        )?;
    }
    if totals.counter_resets > 0 {
        writeln!(
            out,
            "{}",
            paint(
                DIM,
                format!(
                    "{} counter reset(s) in the window (a worker restarted or a driver reloaded): \
                     counted from each reset",
                    totals.counter_resets
                )
            )
        )?;
    }
    writeln!(out, "{}", paint(DIM, ESTIMATES))?;
    out.flush()
}

/// `0.4000`, `≥0.4000` for a lower bound, `-` unknown.
fn kwh(kwh: Option<f64>, partial: bool) -> String {
    match kwh {
        Some(kwh) if partial => format!("≥{kwh:.4}"),
        Some(kwh) => format!("{kwh:.4}"),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_units_and_refuses_nonsense_clearly() {
        let seconds = |text| parse_since(text).map(|s| s.seconds);
        assert_eq!(seconds("24h"), Ok(86_400.0));
        assert_eq!(seconds("90m"), Ok(5_400.0));
        assert_eq!(seconds("7d"), Ok(604_800.0));
        assert_eq!(seconds(" 1.5h "), Ok(5_400.0));
        for (text, why) in [
            ("", "an empty duration"),
            ("24", "has no unit"),
            ("5x", "has no unit"),
            ("h", "is not a duration"),
            ("-1h", "more than zero"),
            ("0d", "more than zero"),
            ("NaNh", "is not a duration"),
            ("401d", "longer than the history keeps"),
        ] {
            let err = parse_since(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn energy_cells() {
        assert_eq!(kwh(Some(0.4), false), "0.4000");
        assert_eq!(kwh(Some(0.4), true), "≥0.4000");
        assert_eq!(kwh(None, false), "-");
        assert_eq!(si_joules(2_656.0), "2.66 kJ");
        assert_eq!(si_joules(7_200_000.0), "7.20 MJ");
    }
}
