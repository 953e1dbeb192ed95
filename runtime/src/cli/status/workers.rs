//! `status` of a session of several workers: one row per worker (its
//! container's state, GPUs, endpoint and counts), after the totals.

use super::super::escape::one_line;
use super::super::output::{BAD, GOOD, paint};
use super::row;
use crate::lifecycle::StatusReport;
use std::io::Write;

pub fn write_workers(out: &mut impl Write, report: &StatusReport) -> std::io::Result<()> {
    if report.workers.is_empty() {
        return Ok(());
    }
    let down = report
        .workers
        .iter()
        .filter(|w| w.state != "running")
        .count();
    let summary = match down {
        0 => format!("{} running", report.workers.len()),
        n => format!(
            "{} of {} running",
            report.workers.len() - n,
            report.workers.len()
        ),
    };
    row(out, "workers", summary)?;
    for worker in &report.workers {
        let state = match (worker.state.as_str(), worker.exit_code) {
            ("running", _) => paint(GOOD, "running".to_owned()),
            (state, Some(code)) => paint(BAD, format!("{state} (exit code {code})")),
            (state, None) => paint(BAD, state.to_owned()),
        };
        let gpus = match worker.gpus.len() {
            0 => "no GPU".to_owned(),
            1 => format!("GPU {}", worker.gpus[0]),
            _ => format!("GPUs {}", worker.gpus.join(",")),
        };
        let counts = report
            .stats
            .as_ref()
            .and_then(|s| s.workers.iter().find(|c| c.index as usize == worker.index))
            .map(|c| {
                format!(
                    ", {} accepted of {} submitted, {} rejected",
                    c.shares_accepted, c.shares_submitted, c.shares_rejected
                )
            })
            .unwrap_or_default();
        row(
            out,
            &format!("  worker {}", worker.index),
            format!(
                "{state} {} ({}) {}{counts}",
                one_line(&gpus),
                one_line(&worker.container),
                one_line(&worker.vllm_endpoint)
            ),
        )?;
    }
    Ok(())
}
