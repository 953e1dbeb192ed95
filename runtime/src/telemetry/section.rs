//! The GPU section of `jarvis mine status`: one sample of the session's
//! GPUs (`gpu_telemetry`) and the energy since the session's baseline
//! (`energy`). Never an error: without a usable NVML the section has no GPUs
//! and says why.

use super::baseline::{self, Baseline};
use super::energy::{self, Counts, EnergyReport, WorkerShares};
use super::gpus::{GpuSource, SessionGpus};
use crate::config::MiningConfig;
use crate::home::HomePath;
use host_gpu::telemetry::{GpuTelemetry, Sampler, Telemetry};
use serde::Serialize;
use std::sync::OnceLock;

/// `gpu_telemetry` in `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSection {
    /// `container`: the session's containers' GPU requests; `config`: no
    /// container asked for a GPU (`gpu_request = "none"`), these are the
    /// GPUs a request would have named.
    pub source: GpuSource,
    /// The GPUs asked for, NVML indexes or UUIDs; `null` is every GPU.
    pub requested: Option<Vec<String>>,
    /// When the sample was taken, Unix seconds.
    pub sampled_at: f64,
    /// Each GPU read, in NVML index order; a reading the GPU did not give
    /// is left out (host-gpu's `GpuTelemetry`).
    pub gpus: Vec<GpuTelemetry>,
    /// Why no GPU was read ("no telemetry (why)"), or which could not be.
    pub note: Option<String>,
}

impl GpuSection {
    /// Why there is no reading, for "GPU telemetry: none (why)".
    pub fn none_reason(&self) -> Option<String> {
        if !self.gpus.is_empty() {
            return None;
        }
        Some(match self.note.as_deref() {
            Some(note) => note
                .strip_prefix("no telemetry (")
                .and_then(|why| why.strip_suffix(')'))
                .unwrap_or(note)
                .to_owned(),
            None => "NVML lists no GPU".to_owned(),
        })
    }
}

/// NVML loaded at most once per command, on the first sample (a `status`
/// of a session without GPUs never loads it); `--watch` samples through it
/// on every refresh.
#[derive(Default)]
pub struct Sampling {
    sampler: OnceLock<Sampler>,
}

impl Sampling {
    /// One sample of `gpus` (`$JARVIS_NVML_LIBRARY`, else the system's NVML,
    /// as `doctor` finds it).
    pub fn sample(&self, gpus: &SessionGpus) -> Telemetry {
        self.sampler
            .get_or_init(|| Sampler::open(None))
            .sample(gpus.selection.as_deref())
    }
}

/// The section for a session `session_id` using `gpus`: one sample, and the
/// energy against the baseline at `baseline_path`, divided by `counts`, and
/// for each of `workers` (a session of several) over its own GPUs.
pub fn section(
    gpus: &SessionGpus,
    session_id: Option<&str>,
    baseline_path: &HomePath,
    (counts, workers): (Option<Counts>, &[WorkerShares]),
    mining: Option<&MiningConfig>,
    sampling: &Sampling,
) -> (GpuSection, EnergyReport) {
    let sample = sampling.sample(gpus);
    let baseline = session_baseline(baseline_path, session_id);
    let mut energy = energy::report(
        baseline.as_ref().map_err(Clone::clone),
        &sample,
        counts,
        mining.and_then(price_per_kwh),
    );
    energy.workers = energy::per_worker(&energy, workers);
    let section = GpuSection {
        source: gpus.source,
        requested: gpus.selection.clone(),
        sampled_at: sample.sampled_at,
        gpus: sample.gpus,
        note: sample.note,
    };
    (section, energy)
}

/// The baseline of `session_id`, or why there is none.
fn session_baseline(path: &HomePath, session_id: Option<&str>) -> Result<Baseline, String> {
    let session_id = session_id.ok_or("the session's container has no session label")?;
    match baseline::read(path)? {
        Some(baseline) if baseline.session_id == session_id => Ok(baseline),
        Some(baseline) => Err(format!(
            "the energy baseline in {path} is of session {}, not this one ({session_id})",
            baseline.session_id
        )),
        None => Err(format!(
            "no energy baseline was recorded when this session started ({path}); \
             it is recorded by `jarvis mine start`"
        )),
    }
}

/// Samples the session's GPUs now and records the baseline of `session_id`
/// at `path` (the start of the energy window). Errors are the caller's to
/// report: a missing baseline never stops a session.
pub fn record_baseline(
    path: &HomePath,
    session_id: &str,
    gpus: &SessionGpus,
) -> std::io::Result<()> {
    let sample = Sampling::default().sample(gpus);
    baseline::write(path, &Baseline::of(session_id, &sample))
}

/// `[mining.extra].electricity_price_per_kwh` (validated when the config is
/// loaded: a number of at least 0).
pub fn price_per_kwh(mining: &MiningConfig) -> Option<f64> {
    match mining.extra.get("electricity_price_per_kwh")? {
        toml::Value::Float(price) => Some(*price),
        toml::Value::Integer(price) => Some(*price as f64),
        _ => None,
    }
    .filter(|price| price.is_finite() && *price >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_mining as mining;

    #[test]
    fn the_price_is_read_as_a_number() {
        assert_eq!(
            price_per_kwh(&mining("electricity_price_per_kwh = 0.31")),
            Some(0.31)
        );
        assert_eq!(
            price_per_kwh(&mining("electricity_price_per_kwh = 2")),
            Some(2.0)
        );
        assert_eq!(
            price_per_kwh(&mining("electricity_price_per_kwh = 0")),
            Some(0.0)
        );
        assert_eq!(price_per_kwh(&mining("")), None);
    }

    #[test]
    fn none_says_why_without_the_samplers_wrapping() {
        let mut section = GpuSection {
            source: GpuSource::Container,
            requested: None,
            sampled_at: 0.0,
            gpus: Vec::new(),
            note: Some("no telemetry (NVIDIA driver library x could not be loaded (gone))".into()),
        };
        assert_eq!(
            section.none_reason().as_deref(),
            Some("NVIDIA driver library x could not be loaded (gone)")
        );
        section.note = Some("no GPU 5 among the 1 NVML lists".into());
        assert_eq!(
            section.none_reason().as_deref(),
            Some("no GPU 5 among the 1 NVML lists")
        );
        section.note = None;
        assert_eq!(section.none_reason().as_deref(), Some("NVML lists no GPU"));
        section.gpus.push(GpuTelemetry::default());
        assert_eq!(section.none_reason(), None);
    }

    #[test]
    fn only_this_sessions_baseline_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/mining-energy-baseline.json");
        assert!(
            session_baseline(&path, Some("s1"))
                .unwrap_err()
                .starts_with("no energy baseline was recorded")
        );
        let baseline = Baseline {
            session_id: "s1".into(),
            taken_at: 5.0,
            gpus: Vec::new(),
            note: None,
        };
        baseline::write(&path, &baseline).unwrap();
        assert_eq!(session_baseline(&path, Some("s1")).unwrap(), baseline);
        assert!(
            session_baseline(&path, Some("s2"))
                .unwrap_err()
                .contains("is of session s1, not this one (s2)")
        );
        assert!(session_baseline(&path, None).is_err());
    }
}
