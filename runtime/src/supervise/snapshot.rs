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
