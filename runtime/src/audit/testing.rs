//! Helpers for the audit module's unit tests.

use super::{AuditLimits, AuditLog, Decision, Record};
use crate::home::HomePath;
use std::path::Path;

/// A record of `provider`'s whose action is `action`.
pub fn record(provider: &str, action: &str) -> Record {
    Record::new(provider, "abc", "sidecar", action.to_owned())
}

/// A denial, as the gate records one.
pub fn denial(provider: &str, action: &str) -> Record {
    Record {
        decision: Decision::Deny,
        reason: Some("not granted".into()),
        ..record(provider, action)
    }
}

/// The log in a fresh directory, rotating every `rotate_bytes`.
pub fn log_in(dir: &Path, rotate_bytes: u64) -> (HomePath, AuditLog) {
    let path = crate::home::root(dir).join("logs/mining-audit.jsonl");
    let limits = AuditLimits {
        rotate_bytes,
        ..AuditLimits::default()
    };
    (path.clone(), AuditLog::with_limits(path, limits))
}

/// Every line of every file of the log, oldest first.
pub fn lines(path: &HomePath) -> Vec<String> {
    super::segments::all(path)
        .unwrap()
        .iter()
        .flat_map(|file| {
            file.read_to_string()
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}
