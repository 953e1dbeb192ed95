//! `jarvis mine audit`: read the record of privileged calls and policy
//! decisions (`<home>/logs/mining-audit.jsonl` and its rotations), or
//! verify its hash chain.

use super::escape::one_line;
use super::output::{BAD, DIM, GOOD, paint};
use super::session::paths_and_config;
use super::{CliError, CliResult, exit, output_error};
use crate::audit::{self, Decision, Filter, Record, Verification};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct AuditArgs {
    /// Only records of this provider.
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    /// Only denials.
    #[arg(long)]
    denied: bool,
    /// How many of the newest records to print (as `-n` in `logs`).
    #[arg(
        short = 'n',
        long = "tail",
        visible_alias = "lines",
        value_name = "N",
        default_value_t = 50
    )]
    tail: usize,
    /// Keep printing records as they are written.
    #[arg(short, long)]
    follow: bool,
    /// One JSON object per line (the log's own format); with `--verify`, one report.
    #[arg(long)]
    json: bool,
    /// Check the hash chain across all segments: exit 0 when intact, 10 at
    /// the first edit, cut, reordering or insertion.
    #[arg(long, conflicts_with_all = ["provider", "denied", "follow", "tail"])]
    verify: bool,
}

pub fn run(args: &AuditArgs) -> CliResult {
    let (paths, _) = paths_and_config()?;
    let path = paths.audit_log();
    if args.verify {
        return verify(&path, args.json);
    }
    let filter = Filter {
        provider: args.provider.clone(),
        denied_only: args.denied,
    };
    let records = audit::read(&path, &filter, Some(args.tail)).map_err(|err| {
        CliError::failure(format!(
            "cannot read the audit log {}: {err}",
            path.display()
        ))
    })?;
    let mut out = super::output::stdout();
    if records.is_empty() && !args.follow && !args.json {
        writeln!(
            out,
            "{}",
            paint(DIM, &format!("no matching records in {}", path.display()))
        )
        .map_err(output_error)?;
    }
    for record in &records {
        write_record(&mut out, record, args.json).map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    if args.follow {
        let mut failed = None;
        audit::follow(&path, &filter, |record| {
            let written = write_record(&mut out, record, args.json).and_then(|()| out.flush());
            failed = written.err();
            failed.is_none()
        })
        .map_err(|err| CliError::failure(format!("cannot follow {}: {err}", path.display())))?;
        if let Some(err) = failed {
            return Err(output_error(err));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_record(out: &mut impl Write, record: &Record, json: bool) -> std::io::Result<()> {
    if json {
        let line = super::output::json(record, false);
        return writeln!(out, "{line}");
    }
    let decision = match record.decision {
        Decision::Allow => paint(GOOD, "allow"),
        Decision::Deny => paint(BAD, "deny "),
    };
    let outcome = match (&record.outcome, &record.reason) {
        (_, Some(reason)) => format!(" - {}", one_line(reason)),
        (Some(outcome), None) if outcome != "ok" => format!(" - {}", one_line(outcome)),
        _ => String::new(),
    };
    let count = match record.count {
        1 => String::new(),
        n => format!(" ×{n}"),
    };
    writeln!(
        out,
        "{} {decision} {:<16} {:<10} {}{count}{outcome} {}",
        paint(DIM, &record.time),
        one_line(&record.provider),
        one_line(&record.capability),
        one_line(&record.action),
        paint(DIM, &format!("({} µs)", record.duration_us)),
    )
}

fn verify(path: &crate::home::HomePath, json: bool) -> CliResult {
    let report = audit::verify(path).map_err(|err| {
        CliError::failure(format!(
            "cannot read the audit log {}: {err}",
            path.display()
        ))
    })?;
    let mut out = anstream::stdout().lock();
    if json {
        let line = serde_json::to_string(&report).expect("reports serialize");
        writeln!(out, "{line}").map_err(output_error)?;
    } else {
        write_verification(&mut out, path, &report).map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    Ok(if report.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::AUDIT_BROKEN)
    })
}

fn write_verification(
    out: &mut impl Write,
    path: &crate::home::HomePath,
    report: &Verification,
) -> std::io::Result<()> {
    if let Some(broken) = &report.broken {
        writeln!(
            out,
            "{} {} line {}: {}: {}",
            paint(BAD, "audit log broken:"),
            broken.place.file.display(),
            broken.place.line,
            broken.kind.name(),
            broken.detail
        )?;
        return writeln!(
            out,
            "{} records before it are intact; records from there on cannot be trusted",
            report.records
        );
    }
    let span = match (&report.first, &report.last) {
        (Some(first), Some(last)) => format!(", {first} to {last}"),
        _ => String::new(),
    };
    let start = match report.starts_at {
        "prune" => "starting after a retention prune",
        _ => "starting at the first record written",
    };
    writeln!(
        out,
        "{} {} records in {} file(s){span}, {start}",
        paint(GOOD, "audit log intact:"),
        report.records,
        report.files.len(),
    )?;
    if report.files.is_empty() {
        writeln!(
            out,
            "{}",
            paint(DIM, &format!("no log at {} yet", path.display()))
        )?;
    }
    if let Some(torn) = &report.torn {
        writeln!(
            out,
            "{}",
            paint(
                DIM,
                &format!(
                    "note: line {} of {} is torn (a write cut short by a crash or a full disk), not tampering; the next record written drops it",
                    torn.line,
                    torn.file.display()
                )
            )
        )?;
    }
    Ok(())
}
