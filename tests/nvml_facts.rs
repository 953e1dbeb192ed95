//! host-gpu's NVML facts through the real nvml-wrapper, loading the fake
//! `libnvidia-ml.so.1` from tests/fake-nvml.
//!
//! The fake reads its GPUs from environment variables, which are process-wide,
//! while tests run as threads of one process. So each scenario runs
//! [`probe_in_child`] in a fresh copy of this test binary with its own
//! environment, and the parent checks the facts the child wrote.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use host_gpu::{GatherOptions, GpuFacts, HardwareFacts, NVML_LIBRARY_ENV};

/// Where the child writes its facts as JSON; unset outside a child.
const CHILD_OUTPUT_ENV: &str = "NVML_FACTS_CHILD_OUTPUT";
/// An explicit library path for the child to pass in `GatherOptions`.
const CHILD_LIBRARY_ENV: &str = "NVML_FACTS_CHILD_LIBRARY";

/// The scenario body, run only in a child process started by [`facts_with`].
#[test]
#[ignore = "run by the other tests in a child process"]
fn probe_in_child() {
    let Some(output) = std::env::var_os(CHILD_OUTPUT_ENV) else {
        return;
    };
    let facts = host_gpu::gather(&GatherOptions {
        nvml_library: std::env::var_os(CHILD_LIBRARY_ENV).map(PathBuf::from),
        skip_docker: true,
        python: host_gpu::pearl::PythonProbe::Skip,
        docker_cache: None,
    });
    std::fs::write(output, serde_json::to_string(&facts).unwrap()).unwrap();
}

/// Gathers facts in a child process whose environment is this one without any
/// NVML or fake-NVML variables, plus `env`.
fn facts_with(env: &[(&str, &str)]) -> HardwareFacts {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("facts.json");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["probe_in_child", "--exact", "--ignored", "--quiet"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FAKE_NVML_") {
            child.env_remove(key);
        }
    }
    child
        .env_remove(NVML_LIBRARY_ENV)
        .env(CHILD_OUTPUT_ENV, &output)
        .envs(env.iter().copied());
    let result = child.output().unwrap();
    assert!(
        result.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    HardwareFacts::from_json(&std::fs::read_to_string(output).unwrap()).unwrap()
}

fn fake_library() -> &'static str {
    jarvis_mine_tests::fake_nvml_library()
}

fn nvidia(index: u32, uuid: &str, name: &str, cc: &str, mib: u64) -> GpuFacts {
    GpuFacts {
        index,
        uuid: Some(uuid.into()),
        name: name.into(),
        vendor: "nvidia".into(),
        compute_capability: Some(cc.into()),
        memory_total_mib: Some(mib),
    }
}

#[test]
fn default_fake_is_two_h100s_and_a_4090() {
    let facts = facts_with(&[(NVML_LIBRARY_ENV, fake_library())]);
    let h100 = "NVIDIA H100 80GB HBM3";
    assert_eq!(
        facts.gpus,
        [
            nvidia(
                0,
                "GPU-fa4e0000-0000-4000-8000-000000000000",
                h100,
                "9.0",
                81_559
            ),
            nvidia(
                1,
                "GPU-fa4e0000-0000-4000-8000-000000000001",
                h100,
                "9.0",
                81_559
            ),
            nvidia(
                2,
                "GPU-fa4e0000-0000-4000-8000-000000000002",
                "NVIDIA GeForce RTX 4090",
                "8.9",
                24_564
            ),
        ]
    );
    assert_eq!(facts.nvidia_driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(facts.cuda_version.as_deref(), Some("12.4"));
    assert_eq!(facts.gpu_note, None);
}

#[test]
fn custom_gpus_and_versions() {
    let facts = facts_with(&[
        (NVML_LIBRARY_ENV, fake_library()),
        (
            "FAKE_NVML_GPUS",
            "NVIDIA L4,8.9,23034,GPU-l4; NVIDIA B200,10.0,183359,GPU-b200",
        ),
        ("FAKE_NVML_DRIVER_VERSION", "570.86.15"),
        ("FAKE_NVML_CUDA_VERSION", "12080"),
    ]);
    assert_eq!(
        facts.gpus,
        [
            nvidia(0, "GPU-l4", "NVIDIA L4", "8.9", 23_034),
            nvidia(1, "GPU-b200", "NVIDIA B200", "10.0", 183_359),
        ]
    );
    assert_eq!(facts.nvidia_driver_version.as_deref(), Some("570.86.15"));
    assert_eq!(facts.cuda_version.as_deref(), Some("12.8"));
}

#[test]
fn a_lost_gpu_and_unsupported_fields_cost_only_themselves() {
    let facts = facts_with(&[
        (NVML_LIBRARY_ENV, fake_library()),
        ("FAKE_NVML_GPUS", "lost; NVIDIA T4,?,?,?"),
    ]);
    let t4 = GpuFacts {
        index: 1,
        name: "NVIDIA T4".into(),
        vendor: "nvidia".into(),
        ..GpuFacts::default()
    };
    assert_eq!(facts.gpus, [t4]);
    let note = facts.gpu_note.unwrap();
    assert!(
        note.contains("GPU 0") && note.contains("fell off the bus"),
        "{note}"
    );
    assert_eq!(facts.cuda_version.as_deref(), Some("12.4"));
}

#[test]
fn no_gpus_is_not_a_failure() {
    let facts = facts_with(&[(NVML_LIBRARY_ENV, fake_library()), ("FAKE_NVML_GPUS", "")]);
    assert!(facts.gpus.is_empty());
    assert_eq!(facts.gpu_note, None);
    assert_eq!(facts.nvidia_driver_version.as_deref(), Some("550.54.15"));
}

#[test]
fn init_failure_is_a_reason() {
    let facts = facts_with(&[
        (NVML_LIBRARY_ENV, fake_library()),
        ("FAKE_NVML_INIT_FAIL", "1"),
    ]);
    assert!(facts.gpus.is_empty());
    assert_eq!(
        facts.gpu_note.as_deref(),
        Some("NVML failed to initialise: NVIDIA driver is not loaded")
    );
    assert_eq!(
        (facts.nvidia_driver_version, facts.cuda_version),
        (None, None)
    );
}

#[test]
fn an_explicit_library_beats_the_environment() {
    let facts = facts_with(&[
        (NVML_LIBRARY_ENV, "/nonexistent/libnvidia-ml.so.1"),
        (CHILD_LIBRARY_ENV, fake_library()),
    ]);
    assert_eq!(facts.gpus.len(), 3);
}

// Without the fake, the environment cannot matter: these run in-process.

#[test]
fn a_missing_library_is_a_reason() {
    let report = host_gpu::nvml::gpus(Some(Path::new("/nonexistent/libnvidia-ml.so.1")));
    assert!(report.gpus.is_empty());
    let note = report.note.unwrap();
    assert!(
        note.starts_with(
            "NVIDIA driver library /nonexistent/libnvidia-ml.so.1 could not be loaded ("
        ) && note.contains("No such file"),
        "{note}"
    );
}

#[test]
fn a_library_without_nvml_is_a_reason() {
    let report = host_gpu::nvml::gpus(Some(Path::new("libm.so.6")));
    assert!(report.gpus.is_empty());
    let note = report.note.unwrap();
    assert!(
        note.starts_with("libm.so.6 is not a usable NVML library ("),
        "{note}"
    );
    assert!(note.contains("nvmlInit_v2"), "{note}");
}
