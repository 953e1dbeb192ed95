//! `apple-mps-pearl` (experimental): the CPU provider's gateway plus Pearl's
//! NoisyGEMM reference miner on PyTorch MPS (OpenJarvis `apple_mps_pearl.py`).

use mining_provider_sdk::types::{Capabilities, Capability, HardwareFacts, ProviderInfo};
use mining_provider_sdk::{Provider, export_provider};
use pearl_catalog::tools::{gateway_reason, python_packages_reason};
use pearl_provider_kit::subprocess::Backend;

struct AppleMpsPearl;

/// Pearl's NoisyGEMM on PyTorch MPS, m/n/k/rank of §9.4.
const BACKEND: Backend = Backend {
    provider_id: "apple-mps-pearl",
    backend: "mps",
    shape: [128, 128, 1024, 64],
};

impl Provider for AppleMpsPearl {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "apple-mps-pearl".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Experimental: Pearl's NoisyGEMM miner on Apple Silicon through PyTorch MPS".into(),
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

export_provider!(AppleMpsPearl);

fn check(facts: &HardwareFacts) -> Result<(), String> {
    let os = facts.os_name();
    if os != "darwin" {
        return Err(format!(
            "apple-mps-pearl requires macOS; this host is '{os}'"
        ));
    }
    if facts.gpus_by_vendor("apple").next().is_none() {
        return Err("apple-mps-pearl requires an Apple GPU".into());
    }
    if let Some(reason) = python_packages_reason(facts.pearl.python_packages.as_deref()) {
        return Err(reason);
    }
    if let Some(reason) = gateway_reason(facts.pearl.gateway_on_path) {
        return Err(reason);
    }
    let torch = &facts.pearl;
    if torch.torch_installed != Some(true) {
        return Err("PyTorch is not installed".into());
    }
    if torch.torch_mps_built != Some(true) {
        return Err("PyTorch was not built with MPS support".into());
    }
    if torch.torch_mps_available != Some(true) {
        return Err("PyTorch MPS is not available on this host".into());
    }
    Ok(())
}
