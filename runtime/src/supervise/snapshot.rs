//! What one look of the supervisor saw: the session, each worker (its
//! container, counts and the watchdog's view), each GPU's readings. The
//! exporter serves the latest one, the history records each one.

use crate::lifecycle::Stats;
use host_gpu::telemetry::GpuTelemetry;

/// One look.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Unix seconds.
    pub taken_at: f64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub session_id: Option<String>,
    /// The lifecycle state (`running`, `degraded`, `stopped`, ...).
    pub state: String,
    pub workers: Vec<WorkerSnapshot>,
    pub gpus: Vec<GpuTelemetry>,
    /// Why there are no GPU readings, if there are none.
    pub gpus_note: Option<String>,
    /// The session's totals from the provider's `stats()`, the latest.
    pub totals: Option<Stats>,
}

/// One worker (a session of one container is worker 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSnapshot {
    pub index: usize,
    /// Host GPU ids (NVML indexes or UUIDs).
    pub gpus: Vec<String>,
    pub up: bool,
    /// Docker's state of its container.
    pub state: String,
    /// The latest counts from the provider's `stats()`.
    pub counts: Option<Counts>,
    /// Restarts the supervisor made.
    pub restarts: u64,
    /// Why the watchdog left it failed.
    pub failed: Option<String>,
    pub idle_fill: Option<IdleFillCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub blocks_found: u64,
    pub prompt_tokens: Option<u64>,
    pub requests_served: Option<u64>,
}

/// A worker's idle-fill, as its driver counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IdleFillCounts {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub failures: u64,
    pub filling: bool,
}

/// A session of two workers and two GPUs, one of each down, for tests.
#[cfg(test)]
pub(crate) fn example() -> Snapshot {
    Snapshot {
        taken_at: 1_700_000_000.5,
        provider: Some("vllm-pearl".into()),
        model: Some("pearl-ai/Llama-3.3-70B-Instruct-pearl".into()),
        session_id: Some("s-1".into()),
        state: "degraded".into(),
        workers: vec![
            WorkerSnapshot {
                index: 0,
                gpus: vec!["0".into()],
                up: true,
                state: "running".into(),
                counts: Some(Counts {
                    shares_submitted: 3,
                    shares_accepted: 2,
                    shares_rejected: 1,
                    blocks_found: 2,
                    prompt_tokens: Some(4096),
                    requests_served: Some(4),
                }),
                restarts: 1,
                failed: None,
                idle_fill: Some(IdleFillCounts {
                    requests: 7,
                    prompt_tokens: 7168,
                    failures: 0,
                    filling: true,
                }),
            },
            WorkerSnapshot {
                index: 1,
                gpus: vec!["GPU-b".into()],
                up: false,
                state: "exited".into(),
                failed: Some("too many restarts".into()),
                ..WorkerSnapshot::default()
            },
        ],
        gpus: vec![
            GpuTelemetry {
                index: 0,
                uuid: Some("GPU-a".into()),
                power_w: Some(412.5),
                energy_mj: Some(3_600_000),
                gpu_temp_c: Some(61),
                gpu_util_percent: Some(97),
                memory_used_mib: Some(2),
                sm_clock_mhz: Some(1980),
                throttle_reasons: Some(vec!["sw_power_cap".into()]),
                ..GpuTelemetry::default()
            },
            GpuTelemetry {
                index: 1,
                uuid: Some("GPU-b".into()),
                ..GpuTelemetry::default()
            },
        ],
        gpus_note: None,
        totals: None,
    }
}
