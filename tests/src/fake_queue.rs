//! The fake miner run as a local process with its single-queue model
//! (`--fake-queue`, see tests/fake-miner/src/queue.rs): what idle-fill's
//! tests and benchmark measure against.

use crate::run::wait_for;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The fake miner built for this machine (release, not static), in
/// `<workspace>/target/fake-miner-local`: its own target dir, so the build
/// never waits on the `cargo test` that runs us. Built once per process.
pub fn fake_miner_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let root = super::workspace_root();
            let target_dir = root.join("target").join("fake-miner-local");
            let output = Command::new(env!("CARGO"))
                .current_dir(&root)
                .args(["build", "--release", "-p", "fake-miner", "--target-dir"])
                .arg(&target_dir)
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("RUSTFLAGS")
                .output()
                .expect("running cargo to build fake-miner");
            assert!(
                output.status.success(),
                "building fake-miner failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            target_dir.join("release").join("fake-miner")
        })
        .clone()
}

/// One line of the queue's log.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEvent {
    /// "arrived", "started" or "done".
    pub kind: String,
    pub id: u64,
    /// Seconds on the fake miner's clock.
    pub at: f64,
    /// The rest: only on "arrived".
    pub prompt_tokens: u64,
    pub max_tokens: u64,
    pub user: String,
    /// The prompt's first 16 token ids (none for a string prompt).
    pub head: Vec<u64>,
}

/// A fake miner with `--fake-queue`, serving on a free loopback port; killed
/// when dropped.
pub struct FakeQueue {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl FakeQueue {
    /// Starts it with `--fake-queue` and `args` (`--fake-prefill-tokens-per-s
    /// …` and the like) and waits until it answers.
    pub fn start(args: &[&str]) -> FakeQueue {
        let binary = fake_miner_binary();
        wait_for(Duration::from_secs(10), || {
            let port = super::free_port();
            let mut child = Command::new(&binary)
                .args(["fake-model", "--host", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .arg("--fake-queue")
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the fake miner");
            let stdout = child.stdout.take().unwrap();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            let queue = FakeQueue {
                child,
                base_url: format!("http://127.0.0.1:{port}"),
                port,
                lines,
            };
            // Another process may have taken the port: then it exits 2.
            let up = wait_for(Duration::from_secs(5), || {
                if queue.get("/health").is_some() {
                    return Some(true);
                }
                let exited = queue.lines().iter().any(|l| l.starts_with("cannot bind"));
                exited.then_some(false)
            });
            (up == Some(true)).then_some(queue)
        })
        .expect("the fake miner serves on a free port")
    }

    /// Its stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The queue's log so far.
    pub fn events(&self) -> Vec<QueueEvent> {
        self.lines()
            .iter()
            .filter_map(|line| parse_event(line))
            .collect()
    }

    /// The "arrived" events of requests from `user`.
    pub fn arrivals(&self, user: &str) -> Vec<QueueEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.kind == "arrived" && e.user == user)
            .collect()
    }

    /// `GET path`'s body when it answers 200.
    pub fn get(&self, path: &str) -> Option<String> {
        let (status, body) = http(self.port, "GET", path, "").ok()?;
        (status == 200).then_some(body)
    }

    /// Its `/metrics`, each name's series summed.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let text = self
            .get("/metrics")
            .expect("the fake miner serves /metrics");
        let mut metrics = BTreeMap::new();
        for sample in jarvis_mine::host::metrics::parse_samples(&text).expect("Prometheus text") {
            *metrics.entry(sample.name).or_insert(0.0) += sample.value;
        }
        metrics
    }

    /// One metric (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }

    /// A user's completion of a string prompt of `prompt_bytes` bytes
    /// (`prompt_bytes / 4` tokens in the model) generating `max_tokens`;
    /// returns its status and how long it took.
    pub fn user_completion(
        &self,
        user: &str,
        prompt_bytes: usize,
        max_tokens: u64,
    ) -> (u16, Duration) {
        let body = format!(
            r#"{{"model":"fake-model","prompt":"{}","max_tokens":{max_tokens},"user":"{user}"}}"#,
            "a".repeat(prompt_bytes)
        );
        let started = Instant::now();
        let (status, _) =
            http(self.port, "POST", "/v1/completions", &body).expect("the fake miner answers");
        (status, started.elapsed())
    }
}

impl Drop for FakeQueue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fake-queue: arrived id=3 at=1.5 prompt_tokens=2048 max_tokens=1 user=u head=1,2`.
fn parse_event(line: &str) -> Option<QueueEvent> {
    let rest = line.strip_prefix("fake-queue: ")?;
    let mut words = rest.split(' ');
    let kind = words.next()?.to_owned();
    let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
    let number = |key: &str| fields.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(QueueEvent {
        kind,
        id: fields.get("id")?.parse().ok()?,
        at: fields.get("at")?.parse().ok()?,
        prompt_tokens: number("prompt_tokens"),
        max_tokens: number("max_tokens"),
        user: fields.get("user").copied().unwrap_or_default().to_owned(),
        head: fields
            .get("head")
            .map(|h| h.split(',').filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default(),
    })
}

/// One HTTP/1.1 request on loopback `port` (the fake miner closes each
/// connection): the status and the body.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
