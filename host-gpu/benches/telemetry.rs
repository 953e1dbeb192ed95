//! The cost of one telemetry sample of 8 GPUs (the target: ≤ 2 ms),
//! through the real nvml-wrapper and the fake `libnvidia-ml.so.1` of
//! tests/fake-nvml (built here, in release), so it measures host-gpu's own
//! work and nvml-wrapper's, not a driver's: 8 GPUs × 15 NVML queries.
//!
//! Run with `cargo bench -p host-gpu --bench telemetry`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use host_gpu::telemetry::{self, Sampler};

/// Builds tests/fake-nvml in release and returns a `libnvidia-ml.so.1` link
/// to it beside the build output.
fn fake_library() -> PathBuf {
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "fake-nvml",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "cargo build -p fake-nvml failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let built = String::from_utf8_lossy(&build.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "fake_nvml")
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .find(|path| path.extension().is_some_and(|ext| ext == "so"))
        .expect("cargo reported the fake's .so");
    let dir = built.parent().unwrap().join("fake-nvml");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("libnvidia-ml.so.1");
    let target = Path::new("..").join(built.file_name().unwrap());
    match std::os::unix::fs::symlink(target, &link) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            panic!("linking {}: {error}", link.display())
        }
        _ => {}
    }
    link
}

fn sample_8_gpus(c: &mut Criterion) {
    let library = fake_library();
    let gpus = (0..8)
        .map(|i| format!("NVIDIA H100 80GB HBM3,9.0,81559,GPU-h100-{i}"))
        .collect::<Vec<_>>()
        .join(";");
    // SAFETY: set before anything here starts a thread or loads NVML (the
    // fake reads its configuration at `nvmlInit_v2`).
    unsafe {
        std::env::set_var("FAKE_NVML_GPUS", gpus);
        std::env::set_var(host_gpu::NVML_LIBRARY_ENV, &library);
    }
    let sampler = Sampler::open(Some(&library));
    let first = sampler.sample(None);
    assert_eq!((first.gpus.len(), &first.note), (8, &None), "{first:?}");
    assert!(
        first
            .gpus
            .iter()
            .all(|gpu| gpu.power_w.is_some() && gpu.performance_state.is_some())
    );
    let uuids: Vec<String> = (0..8).map(|i| format!("GPU-h100-{i}")).collect();

    let mut group = c.benchmark_group("telemetry");
    group.bench_function("sample/8_gpus", |b| {
        b.iter(|| black_box(sampler.sample(None)))
    });
    group.bench_function("sample/8_gpus_by_uuid", |b| {
        b.iter(|| black_box(sampler.sample(Some(&uuids))))
    });
    // The process-wide NVML of `telemetry::sample`, as `status` would use it.
    assert_eq!(telemetry::sample(None).gpus.len(), 8);
    group.bench_function("shared_sample/8_gpus", |b| {
        b.iter(|| black_box(telemetry::sample(None)))
    });
    // Loading NVML for every sample instead: what the shared handle saves.
    group.bench_function("open_and_sample/8_gpus", |b| {
        b.iter(|| black_box(Sampler::open(Some(&library)).sample(None)))
    });
    group.finish();
}

criterion_group!(benches, sample_8_gpus);
criterion_main!(benches);
