//! `jarvis mine init/start/status/logs/stop/attach` end to end: the real
//! binary, a temporary `OPENJARVIS_HOME` per test, the machine's Docker engine
//! and the fake miner image (tests/fake-miner) in place of Pearl's.
//!
//! The miner container has a fixed name (`openjarvis-pearl-miner`) and uses
//! the host network, and `status`/`start`/`stop` reconcile every container
//! labelled [`LABEL_PROVIDER`] whatever home they run in, so every test that
//! runs a lifecycle command holds [`Exclusive`]: one global lock, and every
//! labelled fake-miner container removed before and after (even when the
//! test fails). A labelled container from any other image (a real miner) makes
//! the tests refuse to run rather than remove it. [`Exclusive`] also holds
//! the machine-wide [`miner_lock`], which the other suites that run the
//! fixed-name miner (validate_host_cli, model_enablement_cli,
//! openjarvis_handoff) take too.

use jarvis_mine::docker::{ContainerSummary, Docker};
use jarvis_mine::host::{LABEL_HOME, LABEL_PROVIDER};
use jarvis_mine_tests::run::{Run, all_at_once, wait_for};
use jarvis_mine_tests::{
    ContainerCleanup, FAKE_MINER_REPOSITORY, MinerLock, fake_miner_image, fake_miner_init,
    fake_nvml_library, free_port, free_port_block, h100_facts, h100s, kill_container, miner_lock,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const PASSWORD: &str = "hunter2secret";
const HF_TOKEN: &str = "hf_secret_token_value";
const WALLET: &str = "prl1qexampleaddress";
const MODEL: &str = "pearl-ai/Llama-3.3-70B-Instruct-pearl";
const CONTAINER_NAME: &str = "openjarvis-pearl-miner";
const RTX_4090: &str = r#"{"os":"linux","arch":"x86_64","gpus":[{"index":0,"name":"NVIDIA GeForce RTX 4090","vendor":"nvidia","compute_capability":"8.9","memory_total_mib":24564}]}"#;

// ---------------------------------------------------------------------------
// Docker: one test at a time, nothing left behind.

fn docker() -> Docker {
    Docker::connect().expect("the test machine runs a Docker engine")
}

/// Every container labelled as a mining container of this host.
fn miners() -> Vec<ContainerSummary> {
    docker()
        .list_labelled(LABEL_PROVIDER, None)
        .expect("listing containers")
}

fn remove_fake_miners() {
    let docker = docker();
    for container in docker.list_labelled(LABEL_PROVIDER, None).unwrap() {
        assert!(
            container.image.starts_with(FAKE_MINER_REPOSITORY),
            "a mining container not made by these tests is on this machine \
             ({} from {}): refusing to remove it; stop it to run these tests",
            container.name,
            container.image
        );
        docker.remove(&container.id).unwrap();
    }
}

/// Held by every test that runs a lifecycle command; the miner lock keeps
/// other test binaries that run the fixed-name miner out meanwhile.
struct Exclusive {
    _guard: MutexGuard<'static, ()>,
    _miner: MinerLock,
}

fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let miner = miner_lock();
    remove_fake_miners();
    Exclusive {
        _guard: guard,
        _miner: miner,
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Runs while a failed test unwinds: never panic here.
        let _ = std::panic::catch_unwind(|| {
            let Ok(docker) = Docker::connect() else {
                return;
            };
            if let Ok(containers) = docker.list_labelled(LABEL_PROVIDER, None) {
                for c in containers {
                    if c.image.starts_with(FAKE_MINER_REPOSITORY) {
                        let _ = docker.remove(&c.id);
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------
// Homes and runs of the binary.

/// The compiled-component cache, made once per run in a home of its own and
/// copied into each test's home, so each test does not spend a second or two
/// compiling the built-in providers (the cache is keyed by content).
fn warm_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lifecycle_cli-warm-home");
        std::fs::create_dir_all(&home).unwrap();
        // `status` loads every provider; with no [mining] and no Docker it
        // touches nothing else.
        let out = Command::new(JARVIS)
            .args(["mine", "status"])
            .env_clear()
            .env("OPENJARVIS_HOME", &home)
            .env("DOCKER_HOST", "unix:///nonexistent/lifecycle_cli.sock")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            Run::new("jarvis mine status", out)
        );
        home.join("cache")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

struct Home {
    dir: tempfile::TempDir,
    port: u16,
    /// Everything every command printed, for the secret scan.
    transcript: Mutex<Vec<String>>,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(warm_cache(), &dir.path().join("cache"));
        Home {
            dir,
            port: free_port(),
            transcript: Mutex::new(Vec::new()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    fn config_text(&self) -> Option<String> {
        std::fs::read_to_string(self.config()).ok()
    }

    fn sidecar(&self) -> PathBuf {
        self.path().join("runtime/mining.json")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The binary with this home and the secrets in its environment, and
    /// nothing else of ours; `env` adds (`Some`) or removes (`None`) variables.
    fn command(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Command {
        let mut command = Command::new(JARVIS);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENJARVIS_HOME", self.path())
            .env("PEARLD_RPC_PASSWORD", PASSWORD)
            .env("HF_TOKEN", HF_TOKEN)
            .stdin(Stdio::null());
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
    }

    fn record(&self, run: &Run) {
        let mut transcript = self.transcript.lock().unwrap();
        transcript.push(run.stdout.clone());
        transcript.push(run.stderr.clone());
    }

    fn jarvis_env(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
        let out = self.command(args, env).output().unwrap();
        let run = Run::new(format!("jarvis {}", args.join(" ")), out);
        self.record(&run);
        run
    }

    fn jarvis(&self, args: &[&str]) -> Run {
        self.jarvis_env(args, &[])
    }

    /// `mine init` for the fake miner on an H100, then `extra`.
    fn init(&self, extra: &[&str]) -> Run {
        self.init_with(WALLET, extra)
    }

    fn init_with(&self, wallet: &str, extra: &[&str]) -> Run {
        let mut args = vec!["mine".to_owned()];
        args.extend(fake_miner_init(wallet, self.port));
        args.extend(extra.iter().map(|flag| flag.to_string()));
        self.jarvis(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `init` that must succeed.
    fn configured(self) -> Home {
        self.init(&[])
            .code(0)
            .stdout_has("Wrote [mining] for vllm-pearl");
        self
    }

    fn status_json(&self) -> Value {
        self.jarvis(&["mine", "status", "--json"]).code(0).json()
    }

    /// Polls `status --json` until `done` holds.
    #[track_caller]
    fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        wait_for(Duration::from_secs(10), || {
            last = self.status_json();
            done(&last).then(|| last.clone())
        })
        .unwrap_or_else(|| panic!("status never showed {what}: {last:#}"))
    }

    fn sidecar_json(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.sidecar()).ok()?;
        Some(serde_json::from_str(&text).expect("the sidecar is JSON"))
    }

    /// Everything the commands printed and every file under the home.
    fn everything(&self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = self
            .transcript
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, text)| (format!("output #{i}"), text.clone().into_bytes()))
            .collect();
        for file in files_under(self.path()) {
            all.push((file.display().to_string(), std::fs::read(&file).unwrap()));
        }
        all
    }
}

/// The session's running container: exactly one labelled container exists.
#[track_caller]
fn the_one_miner() -> ContainerSummary {
    let mut containers = miners();
    assert_eq!(containers.len(), 1, "{containers:#?}");
    containers.remove(0)
}

#[track_caller]
fn assert_no_miner() {
    let containers = miners();
    assert!(containers.is_empty(), "{containers:#?}");
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// A `logs -f` child and its stdout lines as they arrive.
struct Follower {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn spawn(home: &Home, args: &[&str]) -> Follower {
        let mut child = home
            .command(args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Collects lines until one contains `text`, for at most `limit`.
    fn until(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        if self.seen.iter().any(|l| l.contains(text)) {
            return true;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits for the process to end by itself; its exit code.
    fn exits_within(&mut self, limit: Duration) -> Option<i32> {
        let status = wait_for(limit, || self.child.try_wait().unwrap())?;
        self.seen.extend(self.lines.try_iter());
        Some(status.code().unwrap_or(-1))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [PASSWORD, HF_TOKEN] {
        let found = bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        if found {
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<String> = text
                .lines()
                .filter(|line| line.contains(secret))
                .take(3)
                .map(|line| line.chars().take(300).collect())
                .collect();
            panic!(
                "{what} contains the secret {secret:?}:\n{}",
                lines.join("\n")
            );
        }
    }
}

/// OpenJarvis's reader (reference §7): a JSON object whose `vllm_endpoint`
/// and `model` are non-empty strings; the engine's host is the endpoint less
/// a trailing `/` and one `/v1`. Plus ours: mode 0600, no secret.
#[track_caller]
fn assert_readable_sidecar(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    assert_no_secret("the sidecar", &bytes);
    let value: Value = serde_json::from_slice(&bytes).expect("the sidecar is JSON");
    let object = value.as_object().expect("the sidecar is a JSON object");
    for key in ["vllm_endpoint", "model"] {
        let text = object.get(key).and_then(Value::as_str);
        assert!(
            text.is_some_and(|t| !t.trim().is_empty()),
            "`{key}` must be a non-empty string: {value:#}"
        );
    }
    let endpoint = object["vllm_endpoint"].as_str().unwrap();
    assert!(
        endpoint.trim_end_matches('/').ends_with("/v1"),
        "the endpoint must end with /v1: {endpoint}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "sidecar mode {mode:o}");
    }
    // Atomic replacement leaves no temporary files behind.
    let dir = path.parent().unwrap();
    let temps: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mining-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    value
}

// ---------------------------------------------------------------------------
// 1. The whole lifecycle.

#[test]
fn init_start_status_logs_chat_stop() {
    let _x = exclusive();
    let home = Home::new().configured();
    let config = home.config_text().unwrap();
    assert!(
        config.contains(&format!("vllm_port = {}", home.port)),
        "{config}"
    );

    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has(&format!("Started vllm-pearl ({})", home.endpoint()));
    // Follow from the start: the blocks arrive while it runs.
    let mut follower = Follower::spawn(&home, &["mine", "logs", "-f", "-n", "100"]);

    let miner = the_one_miner();
    assert_eq!(miner.name, CONTAINER_NAME);
    assert_eq!(miner.state, "running");
    assert_eq!(
        miner.labels.get(LABEL_PROVIDER).map(String::as_str),
        Some("vllm-pearl")
    );

    let status = home.wait_status("shares", |s| {
        s["state"] == "running" && s["stats"]["shares_accepted"].as_u64() >= Some(1)
    });
    assert_eq!(status["provider"], "vllm-pearl");
    assert_eq!(status["session"]["vllm_endpoint"], home.endpoint().as_str());
    assert_eq!(status["session"]["model"], MODEL);
    assert_eq!(status["session"]["container_id"], miner.id.as_str());
    assert_eq!(status["container"]["running"], true);
    assert!(
        status["stats"]["shares_submitted"].as_u64() >= Some(1),
        "{status:#}"
    );
    assert_eq!(status["stats"]["payout_target"], "solo");
    assert_eq!(status["exit_code"], Value::Null);

    let text = home.jarvis(&["mine", "status"]);
    text.code(0);
    assert_eq!(text.row("state"), Some("running"), "{text}");
    assert_eq!(
        text.row("endpoint"),
        Some(home.endpoint().as_str()),
        "{text}"
    );
    assert_eq!(text.row("model"), Some(MODEL), "{text}");
    let submitted: u64 = text.row("shares submitted").unwrap().parse().unwrap();
    assert!(submitted >= 1, "{text}");

    // The follower saw the log as it grew (the third block comes ~600 ms in)
    // and is still following.
    assert!(
        follower.until("Block rejected: stale template", Duration::from_secs(5)),
        "{:#?}",
        follower.seen
    );
    assert!(follower.seen.iter().any(|l| l == "Block accepted by node!"));
    assert!(
        follower.child.try_wait().unwrap().is_none(),
        "logs -f ended"
    );
    for line in &follower.seen {
        assert_no_secret("logs -f", line.as_bytes());
    }
    // vllm-pearl counts the rejected block from the gateway's log line.
    let status = home.wait_status("a rejected share", |s| s["stats"]["shares_rejected"] == 1);
    assert_eq!(status["stats"]["shares_submitted"], 3, "{status:#}");
    assert_eq!(status["stats"]["shares_accepted"], 2, "{status:#}");
    let text = home.jarvis(&["mine", "status"]);
    assert_eq!(text.code(0).row("shares rejected"), Some("1"), "{text}");

    let logs = home.jarvis(&["mine", "logs", "-n", "100"]);
    logs.code(0)
        .stdout_has("Block accepted by node!")
        .stdout_has("Submitting block")
        .stdout_has("[REDACTED]");
    assert_no_secret("logs", logs.stdout.as_bytes());
    let one = home.jarvis(&["mine", "logs", "-n", "1"]);
    assert_eq!(one.code(0).stdout.lines().count(), 1, "{one}");

    // OpenJarvis routes chat to the endpoint and model of the sidecar.
    let (code, models) = http(home.port, "GET", "/v1/models", "");
    assert_eq!(code, 200, "{models}");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    let request = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello"}],
    });
    let (code, reply) = http(
        home.port,
        "POST",
        "/v1/chat/completions",
        &request.to_string(),
    );
    assert_eq!(code, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "mined while answering"
    );
    home.wait_status("the request served", |s| s["stats"]["requests_served"] == 1);

    home.jarvis(&["mine", "stop"])
        .code(0)
        .stdout_has("Mining stopped.");
    assert_no_miner();
    assert!(!home.sidecar().exists());
    // The follower ends when the container goes.
    assert_eq!(
        follower.exits_within(Duration::from_secs(10)),
        Some(0),
        "{:#?}",
        follower.seen
    );

    let after = home.jarvis(&["mine", "status"]);
    assert_eq!(after.code(0).row("state"), Some("stopped"), "{after}");
    home.jarvis(&["mine", "stop"])
        .code(0)
        .stdout_has("Nothing was running.");
    assert_eq!(
        home.config_text().unwrap(),
        config,
        "stop leaves the config"
    );
}

// ---------------------------------------------------------------------------
// 2. Sidecars OpenJarvis can read.

#[test]
fn the_sidecar_of_start_passes_openjarvis_reader_rules() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    let sidecar = assert_readable_sidecar(&home.sidecar());
    let miner = the_one_miner();
    assert_eq!(sidecar["vllm_endpoint"], home.endpoint().as_str());
    assert_eq!(sidecar["model"], MODEL);
    assert_eq!(sidecar["provider"], "vllm-pearl");
    assert_eq!(sidecar["container_id"], miner.id.as_str());
    assert_eq!(sidecar["wallet_address"], WALLET);
    assert!(sidecar["started_at"].is_u64(), "{sidecar:#}");
    // The engine OpenJarvis registers serves the sidecar's model.
    let (code, models) = http(home.port, "GET", "/v1/models", "");
    assert_eq!(code, 200);
    assert!(
        models.contains(sidecar["model"].as_str().unwrap()),
        "{models}"
    );
    home.jarvis(&["mine", "stop"]).code(0);
    assert!(!home.sidecar().exists());
}

#[test]
fn the_sidecar_of_attach_passes_openjarvis_reader_rules() {
    let home = Home::new();
    let endpoint = format!("http://127.0.0.1:{}/v1/", home.port);
    let run = home.jarvis(&[
        "mine",
        "attach",
        "--vllm-endpoint",
        &endpoint,
        "--gateway-url",
        "http://127.0.0.1:8337",
        "--gateway-metrics-url",
        "http://127.0.0.1:8339",
        "--wallet",
        WALLET,
    ]);
    run.code(0).stdout_has("Sidecar written to");
    let sidecar = assert_readable_sidecar(&home.sidecar());
    assert_eq!(sidecar["vllm_endpoint"], home.endpoint().as_str());
    assert_eq!(sidecar["model"], MODEL);
    assert_eq!(sidecar["container_id"], "external");

    // A sidecar OpenJarvis would skip is never written.
    std::fs::remove_file(home.sidecar()).unwrap();
    for (endpoint, model) in [(endpoint.as_str(), ""), ("", MODEL), (" ", MODEL)] {
        home.jarvis(&[
            "mine",
            "attach",
            "--vllm-endpoint",
            endpoint,
            "--model",
            model,
            "--gateway-url",
            "http://127.0.0.1:8337",
            "--gateway-metrics-url",
            "http://127.0.0.1:8339",
        ])
        .code(2)
        .stderr_has("cannot attach");
        assert!(!home.sidecar().exists(), "{endpoint:?} {model:?}");
    }
}

/// Starts a fake miner the way a user would by hand (no provider label).
fn start_external_miner(home: &Home, cleanup: &ContainerCleanup) -> String {
    let docker = docker();
    let spec = jarvis_mine::docker::ContainerSpec {
        name: Some(format!("jarvis-test-{}", cleanup.value())),
        image: fake_miner_image(),
        args: vec![
            MODEL.into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            home.port.to_string(),
        ],
        labels: cleanup.labels(),
        network_mode: "host".into(),
        ..Default::default()
    };
    let id = docker.create(&spec).unwrap();
    docker.start(&id).unwrap();
    id
}

/// An external miner (not ours: no provider label), attached: `status`
/// says whether it answers.
#[test]
fn an_attached_miner_that_dies_is_failed() {
    let _x = exclusive();
    let cleanup = ContainerCleanup::new("lifecycle-attach");
    let home = Home::new().configured();
    let id = start_external_miner(&home, &cleanup);
    wait_for(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", home.port)).ok()
    })
    .expect("the external miner listens");
    home.jarvis(&[
        "mine",
        "attach",
        "--vllm-endpoint",
        &home.endpoint(),
        "--gateway-url",
        "http://127.0.0.1:8337",
        "--gateway-metrics-url",
        "http://127.0.0.1:8339",
    ])
    .code(0);
    let status = home.status_json();
    assert_eq!(status["state"], "running", "{status:#}");
    assert_eq!(status["session"]["container_id"], "external");

    kill_container(&id);
    wait_for(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", home.port)).err()
    })
    .expect("the external miner is gone");
    let status = home.status_json();
    assert_eq!(status["state"], "failed", "{status:#}");
    let text = home.jarvis(&["mine", "status"]);
    assert!(
        text.code(0).row("state").unwrap().starts_with("failed"),
        "{text}"
    );
}

/// `stop` forgets an attached miner (the sidecar) and leaves it running.
#[test]
fn stop_forgets_an_attached_miner_and_leaves_it_running() {
    let _x = exclusive();
    let cleanup = ContainerCleanup::new("lifecycle-attach-stop");
    let home = Home::new().configured();
    let id = start_external_miner(&home, &cleanup);
    home.jarvis(&[
        "mine",
        "attach",
        "--vllm-endpoint",
        &home.endpoint(),
        "--gateway-url",
        "http://127.0.0.1:8337",
        "--gateway-metrics-url",
        "http://127.0.0.1:8339",
    ])
    .code(0);
    home.jarvis(&["mine", "stop"]).code(0);
    assert!(!home.sidecar().exists());
    let state = docker().inspect(&id).unwrap().expect("the external miner");
    assert!(
        state.running,
        "stop must not touch a miner it did not start"
    );
}

// ---------------------------------------------------------------------------
// 3. Secrets.

#[test]
fn no_secret_in_anything_the_run_produced() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    let mut follower = Follower::spawn(&home, &["mine", "logs", "-f"]);
    home.wait_status("blocks", |s| s["stats"]["shares_submitted"] == 3);
    home.jarvis(&["mine", "status"]).code(0);
    home.jarvis(&["mine", "logs", "-n", "100"]).code(0);
    home.jarvis(&["mine", "logs"]).code(0);
    home.jarvis(&["mine", "doctor", "--facts", h100_facts().to_str().unwrap()])
        .code(0);
    home.jarvis(&["mine", "doctor", "--json"]).code(0);
    assert!(follower.until("Block rejected", Duration::from_secs(5)));
    // The secrets did reach the container, which prints them: the point is
    // that nothing of ours shows them.
    let miner = the_one_miner();
    let raw = docker().logs(&miner.id, usize::MAX).unwrap().join("\n");
    assert!(raw.contains(PASSWORD) && raw.contains(HF_TOKEN), "{raw}");
    let while_running = home.everything();
    assert!(
        while_running
            .iter()
            .any(|(name, _)| name.ends_with("runtime/mining.json")),
        "the sidecar is among the files scanned"
    );

    // A failure shows the log tail; a second start recovers.
    kill_container(&miner.id);
    home.wait_status("the failure", |s| s["state"] == "failed");
    home.jarvis(&["mine", "status"]).code(0);
    home.jarvis(&["mine", "logs", "-n", "100"]).code(0);
    home.jarvis(&["mine", "start"]).code(0);
    home.jarvis(&["mine", "stop"]).code(0);
    follower.exits_within(Duration::from_secs(10));
    let follow_output = follower.seen.join("\n");
    assert!(follow_output.contains("[REDACTED]"), "{follow_output}");

    let mut scanned = while_running;
    scanned.extend(home.everything());
    scanned.push(("logs -f".into(), follow_output.into_bytes()));
    assert!(scanned.len() > 20, "{}", scanned.len());
    for (what, bytes) in &scanned {
        assert_no_secret(what, bytes);
    }
}

#[test]
fn verbose_logs_show_no_secret() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "-vv", "start"]).code(0);
    home.jarvis(&["mine", "-vv", "status"]).code(0);
    home.jarvis(&["mine", "-vvv", "logs"]).code(0);
    home.jarvis_env(&["mine", "status"], &[("RUST_LOG", Some("debug"))])
        .code(0);
    home.jarvis(&["mine", "-vv", "stop"]).code(0);
    for (what, bytes) in home.everything() {
        assert_no_secret(&what, &bytes);
    }
}

// ---------------------------------------------------------------------------
// 4, 5. One session, however often `start` runs.

#[test]
fn a_second_start_says_already_running() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started");
    let first = the_one_miner();
    let sidecar = std::fs::read(home.sidecar()).unwrap();
    home.jarvis(&["mine", "start"]).code(0).stdout_has(&format!(
        "vllm-pearl is already running ({})",
        home.endpoint()
    ));
    assert_eq!(the_one_miner().id, first.id);
    assert_eq!(std::fs::read(home.sidecar()).unwrap(), sidecar);
    home.jarvis(&["mine", "stop"]).code(0);
    assert_no_miner();
}

#[test]
fn ten_concurrent_starts_make_one_session() {
    let _x = exclusive();
    let home = Home::new().configured();
    let runs = all_at_once(
        "jarvis mine start",
        (0..10).map(|_| home.command(&["mine", "start"], &[])),
    );
    for run in &runs {
        home.record(run);
    }
    for run in &runs {
        run.code(0);
    }
    let started = runs.iter().filter(|r| r.stdout.contains("Started")).count();
    let already = runs
        .iter()
        .filter(|r| r.stdout.contains("already running"))
        .count();
    assert_eq!((started, already), (1, 9));
    let miner = the_one_miner();
    assert_eq!(miner.state, "running");
    assert_eq!(
        home.sidecar_json().unwrap()["container_id"],
        miner.id.as_str()
    );
    home.jarvis(&["mine", "stop"]).code(0);
    assert_no_miner();
}

// ---------------------------------------------------------------------------
// 6, 7. Crashes.

#[test]
fn a_container_killed_from_outside_is_failed_and_start_recovers() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    home.wait_status("the third block", |s| s["stats"]["shares_submitted"] == 3);
    let first = the_one_miner();
    kill_container(&first.id);

    let status = home.wait_status("the failure", |s| s["state"] == "failed");
    assert_eq!(status["exit_code"], 137, "{status:#}");
    let last: Vec<&str> = status["last_lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        last.contains(&"Block rejected: stale template"),
        "{status:#}"
    );
    assert!(!last.is_empty() && last.len() <= 10, "{last:?}");
    // `status` repaired the stale sidecar and kept the container for `logs`.
    assert!(
        status["repairs"][0]
            .as_str()
            .is_some_and(|r| r.contains("stale sidecar removed") && r.contains("137")),
        "{status:#}"
    );
    assert!(!home.sidecar().exists());
    assert_eq!(the_one_miner().state, "exited");

    let text = home.jarvis(&["mine", "status"]);
    assert_eq!(
        text.code(0).row("state"),
        Some("failed (exit code 137)"),
        "{text}"
    );
    text.stdout_has("last log lines:")
        .stdout_has("  Block rejected: stale template");
    home.jarvis(&["mine", "logs", "-n", "5"])
        .code(0)
        .stdout_has("Block rejected: stale template");

    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started");
    let second = the_one_miner();
    assert_ne!(second.id, first.id);
    assert_eq!(second.state, "running");
    home.wait_status("running", |s| s["state"] == "running");

    // Killed again, and `start` right away: it removes the stale sidecar
    // itself.
    kill_container(&second.id);
    wait_for(Duration::from_secs(5), || {
        (the_one_miner().state == "exited").then_some(())
    })
    .expect("the container exits");
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started")
        .stderr_has("stale sidecar removed");
    let third = the_one_miner();
    assert_ne!(third.id, second.id);
    assert_eq!(
        home.sidecar_json().unwrap()["container_id"],
        third.id.as_str()
    );
    home.jarvis(&["mine", "stop"]).code(0);
    assert_no_miner();
    assert!(!home.sidecar().exists());
}

#[test]
fn three_gpus_mine_as_three_workers_and_a_killed_one_comes_back() {
    let _x = exclusive();
    let mut home = Home::new();
    home.port = free_port_block(3);
    let home = home.configured();
    let gpus = h100s(3);
    let nvml = [
        ("JARVIS_NVML_LIBRARY", Some(fake_nvml_library())),
        ("FAKE_NVML_GPUS", Some(gpus.as_str())),
    ];
    home.jarvis_env(&["mine", "start"], &nvml).code(0);

    // One container per GPU, worker 0 under the reference's name.
    let mut workers = miners();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = workers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            CONTAINER_NAME.to_owned(),
            format!("{CONTAINER_NAME}-1"),
            format!("{CONTAINER_NAME}-2")
        ]
    );
    let record = home.sidecar_json().unwrap();
    assert_eq!(record["vllm_endpoint"], home.endpoint(), "{record:#}");
    assert_eq!(record["container_id"], workers[0].id.as_str());
    for (index, worker) in record["workers"].as_array().unwrap().iter().enumerate() {
        let port = home.port + index as u16;
        assert_eq!(worker["container_id"], workers[index].id.as_str());
        assert_eq!(worker["gpus"], serde_json::json!([index.to_string()]));
        assert_eq!(
            worker["vllm_endpoint"],
            format!("http://127.0.0.1:{port}/v1")
        );
    }
    let status = home.wait_status("three workers' blocks", |s| {
        s["state"] == "running"
            && s["stats"]["workers"]
                .as_array()
                .is_some_and(|w| w.len() == 3)
            && s["stats"]["shares_submitted"] == 9
    });
    assert_eq!(status["stats"]["shares_accepted"], 6, "{status:#}");
    assert_eq!(status["stats"]["workers"][2]["shares_submitted"], 3);
    assert_eq!(status["workers"][1]["state"], "running");

    // Worker 1 killed: degraded, the others untouched.
    kill_container(&workers[1].id);
    let status = home.wait_status("degraded", |s| s["state"] == "degraded");
    assert_eq!(status["workers"][1]["state"], "exited", "{status:#}");
    assert_eq!(status["workers"][1]["exit_code"], 137);
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker 1") && r.contains("137")),
        "{status:#}"
    );
    assert_eq!(status["repairs"], serde_json::json!([]));
    let text = home.jarvis(&["mine", "status"]);
    assert_eq!(text.code(0).row("state"), Some("degraded"), "{text}");
    assert_eq!(text.row("workers"), Some("2 of 3 running"), "{text}");
    let after: Vec<(String, String)> = miners().into_iter().map(|c| (c.id, c.state)).collect();
    for (index, worker) in workers.iter().enumerate() {
        let state = if index == 1 { "exited" } else { "running" };
        assert!(
            after.contains(&(worker.id.clone(), state.to_owned())),
            "{after:?}"
        );
    }

    // `start` starts worker 1 again, in its own container.
    home.jarvis_env(&["mine", "start"], &nvml)
        .code(0)
        .stderr_has("worker 1");
    let status = home.wait_status("running again", |s| s["state"] == "running");
    assert_eq!(status["workers"][1]["state"], "running", "{status:#}");
    assert_eq!(miners().len(), 3);
    assert!(
        miners()
            .iter()
            .any(|c| c.id == workers[1].id && c.state == "running")
    );
    home.jarvis(&["mine", "stop"]).code(0);
    assert_no_miner();
}

#[test]
fn a_dry_run_plans_eight_workers_and_touches_nothing() {
    let _x = exclusive();
    let home = Home::new().configured();
    // Devices are requested (the plan is never started here).
    let config = home.config_text().unwrap();
    assert!(config.contains("gpu_request = \"none\""), "{config}");
    std::fs::write(
        home.config(),
        config.replace("gpu_request = \"none\"", "gpu_request = \"auto\""),
    )
    .unwrap();
    let before = miners().len();
    let eight = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/facts/h200x8.json");
    let facts = eight.to_str().unwrap();
    let run = home.jarvis(&["mine", "start", "--dry-run", "--json", "--facts", facts]);
    let plan = run.code(0).json();
    let containers = plan["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 8, "{plan:#}");
    for (index, container) in containers.iter().enumerate() {
        let port = home.port + index as u16;
        assert_eq!(
            container["device_ids"],
            serde_json::json!([index.to_string()])
        );
        assert!(
            container["args"]
                .as_array()
                .unwrap()
                .contains(&Value::from(port.to_string())),
            "{container:#}"
        );
        let env: Vec<&str> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(env.contains(&"PEARLD_RPC_PASSWORD") && env.contains(&"CUDA_VISIBLE_DEVICES"));
    }
    assert_eq!(plan["session"]["workers"].as_array().unwrap().len(), 8);
    assert!(!run.stdout.contains(PASSWORD) && !run.stdout.contains(HF_TOKEN));
    // Nothing was created, written or started.
    assert_eq!(miners().len(), before);
    assert!(!home.sidecar().exists());
    // The policy still decides: a quota of 2 refuses the eight.
    let policy = home.path().join("mining/policy.toml");
    std::fs::create_dir_all(policy.parent().unwrap()).unwrap();
    std::fs::write(&policy, "[providers.vllm-pearl.quotas]\ncontainers = 2\n").unwrap();
    home.jarvis(&["mine", "start", "--dry-run", "--facts", facts])
        .stderr_has("may not create 8 more");
    let text = home.jarvis(&[
        "mine",
        "start",
        "--dry-run",
        "--facts",
        h100_facts().to_str().unwrap(),
    ]);
    text.code(0)
        .stdout_has("Dry run: nothing was created")
        .stdout_has("openjarvis-pearl-miner\n");
    assert_eq!(miners().len(), before);
}

/// Unix seconds now, as `docker events` takes them.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// On this engine (no NVIDIA runtime) a container that asks for GPUs is
/// created but cannot start: the eight workers of an 8-GPU plan are all
/// created before any is started, and when the first cannot start all eight
/// are removed (Docker's events say so; each worker's device request and
/// environment are what `a_dry_run_plans_eight_workers_and_touches_nothing`
/// checks, through the same host code).
#[test]
fn an_eight_gpu_plan_is_created_whole_and_removed_whole_when_it_cannot_start() {
    let _x = exclusive();
    let mut home = Home::new();
    home.port = free_port_block(8);
    let home = home.configured();
    let config = home.config_text().unwrap();
    std::fs::write(
        home.config(),
        config.replace("gpu_request = \"none\"", "gpu_request = \"auto\""),
    )
    .unwrap();
    let before = miners().len();
    let gpus = h100s(8);
    let since = unix_now();
    let run = home.jarvis_env(
        &["mine", "start", "--no-wait"],
        &[
            ("JARVIS_NVML_LIBRARY", Some(fake_nvml_library())),
            ("FAKE_NVML_GPUS", Some(gpus.as_str())),
        ],
    );
    assert_ne!(run.code, Some(0), "{run}");
    assert_eq!(miners().len(), before, "nothing is left");
    assert!(!home.sidecar().exists());

    let label = format!(
        "label={LABEL_HOME}={}",
        std::fs::canonicalize(home.path()).unwrap().display()
    );
    let events = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &(unix_now() + 1).to_string(),
        ])
        .args(["--filter", "type=container", "--filter", &label])
        .args(["--format", "{{.Action}} {{.Actor.Attributes.name}}"])
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    let actions: Vec<&str> = events.lines().collect();
    let created: Vec<&str> = actions
        .iter()
        .take_while(|line| line.starts_with("create "))
        .copied()
        .collect();
    let names: Vec<String> = (0..8)
        .map(|i| match i {
            0 => format!("create {CONTAINER_NAME}"),
            i => format!("create {CONTAINER_NAME}-{i}"),
        })
        .collect();
    assert_eq!(created, names, "{events}");
    assert_eq!(
        actions.iter().filter(|a| a.starts_with("destroy ")).count(),
        8,
        "{events}"
    );
}

#[test]
fn jarvis_killed_during_start_leaves_no_orphan() {
    let _x = exclusive();
    let home = Home::new().configured();
    let mut observed = Vec::new();
    for (round, delay) in [0u64, 5, 20, 40, 60, 80, 100, 120, 150, 200, 300]
        .into_iter()
        .enumerate()
    {
        let mut child = home
            .command(&["mine", "start"], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        observed.push((
            delay,
            status.code(),
            miners().len(),
            home.sidecar().exists(),
        ));

        // Recovery by `status` or by `start`, alternately.
        if round % 2 == 0 {
            home.jarvis(&["mine", "status"]).code(0);
            let containers = miners();
            assert!(containers.len() <= 1, "{delay} ms: {containers:#?}");
            match home.sidecar_json() {
                Some(sidecar) => {
                    let c = containers.first().unwrap_or_else(|| {
                        panic!("{delay} ms: a sidecar without a container: {sidecar}")
                    });
                    assert_eq!(sidecar["container_id"], c.id.as_str(), "{delay} ms");
                    assert_eq!(c.state, "running", "{delay} ms");
                }
                None => assert!(
                    containers.iter().all(|c| c.state != "running"),
                    "{delay} ms: an orphan survived `status`: {containers:#?}"
                ),
            }
        } else {
            home.jarvis(&["mine", "start"]).code(0);
            let c = the_one_miner();
            assert_eq!(c.state, "running", "{delay} ms");
            assert_eq!(
                home.sidecar_json().unwrap()["container_id"],
                c.id.as_str(),
                "{delay} ms"
            );
        }
        home.jarvis(&["mine", "stop"]).code(0);
        assert_no_miner();
        assert!(!home.sidecar().exists(), "{delay} ms");
    }
    // (delay ms, exit, containers and sidecar right after the kill)
    eprintln!("{observed:?}");
}

// ---------------------------------------------------------------------------
// 8. Errors: their own exit codes, nothing half-done.

/// Nothing started: no container, no sidecar, the config as it was.
#[track_caller]
fn assert_nothing_done(home: &Home, config: Option<&str>) {
    assert_no_miner();
    assert!(!home.sidecar().exists(), "a sidecar was written");
    assert_eq!(home.config_text().as_deref(), config, "the config changed");
}

#[test]
fn docker_unreachable_exits_3() {
    let _x = exclusive();
    let unreachable = [("DOCKER_HOST", Some("unix:///nonexistent.sock"))];
    let home = Home::new();
    home.jarvis_env(&["mine", "status"], &unreachable)
        .code(0)
        .stdout_has("not configured");
    let init = Home::new();
    let image = fake_miner_image();
    let port = init.port.to_string();
    let facts = h100_facts();
    init.jarvis_env(
        &[
            "mine",
            "init",
            "--provider",
            "vllm-pearl",
            "--wallet",
            WALLET,
            "--facts",
            facts.to_str().unwrap(),
            "--image",
            &image,
            "--vllm-port",
            &port,
            "--yes",
        ],
        &unreachable,
    )
    .code(3)
    .stderr_has("nonexistent.sock");
    assert_nothing_done(&init, None);

    let home = home.configured();
    let config = home.config_text();
    for args in [
        &["mine", "start"][..],
        &["mine", "stop"],
        &["mine", "status"],
        &["mine", "logs"],
    ] {
        home.jarvis_env(args, &unreachable)
            .code(3)
            .stderr_has("Docker unavailable")
            .stderr_has("nonexistent.sock");
        assert_nothing_done(&home, config.as_deref());
    }
}

#[test]
fn a_bad_wallet_exits_4() {
    let _x = exclusive();
    let home = Home::new();
    home.init_with("bad", &[])
        .code(4)
        .stderr_has("Invalid wallet address");
    assert_nothing_done(&home, None);

    let home = home.configured();
    let config = home
        .config_text()
        .unwrap()
        .replace(&format!("\"{WALLET}\""), "\"xyz\"");
    std::fs::write(home.config(), &config).unwrap();
    home.jarvis(&["mine", "start"])
        .code(4)
        .stderr_has("Invalid wallet address")
        .stderr_has("'xyz'");
    assert_nothing_done(&home, Some(&config));
}

#[test]
fn an_unknown_model_exits_5() {
    let _x = exclusive();
    let home = Home::new();
    home.init(&["--model", "foo/bar"])
        .code(5)
        .stderr_has("unknown model 'foo/bar'");
    assert_nothing_done(&home, None);

    let home = home.configured();
    let config = home.config_text().unwrap().replace(MODEL, "foo/bar");
    std::fs::write(home.config(), &config).unwrap();
    home.jarvis(&["mine", "start"])
        .code(5)
        .stderr_has("unknown model 'foo/bar'");
    assert_nothing_done(&home, Some(&config));
}

#[test]
fn a_missing_password_exits_6() {
    let _x = exclusive();
    let home = Home::new().configured();
    let config = home.config_text();
    home.jarvis_env(&["mine", "start"], &[("PEARLD_RPC_PASSWORD", None)])
        .code(6)
        .stderr_has("'PEARLD_RPC_PASSWORD' is not set");
    assert_nothing_done(&home, config.as_deref());
}

#[test]
fn a_pool_target_exits_2() {
    let _x = exclusive();
    let home = Home::new().configured();
    let config = home.config_text().unwrap().replace(
        "submit_target = \"solo\"",
        "submit_target = \"pool:https://x\"",
    );
    assert!(config.contains("pool:https://x"));
    std::fs::write(home.config(), &config).unwrap();
    home.jarvis(&["mine", "start"])
        .code(2)
        .stderr_has("pool mining is not supported yet");
    assert_nothing_done(&home, Some(&config));
}

#[test]
fn start_without_mining_table_exits_2() {
    let _x = exclusive();
    let home = Home::new();
    home.jarvis(&["mine", "start"])
        .code(2)
        .stderr_has("no [mining] section");
    assert_nothing_done(&home, None);
    // OpenJarvis's own config, without [mining].
    let config = "[engine]\ndefault = \"ollama\"\n";
    std::fs::write(home.config(), config).unwrap();
    home.jarvis(&["mine", "start"])
        .code(2)
        .stderr_has("run `jarvis mine init`");
    assert_nothing_done(&home, Some(config));
}

#[test]
fn init_on_an_rtx_4090_exits_7() {
    let home = Home::new();
    let facts = home.path().join("rtx4090.json");
    std::fs::write(&facts, RTX_4090).unwrap();
    let image = fake_miner_image();
    home.jarvis(&[
        "mine",
        "init",
        "--provider",
        "vllm-pearl",
        "--wallet",
        WALLET,
        "--facts",
        facts.to_str().unwrap(),
        "--image",
        &image,
        "--yes",
    ])
    .code(7)
    .stderr_has("vllm-pearl cannot mine on this host")
    .stderr_has("RTX 4090");
    assert_eq!(home.config_text(), None);
}

#[test]
fn init_twice_keeps_the_table_unless_forced() {
    let home = Home::new().configured();
    let config = home.config_text().unwrap();
    home.init_with("prl1qanotheraddress", &[])
        .code(0)
        .stdout_has("already present");
    assert_eq!(home.config_text().unwrap(), config);
    home.init_with("prl1qanotheraddress", &["--force"])
        .code(0)
        .stdout_has("Wrote [mining]");
    let forced = home.config_text().unwrap();
    assert!(forced.contains("prl1qanotheraddress"), "{forced}");
    assert!(!forced.contains(WALLET), "{forced}");
}

// ---------------------------------------------------------------------------
// 9. Nothing configured.

#[test]
fn status_with_nothing_configured() {
    let _x = exclusive();
    let home = Home::new();
    let text = home.jarvis(&["mine", "status"]);
    assert_eq!(text.code(0).row("state"), Some("not configured"), "{text}");
    let json = home.status_json();
    assert_eq!(json["state"], "not configured");
    assert_eq!(json["session"], Value::Null);
    home.jarvis(&["mine", "stop"])
        .code(0)
        .stdout_has("nothing to stop");
    home.jarvis(&["mine", "logs"])
        .code(1)
        .stderr_has("no mining container");
    assert_eq!(home.config_text(), None);
}

#[test]
fn status_in_another_home_leaves_a_running_miner_alone() {
    let _x = exclusive();
    let miner_home = Home::new().configured();
    miner_home.jarvis(&["mine", "start"]).code(0);
    let miner = the_one_miner();
    let other = Home::new();
    let text = other.jarvis(&["mine", "status"]);
    assert_eq!(text.code(0).row("state"), Some("not configured"), "{text}");
    assert_eq!(the_one_miner().id, miner.id);
    assert_eq!(the_one_miner().state, "running");
    miner_home.jarvis(&["mine", "stop"]).code(0);
}

/// A system policy in its own file, passed as `OPENJARVIS_MINING_POLICY`.
fn system_policy(home: &Home, text: &str) -> PathBuf {
    let path = home.path().join("system-policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn audit(home: &Home, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["mine", "audit", "--json", "-n", "1000"];
    all.extend_from_slice(args);
    let run = home.jarvis(&all);
    run.code(0);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_system_policy_denies_an_image_and_the_audit_log_says_so() {
    let _x = exclusive();
    let home = Home::new().configured();
    let policy = system_policy(
        &home,
        "[providers.vllm-pearl.containers]\nimages = [\"openjarvis/pearl-miner:*\"]\n",
    );
    let env = [("OPENJARVIS_MINING_POLICY", policy.to_str())];
    let image = fake_miner_image();
    home.jarvis_env(&["mine", "start"], &env)
        .code(9)
        .stderr_has(&format!(
            "vllm-pearl: denied: image '{image}' is not in providers.\"vllm-pearl\".containers.images (policy {})",
            policy.display()
        ));
    assert_no_miner();
    assert!(!home.sidecar().exists(), "nothing half-written");

    let denied = audit(&home, &["--denied"]);
    assert_eq!(denied.len(), 1, "{denied:#?}");
    let record = &denied[0];
    assert_eq!(record["provider"], "vllm-pearl");
    assert_eq!(record["capability"], "containers");
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["wit"], "openjarvis:mining@0.2.0");
    assert_eq!(
        record["action"],
        format!("containers.ensure-image image={image}").as_str()
    );
    assert_eq!(record["component"].as_str().map(str::len), Some(64));
    assert!(record["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_granted_start_is_recorded_call_by_call_without_secrets() {
    let _x = exclusive();
    let home = Home::new().configured();
    let image = fake_miner_image();
    let repository = image.split(':').next().unwrap();
    let policy = system_policy(
        &home,
        &format!(
            "[providers.vllm-pearl.containers]\nimages = [\"{repository}:*\"]\nsecrets = [\"PEARLD_RPC_PASSWORD\", \"HF_TOKEN\"]\n"
        ),
    );
    let env = [("OPENJARVIS_MINING_POLICY", policy.to_str())];
    home.jarvis_env(&["mine", "start"], &env).code(0);
    the_one_miner();
    home.jarvis_env(&["mine", "stop"], &env).code(0);

    let records = audit(&home, &["--provider", "vllm-pearl"]);
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    let run = records
        .iter()
        .find(|r| r["action"].as_str().unwrap().starts_with("containers.run"))
        .unwrap_or_else(|| panic!("no containers.run in {actions:#?}"));
    assert_eq!(run["decision"], "allow");
    assert_eq!(run["outcome"], "ok");
    let summary = run["action"].as_str().unwrap();
    assert!(
        summary.contains("secrets=PEARLD_RPC_PASSWORD,HF_TOKEN"),
        "{summary}"
    );
    assert!(
        actions.iter().any(|a| a.starts_with("sidecar.write")),
        "{actions:#?}"
    );
    assert!(
        actions.iter().any(|a| a.starts_with("containers.stop")),
        "{actions:#?}"
    );
    assert!(
        records.iter().all(|r| r["decision"] == "allow"),
        "{records:#?}"
    );
    let log = std::fs::read(home.path().join("logs/mining-audit.jsonl")).unwrap();
    assert_no_secret("the audit log", &log);

    // A pinned digest that is not the image's: denied before anything runs.
    let pinned = system_policy(
        &home,
        &format!(
            "[providers.vllm-pearl.containers]\ndigests = [\"sha256:{}\"]\n",
            "0".repeat(64)
        ),
    );
    home.jarvis_env(
        &["mine", "start"],
        &[("OPENJARVIS_MINING_POLICY", pinned.to_str())],
    )
    .code(9)
    .stderr_has("is not in providers.\"vllm-pearl\".containers.digests");
    assert_no_miner();
}

#[test]
fn a_broken_system_policy_denies_everything_but_doctor_still_runs() {
    let _x = exclusive();
    let home = Home::new().configured();
    let policy = system_policy(&home, "[providers.vllm-pearl]\ncapabilites = []\n");
    let env = [("OPENJARVIS_MINING_POLICY", policy.to_str())];
    let facts = h100_facts();
    let doctor = home.jarvis_env(
        &["mine", "doctor", "--facts", facts.to_str().unwrap()],
        &env,
    );
    doctor.code(0);
    let row = doctor
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("system policy"))
        .unwrap_or_default();
    assert!(
        row.contains(&format!("{}:2:1", policy.display())) && row.ends_with("FAIL"),
        "{doctor}"
    );
    home.jarvis_env(&["mine", "start"], &env)
        .code(9)
        .stderr_has("the system policy is unusable, so every privileged call is denied");
    assert_no_miner();
    home.jarvis_env(&["mine", "policy", "check", policy.to_str().unwrap()], &[])
        .code(2)
        .stderr_has(&format!(
            "{}:2:1: unknown field `capabilites`",
            policy.display()
        ));
}

// ---------------------------------------------------------------------------
// 10. Teardown belongs to the host: whatever a provider's `start` or `stop`
// does, nothing labelled for the session is left (tests/guests/teardown).

const TEARDOWN: &str = env!("GUEST_TEARDOWN");

impl Home {
    /// The teardown guest installed and granted what it needs, and
    /// configured as the provider, with `extra` lines in `[mining.extra]`.
    fn with_teardown(self, extra: &str) -> Home {
        let providers = self.path().join("mining/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::copy(TEARDOWN, providers.join("teardown.wasm")).unwrap();
        let repository = FAKE_MINER_REPOSITORY;
        std::fs::write(
            self.path().join("mining/policy.toml"),
            format!(
                "[providers.teardown]\ncapabilities = [\"containers\", \"sidecar\"]\n\n\
                 [providers.teardown.containers]\nimages = [\"{repository}:*\"]\nnetwork_modes = [\"host\"]\n\n\
                 [providers.teardown.quotas]\ncontainers = 2\n"
            ),
        )
        .unwrap();
        std::fs::write(
            self.config(),
            format!(
                "[mining]\nprovider = \"teardown\"\nwallet_address = \"{WALLET}\"\n\n\
                 [mining.extra]\nimage = \"{}\"\nport = {}\n{extra}",
                fake_miner_image(),
                self.port
            ),
        )
        .unwrap();
        self
    }

    /// Adds `lines` to the `[mining.extra]` that `init` wrote.
    fn extra(&self, lines: &str) {
        let config = self.config_text().unwrap();
        assert!(config.contains("[mining.extra]\n"), "{config}");
        let config = config.replacen("[mining.extra]\n", &format!("[mining.extra]\n{lines}"), 1);
        std::fs::write(self.config(), config).unwrap();
    }

    /// The canonical home, as the host labels containers with it.
    fn canonical(&self) -> PathBuf {
        self.path().canonicalize().unwrap()
    }
}

/// `removed container <short id> (<name>)` for each of `containers`.
#[track_caller]
fn assert_lists_removed(text: &str, containers: &[ContainerSummary]) {
    for c in containers {
        let line = format!("removed container {} ({})", &c.id[..12], c.name);
        assert_eq!(text.matches(&line).count(), 1, "{line:?} once in:\n{text}");
    }
}

/// The host's audit records whose action starts with `action`.
fn host_records(home: &Home, action: &str) -> Vec<Value> {
    audit(home, &[])
        .into_iter()
        .filter(|r| r["capability"] == "host")
        .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with(action)))
        .collect()
}

#[test]
fn stop_removes_what_a_refusing_trapping_or_spinning_stop_leaves() {
    let _x = exclusive();
    for (mode, says) in [
        ("refuse", "teardown refuses to stop"),
        ("trap", "teardown traps in stop"),
        ("spin", "timed out"),
    ] {
        let home = Home::new().with_teardown(&format!("containers = 2\nstop = \"{mode}\"\n"));
        home.jarvis(&["mine", "start"])
            .code(0)
            .stdout_has("Started teardown");
        let running = miners();
        assert_eq!(running.len(), 2, "{mode}: {running:#?}");
        assert!(running.iter().all(|c| c.state == "running"), "{running:#?}");

        let stop = home.jarvis(&["mine", "stop"]);
        stop.code(1).stderr_has(says).stderr_has("the host removed");
        assert_lists_removed(&stop.stdout, &running);
        assert_no_miner();
        assert!(!home.sidecar().exists(), "{mode}: the record is gone too");

        let records = host_records(&home, "host.teardown");
        assert_eq!(records.len(), 2, "{mode}: {records:#?}");
        for record in &records {
            assert_eq!(record["provider"], "teardown", "{record:#}");
            assert_eq!(record["outcome"], "ok", "{record:#}");
            assert!(record["action"].as_str().unwrap().ends_with("reason=stop"));
        }
        let after = home.jarvis(&["mine", "status"]);
        assert_eq!(after.code(0).row("state"), Some("stopped"), "{after}");
    }
}

#[test]
fn a_failed_start_leaves_nothing_of_its_session() {
    let _x = exclusive();
    for (then, code, says) in [
        ("refuse", 1, "teardown refuses to finish start"),
        ("trap", 1, "teardown traps in start"),
        ("spin", 1, "timed out"),
    ] {
        let home = Home::new().with_teardown(&format!("containers = 2\nstart_then = \"{then}\"\n"));
        let start = home.jarvis(&["mine", "start"]);
        start.code(code).stderr_has(says);
        assert_eq!(
            start.stderr.matches("removed container ").count(),
            2,
            "{then}: {start}"
        );
        start.stderr_has("removed the session record");
        assert_no_miner();
        assert!(!home.sidecar().exists(), "{then}");
        let records = host_records(&home, "host.teardown");
        assert_eq!(records.len(), 2, "{then}: {records:#?}");
        assert!(records.iter().all(|r| {
            r["action"]
                .as_str()
                .unwrap()
                .ends_with("reason=start-failed")
        }));
        // Status after a failed start: the session ended, nothing runs.
        let status = home.jarvis(&["mine", "status"]);
        assert_eq!(status.code(0).row("state"), Some("stopped"), "{status}");
    }
}

#[test]
fn start_fails_with_the_exit_code_and_last_lines_of_a_miner_that_dies_at_once() {
    let _x = exclusive();
    let dies = "\"--fake-exit-after-ms\", \"0\", \"--fake-exit-code\", \"101\"";
    // No restart policy: it exits.
    let home = Home::new().with_teardown(&format!("miner_args = [{dies}]\n"));
    let start = home.jarvis(&["mine", "start"]);
    start
        .code(1)
        .stderr_has("exited with code 101")
        .stderr_has("last log lines:")
        .stderr_has("fatal: simulated crash (exit code 101)")
        .stderr_has("removed container ");
    assert!(!start.stdout.contains("Started"), "{start}");
    assert_no_miner();
    assert!(!home.sidecar().exists());

    // vllm-pearl restarts its miner (unless-stopped): a crash loop.
    let home = Home::new().configured();
    home.extra("vllm_args = \"--fake-exit-after-ms 0 --fake-exit-code 101\"\n");
    let start = home.jarvis(&["mine", "start"]);
    start
        .code(1)
        .stderr_has("crash-looping: exit code 101")
        .stderr_has("fatal: simulated crash (exit code 101)")
        .stderr_has(&format!("({CONTAINER_NAME})"));
    assert_no_secret("start", start.stderr.as_bytes());
    assert_no_miner();
    assert!(!home.sidecar().exists());
}

#[test]
fn start_waits_until_vllm_answers_and_no_longer_than_asked() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.extra("vllm_args = \"--fake-ready-after-ms 3000\"\n");
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started vllm-pearl")
        .stderr_has("waiting up to 1800 s for vLLM");
    // Started means answering, at once.
    let (code, models) = http(home.port, "GET", "/v1/models", "");
    assert_eq!(code, 200, "{models}");
    home.jarvis(&["mine", "stop"]).code(0);

    let home = Home::new().configured();
    home.extra("vllm_args = \"--fake-ready-after-ms 600000\"\nstart_wait_seconds = 1\n");
    let start = home.jarvis(&["mine", "start"]);
    start
        .code(1)
        .stderr_has("did not answer within 1 s")
        .stderr_has("start_wait_seconds")
        .stderr_has("removed container ");
    assert_no_miner();
    assert!(!home.sidecar().exists());

    let config = home.config_text().unwrap();
    let config = config.replace("start_wait_seconds = 1\n", "start_wait_seconds = -1\n");
    std::fs::write(home.config(), config).unwrap();
    home.jarvis(&["mine", "start"])
        .code(2)
        .stderr_has("start_wait_seconds must be from 0 to 86400, found -1");
    assert_no_miner();

    // The flags decide over the config: --wait bounds the wait, --no-wait skips it.
    let home = Home::new().configured();
    home.extra("vllm_args = \"--fake-ready-after-ms 600000\"\n");
    home.jarvis(&["mine", "start", "--wait", "1"])
        .code(1)
        .stderr_has("did not answer within 1 s");
    assert_no_miner();
    home.jarvis(&["mine", "start", "--no-wait"])
        .code(0)
        .stdout_has("without waiting for vLLM to answer (--no-wait");
    home.jarvis(&["mine", "stop"]).code(0);
    assert_no_miner();
}

#[test]
fn a_crash_loop_shows_its_exit_code_and_restart_count() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.extra(
        "vllm_args = \"--fake-exit-after-ms 0 --fake-exit-code 101\"\nstart_wait_seconds = 0\n",
    );
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("without waiting");
    let status = home.wait_status("the crash loop", |s| {
        s["state"] == "failed" && s["exit_code"] == 101 && s["restart_count"].as_i64() >= Some(1)
    });
    assert!(
        status["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("simulated crash"))),
        "{status:#}"
    );
    let text = wait_for(Duration::from_secs(10), || {
        let text = home.jarvis(&["mine", "status"]);
        text.row("state")
            .is_some_and(|s| s.starts_with("failed (exit code 101, restarted "))
            .then_some(text)
    })
    .expect("the text status names the exit code and restarts");
    text.stdout_has("restarts:");
    let stop = home.jarvis(&["mine", "stop"]);
    stop.code(0).stdout_has("Mining stopped.");
    assert_no_miner();
}

// ---------------------------------------------------------------------------
// 11. Sessions: attach, the home's spellings, evidence, repairs, a broken config.

fn attach_args(home: &Home) -> Vec<String> {
    [
        "mine",
        "attach",
        "--vllm-endpoint",
        &home.endpoint(),
        "--gateway-url",
        "http://127.0.0.1:8337",
        "--gateway-metrics-url",
        "http://127.0.0.1:8339",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn attach_is_refused_during_a_managed_session_and_takes_the_lock() {
    let _x = exclusive();
    let home = Home::new().configured();
    let args = attach_args(&home);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    home.jarvis(&["mine", "start"]).code(0);
    let miner = the_one_miner();
    let sidecar = std::fs::read(home.sidecar()).unwrap();
    home.jarvis(&args)
        .code(8)
        .stderr_has("jarvis mine stop")
        .stderr_has(&miner.id[..12]);
    assert_eq!(std::fs::read(home.sidecar()).unwrap(), sidecar);
    // The next status leaves the running miner alone.
    assert_eq!(home.status_json()["state"], "running");
    assert_eq!(the_one_miner().id, miner.id);
    home.jarvis(&["mine", "stop"]).code(0);

    // Another command holds the lock: attach says who, and writes nothing.
    let lock = jarvis_mine::session::SessionLock::acquire_for(
        &jarvis_mine::paths::Paths::with_home(home.canonical()).lock_file(),
        Duration::ZERO,
        "start",
    )
    .unwrap();
    home.jarvis(&args)
        .code(8)
        .stderr_has(&format!("held by pid {} (start)", std::process::id()));
    assert!(!home.sidecar().exists());
    drop(lock);
    home.jarvis(&args).code(0);
    assert_eq!(home.sidecar_json().unwrap()["container_id"], "external");
    // A managed start does not replace an attached miner silently.
    home.jarvis(&["mine", "start"])
        .code(8)
        .stderr_has("jarvis mine stop");
    assert_no_miner();
}

#[test]
fn one_home_however_it_is_spelled() {
    let _x = exclusive();
    let home = Home::new().configured();
    let canonical = home.canonical();
    let slash = format!("{}/", home.path().display());
    home.jarvis_env(&["mine", "start"], &[("OPENJARVIS_HOME", Some(&slash))])
        .code(0)
        .stdout_has("Started");
    let miner = the_one_miner();
    assert_eq!(
        miner.labels.get(jarvis_mine::host::LABEL_HOME),
        Some(&canonical.display().to_string())
    );
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("home-link");
    std::os::unix::fs::symlink(home.path(), &link).unwrap();
    let spellings = [
        home.path().display().to_string(),
        home.path().join("runtime/../.").display().to_string(),
        link.display().to_string(),
        format!("{}/", link.display()),
    ];
    for spelling in &spellings {
        let env = [("OPENJARVIS_HOME", Some(spelling.as_str()))];
        let status = home.jarvis_env(&["mine", "status", "--json"], &env);
        let status = status.code(0).json();
        assert_eq!(status["state"], "running", "{spelling}: {status:#}");
        assert_eq!(status["repairs"], Value::Array(vec![]), "{spelling}");
        home.jarvis_env(&["mine", "start"], &env)
            .code(0)
            .stdout_has("already running");
        assert!(home.sidecar().exists(), "{spelling}");
        assert_eq!(the_one_miner().id, miner.id, "{spelling}");
    }
    home.jarvis_env(
        &["mine", "stop"],
        &[("OPENJARVIS_HOME", Some(&spellings[2]))],
    )
    .code(0)
    .stdout_has("Mining stopped.");
    assert_no_miner();

    // A home that cannot be one is a clear error.
    let file = links.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    home.jarvis_env(&["mine", "status"], &[("OPENJARVIS_HOME", file.to_str())])
        .code(2)
        .stderr_has("is not a directory");
}

#[test]
fn status_twice_in_a_row_says_the_same() {
    let _x = exclusive();
    let home = Home::new().configured();
    for _ in 0..2 {
        let status = home.jarvis(&["mine", "status"]);
        assert_eq!(status.code(0).row("state"), Some("configured"), "{status}");
    }
    home.jarvis(&["mine", "start"]).code(0);
    home.jarvis(&["mine", "stop"]).code(0);
    for _ in 0..2 {
        let status = home.jarvis(&["mine", "status"]);
        assert_eq!(status.code(0).row("state"), Some("stopped"), "{status}");
    }
}

#[test]
fn a_repair_is_printed_once_and_audited_as_the_hosts() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    let miner = the_one_miner();
    // The record is lost (a crash, a user's `rm`): the miner is an orphan.
    std::fs::remove_file(home.sidecar()).unwrap();
    let status = home.jarvis(&["mine", "status"]);
    status.code(0);
    let note = format!(
        "orphan container {} ({CONTAINER_NAME}) removed",
        &miner.id[..12]
    );
    let printed = status.stdout.matches(&note).count() + status.stderr.matches(&note).count();
    assert_eq!(printed, 1, "{note:?} once: {status}");
    assert!(!status.stderr.contains("WARN"), "{status}");
    assert_no_miner();
    let records = host_records(&home, "host.remove-orphan");
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["provider"], "vllm-pearl");
    assert_eq!(records[0]["outcome"], "ok");
    assert_eq!(
        records[0]["action"],
        format!(
            "host.remove-orphan container={} name={CONTAINER_NAME}",
            &miner.id[..12]
        )
        .as_str()
    );
    assert_eq!(records[0]["component"].as_str().map(str::len), Some(64));
}

#[test]
fn stop_and_status_work_from_the_record_when_the_config_is_broken() {
    let _x = exclusive();
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    let config = home.config_text().unwrap();
    let broken_line = config.lines().count() + 2;
    std::fs::write(home.config(), format!("{config}\n[engine\ndefault = 1\n")).unwrap();
    let at = format!(
        "{}:{broken_line}:",
        home.canonical().join("config.toml").display()
    );

    let status = home.jarvis(&["mine", "status"]);
    assert_eq!(status.code(0).row("state"), Some("running"), "{status}");
    status
        .stderr_has("warning: cannot read the config")
        .stderr_has(&at);
    let json = home.status_json();
    assert!(
        json["config_warning"]
            .as_str()
            .is_some_and(|w| w.contains(&at)),
        "{json:#}"
    );
    home.jarvis(&["mine", "stop"])
        .code(0)
        .stderr_has(&at)
        .stdout_has("Mining stopped.");
    assert_no_miner();
    assert!(!home.sidecar().exists());
    // `start` still refuses a config it cannot read.
    home.jarvis(&["mine", "start"]).code(2).stderr_has(&at);
    assert_no_miner();
}
