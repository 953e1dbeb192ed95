//! Helpers for the audit module's unit tests.

use super::{AuditLimits, AuditLog, Decision, Record};
use std::path::{Path, PathBuf};

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
pub fn log_in(dir: &Path, rotate_bytes: u64) -> (PathBuf, AuditLog) {
    let path = dir.join("logs/mining-audit.jsonl");
    let limits = AuditLimits {
        rotate_bytes,
        ..AuditLimits::default()
    };
    (path.clone(), AuditLog::with_limits(path, limits))
}

/// Every line of every file of the log, oldest first.
pub fn lines(path: &Path) -> Vec<String> {
    super::segments::all(path)
        .unwrap()
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}
