//! Host bindings for every contract version this host serves, generated from
//! `wit/`: the current one (`v0_2`, `wit/types.wit`), whose types the rest of
//! the host uses (re-exported here), and the frozen 0.1.0 (`v0_1`,
//! `wit/0.1.0/types.wit`), whose imports are shims over the current host
//! (`host/v0_1.rs`) and whose exports the sandbox converts
//! (`sandbox/v0_1.rs`).

pub mod v0_1;
pub mod v0_2;

/// The current contract's interfaces (`openjarvis::mining::containers::Host`,
/// ...), where the host's imports implement them.
pub use v0_2::openjarvis;

pub use v0_2::exports::openjarvis::mining::provider::{Capabilities, ProviderInfo};
pub use v0_2::openjarvis::mining::types::{
    Capability, DockerFacts, Error, ExtraValue, Gpu, HardwareFacts, MiningConfig, MiningStats,
    PearlFacts, PoolTarget, SoloTarget, SubmitTarget, WorkerStats, WorkersSetting,
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

/// A version of the `openjarvis:mining` contract this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `wit/0.1.0/types.wit`, frozen.
    V0_1,
    /// `wit/types.wit`, the current contract.
    V0_2,
}

impl Contract {
    /// The contract the host implements; older ones are shims over it.
    pub const CURRENT: Contract = Contract::V0_2;

    /// Every version served, newest first: the order in which a component's
    /// exports are matched.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// `0.2.0`.
    pub const fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// `openjarvis:mining@0.2.0`, as audit records and `providers inspect`
    /// name it.
    pub const fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "openjarvis:mining@0.1.0",
            Contract::V0_2 => "openjarvis:mining@0.2.0",
        }
    }

    /// The export that marks a component of this version.
    pub const fn provider_export(self) -> &'static str {
        match self {
            Contract::V0_1 => "openjarvis:mining/provider@0.1.0",
            Contract::V0_2 => "openjarvis:mining/provider@0.2.0",
        }
    }
}
