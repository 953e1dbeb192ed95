//! `cpu-pearl`: decoupled CPU mining through Pearl's gateway and pure-Rust
//! miner (OpenJarvis `cpu_pearl.py`). Engine- and model-independent.

use mining_provider_sdk::types::{Capabilities, Capability, HardwareFacts, ProviderInfo};
use mining_provider_sdk::{Provider, export_provider};
use pearl_catalog::tools::{gateway_reason, python_packages_reason};
use pearl_provider_kit::subprocess::Backend;

struct CpuPearl;

/// Pearl's pure-Rust miner (`pearl_mining.mine`), m/n/k/rank of §9.3.
const BACKEND: Backend = Backend {
    provider_id: "cpu-pearl",
    backend: "cpu",
    shape: [256, 128, 1024, 32],
};

impl Provider for CpuPearl {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "cpu-pearl".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Pearl gateway plus the pure-Rust CPU miner loop (Linux, macOS)".into(),
            capabilities: vec![
                Capability::Processes,
                Capability::Sidecar,
                Capability::Metrics,
            ],
        }
    }

    fn detect(facts: HardwareFacts, _engine_id: String, _model: String) -> Capabilities {
        check(&facts).into()
    }

    pearl_provider_kit::subprocess_lifecycle!(BACKEND);
}

export_provider!(CpuPearl);

fn check(facts: &HardwareFacts) -> Result<(), String> {
    let os = facts.os_name();
    if os != "linux" && os != "darwin" {
        return Err(format!(
            "cpu-pearl runs on Linux and macOS only; this host is '{os}'"
        ));
    }
    if let Some(reason) = python_packages_reason(facts.pearl.python_packages.as_deref()) {
        return Err(reason);
    }
    gateway_reason(facts.pearl.gateway_on_path).map_or(Ok(()), Err)
}
