//! Host bindings for the `openjarvis:mining@0.1.0` world, generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mining-provider",
});

pub use exports::openjarvis::mining::provider::{Capabilities, ProviderInfo};
pub use openjarvis::mining::types::{Capability, DockerFacts, Gpu, HardwareFacts, PearlFacts};
