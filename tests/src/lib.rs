//! Shared helpers for the integration tests: the test guests, a sandbox, and
//! hardware facts for well-known machines.

use jarvis_mine::bindings::HardwareFacts;
use jarvis_mine::facts::{GpuSelection, to_guest};
use jarvis_mine::provider::{LoadedProvider, ProviderSource};
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use std::path::Path;

/// The guest that misbehaves as its `model` argument asks (tests/guests/hostile).
pub fn hostile_component() -> Vec<u8> {
    read(env!("GUEST_HOSTILE"))
}

/// The WASI guest that tries every impure thing (tests/guests/impure).
pub fn impure_component() -> Vec<u8> {
    read(env!("GUEST_IMPURE"))
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(path)).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

/// A sandbox with `limits` and no compiled-component cache.
pub fn sandbox(limits: SandboxLimits) -> Sandbox {
    Sandbox::new(limits, None).expect("sandbox starts")
}

/// Loads component bytes as an installed provider.
pub fn load(sandbox: &Sandbox, bytes: &[u8]) -> LoadedProvider {
    let component = sandbox.compile(bytes, "test").expect("component compiles");
    let pre = sandbox.prepare(&component).expect("component links");
    LoadedProvider::new(
        sandbox,
        pre,
        ProviderSource::Installed("test.wasm".into()),
        "test".into(),
        "test",
    )
    .expect("info() succeeds")
}

/// Facts for a Linux host with these GPUs `(name, compute capability, MiB)`.
pub fn linux_with_gpus(gpus: &[(&str, &str, u64)]) -> host_gpu::HardwareFacts {
    host_gpu::HardwareFacts {
        os: Some("linux".into()),
        arch: Some("x86_64".into()),
        gpus: gpus
            .iter()
            .enumerate()
            .map(|(index, (name, cc, mib))| host_gpu::GpuFacts {
                index: index as u32,
                uuid: Some(format!("GPU-{index:08}")),
                name: (*name).into(),
                vendor: "nvidia".into(),
                compute_capability: Some((*cc).into()),
                memory_total_mib: Some(*mib),
            })
            .collect(),
        ..Default::default()
    }
}

/// The same facts as a provider receives them (no GPU selection).
pub fn guest_facts(facts: &host_gpu::HardwareFacts) -> HardwareFacts {
    to_guest(facts, &GpuSelection::default())
}
