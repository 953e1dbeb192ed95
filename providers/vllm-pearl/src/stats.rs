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
use pearl_provider_kit::gateway_metrics::{apply_gateway, total, uptime};

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

pub fn apply_vllm(stats: &mut MiningStats, samples: &[Sample], now: Option<f64>) {
    if let Some(uptime) = uptime(samples, now) {
        stats.uptime_seconds = uptime;
    }
    stats.requests_served = total(samples, "vllm:request_success_total");
    stats.prompt_tokens = total(samples, "vllm:prompt_tokens_total");
    stats.generation_tokens = total(samples, "vllm:generation_tokens_total");
}

/// Solo mining: every accepted submission is a block; a rejected block, a
/// failed submission and a refused proof are each a rejected share.
pub fn apply_log_lines(stats: &mut MiningStats, lines: &[String]) {
    let count = |pattern: &str| lines.iter().filter(|l| l.contains(pattern)).count() as u64;
    let rejection = |line: &&String| {
        [REJECTED, SUBMIT_ERROR, PROOF_REJECTED]
            .iter()
            .any(|p| line.contains(p))
    };
    stats.shares_submitted = count(SUBMITTED);
    stats.shares_accepted = count(ACCEPTED);
    stats.shares_rejected = lines.iter().filter(rejection).count() as u64;
    stats.blocks_found = stats.shares_accepted;
    if let Some(line) = lines.iter().rev().find(rejection) {
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
    fn log_lines_count_submissions_and_blocks() {
        let mut stats = MiningStats::empty(PROVIDER_ID);
        let lines: Vec<String> = [
            "Submitting block",
            "Block accepted by node!",
            "Submitting block",
            "Block rejected: stale template",
            "Submitting block",
            "Error submitting block: connection refused",
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
                stats.shares_rejected,
                stats.blocks_found
            ),
            (4, 2, 2, 2)
        );
        assert_eq!(
            stats.last_error.as_deref(),
            Some("Error submitting block: connection refused")
        );
    }
}
