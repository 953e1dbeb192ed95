//! The energy baseline of the running session,
//! `<home>/runtime/mining-energy-baseline.json`: when `start` ran the
//! session's containers, each session GPU's energy counter (NVML's
//! `nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded) and the
//! time. `status` measures the session's energy from here.
//!
//! The host alone writes it (atomically, mode 0600, under the session lock),
//! from its own NVML reading at a moment it picks, tagged with the session id
//! it generated; it is removed when the session ends (`stop`, a failed
//! `start`, a dead session repaired). Providers have no file access: their
//! `sidecar` import writes `runtime/mining.json` only, so nothing a provider
//! does can write, replace or change this file.

use crate::atomic_file::Mode;
use crate::bounded_read::{self, InputFile};
use crate::home::HomePath;
use host_gpu::telemetry::Telemetry;
use serde::{Deserialize, Serialize};

/// The baseline as the host writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// The session the host started (its containers' session label).
    pub session_id: String,
    /// When the counters were read, Unix seconds.
    pub taken_at: f64,
    /// The session's GPUs NVML could open, in NVML index order.
    pub gpus: Vec<BaselineGpu>,
    /// Why there are no readings, or which GPUs could not be read (the
    /// sampler's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One GPU's counter at the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineGpu {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `None`: the GPU has no energy counter (or did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_mj: Option<u64>,
}

/// A few GPUs' worth of numbers; anything larger is not the host's file.
const BASELINE_FILE: InputFile = InputFile {
    noun: "the energy baseline",
    expected: "the JSON record the host writes at `jarvis mine start`",
    max_bytes: 64 << 10,
    header: None,
};

impl Baseline {
    /// The baseline of `session_id` from one sample of its GPUs.
    pub fn of(session_id: &str, sample: &Telemetry) -> Baseline {
        Baseline {
            session_id: session_id.to_owned(),
            taken_at: sample.sampled_at,
            gpus: sample
                .gpus
                .iter()
                .map(|gpu| BaselineGpu {
                    index: gpu.index,
                    uuid: gpu.uuid.clone(),
                    energy_mj: gpu.energy_mj,
                })
                .collect(),
            note: sample.note.clone(),
        }
    }
}

/// Writes `baseline` (atomically, mode 0600; `runtime/` made 0700 if missing).
pub fn write(path: &HomePath, baseline: &Baseline) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        dir.create_dir_all_with_mode(0o700)?;
    }
    let bytes = serde_json::to_vec_pretty(baseline).map_err(std::io::Error::other)?;
    path.write_atomically(Mode::Fixed(0o600), &bytes)
}

/// The baseline; `None` when there is none. A file that is not one the
/// host wrote is an error, never guessed at.
pub fn read(path: &HomePath) -> Result<Option<Baseline>, String> {
    match bounded_read::read_home_bytes(path, &BASELINE_FILE) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| format!("the energy baseline {path} is not valid: {err}")),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

/// Removes the baseline, if there is one.
pub fn remove(path: &HomePath) -> std::io::Result<()> {
    path.remove_file_if_present()
}

/// Removes the baseline if it belongs to `session_id`, or is not a
/// baseline at all (it would be in the next session's way).
pub fn remove_for(path: &HomePath, session_id: &str) -> std::io::Result<()> {
    match read(path) {
        Ok(Some(baseline)) if baseline.session_id != session_id => Ok(()),
        Ok(None) => Ok(()),
        Ok(Some(_)) | Err(_) => remove(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_gpu::telemetry::GpuTelemetry;

    fn sample() -> Telemetry {
        Telemetry {
            sampled_at: 1_765_000_000.25,
            gpus: vec![
                GpuTelemetry {
                    index: 0,
                    uuid: Some("GPU-a".into()),
                    energy_mj: Some(5_000),
                    power_w: Some(300.0),
                    ..GpuTelemetry::default()
                },
                GpuTelemetry {
                    index: 2,
                    ..GpuTelemetry::default()
                },
            ],
            note: Some("NVML could not open GPU 1: lost".into()),
        }
    }

    #[test]
    fn a_baseline_keeps_the_counters_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/mining-energy-baseline.json");
        assert_eq!(read(&path).unwrap(), None);
        let baseline = Baseline::of("s1", &sample());
        assert_eq!(
            baseline.gpus,
            [
                BaselineGpu {
                    index: 0,
                    uuid: Some("GPU-a".into()),
                    energy_mj: Some(5_000)
                },
                BaselineGpu {
                    index: 2,
                    uuid: None,
                    energy_mj: None
                }
            ]
        );
        write(&path, &baseline).unwrap();
        assert_eq!(read(&path).unwrap(), Some(baseline));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = std::fs::metadata(path.absolute()).unwrap();
            assert_eq!(file.permissions().mode() & 0o777, 0o600);
            let dir = std::fs::metadata(dir.path().join("runtime")).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
        // Another session's end leaves it; its own removes it.
        remove_for(&path, "s2").unwrap();
        assert!(path.exists());
        remove_for(&path, "s1").unwrap();
        assert!(!path.exists());
        remove(&path).unwrap();
    }

    #[test]
    fn a_file_the_host_did_not_write_is_an_error_and_goes_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("baseline.json");
        std::fs::write(
            path.absolute(),
            r#"{"session_id":"s","taken_at":1,"gpus":[],"extra":1}"#,
        )
        .unwrap();
        assert!(read(&path).unwrap_err().contains("is not valid"));
        std::fs::write(path.absolute(), vec![b' '; 65 << 10]).unwrap();
        assert!(read(&path).unwrap_err().contains("more than"));
        remove_for(&path, "s").unwrap();
        assert!(!path.exists());
    }
}
