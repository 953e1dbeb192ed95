//! The mining history's cost: recording one tick of a session of 8 workers
//! on 8 GPUs (what `jarvis mine supervise` does once a second: the figure
//! against its 0.5 %-of-a-core budget), a prune that merges a minute of
//! such ticks, the report `jarvis mine history` reads over a day, and the
//! last 10 minutes `jarvis mine top` reads.
//!
//! Run with `cargo bench -p jarvis-mine --bench history`; figures are in
//! docs/benchmarks.md.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use host_gpu::GpuTelemetry;
use jarvis_mine::history::{Counts, History, Retention, Tick, WorkerCounts};
use std::hint::black_box;

fn tick(at: f64, k: u64) -> Tick {
    let counts = |scale: u64| Counts {
        shares_submitted: (k + 1) * scale,
        shares_accepted: k * scale,
        shares_rejected: scale,
        blocks_found: k / 1000 * scale,
        hashrate: 0.0,
        uptime_seconds: k as f64,
        last_share_at: Some(at),
        last_error: None,
    };
    Tick {
        recorded_at: at,
        session_id: "0f6c1d52-bench-session".into(),
        provider_id: "vllm-pearl".into(),
        payout_target: "solo".into(),
        fees_owed: 0,
        totals: counts(8),
        workers: (0..8)
            .map(|worker| WorkerCounts {
                worker,
                counts: counts(1),
            })
            .collect(),
        gpus: (0..8)
            .map(|index| GpuTelemetry {
                index,
                uuid: Some(format!("GPU-0000000{index}-1111-2222-3333-444444444444")),
                name: Some("NVIDIA H100 80GB HBM3".into()),
                power_w: Some(412.3),
                energy_mj: Some(k * 412_300),
                gpu_temp_c: Some(61),
                memory_temp_c: Some(70),
                gpu_util_percent: Some(97),
                memory_util_percent: Some(55),
                memory_used_mib: Some(70_000),
                memory_total_mib: Some(81_559),
                sm_clock_mhz: Some(1980),
                memory_clock_mhz: Some(2619),
                throttle_reasons: Some(vec!["sw_power_cap".into()]),
                ..GpuTelemetry::default()
            })
            .collect(),
    }
}

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = History::open(&jarvis_mine::home::root(dir.path()).join("telemetry/mining.db"))
        .expect("history");
    (dir, history)
}

/// One tick into a history that already holds two hours of them (the raw
/// retention), as the supervisor's steady state.
fn record(c: &mut Criterion) {
    let (_dir, mut history) = open();
    let start = 1_777_593_600.0;
    let mut k = 0u64;
    for _ in 0..2 * 3600 {
        history.record(&tick(start + k as f64, k)).expect("record");
        k += 1;
    }
    // What two hours of raw ticks take on disk (17 rows a tick), for the
    // retention's size bound in docs/benchmarks.md.
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut path = history.path().as_os_str().to_owned();
            path.push(suffix);
            std::fs::metadata(path).ok().map(|m| m.len())
        })
        .sum();
    eprintln!(
        "history: 2 h of raw ticks ({} rows) take {:.1} MB, {:.0} bytes a row",
        2 * 3600 * 17,
        bytes as f64 / 1e6,
        bytes as f64 / f64::from(2 * 3600 * 17)
    );
    c.bench_function("history_record_tick_8_workers_8_gpus", |b| {
        b.iter(|| {
            history
                .record(black_box(&tick(start + k as f64, k)))
                .expect("record");
            k += 1;
        })
    });
}

/// `jarvis mine history`'s report over a day and `top`'s last 10 minutes,
/// in the steady state: a day of ticks, pruned (2 h raw, 22 h of minutes).
fn read(c: &mut Criterion) {
    let (_dir, mut history) = open();
    let start = 1_777_593_600.0;
    let day = 86_400u64;
    for k in 0..day {
        history.record(&tick(start + k as f64, k)).expect("record");
    }
    let now = start + day as f64;
    history.prune(now).expect("prune");
    c.bench_function("history_report_24h", |b| {
        b.iter(|| history.report(black_box(now - 86_400.0)).expect("report"))
    });
    c.bench_function("history_recent_10_minutes", |b| {
        b.iter(|| history.recent(black_box(now), 10).expect("recent"))
    });
}

/// A prune that merges one minute of raw ticks (what each prune does when
/// the supervisor prunes every minute).
fn prune(c: &mut Criterion) {
    let retention = Retention {
        raw_seconds: 0.0,
        ..Retention::default()
    };
    let start = 1_777_593_600.0;
    c.bench_function("history_prune_a_minute_of_ticks", |b| {
        b.iter_batched(
            || {
                let (dir, mut history) = open();
                for k in 0..60u64 {
                    history.record(&tick(start + k as f64, k)).expect("record");
                }
                (dir, history)
            },
            |(dir, mut history)| {
                history.prune_with(start + 61.0, retention).expect("prune");
                (dir, history)
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, record, read, prune);
criterion_main!(benches);
