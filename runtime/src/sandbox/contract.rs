//! Which contract version a component implements, decided from the
//! `provider` interface it exports, and its exports as the host calls them:
//! always in the current contract's types. A current component is called
//! as it is; a 0.1.0 one through `v0_1.rs`, which converts.

use super::CallState;
use crate::bindings::{
    Capabilities, Contract, Error, HardwareFacts, MiningConfig, MiningStats, ProviderInfo, v0_1,
    v0_2,
};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

/// A component linked against the host, as the version it exports.
pub enum ProviderPre {
    V0_1(v0_1::MiningProviderPre<CallState>),
    V0_2(v0_2::MiningProviderPre<CallState>),
}

impl ProviderPre {
    pub fn contract(&self) -> Contract {
        match self {
            ProviderPre::V0_1(_) => Contract::V0_1,
            ProviderPre::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn component(&self) -> &Component {
        match self {
            ProviderPre::V0_1(pre) => pre.instance_pre().component(),
            ProviderPre::V0_2(pre) => pre.instance_pre().component(),
        }
    }

    /// Types the linked component as the version `contract`.
    pub(super) fn new(
        contract: Contract,
        pre: InstancePre<CallState>,
    ) -> wasmtime::Result<ProviderPre> {
        Ok(match contract {
            Contract::V0_1 => ProviderPre::V0_1(v0_1::MiningProviderPre::new(pre)?),
            Contract::V0_2 => ProviderPre::V0_2(v0_2::MiningProviderPre::new(pre)?),
        })
    }
}

/// The newest contract whose `provider` interface `component` exports
/// (wasmtime matches semver-compatible versions: 0.2.x for 0.2.0); the
/// error names every version this host supports.
pub(super) fn contract_of(component: &Component) -> Result<Contract, String> {
    Contract::ALL
        .into_iter()
        .find(|contract| {
            component
                .get_export_index(None, contract.provider_export())
                .is_some()
        })
        .ok_or_else(|| {
            let exports: Vec<&str> = Contract::ALL.iter().map(|c| c.provider_export()).collect();
            let versions: Vec<&str> = Contract::ALL.iter().map(|c| c.version()).collect();
            format!(
                "it exports none of {}: this host supports contract versions {}",
                exports.join(", "),
                versions.join(" and ")
            )
        })
}

/// A provider's exports as the host calls them, in the current contract's
/// types, whatever version the component implements.
pub trait ProviderExports {
    fn info(&self, store: &mut Store<CallState>) -> wasmtime::Result<ProviderInfo>;
    fn detect(
        &self,
        store: &mut Store<CallState>,
        facts: &HardwareFacts,
        engine_id: &str,
        model: &str,
    ) -> wasmtime::Result<Capabilities>;
    fn start(
        &self,
        store: &mut Store<CallState>,
        config: &MiningConfig,
    ) -> wasmtime::Result<Result<(), Error>>;
    fn stop(&self, store: &mut Store<CallState>) -> wasmtime::Result<Result<(), Error>>;
    fn stats(&self, store: &mut Store<CallState>) -> wasmtime::Result<MiningStats>;
}

impl ProviderExports for v0_2::MiningProvider {
    fn info(&self, store: &mut Store<CallState>) -> wasmtime::Result<ProviderInfo> {
        self.openjarvis_mining_provider().call_info(store)
    }

    fn detect(
        &self,
        store: &mut Store<CallState>,
        facts: &HardwareFacts,
        engine_id: &str,
        model: &str,
    ) -> wasmtime::Result<Capabilities> {
        self.openjarvis_mining_provider()
            .call_detect(store, facts, engine_id, model)
    }

    fn start(
        &self,
        store: &mut Store<CallState>,
        config: &MiningConfig,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.openjarvis_mining_provider().call_start(store, config)
    }

    fn stop(&self, store: &mut Store<CallState>) -> wasmtime::Result<Result<(), Error>> {
        self.openjarvis_mining_provider().call_stop(store)
    }

    fn stats(&self, store: &mut Store<CallState>) -> wasmtime::Result<MiningStats> {
        self.openjarvis_mining_provider().call_stats(store)
    }
}
