//! Host bindings for the `openjarvis:mining@0.1.0` world, generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mining-provider",
    additional_derives: [PartialEq],
});

pub use exports::openjarvis::mining::provider::{Capabilities, ProviderInfo};
pub use openjarvis::mining::types::{
    Capability, DockerFacts, Error, ExtraValue, Gpu, HardwareFacts, MiningConfig, MiningStats,
    PearlFacts, PoolTarget, SoloTarget, SubmitTarget,
};

impl Capability {
    /// The capability's name in policy files, audit records and messages.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Containers => "containers",
            Capability::Sidecar => "sidecar",
            Capability::Metrics => "metrics",
            Capability::GpuTelemetry => "gpu-telemetry",
            Capability::Processes => "processes",
        }
    }
}
