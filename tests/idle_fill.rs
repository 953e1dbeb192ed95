//! Idle-fill against the fake miner's single-queue model of a vLLM server,
//! run as a local process on a loopback port: what the worker's side sees
//! (its log and its counters), not what the driver believes.

use jarvis_mine::supervise::idle_fill::{
    FillState, IdleFill, IdleFillHandle, IdleFillMode, IdleFillOptions, MIN_PROMPT_TOKENS,
    PROMPT_TOKEN_STEP, SYNTHETIC_USER, WorkerEndpoint,
};
use jarvis_mine_tests::fake_queue::FakeQueue;
use jarvis_mine_tests::run::wait_for;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// 20 000 prompt tokens a second (an 8B model's prefill on one H100, about):
/// a 2048-token synthetic prompt takes 102 ms; decode 20 ms a token.
const MODEL: [&str; 4] = [
    "--fake-prefill-tokens-per-s",
    "20000",
    "--fake-decode-ms-per-token",
    "20",
];

fn worker(queue: &FakeQueue) -> WorkerEndpoint {
    WorkerEndpoint {
        worker: "worker-0".into(),
        base_url: queue.base_url.clone(),
        model: None,
    }
}

fn start(queue: &FakeQueue, options: IdleFillOptions) -> IdleFillHandle {
    IdleFill::start(worker(queue), options).expect("the driver starts")
}

/// Waits until the worker has served `count` synthetic requests.
fn served(queue: &FakeQueue, count: usize) {
    wait_for(Duration::from_secs(10), || {
        let done = queue.events().iter().filter(|e| e.kind == "done").count();
        (done >= count).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the worker served {count} synthetic requests:\n{:#?}",
            queue.lines()
        )
    });
}

#[test]
fn an_idle_worker_has_mineable_prefill_in_flight_at_least_90_percent_of_the_time() {
    let queue = FakeQueue::start(&MODEL);
    let fill = start(&queue, IdleFillOptions::default());
    served(&queue, 2);
    let (mined0, clock0) = (
        queue.metric("fake:mineable_prefill_seconds_total"),
        queue.metric("fake:clock_seconds"),
    );
    let (mined1, clock1) = wait_for(Duration::from_secs(10), || {
        let metrics = queue.metrics();
        let clock = metrics["fake:clock_seconds"];
        (clock - clock0 >= 3.0).then(|| (metrics["fake:mineable_prefill_seconds_total"], clock))
    })
    .expect("the fake miner's clock runs");
    let share = (mined1 - mined0) / (clock1 - clock0);
    assert!(
        share >= 0.90,
        "mineable prefill in service {:.1} % of {:.2} s",
        share * 100.0,
        clock1 - clock0
    );
    let snapshot = fill.snapshot();
    assert!(snapshot.filling, "{snapshot:?}");
    assert_eq!(snapshot.failures, 0, "{snapshot:?}");
    assert_eq!(snapshot.user_requests, 0, "{snapshot:?}");
    // Stopping does not wait for the request in flight.
    let stopping = Instant::now();
    let counters = fill.counters();
    fill.stop();
    assert!(
        stopping.elapsed() < Duration::from_millis(500),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(counters.state(), FillState::Stopped);
    eprintln!(
        "mineable prefill in service {:.1} % of {:.2} s",
        share * 100.0,
        clock1 - clock0
    );
}

#[test]
fn a_user_request_stops_the_synthetic_ones_within_a_second() {
    let queue = FakeQueue::start(&MODEL);
    let fill = start(&queue, IdleFillOptions::default());
    served(&queue, 2);
    // 128 prompt tokens, then 99 decode steps: about 2 s in service.
    let (status, took) = queue.user_completion("test-user", 512, 100);
    assert_eq!(status, 200);
    let events = queue.events();
    let user_id = queue.arrivals("test-user")[0].id;
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind == kind && e.id == user_id)
            .unwrap_or_else(|| panic!("the user request {kind}: {events:#?}"))
            .at
    };
    let (arrived, started, done) = (at("arrived"), at("started"), at("done"));
    let late: Vec<_> = queue
        .arrivals(SYNTHETIC_USER)
        .into_iter()
        .filter(|e| e.at > arrived + 1.0 && e.at < done)
        .collect();
    assert!(
        late.is_empty(),
        "synthetic requests began more than 1 s after the user's (at {arrived:.3} s, served until {done:.3} s): {late:#?}"
    );
    // The user waited at most for the one synthetic prefill in service (102 ms).
    assert!(
        started - arrived < 0.3,
        "the user request waited {:.3} s in the queue",
        started - arrived
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    let snapshot = fill.snapshot();
    assert!(snapshot.back_offs >= 1, "{snapshot:?}");
    // It resumes once the user's load has been 0 for `resume_after` (1 s).
    let resumed = wait_for(Duration::from_secs(5), || {
        queue
            .arrivals(SYNTHETIC_USER)
            .into_iter()
            .find(|e| e.at > done)
    })
    .expect("idle-fill resumes after the user's request");
    assert!(
        resumed.at - done > 0.5,
        "resumed {:.3} s after the user's request ended",
        resumed.at - done
    );
    fill.stop();
}

#[test]
fn prompts_are_long_aligned_and_never_share_their_first_tokens() {
    let queue = FakeQueue::start(&["--fake-prefill-tokens-per-s", "100000"]);
    let fill = start(
        &queue,
        IdleFillOptions {
            // Rounded down to 1280.
            prompt_tokens: 1300,
            ..IdleFillOptions::default()
        },
    );
    served(&queue, 20);
    let counters = fill.counters();
    fill.stop();
    // What the driver says it sent is what the worker received.
    let sent = counters.snapshot();
    let arrivals = wait_for(Duration::from_secs(5), || {
        let arrivals = queue.arrivals(SYNTHETIC_USER);
        (arrivals.len() as u64 == sent.requests_sent).then_some(arrivals)
    })
    .unwrap_or_else(|| panic!("{sent:?} vs {:#?}", queue.arrivals(SYNTHETIC_USER)));
    assert_eq!(
        arrivals.iter().map(|e| e.prompt_tokens).sum::<u64>(),
        sent.prompt_tokens_sent
    );
    let mut heads = HashSet::new();
    for arrival in &arrivals {
        assert_eq!(arrival.prompt_tokens, 1280, "{arrival:?}");
        assert!(arrival.prompt_tokens >= u64::from(MIN_PROMPT_TOKENS));
        assert_eq!(arrival.prompt_tokens % u64::from(PROMPT_TOKEN_STEP), 0);
        assert_eq!(arrival.max_tokens, 1, "{arrival:?}");
        assert_eq!(arrival.head.len(), 16, "{arrival:?}");
        // Not even their first token in common, so no prefix-cache block.
        assert!(heads.insert(arrival.head[0..4].to_vec()), "{arrival:?}");
    }
    let firsts: HashSet<u64> = arrivals.iter().map(|e| e.head[0]).collect();
    assert_eq!(firsts.len(), arrivals.len());
}

#[test]
fn idle_fill_off_sends_nothing() {
    let config = jarvis_mine::config::Config::parse(
        "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1q\"\n[mining.extra]\nidle_fill = \"off\"\n",
        std::path::Path::new("config.toml"),
    )
    .expect("the config parses");
    let mode = config.mining.unwrap().idle_fill();
    assert_eq!(mode, IdleFillMode::Off);
    let off = FakeQueue::start(&MODEL);
    let auto = FakeQueue::start(&MODEL);
    let fill_off = start(
        &off,
        IdleFillOptions {
            mode,
            ..IdleFillOptions::default()
        },
    );
    let fill_auto = start(&auto, IdleFillOptions::default());
    // In the time the other driver filled its worker 3 times:
    served(&auto, 3);
    assert!(off.events().is_empty(), "{:#?}", off.lines());
    assert_eq!(off.metric("fake:completions_total"), 0.0);
    let snapshot = fill_off.snapshot();
    assert_eq!(snapshot.state, FillState::Off);
    assert_eq!((snapshot.requests_sent, snapshot.scrapes), (0, 0));
    fill_auto.stop();
    fill_off.stop();
}

/// Short back-offs for the failure tests: 100, 200, then 400 ms.
fn quick_backoff() -> IdleFillOptions {
    IdleFillOptions {
        failure_backoff: Duration::from_millis(100),
        max_failure_backoff: Duration::from_millis(400),
        ..IdleFillOptions::default()
    }
}

#[test]
fn a_worker_that_is_down_is_counted_backed_off_from_and_never_sent_to() {
    let port = jarvis_mine_tests::free_port();
    let started = Instant::now();
    let fill = IdleFill::start(
        WorkerEndpoint {
            worker: "worker-0".into(),
            base_url: format!("http://127.0.0.1:{port}"),
            model: None,
        },
        quick_backoff(),
    )
    .unwrap();
    let snapshot = wait_for(Duration::from_secs(5), || {
        let snapshot = fill.snapshot();
        (snapshot.failures >= 5).then_some(snapshot)
    })
    .expect("failures are counted");
    // 5 tries are 100 + 200 + 400 + 400 ms apart: a spinning driver would
    // have failed thousands of times by then.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1000),
        "{elapsed:?} {snapshot:?}"
    );
    assert!(snapshot.failures <= 7, "{elapsed:?} {snapshot:?}");
    assert_eq!(snapshot.state, FillState::Failing);
    assert_eq!(snapshot.requests_sent, 0, "it never sends blind");
    let error = snapshot.last_error.unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}/metrics")),
        "{error}"
    );
    fill.stop();
}

#[test]
fn a_worker_answering_500_is_counted_and_backed_off_from() {
    let mut args = MODEL.to_vec();
    args.extend(["--fake-completions-status", "500"]);
    let queue = FakeQueue::start(&args);
    let started = Instant::now();
    let fill = start(&queue, quick_backoff());
    wait_for(Duration::from_secs(5), || {
        (queue.metric("fake:completions_refused_total") >= 5.0).then_some(())
    })
    .expect("the worker refuses idle-fill's requests");
    let elapsed = started.elapsed();
    let refused = queue.metric("fake:completions_refused_total");
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(refused <= 7.0, "{refused} refused in {elapsed:?}");
    let snapshot = fill.snapshot();
    assert!(snapshot.failures >= 5, "{snapshot:?}");
    assert_eq!(snapshot.requests_completed, 0, "{snapshot:?}");
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("/v1/completions: HTTP 500"), "{error}");
    fill.stop();
}

// ---------------------------------------------------------------------------
// The benchmark (`scripts/bench-idle-fill`, docs/benchmarks.md): ignored by
// `cargo test`, run with `--ignored`.

/// The model, 5 times faster than a 70B model on one H100 (prefill about
/// 8 000 tokens/s, decode 25 ms a token) so that a run takes minutes: a
/// 2048-token synthetic prompt takes 51 ms; a user's chat request (1024
/// prompt tokens, 100 to 300 generated) 0.53 to 1.53 s.
const BENCH_MODEL: [&str; 4] = [
    "--fake-prefill-tokens-per-s",
    "40000",
    "--fake-decode-ms-per-token",
    "5",
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64, for the arrival schedule (the same for both workers).
fn next_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Idle share: 10 s of an idle worker with idle-fill. Latency: the same
/// Poisson schedule of user requests (mean gap `IDLE_FILL_BENCH_GAP_MS`,
/// default 3000) sent at once to two workers, one with idle-fill and one
/// without, `IDLE_FILL_BENCH_REQUESTS` (default 120) of them, each from its
/// own thread (an open loop: arrivals do not wait for answers).
#[test]
#[ignore = "a benchmark of minutes: scripts/bench-idle-fill"]
fn bench_idle_fill() {
    let requests = env_number("IDLE_FILL_BENCH_REQUESTS", 120) as usize;
    let gap = env_number("IDLE_FILL_BENCH_GAP_MS", 3000) as f64 / 1000.0;
    let mut seed = env_number("IDLE_FILL_BENCH_SEED", 12);
    let on = FakeQueue::start(&BENCH_MODEL);
    let off = FakeQueue::start(&BENCH_MODEL);
    let fill = start(&on, IdleFillOptions::default());

    // 1. Idle.
    served(&on, 2);
    let (mined0, clock0) = (
        on.metric("fake:mineable_prefill_seconds_total"),
        on.metric("fake:clock_seconds"),
    );
    let (mined1, clock1) = wait_for(Duration::from_secs(30), || {
        let metrics = on.metrics();
        let clock = metrics["fake:clock_seconds"];
        (clock - clock0 >= 10.0).then(|| (metrics["fake:mineable_prefill_seconds_total"], clock))
    })
    .unwrap();
    let idle_share = (mined1 - mined0) / (clock1 - clock0);
    println!(
        "idle: mineable prefill in service {:.1} % of {:.1} s ({} synthetic requests so far)",
        idle_share * 100.0,
        clock1 - clock0,
        fill.snapshot().requests_sent
    );

    // 2. Users.
    let before = (on.metrics(), off.metrics());
    let mut schedule = Vec::with_capacity(requests);
    let mut at = 0.0;
    for _ in 0..requests {
        at += -gap * (1.0 - next_random(&mut seed)).ln();
        let tokens = 100 + (next_random(&mut seed) * 201.0) as u64;
        schedule.push((at, tokens));
    }
    let begin = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let threads: Vec<_> = schedule
            .iter()
            .flat_map(|&(at, tokens)| {
                [&on, &off].map(|queue| {
                    scope.spawn(move || {
                        let due = begin + Duration::from_secs_f64(at);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        let (status, took) = queue.user_completion("bench-user", 4096, tokens);
                        assert_eq!(status, 200);
                        took.as_secs_f64()
                    })
                })
            })
            .collect();
        let mut latencies = (Vec::new(), Vec::new());
        for (index, thread) in threads.into_iter().enumerate() {
            let took = thread.join().unwrap();
            if index % 2 == 0 {
                latencies.0.push(took);
            } else {
                latencies.1.push(took);
            }
        }
        latencies
    });
    let after = (on.metrics(), off.metrics());
    let snapshot = fill.snapshot();
    fill.stop();
    let (mut with, mut without) = latencies;
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // How much a counter of the worker with (`.0`) and without (`.1`)
    // idle-fill grew while the users sent their requests.
    let grew = |name: &str| {
        (
            after.0[name] - before.0[name],
            after.1[name] - before.1[name],
        )
    };
    let (window, _) = grew("fake:clock_seconds");
    let (mined, mined_off) = grew("fake:mineable_prefill_seconds_total");
    let (service, user_busy) = grew("fake:service_seconds_total");
    // The users' own busy time is the service time of the worker without idle-fill.
    println!(
        "users: {requests} requests, Poisson arrivals {gap:.1} s apart on average, over {window:.0} s; \
         the worker without idle-fill was busy {:.1} % of it",
        user_busy / window * 100.0
    );
    println!(
        "latency without idle-fill: p50 {:.3} s, p95 {:.3} s, mean {:.3} s, max {:.3} s",
        percentile(&without, 50.0),
        percentile(&without, 95.0),
        mean(&without),
        without[without.len() - 1]
    );
    println!(
        "latency with idle-fill:    p50 {:.3} s, p95 {:.3} s, mean {:.3} s, max {:.3} s",
        percentile(&with, 50.0),
        percentile(&with, 95.0),
        mean(&with),
        with[with.len() - 1]
    );
    println!(
        "p95 with / without: {:.3} (goal <= 1.10); p50: {:.3}",
        percentile(&with, 95.0) / percentile(&without, 95.0),
        percentile(&with, 50.0) / percentile(&without, 50.0)
    );
    println!(
        "under load: mineable prefill {:.1} % of the time with idle-fill ({:.1} % of the user-idle time), {:.1} % without; \
         worker busy {:.1} % with idle-fill",
        mined / window * 100.0,
        mined / (window - user_busy) * 100.0,
        mined_off / window * 100.0,
        service / window * 100.0
    );
    println!(
        "driver: {} synthetic requests, {} prompt tokens, {} back-offs, {} failures, {} scrapes",
        snapshot.requests_sent,
        snapshot.prompt_tokens_sent,
        snapshot.back_offs,
        snapshot.failures,
        snapshot.scrapes
    );
}
