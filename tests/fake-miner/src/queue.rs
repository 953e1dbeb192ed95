//! `--fake-queue`: a single-queue model of a vLLM server, for idle-fill.
//!
//! Requests to `POST /v1/completions` are served one at a time, in arrival
//! order, by one server thread. A request takes
//! `prompt_tokens / --fake-prefill-tokens-per-s` seconds of prefill, then
//! `(max_tokens - 1) * --fake-decode-ms-per-token` of decode (the first
//! generated token comes out of the prefill forward, as in vLLM). A prompt
//! is a list of token ids (its length is its token count) or a string (one
//! token per 4 bytes, rounded up).
//!
//! The prefill of a prompt of at least `--fake-min-mining-tokens` tokens
//! (default 1024, Pearl's `PEARL_MIN_MINING_TOKENS`) is *mineable*: on a
//! Pearl miner that forward mines. `/metrics` then serves, beside vLLM's
//! `vllm:num_requests_running` (1 while a request is in service) and
//! `vllm:num_requests_waiting` (the queue behind it):
//!
//! - `fake:mineable_prefill_seconds_total`: the seconds during which a
//!   mineable prefill was in service, up to the moment of the scrape;
//! - `fake:service_seconds_total`: the seconds any request was in service;
//! - `fake:clock_seconds`: this model's clock (seconds since it started),
//!   so a test divides the first counter's growth by this one's;
//! - `fake:completions_total`, `fake:completions_refused_total`.
//!
//! Every request is logged on stdout when it arrives, starts and ends, with
//! this clock: `fake-queue: arrived id=3 at=1.234567 prompt_tokens=2048
//! max_tokens=1 user=… head=t1,t2,…` (its first 16 token ids; none for a
//! string prompt), `fake-queue: started id=3 at=…`, `fake-queue: done id=3
//! at=…`.
//!
//! `--fake-completions-status CODE` answers every completion with CODE at
//! once (a worker failing its requests), queue or not.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The model's parameters, from the command line.
#[derive(Clone, Copy)]
pub struct Model {
    pub prefill_tokens_per_s: f64,
    pub decode_per_token: Duration,
    pub min_mining_tokens: u64,
}

/// A parsed `/v1/completions` body.
pub struct Completion {
    pub prompt_tokens: u64,
    pub max_tokens: u64,
    pub user: String,
    pub head: Vec<u64>,
}

struct Job {
    id: u64,
    prompt_tokens: u64,
    max_tokens: u64,
    done: mpsc::Sender<()>,
}

struct InService {
    /// Whether its prefill mines.
    mineable: bool,
    started: Instant,
    /// Set when its prefill ended (it is decoding).
    prefill_ended: Option<Instant>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Job>,
    running: Option<InService>,
    next_id: u64,
    mineable_seconds: f64,
    service_seconds: f64,
    completions: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
}

struct Queue {
    model: Model,
    epoch: Instant,
    state: Mutex<State>,
    wake: Condvar,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Starts the server thread; the model is on from then on.
pub fn start(model: Model) {
    let queue = QUEUE.get_or_init(|| Queue {
        model,
        epoch: Instant::now(),
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    });
    std::thread::spawn(move || serve_forever(queue));
}

/// Whether `--fake-queue` is on.
pub fn enabled() -> bool {
    QUEUE.get().is_some()
}

fn at(queue: &Queue) -> String {
    format!("{:.6}", queue.epoch.elapsed().as_secs_f64())
}

fn serve_forever(queue: &'static Queue) {
    loop {
        let job = {
            let mut state = queue.state.lock().unwrap();
            loop {
                if let Some(job) = state.waiting.pop_front() {
                    break job;
                }
                state = queue.wake.wait(state).unwrap();
            }
        };
        let prefill =
            Duration::from_secs_f64(job.prompt_tokens as f64 / queue.model.prefill_tokens_per_s);
        let decode = queue.model.decode_per_token * job.max_tokens.saturating_sub(1) as u32;
        let started = Instant::now();
        {
            let mut state = queue.state.lock().unwrap();
            state.running = Some(InService {
                mineable: job.prompt_tokens >= queue.model.min_mining_tokens,
                started,
                prefill_ended: None,
            });
        }
        crate::say(&format!(
            "fake-queue: started id={} at={}",
            job.id,
            at(queue)
        ));
        sleep_until(started + prefill);
        {
            let mut state = queue.state.lock().unwrap();
            let now = Instant::now();
            let running = state.running.as_mut().expect("in service");
            running.prefill_ended = Some(now);
            if running.mineable {
                state.mineable_seconds += (now - started).as_secs_f64();
            }
        }
        sleep_until(started + prefill + decode);
        {
            let mut state = queue.state.lock().unwrap();
            state.running = None;
            state.service_seconds += started.elapsed().as_secs_f64();
            state.completions += 1;
            state.prompt_tokens += job.prompt_tokens;
            state.generation_tokens += job.max_tokens;
        }
        crate::say(&format!("fake-queue: done id={} at={}", job.id, at(queue)));
        let _ = job.done.send(());
    }
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// Queues `completion` and waits until it was served.
pub fn serve(completion: &Completion) {
    let queue = QUEUE.get().expect("the queue model is on");
    let (done, finished) = mpsc::channel();
    {
        let mut state = queue.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let head: Vec<String> = completion.head.iter().map(u64::to_string).collect();
        // Logged under the lock: arrival lines are in queue order.
        crate::say(&format!(
            "fake-queue: arrived id={id} at={} prompt_tokens={} max_tokens={} user={} head={}",
            at(queue),
            completion.prompt_tokens,
            completion.max_tokens,
            completion.user,
            head.join(",")
        ));
        state.waiting.push_back(Job {
            id,
            prompt_tokens: completion.prompt_tokens,
            max_tokens: completion.max_tokens,
            done,
        });
    }
    queue.wake.notify_one();
    let _ = finished.recv();
}

/// Counts a completion answered with `--fake-completions-status`.
pub fn refused() {
    REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The queue's `/metrics` lines (vLLM's with model label `served`, which
/// also count `chat` chat completions, answered at once as without the
/// model, and ours).
pub fn metrics(served: &str, chat: u64) -> String {
    let refused = REFUSED.load(std::sync::atomic::Ordering::Relaxed);
    let Some(queue) = QUEUE.get() else {
        return String::new();
    };
    let state = queue.state.lock().unwrap();
    let now = Instant::now();
    let mut mineable = state.mineable_seconds;
    let mut service = state.service_seconds;
    if let Some(running) = &state.running {
        service += (now - running.started).as_secs_f64();
        if running.mineable && running.prefill_ended.is_none() {
            mineable += (now - running.started).as_secs_f64();
        }
    }
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"{served}\"}} {}.0\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{model_name=\"{served}\"}} {}.0\n\
         # TYPE vllm:request_success_total counter\n\
         vllm:request_success_total{{finished_reason=\"length\",model_name=\"{served}\"}} {}.0\n\
         # TYPE vllm:prompt_tokens_total counter\n\
         vllm:prompt_tokens_total{{model_name=\"{served}\"}} {}.0\n\
         # TYPE vllm:generation_tokens_total counter\n\
         vllm:generation_tokens_total{{model_name=\"{served}\"}} {}.0\n\
         # TYPE fake:mineable_prefill_seconds_total counter\n\
         fake:mineable_prefill_seconds_total {mineable:.6}\n\
         # TYPE fake:service_seconds_total counter\n\
         fake:service_seconds_total {service:.6}\n\
         # TYPE fake:clock_seconds gauge\n\
         fake:clock_seconds {:.6}\n\
         # TYPE fake:completions_total counter\n\
         fake:completions_total {}\n\
         # TYPE fake:completions_refused_total counter\n\
         fake:completions_refused_total {refused}\n",
        u8::from(state.running.is_some()),
        state.waiting.len(),
        state.completions + chat,
        state.prompt_tokens + chat * 5,
        state.generation_tokens + chat * 4,
        (now - queue.epoch).as_secs_f64(),
        state.completions,
    )
}

/// Reads the fields of a `/v1/completions` JSON body this model needs (no
/// JSON library: the bodies are the ones OpenAI clients send).
pub fn parse(body: &str) -> Completion {
    let prompt = value_after(body, "prompt");
    let (prompt_tokens, head) = match prompt.chars().next() {
        Some('[') => {
            let list = &prompt[1..prompt.find(']').unwrap_or(prompt.len())];
            let ids: Vec<u64> = list
                .split(',')
                .filter_map(|id| id.trim().parse().ok())
                .collect();
            (ids.len() as u64, ids.into_iter().take(16).collect())
        }
        Some('"') => (json_string(prompt).len().div_ceil(4) as u64, Vec::new()),
        _ => (0, Vec::new()),
    };
    let max_tokens = number(value_after(body, "max_tokens")).unwrap_or(16);
    let user = match value_after(body, "user").chars().next() {
        Some('"') => json_string(value_after(body, "user")),
        _ => String::new(),
    };
    Completion {
        prompt_tokens,
        max_tokens,
        user: user.replace(char::is_whitespace, "_"),
        head,
    }
}

/// The text after `"key":` (whitespace skipped), or "".
fn value_after<'a>(body: &'a str, key: &str) -> &'a str {
    let quoted = format!("\"{key}\"");
    let Some(start) = body.find(&quoted) else {
        return "";
    };
    let rest = body[start + quoted.len()..].trim_start();
    rest.strip_prefix(':').unwrap_or(rest).trim_start()
}

fn number(text: &str) -> Option<u64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The JSON string `text` starts with, unescaped only as far as `\"` and `\\`.
fn json_string(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().skip(1);
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}
