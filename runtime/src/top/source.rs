//! Where `jarvis mine top` gets its looks: the running supervisor's
//! exporter (its `/metrics`, read back into a [`Snapshot`]: the
//! supervisor's own data, no second look at Docker or NVML), else a look of
//! its own (a supervisor that only looks, never acts).

use crate::host::metrics::parse_samples;
use crate::supervise::snapshot::{Counts, IdleFillCounts, Snapshot, WorkerSnapshot};
use host_gpu::telemetry::GpuTelemetry;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a scrape of the supervisor may take before top looks itself.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);

/// The supervisor's snapshot from its exporter at `url`; `None` when
/// nothing (or not our exporter) answers there.
pub fn scrape(url: &str) -> Option<Snapshot> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(SCRAPE_TIMEOUT))
        .max_redirects(0)
        .build()
        .into();
    let text = agent
        .get(url)
        .call()
        .ok()?
        .body_mut()
        .with_config()
        .limit(crate::host::metrics::MAX_BODY_BYTES)
        .read_to_string()
        .ok()?;
    from_metrics(&text)
}

/// A snapshot from the exporter's text (`supervise::exporter::render`);
/// `None` when it is not ours.
pub fn from_metrics(text: &str) -> Option<Snapshot> {
    let samples = parse_samples(text).ok()?;
    let label = |sample: &crate::bindings::openjarvis::mining::metrics::Sample, key: &str| {
        sample
            .labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let info = samples
        .iter()
        .find(|s| s.name == "jarvis_mine_session_info")?;
    let mut snapshot = Snapshot {
        provider: label(info, "provider").filter(|p| !p.is_empty()),
        model: label(info, "model").filter(|m| !m.is_empty()),
        session_id: label(info, "session").filter(|s| !s.is_empty()),
        state: label(info, "state").unwrap_or_default(),
        ..Snapshot::default()
    };
    let mut workers: BTreeMap<usize, WorkerSnapshot> = BTreeMap::new();
    let mut gpus: BTreeMap<u32, GpuTelemetry> = BTreeMap::new();
    for sample in &samples {
        let value = sample.value;
        let name = sample.name.as_str();
        if name == "jarvis_mine_snapshot_timestamp_seconds" {
            snapshot.taken_at = value;
            continue;
        }
        if let Some(metric) = name.strip_prefix("jarvis_mine_gpu_") {
            let Some(index) = label(sample, "gpu").and_then(|g| g.parse().ok()) else {
                continue;
            };
            let gpu = gpus.entry(index).or_insert_with(|| GpuTelemetry {
                index,
                uuid: label(sample, "uuid").filter(|u| !u.is_empty()),
                ..GpuTelemetry::default()
            });
            let whole = |v: f64| v.round().max(0.0) as u32;
            match metric {
                "power_watts" => gpu.power_w = Some(value),
                "energy_joules_total" => gpu.energy_mj = Some((value * 1000.0) as u64),
                "temperature_celsius" => gpu.gpu_temp_c = Some(whole(value)),
                "memory_temperature_celsius" => gpu.memory_temp_c = Some(whole(value)),
                "utilization_ratio" => gpu.gpu_util_percent = Some(whole(value * 100.0)),
                "memory_utilization_ratio" => gpu.memory_util_percent = Some(whole(value * 100.0)),
                "fan_speed_ratio" => gpu.fan_percent = Some(whole(value * 100.0)),
                "memory_used_bytes" => gpu.memory_used_mib = Some((value / 1_048_576.0) as u64),
                "sm_clock_hertz" => gpu.sm_clock_mhz = Some(whole(value / 1e6)),
                "memory_clock_hertz" => gpu.memory_clock_mhz = Some(whole(value / 1e6)),
                "throttle_reason" => {
                    if let Some(reason) = label(sample, "reason") {
                        gpu.throttle_reasons
                            .get_or_insert_with(Vec::new)
                            .push(reason);
                    }
                }
                _ => {}
            }
            continue;
        }
        let Some(index) = label(sample, "worker").and_then(|w| w.parse().ok()) else {
            continue;
        };
        let worker = workers.entry(index).or_insert_with(|| WorkerSnapshot {
            index,
            gpus: label(sample, "gpu")
                .filter(|g| !g.is_empty())
                .map(|g| g.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            ..WorkerSnapshot::default()
        });
        let count = value.max(0.0) as u64;
        let counts = || Counts::default();
        match name {
            "jarvis_mine_worker_up" => {
                worker.up = value > 0.0;
                worker.state = if worker.up { "running" } else { "down" }.to_owned();
            }
            "jarvis_mine_worker_failed" if value > 0.0 => {
                worker.failed = Some("left stopped by the watchdog".to_owned());
            }
            "jarvis_mine_worker_restarts_total" => worker.restarts = count,
            "jarvis_mine_shares_submitted_total" => {
                worker.counts.get_or_insert_with(counts).shares_submitted = count
            }
            "jarvis_mine_shares_accepted_total" => {
                worker.counts.get_or_insert_with(counts).shares_accepted = count
            }
            "jarvis_mine_shares_rejected_total" => {
                worker.counts.get_or_insert_with(counts).shares_rejected = count
            }
            "jarvis_mine_blocks_found_total" => {
                worker.counts.get_or_insert_with(counts).blocks_found = count
            }
            "jarvis_mine_prompt_tokens_total" => {
                worker.counts.get_or_insert_with(counts).prompt_tokens = Some(count)
            }
            "jarvis_mine_requests_served_total" => {
                worker.counts.get_or_insert_with(counts).requests_served = Some(count)
            }
            "jarvis_mine_idle_fill_requests_total" => {
                worker
                    .idle_fill
                    .get_or_insert_with(IdleFillCounts::default)
                    .requests = count
            }
            "jarvis_mine_idle_fill_active" => {
                worker
                    .idle_fill
                    .get_or_insert_with(IdleFillCounts::default)
                    .filling = value > 0.0
            }
            _ => {}
        }
    }
    snapshot.workers = workers.into_values().collect();
    snapshot.gpus = gpus.into_values().collect();
    Some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::exporter::render;

    #[test]
    fn the_exporters_text_reads_back_as_the_snapshot() {
        let snapshot = crate::supervise::snapshot::example();
        let back = from_metrics(&render(&snapshot)).unwrap();
        assert_eq!(back.state, "degraded");
        assert_eq!(back.session_id.as_deref(), Some("s-1"));
        assert_eq!(back.model, snapshot.model);
        assert_eq!(back.taken_at, 1_700_000_000.5);
        assert_eq!(back.workers.len(), 2);
        assert!(back.workers[0].up && !back.workers[1].up);
        assert_eq!(back.workers[0].counts, snapshot.workers[0].counts);
        assert_eq!(back.workers[0].restarts, 1);
        let fill = back.workers[0].idle_fill.unwrap();
        assert_eq!((fill.requests, fill.filling), (7, true));
        assert_eq!(back.workers[1].gpus, ["GPU-b"]);
        assert!(back.workers[1].failed.is_some());
        let gpu = &back.gpus[0];
        assert_eq!(
            (
                gpu.power_w,
                gpu.energy_mj,
                gpu.gpu_temp_c,
                gpu.gpu_util_percent,
                gpu.sm_clock_mhz
            ),
            (Some(412.5), Some(3_600_000), Some(61), Some(97), Some(1980))
        );
        assert_eq!(
            gpu.throttle_reasons.as_deref(),
            Some(&["sw_power_cap".to_owned()][..])
        );
        assert!(from_metrics("up 1\n").is_none());
    }
}
