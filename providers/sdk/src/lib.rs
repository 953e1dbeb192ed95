//! The guest side of the `openjarvis:mining@0.1.0` contract.
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
//! `log` import before the trap, so `jarvis mine doctor` can say why.

wit_bindgen::generate!({
    world: "mining-provider",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "__export_mining_provider",
    default_bindings_module: "mining_provider_sdk",
});

pub mod log;

use exports::openjarvis::mining::provider::Guest;
use std::marker::PhantomData;

/// Types of the contract, re-exported under one short path.
pub mod types {
    pub use crate::openjarvis::mining::types::*;
}

use types::{Capabilities, HardwareFacts, ProviderInfo};

/// A mining provider, as a provider author writes it.
pub trait Provider {
    fn info() -> ProviderInfo;
    fn detect(facts: HardwareFacts, engine_id: String, model: String) -> Capabilities;
}

impl Capabilities {
    pub fn supported() -> Self {
        Capabilities {
            supported: true,
            reason: None,
            estimated_hashrate: None,
        }
    }

    pub fn unsupported(reason: impl Into<String>) -> Self {
        Capabilities {
            supported: false,
            reason: Some(reason.into()),
            estimated_hashrate: None,
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
