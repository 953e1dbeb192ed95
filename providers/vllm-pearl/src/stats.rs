//! `stats`: vLLM's `/metrics` for uptime and served work (the host derives
//! its URL from the session's endpoint), the gateway's metrics when an image
//! serves them (current Pearl images do not), and otherwise share and block
//! counts from the gateway's log lines (pearl-and-peers §1.5.3), which only
//! a container the host started for us has: an attached miner's are not
//! ours to read.

use crate::PROVIDER_ID;
use mining_provider_sdk::host::containers::{self, LogGrep};
use mining_provider_sdk::host::metrics::{self, Sample};
use mining_provider_sdk::host::{clock, sidecar};
use mining_provider_sdk::types::{MiningStats, WorkerStats};
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
    // A session of one container records no workers: it is worker 0.
    let workers: Vec<(&str, &str)> = if session.workers.is_empty() {
        vec![(&session.metrics_url, &session.container_id)]
    } else {
        session
            .workers
            .iter()
            .map(|w| (w.metrics_url.as_str(), w.container_id.as_str()))
            .collect()
    };
    let gateway = format!(
        "{}/metrics",
        session.gateway_metrics_url.trim_end_matches('/')
    );
    let mut counts = count_workers(&workers, &gateway, now);
    if session.workers.is_empty() {
        return counts.pop().unwrap_or(stats);
    }
    for ((index, worker), one) in (0u32..).zip(&session.workers).zip(counts) {
        add_worker(&mut stats, index, worker.gpus.clone(), one);
    }
    stats
}

/// Each worker's counts from `(metrics URL, container)`: vLLM's metrics,
/// then the gateway's metrics where they are served (only worker 0 has the
/// gateway's declared port), else the container's log lines. Two host
/// calls for all the workers, which the host answers concurrently.
fn count_workers(workers: &[(&str, &str)], gateway: &str, now: Option<f64>) -> Vec<MiningStats> {
    let mut counts: Vec<MiningStats> = workers
        .iter()
        .map(|_| MiningStats::empty(PROVIDER_ID))
        .collect();
    let mut urls: Vec<String> = workers.iter().map(|(url, _)| (*url).to_owned()).collect();
    urls.push(gateway.to_owned());
    let mut scrapes = metrics::scrape_all(&urls).unwrap_or_else(|err| vec![Err(err); urls.len()]);
    let gateway_scrape = scrapes.pop().expect("one answer per URL");
    for (one, scrape) in counts.iter_mut().zip(scrapes) {
        match scrape {
            Ok(samples) => apply_vllm(one, &samples, now),
            Err(err) => {
                one.last_error = Some(format!("vLLM metrics unavailable: {}", err.describe()))
            }
        }
    }
    let gateway_error = match gateway_scrape {
        Ok(samples) => {
            apply_gateway(&mut counts[0], &samples, now);
            None
        }
        Err(err) => Some(err),
    };
    // The workers whose shares the gateway's metrics do not count.
    let mut from_logs: Vec<usize> = (1..workers.len()).collect();
    if let Some(err) = gateway_error {
        if workers[0].1 == ATTACHED {
            counts[0].last_error = Some(format!(
                "no share counts for an attached miner: its gateway metrics are unavailable ({})",
                err.describe()
            ));
        } else {
            from_logs.insert(0, 0);
        }
    }
    if from_logs.is_empty() {
        return counts;
    }
    let requests: Vec<LogGrep> = from_logs
        .iter()
        .map(|&index| LogGrep {
            id: workers[index].1.to_owned(),
            patterns: LOG_PATTERNS.map(String::from).to_vec(),
            limit: MAX_LOG_LINES,
        })
        .collect();
    let answers =
        containers::grep_logs_all(&requests).unwrap_or_else(|err| vec![Err(err); requests.len()]);
    for (&index, answer) in from_logs.iter().zip(answers) {
        match answer {
            Ok(lines) => apply_log_lines(&mut counts[index], &lines),
            Err(err) => {
                counts[index].last_error =
                    Some(format!("cannot read the miner's logs: {}", err.describe()))
            }
        }
    }
    counts
}

/// Adds one worker's counts to the session's, and lists them.
fn add_worker(total: &mut MiningStats, index: u32, gpus: Vec<String>, one: MiningStats) {
    total.shares_submitted += one.shares_submitted;
    total.shares_accepted += one.shares_accepted;
    total.shares_rejected += one.shares_rejected;
    total.blocks_found += one.blocks_found;
    total.hashrate += one.hashrate;
    total.uptime_seconds = total.uptime_seconds.max(one.uptime_seconds);
    total.last_share_at = match (total.last_share_at, one.last_share_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.requests_served = sum(total.requests_served, one.requests_served);
    total.prompt_tokens = sum(total.prompt_tokens, one.prompt_tokens);
    total.generation_tokens = sum(total.generation_tokens, one.generation_tokens);
    if let Some(error) = &one.last_error {
        total.last_error = Some(format!("worker {index}: {error}"));
    }
    total.workers.push(WorkerStats {
        index,
        gpus,
        shares_submitted: one.shares_submitted,
        shares_accepted: one.shares_accepted,
        shares_rejected: one.shares_rejected,
        blocks_found: one.blocks_found,
        hashrate: one.hashrate,
        last_share_at: one.last_share_at,
        last_error: one.last_error,
        requests_served: one.requests_served,
    });
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
