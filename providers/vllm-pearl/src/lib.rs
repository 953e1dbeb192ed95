//! `vllm-pearl`: mines by serving a Pearl model through Pearl's vLLM miner
//! container on NVIDIA Hopper GPUs (OpenJarvis `vllm_pearl.py` / `_discovery.py`).
//!
//! Everything privileged goes through host imports: the container spec is
//! declarative (secrets are references the host resolves), the session record
//! is written by the host, and stats come from host-parsed scrapes and logs.

mod detect;
mod launch;
mod session;
mod stats;

use mining_provider_sdk::types::{
    Capabilities, Capability, Error, HardwareFacts, MiningConfig, MiningStats, ProviderInfo,
};
use mining_provider_sdk::{Provider, export_provider};

pub const PROVIDER_ID: &str = "vllm-pearl";

struct VllmPearl;

impl Provider for VllmPearl {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: PROVIDER_ID.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Pearl's vLLM miner container on NVIDIA Hopper (H100/H200)".into(),
            capabilities: vec![
                Capability::Containers,
                Capability::Sidecar,
                Capability::Metrics,
                Capability::GpuTelemetry,
            ],
        }
    }

    fn detect(facts: HardwareFacts, engine_id: String, model: String) -> Capabilities {
        match detect::check(&facts, &engine_id, &model) {
            Ok(notes) => Capabilities {
                notes,
                ..Capabilities::supported()
            },
            Err(reason) => Capabilities::unsupported(reason),
        }
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        session::start(&config)
    }

    fn stop() -> Result<(), Error> {
        session::stop()
    }

    fn is_running() -> bool {
        session::is_running()
    }

    fn stats() -> MiningStats {
        stats::collect()
    }
}

export_provider!(VllmPearl);
