//! The cost of one sandboxed `detect` per built-in provider (fresh store and
//! instance from the `InstancePre`, then the call), and of loading the
//! registry from a warm compiled-component cache.
//!
//! Run with `cargo bench -p jarvis-mine --bench detect` (or `scripts/bench`);
//! targets and measured figures are in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jarvis_mine::facts::{GpuSelection, to_guest};
use jarvis_mine::policy::Policy;
use jarvis_mine::registry::{BUILTIN_COMPONENTS, Registry};
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use std::hint::black_box;
use std::time::Duration;

/// The issue's example host: one H100, as `doctor --facts` would read it.
const H100_FACTS: &str = r#"{"os":"linux","arch":"x86_64","gpus":[{"index":0,"name":"NVIDIA H100 80GB HBM3","vendor":"nvidia","compute_capability":"9.0","memory_total_mib":81559}]}"#;

/// What `doctor` detects against by default.
const ENGINE: &str = jarvis_mine::doctor::DEFAULT_ENGINE;
const MODEL: &str = pearl_catalog::DEFAULT_PEARL_MODEL;

fn no_policy() -> Policy {
    Policy::none(&jarvis_mine::paths::Paths::with_home("/nonexistent"))
}

fn sandbox_with_cache(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxLimits::default(), Some(jarvis_mine::home::root(dir)))
        .expect("sandbox starts")
}

fn load_builtins(sandbox: &Sandbox) -> Registry {
    let registry = Registry::load(sandbox, None, &no_policy());
    assert!(
        registry.failures.is_empty(),
        "built-in providers failed to load: {:?}",
        registry.failures
    );
    assert_eq!(registry.providers.len(), BUILTIN_COMPONENTS.len());
    registry
}

fn detect(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temp dir");
    let sandbox = sandbox_with_cache(cache.path());
    let registry = load_builtins(&sandbox);
    let host = host_gpu::HardwareFacts::from_json(H100_FACTS).expect("facts parse");
    let facts = to_guest(&host, &GpuSelection::default());

    let mut group = c.benchmark_group("detect");
    for provider in &registry.providers {
        // Fail loudly rather than benchmark an error path.
        let verdict = provider
            .detect(&sandbox, &facts, ENGINE, MODEL)
            .unwrap_or_else(|err| panic!("{} detect failed: {err}", provider.id()));
        if provider.id() == "vllm-pearl" {
            assert!(verdict.supported, "vllm-pearl should support an H100");
        }
        group.bench_function(format!("{}/h100", provider.id()), |b| {
            b.iter(|| {
                provider
                    .detect(&sandbox, black_box(&facts), ENGINE, MODEL)
                    .expect("detect")
            })
        });
    }
    group.finish();
}

fn registry_load_warm(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temp dir");
    let sandbox = sandbox_with_cache(cache.path());
    // The first load compiles and fills the cache; every later one reads it.
    drop(load_builtins(&sandbox));
    let entries = std::fs::read_dir(cache.path()).expect("cache dir").count();
    assert_eq!(entries, BUILTIN_COMPONENTS.len(), "cache is warm");

    c.bench_function("registry_load/warm_cache", |b| {
        b.iter(|| Registry::load(black_box(&sandbox), None, &no_policy()))
    });
}

fn sandbox_new(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temp dir");
    c.bench_function("sandbox_new", |b| {
        b.iter(|| sandbox_with_cache(black_box(cache.path())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = detect, registry_load_warm, sandbox_new
}
criterion_main!(benches);
