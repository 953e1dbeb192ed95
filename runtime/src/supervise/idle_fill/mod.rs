//! Idle-fill: synthetic prefill-heavy requests that keep an otherwise idle
//! Pearl vLLM worker mining.
//!
//! Pearl's vLLM miner mines only inside prefill forwards of at least
//! `PEARL_MIN_MINING_TOKENS` (1024) tokens: with no requests it mines
//! nothing. One driver per worker, on its own thread:
//!
//! - polls the worker's `GET /metrics` every [`IdleFillOptions::poll_interval`]
//!   and reads the user's load as `vllm:num_requests_running +
//!   vllm:num_requests_waiting` (every series summed) minus its own request
//!   in flight;
//! - while that is 0 (and has been for [`IdleFillOptions::resume_after`]
//!   since the user's last request), keeps one synthetic request in flight:
//!   `POST /v1/completions` with a prompt of
//!   [`IdleFillOptions::prompt_tokens`] token ids (at least 1024, a
//!   multiple of 128), `max_tokens` 1, `user` [`SYNTHETIC_USER`]; the next
//!   is sent as soon as one returns, so the worker is never left idle
//!   between them;
//! - as soon as a poll sees a user request running or waiting, sends no
//!   more (a back-off) until the user's load has been 0 for
//!   `resume_after`. The request already in flight finishes (one prefill:
//!   the most a user request waits for idle-fill);
//! - a failed scrape or request is counted, and the next try waits
//!   exponentially longer (from [`IdleFillOptions::failure_backoff`] up to
//!   [`IdleFillOptions::max_failure_backoff`]): it never spins. It never
//!   sends while it cannot read the worker's load.
//!
//! Its [`IdleFillCounters`] are what the supervisor exports.

mod prompt;

pub use prompt::{FIRST_TOKEN_ID, NUMBER_TOKENS, Prompts, TOKEN_ID_SPAN, request_body};

use crate::host::metrics::parse_samples;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pearl's `PEARL_MIN_MINING_TOKENS` default: a shorter prefill does not mine.
pub const MIN_PROMPT_TOKENS: u32 = 1024;
/// Prompt lengths are multiples of this (Pearl's GEMM tiles are 128 wide).
pub const PROMPT_TOKEN_STEP: u32 = 128;
/// The default prompt: 2048 tokens, Pearl's first `PEARL_M_BUCKETS` size,
/// one forward of vLLM's default chunk on an H100.
pub const DEFAULT_PROMPT_TOKENS: u32 = 2048;
/// The `user` field of every synthetic request, so vLLM's logs and any
/// proxy can tell them apart.
pub const SYNTHETIC_USER: &str = "jarvis-mine-idle-fill";
/// The least time between two synthetic requests: no GPU prefills 1024
/// tokens faster, so a worker that answers at once (a proxy's error page
/// with status 200) is not spun against.
pub const MIN_SEND_INTERVAL: Duration = Duration::from_millis(10);

/// `[mining.extra].idle_fill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleFillMode {
    /// Fill a worker's idle time (the default).
    #[default]
    Auto,
    /// Never send a synthetic request.
    Off,
}

impl IdleFillMode {
    /// The setting's values, as the configuration spells them.
    pub const VALUES: [&'static str; 2] = ["auto", "off"];

    pub fn parse(text: &str) -> Option<IdleFillMode> {
        match text {
            "auto" => Some(IdleFillMode::Auto),
            "off" => Some(IdleFillMode::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdleFillMode::Auto => "auto",
            IdleFillMode::Off => "off",
        }
    }
}

/// The worker a driver fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEndpoint {
    /// Its name in logs and metric labels.
    pub worker: String,
    /// Its vLLM OpenAI server, such as `http://127.0.0.1:8000`.
    pub base_url: String,
    /// The served model name sent as `model`; `None`: the first model of
    /// its `GET /v1/models`, asked once.
    pub model: Option<String>,
}

/// How a driver behaves; [`Default`] is what `jarvis mine supervise` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleFillOptions {
    pub mode: IdleFillMode,
    /// Tokens per synthetic prompt: rounded down to a multiple of 128, at
    /// least 1024 (see [`prompt_tokens_for`] for a worker's context length).
    pub prompt_tokens: u32,
    /// How often the worker's load is read (the back-off delay is at most
    /// about this plus one scrape).
    pub poll_interval: Duration,
    /// How long the user's load must have been 0 before filling resumes
    /// (an agent's next step often follows its last within a second).
    pub resume_after: Duration,
    /// Longest one `/metrics` or `/v1/models` read may take.
    pub scrape_timeout: Duration,
    /// Longest one synthetic request may take (it may wait in the queue
    /// behind the user's requests).
    pub request_timeout: Duration,
    /// The wait after a first failure; doubled for each failure in a row.
    pub failure_backoff: Duration,
    /// The longest wait after failures.
    pub max_failure_backoff: Duration,
    /// Numbers the prompts; `None`: from the clock and process id.
    pub seed: Option<u64>,
}

impl Default for IdleFillOptions {
    fn default() -> IdleFillOptions {
        IdleFillOptions {
            mode: IdleFillMode::Auto,
            prompt_tokens: DEFAULT_PROMPT_TOKENS,
            poll_interval: Duration::from_millis(150),
            resume_after: Duration::from_secs(1),
            scrape_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(120),
            failure_backoff: Duration::from_millis(500),
            max_failure_backoff: Duration::from_secs(30),
            seed: None,
        }
    }
}

/// The prompt length for a worker whose vLLM runs with `--max-model-len
/// max_model_len`: [`DEFAULT_PROMPT_TOKENS`], or the longest multiple of
/// 128 that leaves room for the one generated token; `None` when that is
/// under 1024 (such a worker cannot be given a mineable prompt).
pub fn prompt_tokens_for(max_model_len: u64) -> Option<u32> {
    let room = max_model_len.saturating_sub(1).min(u64::from(u32::MAX)) as u32;
    let tokens = DEFAULT_PROMPT_TOKENS.min(room / PROMPT_TOKEN_STEP * PROMPT_TOKEN_STEP);
    (tokens >= MIN_PROMPT_TOKENS).then_some(tokens)
}

/// What a driver is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FillState {
    /// `idle_fill = "off"`: no thread, nothing sent.
    Off = 0,
    /// Started, its first read of the worker's load not done yet.
    Starting = 1,
    /// The worker is idle: a synthetic request is in flight or about to be.
    Filling = 2,
    /// The user's requests are running or waiting (or were, less than
    /// `resume_after` ago): nothing is sent.
    Yielding = 3,
    /// The last scrape or request failed: waiting before the next try.
    Failing = 4,
    /// Stopped.
    Stopped = 5,
}

impl FillState {
    fn from_u8(value: u8) -> FillState {
        match value {
            0 => FillState::Off,
            1 => FillState::Starting,
            2 => FillState::Filling,
            3 => FillState::Yielding,
            4 => FillState::Failing,
            _ => FillState::Stopped,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FillState::Off => "off",
            FillState::Starting => "starting",
            FillState::Filling => "filling",
            FillState::Yielding => "yielding",
            FillState::Failing => "failing",
            FillState::Stopped => "stopped",
        }
    }
}

/// A driver's counters, shared with whoever exports them; all monotonic
/// except the state and the user's load.
#[derive(Debug)]
pub struct IdleFillCounters {
    state: AtomicU8,
    requests_sent: AtomicU64,
    requests_completed: AtomicU64,
    prompt_tokens_sent: AtomicU64,
    failures: AtomicU64,
    back_offs: AtomicU64,
    scrapes: AtomicU64,
    user_requests: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleFillSnapshot {
    pub state: FillState,
    /// Whether it is filling now (`state == Filling`).
    pub filling: bool,
    /// Synthetic requests sent.
    pub requests_sent: u64,
    /// Of those, answered with 200.
    pub requests_completed: u64,
    /// Prompt tokens sent in them.
    pub prompt_tokens_sent: u64,
    /// Failed scrapes and requests (refused, 4xx/5xx, timed out, not
    /// vLLM's metrics).
    pub failures: u64,
    /// Times it stopped filling because user requests arrived.
    pub back_offs: u64,
    /// Reads of the worker's `/metrics`.
    pub scrapes: u64,
    /// The user's requests running or waiting at the last good scrape.
    pub user_requests: u64,
    /// The last failure, readably.
    pub last_error: Option<String>,
}

impl IdleFillCounters {
    fn new(state: FillState) -> IdleFillCounters {
        IdleFillCounters {
            state: AtomicU8::new(state as u8),
            requests_sent: AtomicU64::new(0),
            requests_completed: AtomicU64::new(0),
            prompt_tokens_sent: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            back_offs: AtomicU64::new(0),
            scrapes: AtomicU64::new(0),
            user_requests: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn state(&self) -> FillState {
        FillState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn snapshot(&self) -> IdleFillSnapshot {
        let state = self.state();
        IdleFillSnapshot {
            state,
            filling: state == FillState::Filling,
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            requests_completed: self.requests_completed.load(Ordering::Relaxed),
            prompt_tokens_sent: self.prompt_tokens_sent.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            back_offs: self.back_offs.load(Ordering::Relaxed),
            scrapes: self.scrapes.load(Ordering::Relaxed),
            user_requests: self.user_requests.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn set_state(&self, state: FillState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    fn failed(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}

/// Starts drivers.
pub struct IdleFill;

impl IdleFill {
    /// Starts filling `worker`'s idle time on a thread of its own (with
    /// [`IdleFillMode::Off`], no thread: the handle's state stays `Off`).
    /// Fails only when the thread cannot be spawned.
    pub fn start(
        worker: WorkerEndpoint,
        options: IdleFillOptions,
    ) -> std::io::Result<IdleFillHandle> {
        if options.mode == IdleFillMode::Off {
            return Ok(IdleFillHandle {
                worker: worker.worker,
                counters: Arc::new(IdleFillCounters::new(FillState::Off)),
                events: None,
                thread: None,
            });
        }
        let counters = Arc::new(IdleFillCounters::new(FillState::Starting));
        let (events, inbox) = mpsc::channel();
        let driver = Driver::new(worker.clone(), options, counters.clone(), events.clone());
        let thread = std::thread::Builder::new()
            .name(format!("idle-fill {}", worker.worker))
            .spawn(move || driver.run(inbox))?;
        Ok(IdleFillHandle {
            worker: worker.worker,
            counters,
            events: Some(events),
            thread: Some(thread),
        })
    }
}

/// A running driver; dropping it stops it too.
#[derive(Debug)]
pub struct IdleFillHandle {
    worker: String,
    counters: Arc<IdleFillCounters>,
    events: Option<mpsc::Sender<Event>>,
    thread: Option<JoinHandle<()>>,
}

impl IdleFillHandle {
    /// The worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Its counters, to keep and read while it runs.
    pub fn counters(&self) -> Arc<IdleFillCounters> {
        self.counters.clone()
    }

    /// Its counters now.
    pub fn snapshot(&self) -> IdleFillSnapshot {
        self.counters.snapshot()
    }

    /// Stops it and joins its thread: at once, or after the scrape in
    /// progress (at most `scrape_timeout`). A synthetic request in flight
    /// is not waited for; its thread ends with it, sending nothing more.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(events) = self.events.take() {
            let _ = events.send(Event::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for IdleFillHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[derive(Debug)]
enum Event {
    /// The synthetic request in flight ended.
    Done(Result<(), String>),
    Stop,
}

struct Driver {
    worker: WorkerEndpoint,
    options: IdleFillOptions,
    counters: Arc<IdleFillCounters>,
    events: mpsc::Sender<Event>,
    scraper: ureq::Agent,
    sender: ureq::Agent,
    prompts: Prompts,
    model: Option<String>,
    in_flight: bool,
    /// Whether the last good scrape found the user's load 0 for long enough.
    idle: bool,
    /// Failures in a row of scrapes, and of requests.
    scrape_failures: u32,
    send_failures: u32,
    next_scrape: Instant,
    next_send: Instant,
    user_last_seen: Option<Instant>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

impl Driver {
    fn new(
        worker: WorkerEndpoint,
        options: IdleFillOptions,
        counters: Arc<IdleFillCounters>,
        events: mpsc::Sender<Event>,
    ) -> Driver {
        let tokens =
            (options.prompt_tokens / PROMPT_TOKEN_STEP * PROMPT_TOKEN_STEP).max(MIN_PROMPT_TOKENS);
        let seed = options.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default();
            nanos ^ (u64::from(std::process::id()) << 32)
        });
        let now = Instant::now();
        Driver {
            model: worker.model.clone(),
            worker,
            scraper: agent(options.scrape_timeout),
            sender: agent(options.request_timeout),
            prompts: Prompts::new(seed, tokens),
            options,
            counters,
            events,
            in_flight: false,
            idle: false,
            scrape_failures: 0,
            send_failures: 0,
            next_scrape: now,
            next_send: now,
            user_last_seen: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.worker.base_url.trim_end_matches('/'))
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.options
            .failure_backoff
            .saturating_mul(factor)
            .min(self.options.max_failure_backoff)
    }

    fn run(mut self, inbox: mpsc::Receiver<Event>) {
        loop {
            let now = Instant::now();
            if now >= self.next_scrape {
                self.poll(now);
            }
            let now = Instant::now();
            if self.may_send(now) {
                self.send();
            }
            let mut wake = self.next_scrape;
            if self.idle && !self.in_flight {
                wake = wake.min(self.next_send);
            }
            let wait = wake.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Event::Done(result)) => self.done(result),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.counters.set_state(FillState::Stopped);
    }

    fn may_send(&self, now: Instant) -> bool {
        self.idle && !self.in_flight && now >= self.next_send && self.model.is_some()
    }

    /// Reads the worker's load and decides whether it is idle.
    fn poll(&mut self, now: Instant) {
        self.counters.scrapes.fetch_add(1, Ordering::Relaxed);
        let load = self.user_load().and_then(|load| {
            if self.model.is_none() {
                self.model = Some(self.served_model()?);
            }
            Ok(load)
        });
        let now_after = Instant::now();
        let user = match load {
            Ok(user) => user,
            Err(error) => {
                self.scrape_failures += 1;
                self.counters.failed(error);
                self.idle = false;
                self.next_scrape = now_after + self.backoff(self.scrape_failures);
                self.counters.set_state(FillState::Failing);
                return;
            }
        };
        self.scrape_failures = 0;
        self.next_scrape = now + self.options.poll_interval;
        self.counters.user_requests.store(user, Ordering::Relaxed);
        if user > 0 {
            self.user_last_seen = Some(now_after);
            if self.counters.state() == FillState::Filling {
                self.counters.back_offs.fetch_add(1, Ordering::Relaxed);
            }
            self.idle = false;
            self.counters.set_state(FillState::Yielding);
            return;
        }
        let quiet = self
            .user_last_seen
            .is_none_or(|seen| now_after.duration_since(seen) >= self.options.resume_after);
        self.idle = quiet;
        let state = if !quiet {
            FillState::Yielding
        } else if self.send_failures > 0 && !self.in_flight && now_after < self.next_send {
            FillState::Failing
        } else {
            FillState::Filling
        };
        self.counters.set_state(state);
    }

    /// The user's requests running or waiting: vLLM's gauges, every series
    /// summed, less this driver's own request.
    fn user_load(&self) -> Result<u64, String> {
        let url = self.url("/metrics");
        let text = self.get(&url)?;
        let samples =
            parse_samples(&text).map_err(|err| format!("{url} is not Prometheus text: {err}"))?;
        let mut seen = false;
        let mut total = 0.0;
        for sample in &samples {
            if sample.name == "vllm:num_requests_running"
                || sample.name == "vllm:num_requests_waiting"
            {
                seen |= sample.name == "vllm:num_requests_running";
                if sample.value.is_finite() && sample.value > 0.0 {
                    total += sample.value;
                }
            }
        }
        if !seen {
            return Err(format!(
                "{url} has no vllm:num_requests_running: not a vLLM server's metrics"
            ));
        }
        // Our request counts from before it is sent until after it is
        // answered, so this never counts it as the user's (it may, for a
        // moment, miss a user request: the next poll sees it).
        let own = u64::from(self.in_flight);
        Ok((total.round() as u64).saturating_sub(own))
    }

    /// The first model of `GET /v1/models`.
    fn served_model(&self) -> Result<String, String> {
        let url = self.url("/v1/models");
        let text = self.get(&url)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|err| format!("{url} is not JSON: {}", first_line(&err.to_string())))?;
        value["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{url} lists no model"))
    }

    fn get(&self, url: &str) -> Result<String, String> {
        let mut response = self
            .scraper
            .get(url)
            .call()
            .map_err(|err| format!("{url}: {}", first_line(&err.to_string())))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("{url}: HTTP {status}"));
        }
        response
            .body_mut()
            .with_config()
            .limit(crate::host::metrics::MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|err| format!("{url}: {}", first_line(&err.to_string())))
    }

    /// Sends one synthetic request on a thread of its own, which reports
    /// back with [`Event::Done`].
    fn send(&mut self) {
        let Some(model) = self.model.clone() else {
            return;
        };
        let prompt = self.prompts.next_prompt();
        let body = request_body(&model, &prompt, SYNTHETIC_USER);
        let url = self.url("/v1/completions");
        let agent = self.sender.clone();
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("idle-fill {} request", self.worker.worker))
            .spawn(move || {
                let _ = events.send(Event::Done(post(&agent, &url, body)));
            });
        match spawned {
            Ok(_) => {
                self.in_flight = true;
                self.next_send = Instant::now() + MIN_SEND_INTERVAL;
                self.counters.requests_sent.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .prompt_tokens_sent
                    .fetch_add(prompt.len() as u64, Ordering::Relaxed);
            }
            Err(err) => self.done(Err(format!("cannot start a request thread: {err}"))),
        }
    }

    fn done(&mut self, result: Result<(), String>) {
        self.in_flight = false;
        let now = Instant::now();
        match result {
            Ok(()) => {
                self.send_failures = 0;
                self.counters
                    .requests_completed
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.send_failures += 1;
                self.counters.failed(error);
                self.next_send = self.next_send.max(now + self.backoff(self.send_failures));
                if self.idle {
                    self.counters.set_state(FillState::Failing);
                }
            }
        }
    }
}

/// POSTs one synthetic completion; 200 is success, anything else an error
/// with the status and the first line of the answer.
fn post(agent: &ureq::Agent, url: &str, body: String) -> Result<(), String> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|err| format!("{url}: {}", first_line(&err.to_string())))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    if status == 200 {
        Ok(())
    } else {
        let excerpt: String = first_line(&text).chars().take(200).collect();
        Err(format!("{url}: HTTP {status} {excerpt}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lengths_fit_the_context() {
        assert_eq!(prompt_tokens_for(8192), Some(2048));
        assert_eq!(prompt_tokens_for(2048), Some(1920));
        assert_eq!(prompt_tokens_for(1153), Some(1152));
        assert_eq!(prompt_tokens_for(1025), Some(1024));
        assert_eq!(prompt_tokens_for(1024), None);
        assert_eq!(prompt_tokens_for(0), None);
    }

    #[test]
    fn modes_read_and_spell() {
        for value in IdleFillMode::VALUES {
            assert_eq!(IdleFillMode::parse(value).unwrap().as_str(), value);
        }
        assert_eq!(IdleFillMode::parse("on"), None);
        assert_eq!(IdleFillMode::default(), IdleFillMode::Auto);
    }

    #[test]
    fn failures_back_off_exponentially_to_a_cap() {
        let (events, _inbox) = mpsc::channel();
        let driver = Driver::new(
            WorkerEndpoint {
                worker: "w".into(),
                base_url: "http://127.0.0.1:9".into(),
                model: None,
            },
            IdleFillOptions::default(),
            Arc::new(IdleFillCounters::new(FillState::Starting)),
            events,
        );
        let waits: Vec<u64> = [1, 2, 3, 7, 8, 40]
            .map(|n| driver.backoff(n).as_millis() as u64)
            .to_vec();
        assert_eq!(waits, [500, 1000, 2000, 30_000, 30_000, 30_000]);
    }

    #[test]
    fn off_starts_no_thread_and_sends_nothing() {
        let handle = IdleFill::start(
            WorkerEndpoint {
                worker: "w".into(),
                base_url: "http://127.0.0.1:9".into(),
                model: None,
            },
            IdleFillOptions {
                mode: IdleFillMode::Off,
                ..IdleFillOptions::default()
            },
        )
        .unwrap();
        assert!(handle.thread.is_none());
        assert_eq!(handle.snapshot().state, FillState::Off);
        assert_eq!(handle.snapshot().requests_sent, 0);
        handle.stop();
    }
}
