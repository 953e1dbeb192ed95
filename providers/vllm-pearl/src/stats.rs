//! `stats`: vLLM's `/metrics` for uptime and served work (the host derives
//! its URL from the session's endpoint), the gateway's metrics when an image
//! serves them (current Pearl images do not), and otherwise share and block
//! counts from the gateway's log lines (pearl-and-peers §1.5.3), which only
//! a container the host started for us has: an attached miner's are not
//! ours to read.

use crate::PROVIDER_ID;
use mining_provider_sdk::host::metrics::{self, Sample};
use mining_provider_sdk::host::{clock, containers, sidecar};
use mining_provider_sdk::types::MiningStats;

/// Gateway log lines, as Pearl's gateway prints them.
const SUBMITTED: &str = "Submitting block";
const ACCEPTED: &str = "Block accepted by node";
const REJECTED: &str = "Block rejected";
const SUBMIT_ERROR: &str = "Error submitting";
const PROOF_REJECTED: &str = "Rejecting proof";
const LOG_PATTERNS: [&str; 5] = [SUBMITTED, ACCEPTED, REJECTED, SUBMIT_ERROR, PROOF_REJECTED];
const MAX_LOG_LINES: u32 = 100_000;
/// The container id `mine attach` (ours or OpenJarvis's) records for a
/// miner started by hand.
const ATTACHED: &str = "external";

pub fn collect() -> MiningStats {
    let mut stats = MiningStats::empty(PROVIDER_ID);
    let session = match sidecar::read() {
        Ok(Some(session)) => session,
        Ok(None) => return stats,
        Err(err) => {
            stats.last_error = Some(format!("cannot read the session: {}", err.describe()));
            return stats;
        }
    };
    let now = clock::now().ok();
    match metrics::scrape(&session.metrics_url) {
        Ok(samples) => apply_vllm(&mut stats, &samples, now),
        Err(err) => {
            stats.last_error = Some(format!("vLLM metrics unavailable: {}", err.describe()))
        }
    }
    let gateway = format!(
        "{}/metrics",
        session.gateway_metrics_url.trim_end_matches('/')
    );
    match metrics::scrape(&gateway) {
        Ok(samples) => apply_gateway(&mut stats, &samples, now),
        Err(err) if session.container_id == ATTACHED => {
            stats.last_error = Some(format!(
                "no share counts for an attached miner: its gateway metrics are unavailable ({})",
                err.describe()
            ))
        }
        Err(_) => match containers::grep_logs(
            &session.container_id,
            &LOG_PATTERNS.map(String::from),
            MAX_LOG_LINES,
        ) {
            Ok(lines) => apply_log_lines(&mut stats, &lines),
            Err(err) => {
                stats.last_error = Some(format!("cannot read the miner's logs: {}", err.describe()))
            }
        },
    }
    stats
}

fn value(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

/// Counters summed over their label sets (vLLM labels by model and reason).
fn total(samples: &[Sample], name: &str) -> Option<u64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum::<f64>().max(0.0) as u64)
}

fn uptime(samples: &[Sample], now: Option<f64>) -> Option<f64> {
    Some((now? - value(samples, "process_start_time_seconds")?).max(0.0))
}

pub fn apply_vllm(stats: &mut MiningStats, samples: &[Sample], now: Option<f64>) {
    if let Some(uptime) = uptime(samples, now) {
        stats.uptime_seconds = uptime;
    }
    stats.requests_served = total(samples, "vllm:request_success_total");
    stats.prompt_tokens = total(samples, "vllm:prompt_tokens_total");
    stats.generation_tokens = total(samples, "vllm:generation_tokens_total");
}

/// The reference's gateway metric names (§4.2).
pub fn apply_gateway(stats: &mut MiningStats, samples: &[Sample], now: Option<f64>) {
    stats.shares_submitted = total(samples, "pearl_gateway_shares_submitted_total").unwrap_or(0);
    stats.shares_accepted = total(samples, "pearl_gateway_shares_accepted_total").unwrap_or(0);
    stats.blocks_found = total(samples, "pearl_gateway_blocks_found_total").unwrap_or(0);
    stats.last_share_at = value(samples, "pearl_gateway_last_share_timestamp");
    if let Some(errors) = total(samples, "pearl_gateway_errors_total").filter(|n| *n > 0) {
        stats.last_error = Some(format!("{errors} gateway errors observed"));
    }
    if stats.uptime_seconds == 0.0 {
        stats.uptime_seconds = uptime(samples, now).unwrap_or(0.0);
    }
}

/// Solo mining: every accepted submission is a block.
pub fn apply_log_lines(stats: &mut MiningStats, lines: &[String]) {
    let count = |pattern: &str| lines.iter().filter(|l| l.contains(pattern)).count() as u64;
    stats.shares_submitted = count(SUBMITTED);
    stats.shares_accepted = count(ACCEPTED);
    stats.blocks_found = stats.shares_accepted;
    if let Some(line) = lines.iter().rev().find(|l| {
        [REJECTED, SUBMIT_ERROR, PROOF_REJECTED]
            .iter()
            .any(|p| l.contains(p))
    }) {
        stats.last_error = Some(line.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: vec![],
            value,
        }
    }

    #[test]
    fn vllm_metrics_give_uptime_and_work() {
        let mut stats = MiningStats::empty(PROVIDER_ID);
        let samples = [
            sample("process_start_time_seconds", 1000.0),
            sample("vllm:request_success_total", 3.0),
            sample("vllm:request_success_total", 2.0),
            sample("vllm:prompt_tokens_total", 50.0),
        ];
        apply_vllm(&mut stats, &samples, Some(1060.5));
        assert_eq!(stats.uptime_seconds, 60.5);
        assert_eq!(stats.requests_served, Some(5));
        assert_eq!(stats.prompt_tokens, Some(50));
        assert_eq!(stats.generation_tokens, None);
    }

    #[test]
    fn the_reference_gateway_fixture() {
        let mut stats = MiningStats::empty(PROVIDER_ID);
        let samples = [
            sample("pearl_gateway_shares_submitted_total", 12345.0),
            sample("pearl_gateway_shares_accepted_total", 12300.0),
            sample("pearl_gateway_blocks_found_total", 7.0),
            sample("pearl_gateway_last_share_timestamp", 1714867500.0),
            sample("pearl_gateway_errors_total", 0.0),
            sample("process_start_time_seconds", 1714865000.0),
        ];
        apply_gateway(&mut stats, &samples, Some(1714866000.0));
        assert_eq!(
            (
                stats.shares_submitted,
                stats.shares_accepted,
                stats.blocks_found
            ),
            (12345, 12300, 7)
        );
        assert_eq!(stats.last_share_at, Some(1714867500.0));
        assert_eq!(stats.last_error, None);
        assert_eq!(stats.uptime_seconds, 1000.0);
    }

    #[test]
    fn log_lines_count_submissions_and_blocks() {
        let mut stats = MiningStats::empty(PROVIDER_ID);
        let lines: Vec<String> = [
            "Submitting block",
            "Block accepted by node!",
            "Submitting block",
            "Block rejected: stale template",
            "Submitting block",
            "Block accepted by node!",
        ]
        .map(String::from)
        .to_vec();
        apply_log_lines(&mut stats, &lines);
        assert_eq!(
            (
                stats.shares_submitted,
                stats.shares_accepted,
                stats.blocks_found
            ),
            (3, 2, 2)
        );
        assert_eq!(
            stats.last_error.as_deref(),
            Some("Block rejected: stale template")
        );
    }
}
