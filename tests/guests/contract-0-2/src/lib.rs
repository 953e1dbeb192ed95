//! The contract test provider against the current `openjarvis:mining@0.2.0`
//! (`wit/`): the twin of tests/guests/contract-0-1, built from the same
//! `provider.rs` with bindings of its own.

wit_bindgen::generate!({
    world: "mining-provider",
    path: "../../../wit",
});

#[path = "../../contract-0-1/src/provider.rs"]
mod provider;

use openjarvis::mining::sidecar::Session;
use openjarvis::mining::types::{Capabilities, MiningStats};
use provider::{Contract, Counts};

/// The contract version this component is built against.
const CONTRACT: &str = "0.2.0";

/// The current `mining-stats`. The provider counts no rejections: it makes
/// the same calls as its 0.1.0 twin, whose contract has no place for them.
fn mining_stats(provider_id: &str, counts: Counts, last_error: Option<String>) -> MiningStats {
    MiningStats {
        provider_id: provider_id.into(),
        shares_submitted: counts.submitted,
        shares_accepted: counts.accepted,
        shares_rejected: 0,
        blocks_found: counts.accepted,
        hashrate: 0.0,
        uptime_seconds: 0.0,
        last_share_at: None,
        last_error,
        payout_target: "solo".into(),
        fees_owed: 0,
        requests_served: Some(counts.requests),
        prompt_tokens: None,
        generation_tokens: None,
        workers: Vec::new(),
    }
}

/// The current `capabilities`.
fn verdict(supported: bool, reason: Option<String>) -> Capabilities {
    Capabilities {
        supported,
        reason,
        estimated_hashrate: None,
        notes: Vec::new(),
    }
}

/// The current session record of the fake miner at `endpoint` (no path).
fn session(endpoint: &str, container_id: String, wallet_address: String, image: String) -> Session {
    Session {
        vllm_endpoint: format!("{endpoint}/v1"),
        model: "contract/model".into(),
        gateway_url: "http://127.0.0.1:8337".into(),
        gateway_metrics_url: "http://127.0.0.1:8339".into(),
        metrics_url: format!("{endpoint}/metrics"),
        container_id,
        wallet_address,
        image,
        workers: Vec::new(),
    }
}

export!(Contract);
