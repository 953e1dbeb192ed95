//! Behaves like Pearl's vLLM miner container from the outside, for tests on
//! machines with no GPU and no registry. Built statically and packaged
//! `FROM scratch` by the tests.
//!
//! - Arguments are vLLM's (`<model> --host H --port P … [--served-model-name M]`).
//! - Serves OpenAI-style `GET /v1/models`, `POST /v1/chat/completions` and a
//!   vLLM-style Prometheus `GET /metrics` on `--host:--port`.
//! - Logs like the entrypoint and pearl-gateway, including block submissions
//!   (`FAKE_MINER_BLOCKS` of them, `FAKE_MINER_BLOCK_INTERVAL_MS` apart), and
//!   echoes the secrets it was given in every form the host must redact.
//! - With `--gateway-metrics-port P` (ours, not vLLM's: pass it through
//!   `[mining.extra].vllm_args`) also serves `GET /metrics` on `--host:P`
//!   with pearl-gateway's counters as OpenJarvis names them (reference
//!   §4.7), counting the blocks logged so far: what a Pearl image whose
//!   gateway exports metrics would serve.
//! - Exits 0 on SIGTERM (it runs as PID 1, which has no default handler);
//!   `FAKE_MINER_EXIT_AFTER_MS` makes it exit 3 on its own, like a crash.
//! - Misbehaves as its arguments ask (through `[mining.extra].vllm_args`,
//!   since providers pass no test environment): `--fake-exit-after-ms N`
//!   crashes after N ms with `--fake-exit-code C` (default 3), so with a
//!   restart policy it crash-loops; `--fake-ready-after-ms N` answers
//!   `/v1/models` with 503 until N ms after it started, like vLLM loading
//!   a model; `--fake-blocks N` submits N blocks instead of
//!   `FAKE_MINER_BLOCKS` (0: a miner that never finds one).
//! - Serves `POST /v1/completions` too: answered at once, or with
//!   `--fake-queue` by a single-queue model of a vLLM server whose
//!   `/metrics` say how long mineable prefill was in service (idle-fill's
//!   tests and benchmark); its flags are in `queue.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod queue;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BLOCKS_SUBMITTED: AtomicU64 = AtomicU64::new(0);
static BLOCKS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Unix seconds of the last submission, as `f64` bits (0: none yet).
static LAST_SUBMISSION: AtomicU64 = AtomicU64::new(0);

extern "C" fn terminate(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) };
}

struct Args {
    model: String,
    served: String,
    host: String,
    port: u16,
    gateway_metrics_port: Option<u16>,
    exit_after: Option<Duration>,
    exit_code: i32,
    ready_after: Duration,
    blocks: Option<u64>,
    /// `--fake-queue`: the single-queue model and its parameters.
    queue: Option<queue::Model>,
    /// `--fake-completions-status CODE`: every completion answered so.
    completions_status: Option<u16>,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    let model = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "unknown-model".into());
    let millis = |flag: &str| {
        value(flag)
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    };
    Args {
        served: value("--served-model-name").unwrap_or_else(|| model.clone()),
        host: value("--host").unwrap_or_else(|| "0.0.0.0".into()),
        port: value("--port").and_then(|p| p.parse().ok()).unwrap_or(8000),
        gateway_metrics_port: value("--gateway-metrics-port").and_then(|p| p.parse().ok()),
        exit_after: millis("--fake-exit-after-ms").or_else(|| {
            std::env::var("FAKE_MINER_EXIT_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
        }),
        exit_code: value("--fake-exit-code")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        ready_after: millis("--fake-ready-after-ms").unwrap_or_default(),
        blocks: value("--fake-blocks").and_then(|v| v.parse().ok()),
        queue: argv
            .iter()
            .any(|a| a == "--fake-queue")
            .then(|| queue::Model {
                prefill_tokens_per_s: value("--fake-prefill-tokens-per-s")
                    .and_then(|v| v.parse().ok())
                    .filter(|&v: &f64| v > 0.0)
                    .unwrap_or(20_000.0),
                decode_per_token: millis("--fake-decode-ms-per-token")
                    .unwrap_or(Duration::from_millis(20)),
                min_mining_tokens: value("--fake-min-mining-tokens")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1024),
            }),
        completions_status: value("--fake-completions-status").and_then(|v| v.parse().ok()),
        model,
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    // SAFETY: installing a handler that only calls _exit.
    unsafe {
        libc::signal(libc::SIGTERM, terminate as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, terminate as *const () as libc::sighandler_t);
    }
    let args = parse_args();
    let started = unix_now();
    say("Starting pearl-gateway...");
    let password = std::env::var("PEARLD_RPC_PASSWORD").unwrap_or_default();
    let token = std::env::var("HF_TOKEN").unwrap_or_default();
    say(&format!("gateway config: PEARLD_RPC_PASSWORD={password}"));
    say(&format!("gateway settings rpc_password: {password}"));
    say(&format!(
        "{{\"PEARLD_RPC_PASSWORD\": \"{password}\", \"HF_TOKEN\": \"{token}\"}}"
    ));
    say(&format!("hub login with HF_TOKEN={token}"));
    for name in [
        "PEARLD_RPC_URL",
        "PEARLD_RPC_USER",
        "PEARLD_MINING_ADDRESS",
        "MINER_RPC_TRANSPORT",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
    ] {
        say(&format!(
            "env {name}={}",
            std::env::var(name).unwrap_or_default()
        ));
    }
    say(&format!(
        "Starting vllm serve with args: {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));

    let listener = TcpListener::bind((args.host.as_str(), args.port)).unwrap_or_else(|err| {
        say(&format!("cannot bind {}:{}: {err}", args.host, args.port));
        std::process::exit(2);
    });
    say(&format!(
        "INFO: Uvicorn running on http://{}:{}",
        args.host, args.port
    ));

    let blocks = args
        .blocks
        .unwrap_or_else(|| env_number("FAKE_MINER_BLOCKS", 3));
    let interval = Duration::from_millis(env_number("FAKE_MINER_BLOCK_INTERVAL_MS", 200));
    std::thread::spawn(move || {
        for n in 1..=blocks {
            std::thread::sleep(interval);
            say("Received PlainProof");
            say("Submitting block");
            LAST_SUBMISSION.store(unix_now().to_bits(), Ordering::Relaxed);
            BLOCKS_SUBMITTED.fetch_add(1, Ordering::Relaxed);
            if n % 3 == 0 {
                say("Block rejected: stale template");
            } else {
                BLOCKS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
                say("Block accepted by node!");
            }
        }
    });
    if let Some(after) = args.exit_after {
        let code = args.exit_code;
        std::thread::spawn(move || {
            std::thread::sleep(after);
            say(&format!("fatal: simulated crash (exit code {code})"));
            std::process::exit(code);
        });
    }
    if let Some(port) = args.gateway_metrics_port {
        let gateway = TcpListener::bind((args.host.as_str(), port)).unwrap_or_else(|err| {
            say(&format!("cannot bind {}:{port}: {err}", args.host));
            std::process::exit(2);
        });
        std::thread::spawn(move || {
            for stream in gateway.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = serve_gateway_metrics(stream, started);
                });
            }
        });
    }
    if let Some(model) = args.queue {
        queue::start(model);
    }
    let ready_at = Instant::now() + args.ready_after;
    let completions_status = args.completions_status;
    for stream in listener.incoming().flatten() {
        let served = args.served.clone();
        let model = args.model.clone();
        let ready = Instant::now() >= ready_at;
        std::thread::spawn(move || {
            let _ = serve(stream, &served, &model, started, ready, completions_status);
        });
    }
}

/// Reads one request (its body, up to 1 MiB); returns the method, the path
/// and the body.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<(String, String, String)> {
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    Ok((method, path, String::from_utf8_lossy(&body).into_owned()))
}

fn respond(
    reader: BufReader<TcpStream>,
    (status, content_type, reply): (&str, &str, String),
) -> std::io::Result<()> {
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

fn not_found() -> (&'static str, &'static str, String) {
    (
        "404 Not Found",
        "application/json",
        r#"{"error":"not found"}"#.into(),
    )
}

fn serve_gateway_metrics(stream: TcpStream, started: f64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let (method, path, _) = read_request(&mut reader)?;
    let reply = match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => {
            let accepted = BLOCKS_ACCEPTED.load(Ordering::Relaxed);
            let mut text = format!(
                "# TYPE pearl_gateway_shares_submitted_total counter\n\
                 pearl_gateway_shares_submitted_total {}\n\
                 # TYPE pearl_gateway_shares_accepted_total counter\n\
                 pearl_gateway_shares_accepted_total {accepted}\n\
                 # TYPE pearl_gateway_blocks_found_total counter\n\
                 pearl_gateway_blocks_found_total {accepted}\n\
                 # TYPE pearl_gateway_errors_total counter\n\
                 pearl_gateway_errors_total 0\n\
                 # TYPE process_start_time_seconds gauge\n\
                 process_start_time_seconds {started}\n",
                BLOCKS_SUBMITTED.load(Ordering::Relaxed)
            );
            let last = f64::from_bits(LAST_SUBMISSION.load(Ordering::Relaxed));
            if last > 0.0 {
                text.push_str(&format!(
                    "# TYPE pearl_gateway_last_share_timestamp gauge\n\
                     pearl_gateway_last_share_timestamp {last}\n"
                ));
            }
            ("200 OK", "text/plain; version=0.0.4", text)
        }
        _ => not_found(),
    };
    respond(reader, reply)
}

fn serve(
    stream: TcpStream,
    served: &str,
    model: &str,
    started: f64,
    ready: bool,
    completions_status: Option<u16>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let (method, path, body) = read_request(&mut reader)?;
    let reply = match (method.as_str(), path.as_str()) {
        ("GET", "/v1/models") if !ready => (
            "503 Service Unavailable",
            "application/json",
            r#"{"error":"model loading"}"#.into(),
        ),
        ("GET", "/v1/models") => (
            "200 OK",
            "application/json",
            format!(
                r#"{{"object":"list","data":[{{"id":"{served}","object":"model","owned_by":"vllm","root":"{model}"}}]}}"#
            ),
        ),
        ("POST", "/v1/chat/completions") => {
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            (
                "200 OK",
                "application/json",
                format!(
                    r#"{{"id":"chatcmpl-fake","object":"chat.completion","model":"{served}","choices":[{{"index":0,"message":{{"role":"assistant","content":"mined while answering"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}}}"#
                ),
            )
        }
        ("POST", "/v1/completions") => completion(&body, served, completions_status),
        ("GET", "/metrics") if queue::enabled() => (
            "200 OK",
            "text/plain; version=0.0.4",
            format!(
                "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
                 # TYPE process_start_time_seconds gauge\n\
                 process_start_time_seconds {started}\n{}",
                queue::metrics(served, REQUESTS.load(Ordering::Relaxed))
            ),
        ),
        ("GET", "/metrics") => {
            let requests = REQUESTS.load(Ordering::Relaxed);
            (
                "200 OK",
                "text/plain; version=0.0.4",
                format!(
                    "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
                     # TYPE process_start_time_seconds gauge\n\
                     process_start_time_seconds {started}\n\
                     # TYPE vllm:num_requests_running gauge\n\
                     vllm:num_requests_running{{model_name=\"{served}\"}} 0.0\n\
                     # TYPE vllm:request_success_total counter\n\
                     vllm:request_success_total{{finished_reason=\"stop\",model_name=\"{served}\"}} {requests}.0\n\
                     # TYPE vllm:prompt_tokens_total counter\n\
                     vllm:prompt_tokens_total{{model_name=\"{served}\"}} {}.0\n\
                     # TYPE vllm:generation_tokens_total counter\n\
                     vllm:generation_tokens_total{{model_name=\"{served}\"}} {}.0\n",
                    requests * 5,
                    requests * 4
                ),
            )
        }
        ("GET", "/health") => ("200 OK", "text/plain", String::new()),
        _ => not_found(),
    };
    respond(reader, reply)
}

/// `POST /v1/completions`: refused with `--fake-completions-status`, served
/// by the queue model with `--fake-queue`, else answered at once.
fn completion(
    body: &str,
    served: &str,
    status: Option<u16>,
) -> (&'static str, &'static str, String) {
    if let Some(code) = status.filter(|&code| code != 200) {
        queue::refused();
        let status = match code {
            500 => "500 Internal Server Error",
            503 => "503 Service Unavailable",
            400 => "400 Bad Request",
            _ => "500 Internal Server Error",
        };
        return (
            status,
            "application/json",
            r#"{"object":"error","message":"simulated failure","type":"InternalServerError","code":500}"#.into(),
        );
    }
    let request = queue::parse(body);
    if queue::enabled() {
        queue::serve(&request);
    } else {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
    (
        "200 OK",
        "application/json",
        format!(
            r#"{{"id":"cmpl-fake","object":"text_completion","model":"{served}","choices":[{{"index":0,"text":" mined","finish_reason":"length"}}],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}}"#,
            request.prompt_tokens,
            request.max_tokens,
            request.prompt_tokens + request.max_tokens
        ),
    )
}
