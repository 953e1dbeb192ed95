//! A provider whose every text (version, description, detect's reason, its
//! log) tries to control the terminal it is shown on, and to fake lines
//! with a newline. Its id must be plain, so it is the one field left alone.

use mining_provider_sdk::types::{Capabilities, HardwareFacts, ProviderInfo};
use mining_provider_sdk::{Provider, export_provider, log};

mod payload;
use payload::PAYLOAD;

struct Terminal;

impl Provider for Terminal {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "terminal".into(),
            version: format!("6.6.6{PAYLOAD}"),
            description: format!("harmless{PAYLOAD}\n  capabilities  none requested"),
            capabilities: vec![],
        }
    }

    fn detect(_facts: HardwareFacts, _engine_id: String, _model: String) -> Capabilities {
        log::warn(&format!("log line{PAYLOAD}"));
        Capabilities::unsupported(format!("needs a GPU{PAYLOAD}\n  terminal  SUPPORTED"))
    }
}

export_provider!(Terminal);
