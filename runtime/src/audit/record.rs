//! One audit record: its fields, its time format, and the bound on what a
//! guest can make it hold.

use serde::{Deserialize, Serialize};

/// The WIT package a record names unless it is a provider call's: the
/// contract the host implements. A provider call's records name the version
/// the provider was linked as (`CallAudit::contract`).
pub const WIT_VERSION: &str = crate::bindings::Contract::CURRENT.package();

/// The longest action or reason a record keeps: what a guest sends (an id,
/// a URL) must not let it flood the log.
pub const MAX_RECORD_TEXT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC; for a collapsed record, its first occurrence.
    pub time: String,
    /// The provider id (from `info()`); empty for the host's own records and
    /// for a component that never named itself.
    pub provider: String,
    /// sha256 of the provider's component.
    pub component: String,
    /// The contract version: the provider's, for its calls.
    pub wit: String,
    /// The capability the call needed (`containers`, ...), or `load`/`install`/`remove`,
    /// or `audit` for the log's own records.
    pub capability: String,
    /// The import or operation and what it asked for (names only).
    pub action: String,
    pub decision: Decision,
    /// Why it was denied, or how an allowed call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a denial, the rule that made it: a policy key
    /// (`providers."x".containers.images`) or `host:<rule>` (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a denial by a policy key, the file it lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<String>,
    /// `ok`, or the error kind of an allowed call that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// For a collapsed record, the total over its occurrences.
    pub duration_us: u64,
    /// How many identical events this record stands for (within one call).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
    /// The time of the last occurrence, when `count` > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// Kept once per UTC day: identical events later that day are not recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub daily: bool,
    /// A retention prune: the hash of the deleted segment's last line, which
    /// the oldest kept record links to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    /// Position in the log since its first record (set by the appender).
    #[serde(default)]
    pub seq: u64,
    /// sha256 (hex) of the previous line (set by the appender).
    #[serde(default)]
    pub prev: String,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl Record {
    pub fn new(provider: &str, component: &str, capability: &str, action: String) -> Record {
        Record {
            time: now_rfc3339(),
            provider: provider.to_owned(),
            component: component.to_owned(),
            wit: WIT_VERSION.to_owned(),
            capability: capability.to_owned(),
            action,
            decision: Decision::Allow,
            reason: None,
            rule: None,
            policy_file: None,
            outcome: None,
            duration_us: 0,
            count: 1,
            last: None,
            daily: false,
            anchor: None,
            seq: 0,
            prev: String::new(),
        }
    }

    /// The UTC day (`YYYY-MM-DD`) of the record's time.
    pub fn day(&self) -> &str {
        self.time.get(..10).unwrap_or_default()
    }

    /// The record without what differs between occurrences of one event
    /// (times, durations, counts, its place in the chain), for comparison.
    pub(crate) fn event(&self) -> Record {
        Record {
            time: String::new(),
            duration_us: 0,
            count: 1,
            last: None,
            seq: 0,
            prev: String::new(),
            ..self.clone()
        }
    }

    /// Clips the texts a guest controls to [`MAX_RECORD_TEXT`].
    pub(crate) fn clip(&mut self) {
        clip(&mut self.action);
        if let Some(reason) = &mut self.reason {
            clip(reason);
        }
    }
}

fn clip(text: &mut String) {
    if text.len() > MAX_RECORD_TEXT {
        let mut end = MAX_RECORD_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
}

/// RFC 3339 in UTC with milliseconds, always the same width, so times
/// compare as strings (retention does) and records of the same content have
/// the same length.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_time(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_clipped_on_a_char_boundary() {
        let mut record = Record::new("a", "c", "metrics", "é".repeat(MAX_RECORD_TEXT));
        record.reason = Some("x".repeat(5 * MAX_RECORD_TEXT));
        record.clip();
        assert!(record.action.len() <= MAX_RECORD_TEXT + 3);
        assert!(record.action.ends_with("..."));
        assert_eq!(record.reason.unwrap().len(), MAX_RECORD_TEXT + 3);
    }

    #[test]
    fn a_plain_record_serializes_without_collapse_fields_and_reads_back() {
        let record = Record::new("a", "c", "sidecar", "sidecar.read".into());
        let line = serde_json::to_string(&record).unwrap();
        for absent in ["count", "last", "daily", "anchor"] {
            assert!(!line.contains(absent), "{line}");
        }
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
        assert_eq!(record.day().len(), 10);
    }

    #[test]
    fn events_ignore_times_and_counts_only() {
        let a = Record::new("a", "c", "sidecar", "sidecar.read".into());
        let mut b = a.clone();
        b.time = "2000-01-01T00:00:00.000Z".into();
        b.duration_us = 7;
        b.count = 3;
        assert_eq!(a.event(), b.event());
        b.reason = Some("no".into());
        assert_ne!(a.event(), b.event());
    }
}
