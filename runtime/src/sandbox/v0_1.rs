//! The exports of a component of the frozen contract `openjarvis:mining@0.1.0`,
//! called in the current contract's types: the facts and the config go
//! down to 0.1, and what the component answers comes up (its stats with
//! `shares-rejected` 0, a field 0.1 does not have).

use super::CallState;
use super::contract::ProviderExports;
use crate::bindings::v0_1::{MiningProvider, Twin};
use crate::bindings::{
    Capabilities, Error, HardwareFacts, MiningConfig, MiningStats, ProviderInfo,
};
use wasmtime::Store;

impl ProviderExports for MiningProvider {
    fn info(&self, store: &mut Store<CallState>) -> wasmtime::Result<ProviderInfo> {
        self.openjarvis_mining_provider()
            .call_info(store)
            .map(Twin::twin)
    }

    fn detect(
        &self,
        store: &mut Store<CallState>,
        facts: &HardwareFacts,
        engine_id: &str,
        model: &str,
    ) -> wasmtime::Result<Capabilities> {
        self.openjarvis_mining_provider()
            .call_detect(store, &facts.clone().twin(), engine_id, model)
            .map(Twin::twin)
    }

    fn start(
        &self,
        store: &mut Store<CallState>,
        config: &MiningConfig,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.openjarvis_mining_provider()
            .call_start(store, &config.clone().twin())
            .map(Twin::twin)
    }

    fn stop(&self, store: &mut Store<CallState>) -> wasmtime::Result<Result<(), Error>> {
        self.openjarvis_mining_provider()
            .call_stop(store)
            .map(Twin::twin)
    }

    fn stats(&self, store: &mut Store<CallState>) -> wasmtime::Result<MiningStats> {
        self.openjarvis_mining_provider()
            .call_stats(store)
            .map(Twin::twin)
    }
}
