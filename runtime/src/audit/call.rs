//! The records of one provider call: repeats collapse into one record with
//! a count, the call writes at most [`MAX_CALL_RECORDS`] records plus one
//! that counts the rest, and a provider past its daily quota writes nothing
//! more that day but one record saying so (its privileged calls are then
//! refused by [`CallAudit::ready`]).
//!
//! An allowed call (the host acted) is written as soon as it is recorded,
//! so a command killed mid-call still has the record of what was done;
//! its repeats, and denials (which changed nothing), are written when the
//! call ends.

use super::appender::{AuditLog, today};
use super::record::{Decision, Record};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Records one call may write, besides the one counting what it suppressed.
pub const MAX_CALL_RECORDS: usize = 32;

/// The audit bookkeeping of one provider call.
#[derive(Debug)]
pub struct CallAudit {
    log: Option<Arc<AuditLog>>,
    provider: String,
    component: String,
    /// The contract version the provider was linked as.
    wit: String,
    /// `info()` at load: the provider is who it says it is once it says so,
    /// and its records are kept once a day (it runs on every command).
    loading: bool,
    events: Vec<Event>,
    written: usize,
    /// Occurrences past the bounds, by capability and decision.
    suppressed: BTreeMap<(String, Decision), u64>,
    /// What the provider had written today when this call began to record.
    usage_before: Option<super::state::Usage>,
    quota_recorded: bool,
}

#[derive(Debug)]
struct Event {
    /// The record without times and counts, to compare with.
    key: Record,
    /// Occurrences not written yet, as one record.
    pending: Option<Record>,
}

impl CallAudit {
    pub fn new(log: Option<Arc<AuditLog>>, provider: &str, component: &str) -> CallAudit {
        CallAudit {
            log,
            provider: provider.to_owned(),
            component: component.to_owned(),
            wit: super::WIT_VERSION.to_owned(),
            loading: false,
            events: Vec::new(),
            written: 0,
            suppressed: BTreeMap::new(),
            usage_before: None,
            quota_recorded: false,
        }
    }

    /// Marks the call as `info()` at load: no provider id until
    /// [`CallAudit::identify`], and records kept once a day.
    pub fn loading(mut self) -> CallAudit {
        self.loading = true;
        self.provider.clear();
        self
    }

    /// The call is of a provider linked as the contract `wit`
    /// (`openjarvis:mining@0.1.0`), which its records name.
    pub fn contract(mut self, wit: &str) -> CallAudit {
        self.wit = wit.to_owned();
        self
    }

    /// The id `info()` returned (validated), for the call's records.
    pub fn identify(&mut self, id: &str) {
        self.provider = id.to_owned();
    }

    /// Whether a privileged call may act: the log is writable and the
    /// provider is within its daily quota. A host that cannot keep its
    /// record refuses the call rather than act unrecorded.
    pub fn ready(&mut self) -> Result<(), String> {
        let Some(log) = &self.log else { return Ok(()) };
        let usage = log.usage_today(&self.provider)?;
        let before = *self.usage_before.get_or_insert(usage);
        self.quota_denial(before).map_or(Ok(()), Err)
    }

    /// Takes one record of this call.
    pub fn record(&mut self, mut record: Record) {
        let Some(log) = self.log.clone() else { return };
        record.clip();
        record.provider.clone_from(&self.provider);
        record.component.clone_from(&self.component);
        record.wit.clone_from(&self.wit);
        record.daily = self.loading;
        if let Some(denial) = self.over_quota(&log) {
            self.record_quota(&log, &record, denial);
            return;
        }
        let key = record.event();
        if let Some(event) = self.events.iter_mut().find(|e| e.key == key) {
            match &mut event.pending {
                Some(pending) => {
                    pending.count += 1;
                    pending.duration_us += record.duration_us;
                    pending.last = Some(record.time);
                }
                None => event.pending = Some(record),
            }
            return;
        }
        if self.events.len() == MAX_CALL_RECORDS {
            self.suppress(&record, 1);
            return;
        }
        let write_now = record.decision == Decision::Allow && !self.loading;
        self.events.push(Event {
            key,
            pending: (!write_now).then(|| record.clone()),
        });
        if write_now {
            self.write(&log, vec![record]);
        }
    }

    /// Writes what the call has not written yet; `Sandbox::call` calls it
    /// when the call ends, whichever way (a trap, a timeout).
    pub fn finish(&mut self) {
        let Some(log) = self.log.clone() else { return };
        let mut batch = Vec::new();
        for event in &mut self.events {
            let Some(mut pending) = event.pending.take() else {
                continue;
            };
            // The provider is known only now for a call at load.
            pending.provider.clone_from(&self.provider);
            batch.push(pending);
        }
        let mut kept = Vec::new();
        for record in batch {
            if self.written + kept.len() < MAX_CALL_RECORDS {
                kept.push(record);
            } else {
                let count = record.count;
                self.suppress(&record, count);
            }
        }
        if !self.suppressed.is_empty() {
            kept.push(self.suppressed_record());
            self.suppressed.clear();
        }
        if !kept.is_empty() {
            self.write(&log, kept);
        }
    }

    fn write(&mut self, log: &AuditLog, records: Vec<Record>) {
        self.written += records.len();
        if let Err(err) = log.append_all(records) {
            tracing::warn!("{err}");
        }
    }

    fn suppress(&mut self, record: &Record, count: u64) {
        *self
            .suppressed
            .entry((record.capability.clone(), record.decision))
            .or_default() += count;
    }

    /// The one record that counts what the bound left out.
    fn suppressed_record(&self) -> Record {
        let total: u64 = self.suppressed.values().sum();
        let parts: Vec<String> = self
            .suppressed
            .iter()
            .map(|((capability, decision), n)| {
                let decision = match decision {
                    Decision::Allow => "allowed",
                    Decision::Deny => "denied",
                };
                format!("{capability} {decision} {n}")
            })
            .collect();
        let mut record = Record::new(
            &self.provider,
            &self.component,
            "audit",
            format!(
                "audit.suppressed {total} further records of this call ({}): a call writes at most {MAX_CALL_RECORDS}",
                parts.join(", ")
            ),
        );
        record.wit.clone_from(&self.wit);
        record.count = total;
        record.outcome = Some("ok".into());
        record.daily = self.loading;
        record
    }

    /// The quota denial once the provider's records today (before this
    /// call, plus this call's) reach a daily bound.
    fn over_quota(&mut self, log: &AuditLog) -> Option<String> {
        let usage = match self.usage_before {
            Some(usage) => usage,
            None => {
                let usage = log.usage_today(&self.provider).unwrap_or_default();
                *self.usage_before.insert(usage)
            }
        };
        self.quota_denial(usage)
    }

    fn quota_denial(&self, before: super::state::Usage) -> Option<String> {
        let log = self.log.as_ref()?;
        let limits = log.limits();
        let pending = self.events.iter().filter(|e| e.pending.is_some()).count();
        let records = before.records + (self.written + pending) as u64;
        if records < limits.daily_records && before.bytes < limits.daily_bytes {
            return None;
        }
        Some(format!(
            "provider '{}' has written its daily audit quota ({} records or {} MiB per UTC day, docs/security.md \"Audit integrity\"); its privileged calls are refused until 00:00 UTC, since the host does not act unrecorded",
            self.provider,
            limits.daily_records,
            limits.daily_bytes >> 20
        ))
    }

    /// Past the quota only one record a day says so; the rest is dropped.
    fn record_quota(&mut self, log: &AuditLog, record: &Record, denial: String) {
        if self.quota_recorded {
            return;
        }
        self.quota_recorded = true;
        let mut quota = Record::new(
            &self.provider,
            &self.component,
            "audit",
            format!("audit.quota reached on {}", today()),
        );
        quota.time.clone_from(&record.time);
        quota.wit.clone_from(&self.wit);
        quota.decision = Decision::Deny;
        quota.reason = Some(denial);
        quota.daily = true;
        if let Err(err) = log.append_all(vec![quota]) {
            tracing::warn!("{err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::{denial, lines, log_in, record};
    use crate::audit::{AuditLimits, read, verify};

    fn call(log: &Arc<AuditLog>) -> CallAudit {
        CallAudit::new(Some(log.clone()), "p", "abc")
    }

    #[test]
    fn repeated_denials_are_one_record_with_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), 10 << 20);
        let log = Arc::new(log);
        let mut audit = call(&log);
        for _ in 0..1000 {
            audit.record(denial("p", "sidecar.read"));
        }
        assert!(
            lines(&path).is_empty(),
            "denials wait for the end of the call"
        );
        audit.finish();
        let records = read(&path, &Default::default(), None).unwrap();
        assert_eq!(records.len(), 1, "{records:#?}");
        assert_eq!(records[0].count, 1000);
        assert!(records[0].last.is_some());
    }

    #[test]
    fn every_record_of_a_call_names_the_contract_its_provider_was_linked_as() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), 10 << 20);
        let log = Arc::new(log);
        let mut audit = call(&log).contract("openjarvis:mining@0.1.0");
        audit.record(record("p", "containers.run image=x"));
        for i in 0..=MAX_CALL_RECORDS {
            audit.record(denial("p", &format!("sidecar.read {i}")));
        }
        audit.finish();
        let records = read(&path, &Default::default(), None).unwrap();
        let last = records.last().unwrap();
        assert!(last.action.starts_with("audit.suppressed"), "{last:?}");
        assert!(
            records.iter().all(|r| r.wit == "openjarvis:mining@0.1.0"),
            "{records:#?}"
        );
    }

    #[test]
    fn an_allowed_call_is_written_at_once_and_its_repeats_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), 10 << 20);
        let log = Arc::new(log);
        let mut audit = call(&log);
        audit.record(record("p", "containers.run image=x"));
        assert_eq!(lines(&path).len(), 1, "written before the import returns");
        for _ in 0..9 {
            audit.record(record("p", "containers.run image=x"));
        }
        audit.finish();
        let counts: Vec<u64> = read(&path, &Default::default(), None)
            .unwrap()
            .iter()
            .map(|r| r.count)
            .collect();
        assert_eq!(counts, [1, 9]);
    }

    #[test]
    fn a_call_writes_at_most_its_bound_and_one_record_counting_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), 10 << 20);
        let log = Arc::new(log);
        let mut audit = call(&log);
        for i in 0..100 {
            audit.record(denial(
                "p",
                &format!("metrics.scrape url=http://h{i}:1 {}", "x".repeat(5000)),
            ));
        }
        audit.finish();
        let records = read(&path, &Default::default(), None).unwrap();
        assert_eq!(records.len(), MAX_CALL_RECORDS + 1);
        let last = records.last().unwrap();
        assert!(
            last.action
                .starts_with("audit.suppressed 68 further records"),
            "{last:?}"
        );
        assert_eq!(last.count, 68);
        let bytes: usize = lines(&path).iter().map(String::len).sum();
        assert!(bytes < (MAX_CALL_RECORDS + 1) * 3000, "{bytes} bytes");
    }

    #[test]
    fn the_daily_quota_holds_across_processes_and_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("logs/mining-audit.jsonl");
        let limits = AuditLimits {
            daily_records: 5,
            ..AuditLimits::default()
        };
        // Two logs: two commands, one after the other.
        let first = Arc::new(AuditLog::with_limits(path.clone(), limits));
        let mut audit = call(&first);
        for i in 0..4 {
            audit.ready().unwrap();
            audit.record(record("p", &format!("sidecar.read {i}")));
        }
        audit.finish();
        let second = Arc::new(AuditLog::with_limits(path.clone(), limits));
        assert_eq!(second.usage_today("p").unwrap().records, 4);
        let mut audit = call(&second);
        audit.ready().unwrap();
        audit.record(record("p", "sidecar.read 4"));
        let denied = audit.ready().unwrap_err();
        assert!(denied.contains("daily audit quota (5 records"), "{denied}");
        audit.record(denial("p", "sidecar.read 5"));
        audit.finish();
        let mut again = call(&second);
        assert!(again.ready().is_err());
        again.record(denial("p", "sidecar.read 6"));
        again.finish();
        // Another provider is not affected.
        let mut other = CallAudit::new(Some(second.clone()), "q", "def");
        other.ready().unwrap();
        let records = read(&path, &Default::default(), None).unwrap();
        let quota: Vec<&Record> = records
            .iter()
            .filter(|r| r.action.starts_with("audit.quota"))
            .collect();
        assert_eq!(records.len(), 6, "{records:#?}");
        assert_eq!(quota.len(), 1);
        assert!(verify(&path).unwrap().intact);
    }

    #[test]
    fn records_at_load_name_the_id_and_are_kept_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("logs/mining-audit.jsonl");
        for _ in 0..3 {
            let log = Arc::new(AuditLog::new(path.clone()));
            let mut audit = CallAudit::new(Some(log), "acme.wasm", "abc").loading();
            audit.record(denial("acme.wasm", "sidecar.read"));
            audit.record(denial("acme.wasm", "sidecar.read"));
            audit.identify("acme");
            audit.finish();
        }
        let records = read(&path, &Default::default(), None).unwrap();
        assert_eq!(records.len(), 1, "{records:#?}");
        assert_eq!(
            (records[0].provider.as_str(), records[0].count),
            ("acme", 2)
        );
        assert!(records[0].daily);
    }
}
