//! The guest side of the `openjarvis:mining@0.2.0` contract (`wit/types.wit`).
//!
//! A provider implements [`Provider`] and calls [`export_provider!`]:
//!
//! ```ignore
//! use mining_provider_sdk::{Provider, types::*};
//! struct Mine;
//! impl Provider for Mine { /* info, detect */ }
//! mining_provider_sdk::export_provider!(Mine);
//! ```
//!
//! The SDK installs a panic hook that logs the panic message through the host's
//! `log` import before the trap, so `jarvis mine doctor` can say why. It adds
//! helpers to the generated types: `[mining.extra]` readers on `MiningConfig`
//! (`config`), questions about `HardwareFacts` (`facts`), readable host
//! errors (`error`), and `Capabilities::supported()`/`unsupported(reason)`.
//! `providers/examples/rust-template` is a provider to start from.

wit_bindgen::generate!({
    world: "mining-provider",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "__export_mining_provider",
    default_bindings_module: "mining_provider_sdk",
    additional_derives: [PartialEq],
});

pub mod config;
pub mod error;
pub mod facts;
pub mod log;

use exports::openjarvis::mining::provider::Guest;
use std::marker::PhantomData;

/// Types of the contract, re-exported under one short path.
pub mod types {
    pub use crate::openjarvis::mining::types::*;
}

/// Host imports: containers, host processes, the session sidecar, metrics
/// scrapes, GPU telemetry, the clock.
pub mod host {
    pub use crate::openjarvis::mining::clock;
    pub use crate::openjarvis::mining::containers;
    pub use crate::openjarvis::mining::gpu_telemetry;
    pub use crate::openjarvis::mining::metrics;
    pub use crate::openjarvis::mining::processes;
    pub use crate::openjarvis::mining::sidecar;
}

use types::{Capabilities, Error, HardwareFacts, MiningConfig, MiningStats, ProviderInfo};

/// A mining provider, as a provider author writes it. Only `info` and
/// `detect` are required; a provider that cannot mine yet keeps the default
/// lifecycle, which says so.
pub trait Provider {
    fn info() -> ProviderInfo;
    fn detect(facts: HardwareFacts, engine_id: String, model: String) -> Capabilities;

    fn start(_config: MiningConfig) -> Result<(), Error> {
        Err(Error::Unavailable(format!(
            "provider '{}' cannot start mining in this release",
            Self::info().id
        )))
    }

    fn stop() -> Result<(), Error> {
        Ok(())
    }

    fn is_running() -> bool {
        false
    }

    fn stats() -> MiningStats {
        MiningStats::empty(&Self::info().id)
    }
}

impl MiningStats {
    /// All-zero statistics, as for a provider with no session.
    pub fn empty(provider_id: &str) -> Self {
        MiningStats {
            provider_id: provider_id.to_owned(),
            shares_submitted: 0,
            shares_accepted: 0,
            shares_rejected: 0,
            blocks_found: 0,
            hashrate: 0.0,
            uptime_seconds: 0.0,
            last_share_at: None,
            last_error: None,
            payout_target: "solo".to_owned(),
            fees_owed: 0,
            requests_served: None,
            prompt_tokens: None,
            generation_tokens: None,
            workers: Vec::new(),
        }
    }
}

impl Capabilities {
    pub fn supported() -> Self {
        Capabilities {
            supported: true,
            reason: None,
            estimated_hashrate: None,
            notes: Vec::new(),
        }
    }

    pub fn unsupported(reason: impl Into<String>) -> Self {
        Capabilities {
            supported: false,
            reason: Some(reason.into()),
            estimated_hashrate: None,
            notes: Vec::new(),
        }
    }
}

/// A check's outcome as a verdict: `Ok` is supported, `Err(reason)` is not.
impl From<Result<(), String>> for Capabilities {
    fn from(check: Result<(), String>) -> Self {
        match check {
            Ok(()) => Capabilities::supported(),
            Err(reason) => Capabilities::unsupported(reason),
        }
    }
}

/// Bridges a [`Provider`] to the generated export trait, adding the panic hook.
#[doc(hidden)]
pub struct Adapter<P>(PhantomData<P>);

impl<P: Provider> Guest for Adapter<P> {
    fn info() -> ProviderInfo {
        install_panic_hook();
        P::info()
    }

    fn detect(facts: HardwareFacts, engine_id: String, model: String) -> Capabilities {
        install_panic_hook();
        P::detect(facts, engine_id, model)
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        install_panic_hook();
        P::start(config)
    }

    fn stop() -> Result<(), Error> {
        install_panic_hook();
        P::stop()
    }

    fn is_running() -> bool {
        install_panic_hook();
        P::is_running()
    }

    fn stats() -> MiningStats {
        install_panic_hook();
        P::stats()
    }
}

/// Every call runs in a fresh instance, so the hook is installed per call.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|panic| {
        log::error(&format!("{panic}"));
    }));
}

/// Exports `$provider` (a type implementing [`Provider`]) as this component's `provider`.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        type __MiningProviderExport = $crate::Adapter<$provider>;
        $crate::__export_mining_provider!(__MiningProviderExport with_types_in $crate);
    };
}
