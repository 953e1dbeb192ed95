//! The hand-off to OpenJarvis, tested against the real thing: the PyPI
//! package `openjarvis` 1.0.4 that `scripts/setup-openjarvis` installs.
//!
//! - Its engine discovery registers `vllm-pearl-mining` at our session's
//!   endpoint, and its `jarvis mine status` reports our session's shares
//!   (it must not take the vLLM metrics for the gateway's).
//! - Our `jarvis mine status` reads a sidecar its `jarvis mine attach` wrote:
//!   running, with vLLM's metrics and the gateway's shares.
//!
//! Sessions run the fake miner image (tests/fake-miner) on the machine's
//! Docker engine, with its gateway metrics on (`--gateway-metrics-port`).
//! The managed miner's container name is fixed and uses the host network, so
//! these tests run one miner at a time.

use jarvis_mine::docker::{ContainerSpec, Docker};
use jarvis_mine_tests::openjarvis::openjarvis_command;
use jarvis_mine_tests::run::{Run, wait_for};
use jarvis_mine_tests::{
    ContainerCleanup, MinerLock, fake_miner_image, fake_miner_init, fake_nvml_library, free_port,
    free_port_block, gateway_metrics_flags, h100s, miner_lock,
};
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const MODEL: &str = "pearl-ai/Llama-3.3-70B-Instruct-pearl";
const WALLET: &str = "prl1qexampleaddress";
const PASSWORD: &str = "hunter2secret";
/// The fake miner submits three blocks and has every third rejected.
const SUBMITTED: u64 = 3;
const ACCEPTED: u64 = 2;
/// How long a miner may take to show all its blocks to a reader.
const SHARES_DEADLINE: Duration = Duration::from_secs(60);

/// OpenJarvis's engine discovery as `jarvis ask` runs it: the healthy
/// engines, and where the mining engine points and what it serves.
const DISCOVER_ENGINES: &str = r#"
import json
from openjarvis.core.config import load_config
from openjarvis.engine import discover_engines

engines = dict(discover_engines(load_config()))
mining = engines.get("vllm-pearl-mining")
print(json.dumps({
    "healthy": sorted(engines),
    "host": mining._host if mining else None,
    "models": mining.list_models() if mining else [],
}))
"#;

/// One fixed-name miner at a time: in this process, and on this machine
/// (the other suites that run it take the same [`miner_lock`]).
fn one_miner_at_a_time() -> (MutexGuard<'static, ()>, MinerLock) {
    static MINER: Mutex<()> = Mutex::new(());
    let guard = MINER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (guard, miner_lock())
}

/// One OpenJarvis home, shared by our binary and OpenJarvis's, and the
/// ports of its miner.
struct Home {
    dir: tempfile::TempDir,
    vllm_port: u16,
    gateway_metrics_port: u16,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            vllm_port: free_port(),
            gateway_metrics_port: free_port(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sidecar(&self) -> PathBuf {
        self.path().join("runtime/mining.json")
    }

    fn gateway_metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_metrics_port)
    }

    /// Our `jarvis`.
    fn ours(&self, args: &[&str]) -> Run {
        self.ours_env(args, &[])
    }

    /// Our `jarvis` with `env` added.
    fn ours_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(JARVIS);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENJARVIS_HOME", self.path())
            .env("PEARLD_RPC_PASSWORD", PASSWORD)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        Run::of(format!("jarvis {}", args.join(" ")), &mut command)
    }

    /// OpenJarvis's `jarvis`.
    fn openjarvis(&self, args: &[&str]) -> Run {
        let mut command = openjarvis_command("jarvis", self.path());
        command.args(args);
        Run::of(
            format!("openjarvis jarvis {}", args.join(" ")),
            &mut command,
        )
    }

    /// A Python program in OpenJarvis's virtualenv.
    fn openjarvis_python(&self, program: &str) -> Run {
        let mut command = openjarvis_command("python", self.path());
        command.args(["-c", program]);
        Run::of("openjarvis python", &mut command)
    }

    /// `[mining]` for the fake miner, with its gateway metrics on.
    fn init(&self) {
        let mut args = vec!["mine".to_owned()];
        args.extend(fake_miner_init(WALLET, self.vllm_port));
        args.extend(gateway_metrics_flags(self.gateway_metrics_port, true));
        self.ours(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .code(0);
    }

    /// Our `status --json` once its stats show every block of the fake miner.
    #[track_caller]
    fn status_with_all_shares(&self) -> Value {
        let mut last = Value::Null;
        wait_for(SHARES_DEADLINE, || {
            last = self.ours(&["mine", "status", "--json"]).code(0).json();
            (last["stats"]["shares_submitted"] == SUBMITTED).then(|| last.clone())
        })
        .unwrap_or_else(|| panic!("our status never showed {SUBMITTED} shares: {last:#}"))
    }
}

/// Stops the managed session when dropped, also when a test fails.
struct Session<'a>(&'a Home);

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.0.ours(&["mine", "stop"]);
    }
}

/// OpenJarvis's engine discovery registers the mining engine at our
/// session's endpoint, and the engine answers with our model.
#[track_caller]
fn assert_discovered(home: &Home) {
    let discovery = home.openjarvis_python(DISCOVER_ENGINES);
    let engines = discovery.code(0).json();
    assert!(
        engines["healthy"]
            .as_array()
            .unwrap()
            .contains(&"vllm-pearl-mining".into()),
        "{discovery}"
    );
    assert_eq!(
        engines["host"],
        format!("http://127.0.0.1:{}", home.vllm_port),
        "{discovery}"
    );
    assert_eq!(engines["models"], serde_json::json!([MODEL]), "{discovery}");
}

#[track_caller]
fn assert_all_shares(stats: &Value) {
    assert_eq!(stats["shares_submitted"], SUBMITTED, "{stats:#}");
    assert_eq!(stats["shares_accepted"], ACCEPTED, "{stats:#}");
    assert_eq!(stats["blocks_found"], ACCEPTED, "{stats:#}");
}

#[test]
fn openjarvis_discovers_our_session_and_reports_its_shares() {
    let _one = one_miner_at_a_time();
    let home = Home::new();
    home.init();
    home.ours(&["mine", "start"]).code(0);
    let _session = Session(&home);

    let sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(home.sidecar()).unwrap()).unwrap();
    for misread in ["metrics_url", "gateway_pid", "miner_loop_pid"] {
        assert!(sidecar.get(misread).is_none(), "{misread}: {sidecar:#}");
    }

    assert_discovered(&home);

    // Its `mine status` reads the gateway's counters through its provider's
    // stats (lower-case rows): the shares our own status reports.
    let ours = home.status_with_all_shares();
    assert_all_shares(&ours["stats"]);
    let submitted = SUBMITTED.to_string();
    let theirs = wait_for(SHARES_DEADLINE, || {
        let run = home.openjarvis(&["mine", "status"]);
        (run.code == Some(0) && run.row("shares submitted") == Some(submitted.as_str()))
            .then_some(run)
    })
    .unwrap_or_else(|| panic!("{}", home.openjarvis(&["mine", "status"])));
    assert_eq!(theirs.row("provider"), Some("vllm-pearl"), "{theirs}");
    assert_eq!(
        theirs.row("shares accepted"),
        Some(ACCEPTED.to_string().as_str()),
        "{theirs}"
    );
    assert_eq!(
        theirs.row("blocks found"),
        Some(ACCEPTED.to_string().as_str()),
        "{theirs}"
    );
    assert_eq!(theirs.row("last error"), Some("-"), "{theirs}");
    for misread in ["Shares submitted", "metrics error"] {
        assert!(theirs.row(misread).is_none(), "{misread}: {theirs}");
    }

    home.ours(&["mine", "stop"]).code(0);
    assert!(!home.sidecar().exists());
}

/// A session of three workers (three fake H100s): OpenJarvis routes to
/// worker 0, whose endpoint and container are the record's own, and its
/// own readers take the record with its `workers` list.
#[test]
fn openjarvis_routes_to_worker_0_of_a_session_of_three() {
    let _one = one_miner_at_a_time();
    let mut home = Home::new();
    home.vllm_port = free_port_block(3);
    let mut args = vec!["mine".to_owned()];
    args.extend(fake_miner_init(WALLET, home.vllm_port));
    args.extend(gateway_metrics_flags(home.gateway_metrics_port, false));
    home.ours(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .code(0);
    let gpus = h100s(3);
    home.ours_env(
        &["mine", "start"],
        &[
            ("JARVIS_NVML_LIBRARY", fake_nvml_library()),
            ("FAKE_NVML_GPUS", &gpus),
        ],
    )
    .code(0);
    let _session = Session(&home);

    let sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(home.sidecar()).unwrap()).unwrap();
    let workers = sidecar["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{sidecar:#}");
    assert_eq!(workers[0]["vllm_endpoint"], sidecar["vllm_endpoint"]);
    assert_eq!(workers[0]["container_id"], sidecar["container_id"]);

    assert_discovered(&home);
    let theirs = home.openjarvis(&["mine", "status"]);
    assert_eq!(theirs.code, Some(0), "{theirs}");
    assert_eq!(theirs.row("provider"), Some("vllm-pearl"), "{theirs}");

    home.ours(&["mine", "stop"]).code(0);
    assert!(!home.sidecar().exists());
}

/// Starts a fake miner by hand (no label of ours), with its gateway metrics.
fn start_external_miner(home: &Home, cleanup: &ContainerCleanup) {
    let docker = Docker::connect().expect("the test machine runs a Docker engine");
    let spec = ContainerSpec {
        name: Some(format!("jarvis-test-{}", cleanup.value())),
        image: fake_miner_image(),
        args: vec![
            MODEL.into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            home.vllm_port.to_string(),
            "--gateway-metrics-port".into(),
            home.gateway_metrics_port.to_string(),
        ],
        labels: cleanup.labels(),
        network_mode: "host".into(),
        ..Default::default()
    };
    let id = docker.create(&spec).unwrap();
    docker.start(&id).unwrap();
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", home.vllm_port)).ok()
    })
    .expect("the external miner listens");
}

#[test]
fn we_read_the_sidecar_openjarvis_attach_writes() {
    let _one = one_miner_at_a_time();
    let cleanup = ContainerCleanup::new("openjarvis-attach");
    let home = Home::new();
    start_external_miner(&home, &cleanup);
    let api = format!("http://127.0.0.1:{}/v1", home.vllm_port);

    // OpenJarvis routes all of these to the same `/v1` API; so do we.
    for typed in [
        api.clone(),
        format!("http://127.0.0.1:{}", home.vllm_port),
        format!("{api}/"),
    ] {
        home.openjarvis(&[
            "mine",
            "attach",
            "--vllm-endpoint",
            &typed,
            "--gateway-url",
            "http://127.0.0.1:8337",
            "--gateway-metrics-url",
            &home.gateway_metrics_url(),
            "--wallet",
            WALLET,
        ])
        .code(0);
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(home.sidecar()).unwrap()).unwrap();
        assert_eq!(written["vllm_endpoint"], typed.as_str());
        assert!(written.get("metrics_url").is_none(), "{written:#}");

        let status = home.status_with_all_shares();
        assert_eq!(status["state"], "running", "{typed}: {status:#}");
        assert_eq!(status["provider"], "vllm-pearl", "{status:#}");
        assert_eq!(
            status["session"]["vllm_endpoint"],
            api.as_str(),
            "{status:#}"
        );
        assert_eq!(status["session"]["container_id"], "external", "{status:#}");
        let stats = &status["stats"];
        assert_all_shares(stats);
        // vLLM's metrics came from the endpoint: the fake miner's counters
        // and uptime, and no error.
        assert_eq!(stats["requests_served"], 0, "{typed}: {stats:#}");
        assert!(stats["uptime_seconds"].as_f64() > Some(0.0), "{stats:#}");
        assert_eq!(stats["last_error"], Value::Null, "{typed}: {stats:#}");

        let text = home.ours(&["mine", "status"]);
        assert_eq!(text.code(0).row("state"), Some("running"), "{text}");
        assert_eq!(text.row("endpoint"), Some(api.as_str()), "{text}");
        assert_eq!(text.row("last error"), Some("-"), "{text}");
    }

    // Our `stop` forgets the attached miner and leaves it running.
    home.ours(&["mine", "stop"]).code(0);
    assert!(!home.sidecar().exists());
    assert!(TcpStream::connect(("127.0.0.1", home.vllm_port)).is_ok());
}
