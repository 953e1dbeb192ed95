//! `jarvis mine validate-host` end to end: the real binary, a temporary
//! `OPENJARVIS_HOME` per test, `--facts docs/facts/h100.json` standing in for
//! an H100, a pearld stand-in, the machine's Docker engine and the fake miner
//! image (tests/fake-miner) in place of Pearl's.
//!
//! The test that starts the miner holds [`miner_lock`] (the container name
//! `openjarvis-pearl-miner` is fixed, and lifecycle_cli, model_enablement_cli
//! and openjarvis_handoff hold the same lock), and removes a fake-miner
//! container of that name before and after; it never touches another
//! container. The others start nothing.

use jarvis_mine::docker::Docker;
use jarvis_mine::host::LABEL_HOME;
use jarvis_mine_tests::run::{Run, output_within};
use jarvis_mine_tests::{
    FAKE_MINER_REPOSITORY, MinerLock, fake_miner_init, free_port, gateway_metrics_flags,
    h100_facts, miner_lock, serve_pearld,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const PASSWORD: &str = "hunter2secret";
const HF_TOKEN: &str = "hf_secret_token_value";
const WALLET: &str = "prl1qexampleaddress";
const CONTAINER_NAME: &str = "openjarvis-pearl-miner";
/// The longest one command may take (the miner's start included).
const COMMAND_LIMIT: Duration = Duration::from_secs(300);

const PREFLIGHT: [&str; 8] = [
    "NVIDIA GPUs",
    "Docker daemon",
    "NVIDIA runtime",
    "GPU container",
    "Model cache disk",
    "Doctor",
    "Mining config",
    "Miner image",
];
const SESSION: [&str; 7] = [
    "Start",
    "vLLM /models",
    "Chat completion",
    "Share evidence",
    "pearld probe",
    "Stop",
    "Cleanup",
];
const ARTIFACTS: [&str; 7] = [
    "summary.json",
    "doctor.json",
    "status-before.json",
    "status-after.json",
    "metrics.txt",
    "log-tail.txt",
    "docker-inspect.json",
];

fn docker() -> Docker {
    Docker::connect().expect("the test machine runs a Docker engine")
}

/// A leftover fake miner holding the fixed name (a test killed mid-run) goes;
/// anything else holding it makes the test refuse to run.
fn remove_fake_miner_by_name() {
    let docker = docker();
    if let Some(state) = docker.inspect(CONTAINER_NAME).unwrap() {
        assert!(
            state.image.starts_with(FAKE_MINER_REPOSITORY),
            "a container named {CONTAINER_NAME} not made by these tests is on this machine \
             (from {}): refusing to remove it; stop it to run these tests",
            state.image
        );
        docker.remove(&state.id).unwrap();
    }
}

/// Held by the test that starts the miner.
struct Exclusive {
    _lock: MinerLock,
}

fn exclusive() -> Exclusive {
    let lock = miner_lock();
    remove_fake_miner_by_name();
    Exclusive { _lock: lock }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Runs while a failed test unwinds: never panic here.
        let _ = std::panic::catch_unwind(|| {
            let Ok(docker) = Docker::connect() else {
                return;
            };
            if let Ok(Some(state)) = docker.inspect(CONTAINER_NAME)
                && state.image.starts_with(FAKE_MINER_REPOSITORY)
            {
                let _ = docker.remove(&state.id);
            }
        });
    }
}

struct Home {
    dir: tempfile::TempDir,
    /// Everything every command printed, for the secret scan.
    printed: Vec<(String, String)>,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            printed: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The home as the binary canonicalises it (its containers' label).
    fn label(&self) -> String {
        std::fs::canonicalize(self.path())
            .unwrap()
            .display()
            .to_string()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// The binary with this home, no system policy and the secrets in its
    /// environment, and nothing else of ours.
    fn jarvis(&mut self, args: &[&str]) -> Run {
        let mut command = Command::new(JARVIS);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENJARVIS_HOME", self.path())
            .env(
                "OPENJARVIS_MINING_POLICY",
                self.path().join("no-system-policy.toml"),
            )
            .env("PEARLD_RPC_PASSWORD", PASSWORD)
            .env("HF_TOKEN", HF_TOKEN)
            .stdin(Stdio::null());
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        let run = Run::new(
            format!("jarvis {}", args.join(" ")),
            output_within(&mut command, COMMAND_LIMIT),
        );
        self.printed
            .push((format!("{} (stdout)", run.what), run.stdout.clone()));
        self.printed
            .push((format!("{} (stderr)", run.what), run.stderr.clone()));
        run
    }

    /// `mine init` for the fake miner on an H100 with the pearld stand-in;
    /// the gateway metrics port is a free one (the fake miner serves none
    /// there, as current Pearl images, so shares come from its log).
    fn init(&mut self) {
        let pearld = serve_pearld();
        let mut args = vec!["mine".to_owned()];
        args.extend(fake_miner_init(WALLET, free_port()));
        args.extend(gateway_metrics_flags(free_port(), false));
        args.extend(["--pearld-url".to_owned(), pearld]);
        self.jarvis(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .code(0)
            .stdout_has("Wrote [mining] for vllm-pearl");
    }

    /// `validate-host --facts h100.json --output <home>/<dir> ARGS`.
    fn gate(&mut self, dir: &str, args: &[&str]) -> Run {
        let facts = h100_facts();
        let out = self.out(dir);
        let mut all = vec![
            "mine",
            "validate-host",
            "--facts",
            facts.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.jarvis(&all)
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The criterion named `name` in a summary.
fn criterion<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no criterion {name}: {summary:#}"))
}

fn names(summary: &Value) -> Vec<String> {
    summary["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_passed(summary: &Value, name: &str) {
    let found = criterion(summary, name);
    assert!(
        found["passed"] == true && found["skipped"] == false,
        "{name} did not pass: {found:#}"
    );
}

#[track_caller]
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [PASSWORD, HF_TOKEN] {
        if bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes())
        {
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect();
            panic!(
                "{what} contains the secret {secret:?}:\n{}",
                lines.join("\n")
            );
        }
    }
}

/// Every file in `dir`, and everything printed, is free of secrets.
#[track_caller]
fn assert_no_secret_anywhere(home: &Home, dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        assert_no_secret(&path.display().to_string(), &std::fs::read(&path).unwrap());
    }
    for (what, text) in &home.printed {
        assert_no_secret(what, text.as_bytes());
    }
}

// ---------------------------------------------------------------------------

#[test]
fn the_preflight_passes_on_facts_and_skips_the_gpu_container_without_a_cuda_image() {
    let mut home = Home::new();
    home.init();

    let run = home.gate("preflight", &["--json"]);
    run.code(0);
    let out = home.out("preflight");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(run.json(), summary, "--json prints summary.json");
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(summary["verdict"], "pass", "{summary:#}");
    assert_eq!(summary["scope"], "preflight");
    assert_eq!(summary["failed"], serde_json::json!([]));
    assert_eq!(names(&summary), PREFLIGHT, "no miner steps without --start");
    for name in [
        "NVIDIA GPUs",
        "Docker daemon",
        "Doctor",
        "Mining config",
        "Miner image",
    ] {
        assert_passed(&summary, name);
    }
    assert!(
        criterion(&summary, "NVIDIA GPUs")["detail"]
            .as_str()
            .unwrap()
            .contains("NVIDIA H100 80GB HBM3"),
        "{summary:#}"
    );
    // Never pulled: skipped, saying why (no CUDA image here; on a machine
    // that has one, because the facts file stands in for its GPUs).
    let smoke = criterion(&summary, "GPU container");
    assert_eq!(smoke["skipped"], true, "{smoke:#}");
    assert_eq!(smoke["passed"], false);
    assert!(
        smoke["detail"].as_str().unwrap().contains("CUDA image"),
        "{smoke:#}"
    );
    // Not in h100.json: not judged.
    assert_eq!(criterion(&summary, "Model cache disk")["skipped"], true);
    let skipped: Vec<&str> = summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(skipped.contains(&"GPU container"), "{skipped:?}");

    // The artifacts of a pre-flight; the miner's are not written, saying why.
    for name in [
        "summary.json",
        "doctor.json",
        "status-before.json",
        "status-after.json",
    ] {
        assert_eq!(summary["artifacts"][name], "written", "{name}");
        assert!(out.join(name).is_file(), "{name}");
    }
    for name in ["metrics.txt", "log-tail.txt", "docker-inspect.json"] {
        assert_eq!(
            summary["artifacts"][name], "not written: no miner ran: pass --start",
            "{name}"
        );
        assert!(!out.join(name).exists(), "{name}");
    }
    let doctor = read_json(&out.join("doctor.json"));
    assert_eq!(doctor["verdict"]["ready"], true, "{doctor:#}");
    assert_eq!(
        read_json(&out.join("status-before.json"))["state"],
        "configured"
    );

    // The same gate as rows.
    let rows = home.gate("preflight-rows", &[]);
    rows.code(0)
        .stdout_has("Pearl NVIDIA release gate")
        .stdout_has("Verdict: PASS (pre-flight only");
    let smoke_row = rows
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("GPU container"))
        .unwrap_or_else(|| panic!("no GPU container row: {rows}"));
    assert!(smoke_row.trim_end().ends_with("SKIP"), "{smoke_row}");
    assert_no_secret_anywhere(&home, &out);
}

#[test]
fn start_runs_the_miner_end_to_end_and_leaves_nothing_behind() {
    let _x = exclusive();
    let mut home = Home::new();
    home.init();

    let run = home.gate("full", &["--start", "--timeout", "60"]);
    run.code(0)
        .stdout_has("Verdict: PASS")
        .stderr_has("starting the miner");
    let out = home.out("full");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["verdict"], "pass", "{summary:#}");
    assert_eq!(summary["scope"], "full");
    let expected: Vec<&str> = PREFLIGHT.iter().chain(&SESSION).copied().collect();
    assert_eq!(names(&summary), expected);
    for name in SESSION {
        assert_passed(&summary, name);
    }
    let detail = |name: &str| {
        criterion(&summary, name)["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        detail("Start").contains(CONTAINER_NAME),
        "{}",
        detail("Start")
    );
    assert_eq!(
        detail("vLLM /models"),
        "pearl-ai/Llama-3.3-70B-Instruct-pearl"
    );
    assert_eq!(detail("Chat completion"), "choices returned");
    // Current Pearl images serve no gateway metrics: the container's log.
    assert!(
        detail("Share evidence").starts_with("container logs submitted="),
        "{}",
        detail("Share evidence")
    );
    assert_eq!(detail("pearld probe"), "block height 7 (synced)");
    assert!(
        detail("Stop").starts_with("mining stopped"),
        "{}",
        detail("Stop")
    );

    // Every artifact, written.
    for name in ARTIFACTS {
        assert_eq!(summary["artifacts"][name], "written", "{name}: {summary:#}");
        assert!(out.join(name).is_file(), "{name}");
    }
    let log = std::fs::read_to_string(out.join("log-tail.txt")).unwrap();
    assert!(log.contains("Submitting block"), "{log}");
    assert!(log.contains("PEARLD_RPC_PASSWORD=[REDACTED]"), "{log}");
    let inspect = read_json(&out.join("docker-inspect.json"));
    assert_eq!(inspect["Name"], format!("/{CONTAINER_NAME}"));
    let env: Vec<&str> = inspect["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PEARLD_RPC_PASSWORD=[REDACTED]"), "{env:?}");
    let metrics = std::fs::read_to_string(out.join("metrics.txt")).unwrap();
    assert!(
        metrics.starts_with("# jarvis mine validate-host: vLLM metrics from "),
        "{metrics}"
    );
    let after = read_json(&out.join("status-after.json"));
    assert_eq!(after["state"], "running", "{after:#}");
    assert!(
        after["stats"]["shares_accepted"].as_u64() >= Some(1),
        "{after:#}"
    );
    assert_eq!(
        read_json(&out.join("status-before.json"))["state"],
        "configured"
    );

    // Nothing left: no container of this home, no session record.
    let left = docker()
        .list_labelled(LABEL_HOME, Some(&home.label()))
        .unwrap();
    assert!(left.is_empty(), "{left:#?}");
    assert!(!home.path().join("runtime/mining.json").exists());
    assert_no_secret_anywhere(&home, &out);
}

#[test]
fn no_mining_config_fails_the_gate_and_the_summary_says_which() {
    let mut home = Home::new();
    let run = home.gate("no-config", &[]);
    run.code(11).stdout_has("Verdict: FAIL");
    let summary = read_json(&home.out("no-config").join("summary.json"));
    assert_eq!(summary["verdict"], "fail");
    let failed: Vec<&str> = summary["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(failed.contains(&"Mining config"), "{failed:?}");
    let config = criterion(&summary, "Mining config");
    assert_eq!(config["passed"], false);
    assert_eq!(config["skipped"], false);
    assert!(
        config["detail"]
            .as_str()
            .unwrap()
            .starts_with("no [mining] section in "),
        "{config:#}"
    );
    run.stdout_has("Mining config: no [mining] section in ");

    // With --start, nothing is started after a failed pre-flight.
    let run = home.gate("no-config-start", &["--start"]);
    run.code(11);
    let summary = read_json(&home.out("no-config-start").join("summary.json"));
    assert_eq!(summary["scope"], "full");
    let start = criterion(&summary, "Start");
    assert_eq!(start["skipped"], true, "{start:#}");
    assert!(
        start["detail"]
            .as_str()
            .unwrap()
            .starts_with("not run: the pre-flight failed (")
    );
    assert!(!home.path().join("runtime/mining.json").exists());
}

#[test]
fn an_output_that_is_a_file_is_bad_input() {
    let mut home = Home::new();
    std::fs::write(home.out("taken"), "x").unwrap();
    home.gate("taken", &[])
        .code(2)
        .stderr_has("exists and is not a directory");
}
