//! Prometheus samples into `mining-stats`: the reference's gateway metric
//! names (§4.2), and the helpers vLLM's metrics use too.

use mining_provider_sdk::host::metrics::Sample;
use mining_provider_sdk::types::MiningStats;

/// The last value of `name`.
pub fn value(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

/// Counters summed over their label sets (vLLM labels by model and reason).
pub fn total(samples: &[Sample], name: &str) -> Option<u64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum::<f64>().max(0.0) as u64)
}

/// Seconds since the serving process started, by its own clock sample.
pub fn uptime(samples: &[Sample], now: Option<f64>) -> Option<f64> {
    Some((now? - value(samples, "process_start_time_seconds")?).max(0.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(name: &str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: vec![],
            value,
        }
    }

    #[test]
    fn the_reference_gateway_fixture() {
        let mut stats = MiningStats::empty("cpu-pearl");
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
}
