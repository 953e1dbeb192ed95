//! The audit log's cost: one append with the lock and the chain (the figure
//! against the 20 µs target), one append after another process wrote (the
//! line it must read first), a collapsed call, and verifying a log.
//!
//! Run with `cargo bench -p jarvis-mine --bench audit`; figures are in
//! docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jarvis_mine::audit::{AuditLog, CallAudit, Record, verify};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn record() -> Record {
    Record::new(
        "vllm-pearl",
        &"ab".repeat(32),
        "containers",
        "containers.inspect 0123456789ab".into(),
    )
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = jarvis_mine::home::root(dir.path()).join("mining-audit.jsonl");
    let log = AuditLog::new(path.clone());
    let record = record();
    log.ready().expect("writable");
    c.bench_function("audit_append", |b| {
        b.iter(|| log.append(black_box(&record)))
    });
    // Two logs on one file, as two commands: each append first reads the
    // line the other wrote.
    let other = AuditLog::new(path);
    c.bench_function("audit_append_after_another_writer", |b| {
        b.iter(|| {
            log.append(black_box(&record)).expect("append");
            other.append(black_box(&record)).expect("append");
        })
    });
}

fn collapsed_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(AuditLog::new(
        jarvis_mine::home::root(dir.path()).join("mining-audit.jsonl"),
    ));
    let mut denial = record();
    denial.decision = jarvis_mine::audit::Decision::Deny;
    denial.reason = Some("not granted".into());
    c.bench_function("audit_call_of_100_denials", |b| {
        b.iter(|| {
            let mut call = CallAudit::new(Some(log.clone()), "vllm-pearl", "ab");
            for _ in 0..100 {
                call.record(black_box(denial.clone()));
            }
            call.finish();
        })
    });
}

fn verify_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = jarvis_mine::home::root(dir.path()).join("mining-audit.jsonl");
    let log = AuditLog::new(path.clone());
    for _ in 0..10_000 {
        log.append(&record()).expect("append");
    }
    c.bench_function("audit_verify_10k_records", |b| {
        b.iter(|| assert!(verify(black_box(&path)).expect("readable").intact))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append, collapsed_call, verify_log
}
criterion_main!(benches);
