//! The mining history end to end: `jarvis mine history` (the real binary)
//! over a history recorded through the library, its errors, and a writer
//! killed with SIGKILL mid-write, again and again, leaving a sound database
//! whose ticks are whole.

#![cfg(unix)]

use host_gpu::GpuTelemetry;
use jarvis_mine::history::{Counts, History, Tick, WorkerCounts};
use jarvis_mine_tests::run::{Run, jarvis_mine, output_within, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
/// Far above a normal run, far below a hang.
const DEADLINE: Duration = Duration::from_secs(120);
const WORKERS: u32 = 8;
const GPUS: u32 = 8;

fn history(home: &Path, args: &[&str]) -> Run {
    let mut command = jarvis_mine(JARVIS, home, &["history"]);
    command.args(args);
    Run::new(
        format!("jarvis mine history {}", args.join(" ")),
        output_within(&mut command, DEADLINE),
    )
}

fn db(home: &Path) -> jarvis_mine::home::HomePath {
    jarvis_mine::home::root(home).join("telemetry/mining.db")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Tick `k` of a session of 8 workers on 8 GPUs: worker `w` has accepted
/// `k` shares (and submitted `k + 1`, rejected 1); GPU `g` has used `k`
/// joules since its counter's zero.
fn tick(at: f64, k: u64) -> Tick {
    let counts = |scale: u64| Counts {
        shares_submitted: (k + 1) * scale,
        shares_accepted: k * scale,
        shares_rejected: scale,
        blocks_found: k / 100 * scale,
        hashrate: 0.0,
        uptime_seconds: k as f64 + 1.0,
        last_share_at: Some(at),
        last_error: None,
    };
    Tick {
        recorded_at: at,
        session_id: "history-test-session".into(),
        provider_id: "vllm-pearl".into(),
        payout_target: "solo".into(),
        fees_owed: 0,
        totals: counts(u64::from(WORKERS)),
        workers: (0..WORKERS)
            .map(|worker| WorkerCounts {
                worker,
                counts: counts(1),
            })
            .collect(),
        gpus: (0..GPUS)
            .map(|index| GpuTelemetry {
                index,
                uuid: Some(format!("GPU-history-{index}")),
                power_w: Some(400.0),
                energy_mj: Some(k * 1000),
                gpu_temp_c: Some(60),
                memory_temp_c: Some(70),
                gpu_util_percent: Some(97),
                memory_util_percent: Some(50),
                memory_used_mib: Some(70_000),
                sm_clock_mhz: Some(1980),
                memory_clock_mhz: Some(2619),
                throttle_reasons: Some(vec!["sw_power_cap".into()]),
                ..GpuTelemetry::default()
            })
            .collect(),
    }
}

#[test]
fn no_history_yet_is_a_message_and_exit_0() {
    let home = tempfile::tempdir().unwrap();
    history(home.path(), &[])
        .code(0)
        .stdout_has("no history yet: `jarvis mine supervise` records it");
    let json = history(home.path(), &["--json"]).code(0).json();
    assert_eq!(
        json["note"],
        "no history yet: `jarvis mine supervise` records it"
    );
    assert_eq!(json["hours"], Value::Array(vec![]));
    assert!(!db(home.path()).exists(), "reading created the history");
}

#[test]
fn since_errors_are_clear_and_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for (since, why) in [
        ("5x", "'5x' has no unit"),
        ("24", "'24' has no unit"),
        ("0d", "must be more than zero"),
        ("soon", "has no unit"),
        ("1.5.h", "is not a duration"),
        ("401d", "longer than the history keeps"),
    ] {
        history(home.path(), &["--since", since])
            .code(2)
            .stderr_has(why)
            .stderr_has("--since");
    }
    // The hint says what is accepted.
    history(home.path(), &["--since", "5x"]).stderr_has("such as 90m, 24h or 7d");
}

#[test]
fn a_database_that_cannot_be_opened_is_exit_1_with_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("telemetry")).unwrap();
    std::fs::write(
        home.path().join("telemetry/mining.db"),
        "this is not a SQLite database\n".repeat(200),
    )
    .unwrap();
    history(home.path(), &[])
        .code(1)
        .stderr_has("cannot open the mining history")
        .stderr_has("telemetry/mining.db")
        .stderr_has("move it away");
}

/// Ticks every 10 s over the last two hours, the counters of tick `k`
/// being `tick(_, k)`: 8 accepted shares and 8 J per tick.
fn two_hours(home: &Path) -> (f64, u64) {
    let mut history = History::open(&db(home)).unwrap();
    let end = now().floor();
    let ticks = 720;
    for k in 0..=ticks {
        let at = end - 7200.0 + k as f64 * 10.0;
        history.record(&tick(at, k)).unwrap();
    }
    (end, ticks)
}

#[test]
fn json_shape_and_text_of_a_recorded_history() {
    let home = tempfile::tempdir().unwrap();
    let (end, ticks) = two_hours(home.path());
    let json = history(home.path(), &["--json"]).code(0).json();
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&json),
        [
            "days",
            "estimates",
            "hours",
            "last_sample_at",
            "path",
            "since",
            "totals",
            "until",
            "window"
        ]
    );
    assert_eq!(json["window"], "24h");
    assert!(
        json["path"]
            .as_str()
            .unwrap()
            .ends_with("telemetry/mining.db")
    );
    assert!(json["estimates"].as_str().unwrap().contains("estimates"));
    assert_eq!(json["last_sample_at"].as_f64(), Some(end));
    let until = json["until"].as_f64().unwrap();
    assert!((json["since"].as_f64().unwrap() - (until - 86_400.0)).abs() < 1e-6);
    let hours = json["hours"].as_array().unwrap();
    // Two hours of ticks touch two or three UTC hours.
    assert!((2..=3).contains(&hours.len()), "{json:#}");
    assert_eq!(
        keys(&hours[0]),
        [
            "blocks_found",
            "counter_resets",
            "energy_j",
            "energy_kwh",
            "energy_partial",
            "hour",
            "shares_accepted",
            "shares_rejected",
            "shares_submitted",
            "start"
        ]
    );
    let label = hours[0]["hour"].as_str().unwrap();
    assert!(label.len() == 17 && label.ends_with(":00Z"), "{label}");
    let sum = |field: &str| -> u64 { hours.iter().map(|h| h[field].as_u64().unwrap()).sum() };
    // The first tick is the baseline.
    assert_eq!(sum("shares_accepted"), 8 * ticks);
    assert_eq!(sum("shares_submitted"), 8 * ticks);
    assert_eq!(sum("shares_rejected"), 0);
    let totals = &json["totals"];
    assert_eq!(totals["shares_accepted"], 8 * ticks);
    assert_eq!(totals["energy_j"].as_f64(), Some(8.0 * ticks as f64));
    assert_eq!(totals["joules_per_share"].as_f64(), Some(1.0));
    assert_eq!(totals["energy_partial"], false);
    let days = json["days"].as_array().unwrap();
    assert_eq!(
        keys(&days[0]),
        [
            "day",
            "energy_j",
            "energy_kwh",
            "energy_partial",
            "joules_per_share",
            "shares_accepted",
            "start"
        ]
    );
    assert!(
        days.iter()
            .all(|d| d["joules_per_share"].as_f64() == Some(1.0))
    );

    // A shorter window: the last 90 minutes hold the ticks from
    // `end - 5400` on, 541 of them (540 when the command's clock has moved
    // past `end`).
    let recent = history(home.path(), &["--since", "90m", "--json"])
        .code(0)
        .json();
    let accepted = recent["totals"]["shares_accepted"].as_u64().unwrap();
    assert!((8 * 540..=8 * 541).contains(&accepted), "{accepted}");

    let text = history(home.path(), &[]).code(0).stdout.clone();
    for expected in [
        "Shares and energy per hour, the last 24h (UTC)",
        "HOUR",
        "ACCEPTED",
        "ENERGY (kWh)",
        "Energy per accepted share, per day (estimates, UTC)",
        "1.00 J",
        "energy figures are estimates",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.contains(&format!(" {} ", 8 * ticks)), "{total}");
}

// ---------------------------------------------------------------------------
// SIGKILL mid-write.

const CHILD_HOME: &str = "JARVIS_HISTORY_TEST_WRITER_HOME";
const CHILD_FROM: &str = "JARVIS_HISTORY_TEST_WRITER_FROM";
const ROWS_PER_TICK: (u32, u32) = (WORKERS + 1, GPUS);

/// The child: records ticks `from`, `from + 1`, … one second apart, as fast
/// as it can, until it is killed.
fn write_until_killed(home: &Path, from: u64) -> ! {
    let mut history = History::open(&db(home)).unwrap();
    for k in from.. {
        history
            .record(&tick(1_700_000_000.0 + k as f64, k))
            .unwrap();
    }
    unreachable!("killed first")
}

/// The ticks recorded so far, each checked whole.
fn whole_ticks(history: &History) -> Vec<f64> {
    let ticks = history.tick_rows(0.0).unwrap();
    for tick in &ticks {
        assert_eq!(
            (tick.mining_stats, tick.gpu_samples),
            ROWS_PER_TICK,
            "tick at {} is not whole",
            tick.recorded_at
        );
    }
    ticks.iter().map(|t| t.recorded_at).collect()
}

#[test]
fn sigkill_mid_write_leaves_a_sound_history_of_whole_ticks() {
    use std::os::unix::process::ExitStatusExt;
    if let (Some(home), Some(from)) = (std::env::var_os(CHILD_HOME), std::env::var_os(CHILD_FROM)) {
        let from = from.to_str().unwrap().parse().unwrap();
        write_until_killed(Path::new(&home), from);
    }
    let home = tempfile::tempdir().unwrap();
    let mut recorded = 0usize;
    // Kills after different numbers of new ticks, so each lands elsewhere.
    for (round, more) in [60usize, 97, 151, 43, 211, 73].into_iter().enumerate() {
        let from = recorded as u64;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_mid_write_leaves_a_sound_history_of_whole_ticks",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_HOME, home.path())
            .env(CHILD_FROM, from.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has committed `more` ticks (read through a
        // connection of our own, as `jarvis mine history` would).
        let target = recorded + more;
        let grown = wait_for(DEADLINE, || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer ended by itself ({status}) in round {round}");
            }
            let history = History::open_existing(&db(home.path())).ok()??;
            let ticks = history.tick_rows(0.0).ok()?.len();
            (ticks >= target).then_some(ticks)
        });
        assert!(
            grown.is_some(),
            "round {round}: the writer did not reach {target} ticks"
        );
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: {status}");

        let mut history = History::open(&db(home.path())).unwrap();
        assert_eq!(history.integrity_check().unwrap(), ["ok"], "round {round}");
        let ticks = whole_ticks(&history);
        assert!(ticks.len() >= target, "round {round}: ticks were lost");
        // Consecutive: no tick is missing before the last committed one.
        for (k, at) in ticks.iter().enumerate() {
            assert_eq!(*at, 1_700_000_000.0 + k as f64, "round {round}: tick {k}");
        }
        recorded = ticks.len();
        // Recording resumes where the killed writer left off.
        let k = recorded as u64;
        history
            .record(&tick(1_700_000_000.0 + k as f64, k))
            .unwrap();
        recorded += 1;
        assert_eq!(whole_ticks(&history).len(), recorded);
    }
    // Every advance counted once: 8 shares and 8 J per tick after the first.
    let history = History::open(&db(home.path())).unwrap();
    let report = history.report(0.0).unwrap();
    let accepted: u64 = report.hours.iter().map(|h| h.shares_accepted).sum();
    let joules: f64 = report.hours.iter().filter_map(|h| h.energy_j).sum();
    let advances = (recorded - 1) as u64;
    assert_eq!(accepted, 8 * advances);
    assert_eq!(joules, 8.0 * advances as f64);
    assert!(report.hours.iter().all(|h| h.counter_resets == 0));
}
