//! cpu-pearl end to end through the real binary: Pearl's gateway (the test
//! gateway in tests/fixtures/pearl/bin, which speaks the real protocol and
//! checks the password it was given) and our miner loop (with the test
//! `pearl_mining` module of tests/fixtures/pearl/python) run as host
//! processes through the sandboxed provider and the `processes` import.
//!
//! Each test has its own home and its own ports, and stops every process
//! labelled for its home when it ends (even when it fails).

use jarvis_mine_tests::run::{Run, all_at_once, wait_for};
use jarvis_mine_tests::{free_port, kill, labelled_processes};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const PASSWORD: &str = "cpu-pearl-test-password";
const WALLET: &str = "prl1qexampleaddress";
/// Exit code of a missing secret (docs/exit-codes.md).
const MISSING_SECRET: i32 = 6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pearl")
}

/// The processes labelled for `home` once there are `count` of them (a
/// version manager's shim, such as pyenv's, runs helpers with the same
/// labels for a moment while a program starts).
fn settled(home: &Path, count: usize) -> Vec<(u32, String)> {
    wait_for(Duration::from_secs(20), || {
        let found = labelled_processes(home);
        (found.len() == count).then_some(found)
    })
    .unwrap_or_else(|| panic!("not {count} processes: {:?}", labelled_processes(home)))
}

struct Home {
    dir: tempfile::TempDir,
    gateway_port: u16,
    metrics_port: u16,
}

impl Drop for Home {
    fn drop(&mut self) {
        for (pid, _) in labelled_processes(self.dir.path()) {
            kill(pid, "-KILL");
        }
    }
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            gateway_port: free_port(),
            metrics_port: free_port(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with this home, the test gateway first on PATH, the test
    /// Pearl packages importable and the password set (`env` changes it).
    fn command(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Command {
        let path = format!(
            "{}:{}",
            fixtures().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let mut command = Command::new(JARVIS);
        command
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("PYTHONPATH", fixtures().join("python"))
            .env("OPENJARVIS_HOME", self.path())
            .env(
                "OPENJARVIS_MINING_POLICY",
                self.path().join("no-system-policy.toml"),
            )
            .env("PEARLD_RPC_PASSWORD", PASSWORD)
            .env("TEST_GATEWAY_EXPECTED_PW", PASSWORD)
            .stdin(Stdio::null());
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
    }

    fn jarvis_env(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
        let run = Run::of(
            format!("jarvis {}", args.join(" ")),
            &mut self.command(args, env),
        );
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(PASSWORD), "the password was printed: {run}");
        }
        run
    }

    fn jarvis(&self, args: &[&str]) -> Run {
        self.jarvis_env(args, &[])
    }

    fn configured(self) -> Home {
        let (gateway, metrics) = (self.gateway_port.to_string(), self.metrics_port.to_string());
        self.jarvis(&[
            "mine",
            "init",
            "--provider",
            "cpu-pearl",
            "--wallet",
            WALLET,
            "--gateway-port",
            &gateway,
            "--metrics-port",
            &metrics,
            "--yes",
        ])
        .code(0)
        .stdout_has("Wrote [mining] for cpu-pearl");
        self
    }

    fn status(&self) -> Value {
        self.jarvis(&["mine", "status", "--json"]).code(0).json()
    }

    /// Polls `status --json` until `done` holds.
    fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        wait_for(Duration::from_secs(60), || {
            let status = self.status();
            done(&status).then_some(status)
        })
        .unwrap_or_else(|| panic!("status never showed {what}: {}", self.status()))
    }

    fn sidecar(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path().join("runtime/mining.json")).ok()?;
        assert!(!text.contains(PASSWORD), "the password is in the sidecar");
        Some(serde_json::from_str(&text).unwrap())
    }

    fn accepted(status: &Value) -> u64 {
        status["stats"]["shares_accepted"].as_u64().unwrap_or(0)
    }
}

fn states(status: &Value) -> Vec<(String, String)> {
    status["processes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_owned(),
                        p["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn init_start_status_logs_stop() {
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started cpu-pearl");

    // OpenJarvis's cpu shape, with the PIDs the host recorded.
    let record = home.sidecar().expect("a session record");
    assert_eq!(record["provider"], "cpu-pearl");
    assert_eq!(
        record["metrics_url"],
        format!("http://127.0.0.1:{}/metrics", home.metrics_port)
    );
    let pids: Vec<u32> = settled(home.path(), 2)
        .iter()
        .map(|(pid, _)| *pid)
        .collect();
    for key in ["gateway_pid", "miner_loop_pid"] {
        let pid = record[key].as_u64().unwrap() as u32;
        assert!(pids.contains(&pid), "{key} {pid} is not one of {pids:?}");
    }

    // Shares rise, counted from the gateway's metrics.
    let first = home.wait_status("accepted shares", |s| Home::accepted(s) > 0);
    assert_eq!(first["state"], "running");
    // A live session needs no repair (its processes' threads are not
    // orphans).
    assert_eq!(first["repairs"], serde_json::json!([]), "{first}");
    assert_eq!(
        states(&first),
        [
            ("pearl-gateway".to_owned(), "running".to_owned()),
            ("cpu-pearl-miner".to_owned(), "running".to_owned())
        ]
    );
    let before = Home::accepted(&first);
    home.wait_status("more shares", |s| Home::accepted(s) > before);
    let text = home.jarvis(&["mine", "status"]).code(0).stdout.clone();
    assert!(
        text.contains("pearl-gateway:") && text.contains("running"),
        "{text}"
    );

    // Both logs, redacted.
    let logs = home.jarvis(&["mine", "logs", "-n", "50"]);
    logs.code(0)
        .stdout_has("pearl-gateway.log <==")
        .stdout_has("cpu-pearl-miner.log <==")
        .stdout_has("share accepted");

    home.jarvis(&["mine", "stop"])
        .code(0)
        .stdout_has("Mining stopped.");
    assert!(
        labelled_processes(home.path()).is_empty(),
        "{:?}",
        labelled_processes(home.path())
    );
    assert!(home.sidecar().is_none());
    assert!(!home.path().join("runtime/processes.json").exists());
    assert_eq!(home.status()["state"], "stopped");
    // The logs outlive the session.
    home.jarvis(&["mine", "logs"])
        .code(0)
        .stdout_has("share accepted");
}

#[test]
fn a_process_killed_from_outside_is_named_and_the_next_start_recovers() {
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    home.wait_status("accepted shares", |s| Home::accepted(s) > 0);
    let gateway = home.sidecar().unwrap()["gateway_pid"].as_u64().unwrap() as u32;
    kill(gateway, "-KILL");

    let status = home.wait_status("a failed session", |s| s["state"] == "failed");
    assert!(
        status["reason"].as_str().unwrap().contains("pearl-gateway"),
        "{status}"
    );
    assert_eq!(
        states(&status),
        [
            ("pearl-gateway".to_owned(), "exited".to_owned()),
            ("cpu-pearl-miner".to_owned(), "running".to_owned())
        ]
    );

    // The next start ends what is left and starts both again.
    home.jarvis(&["mine", "start"])
        .code(0)
        .stdout_has("Started cpu-pearl");
    let running = home.wait_status("running again", |s| {
        s["state"] == "running" && Home::accepted(s) > 0
    });
    assert_ne!(running["process_session"]["gateway_pid"], gateway);
    settled(home.path(), 2);
    home.jarvis(&["mine", "stop"]).code(0);
    assert!(labelled_processes(home.path()).is_empty());
}

#[test]
fn a_jarvis_killed_during_start_leaves_no_orphan_and_no_record() {
    let home = Home::new().configured();
    // The gateway takes a while to listen: start is inside the provider.
    let mut start: Child = home
        .command(
            &["mine", "start"],
            &[("TEST_GATEWAY_START_DELAY_MS", Some("30000"))],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), || {
        (!labelled_processes(home.path()).is_empty()).then_some(())
    })
    .expect("the gateway was started");
    start.kill().unwrap();
    start.wait().unwrap();
    // The gateway outlives jarvis.
    settled(home.path(), 1);

    let status = home.jarvis(&["mine", "status", "--json"]).code(0).json();
    assert_ne!(status["state"], "running", "{status}");
    assert!(
        status["repairs"]
            .to_string()
            .contains("stopped process pearl-gateway"),
        "{status}"
    );
    assert!(
        labelled_processes(home.path()).is_empty(),
        "{:?}",
        labelled_processes(home.path())
    );
    assert!(home.sidecar().is_none());
}

#[test]
fn ten_concurrent_starts_run_one_gateway_and_one_loop() {
    let home = Home::new().configured();
    let runs = all_at_once(
        "jarvis mine start",
        (0..10).map(|_| home.command(&["mine", "start"], &[])),
    );
    for run in &runs {
        run.code(0);
    }
    let started = runs.iter().filter(|r| r.stdout.contains("Started")).count();
    assert_eq!(started, 1, "one start started the session");
    settled(home.path(), 2);
    home.jarvis(&["mine", "stop"]).code(0);
    assert!(labelled_processes(home.path()).is_empty());
}

#[test]
fn a_missing_password_or_a_pool_target_is_refused_before_anything_starts() {
    let home = Home::new().configured();
    home.jarvis_env(&["mine", "start"], &[("PEARLD_RPC_PASSWORD", None)])
        .code(MISSING_SECRET)
        .stderr_has("PEARLD_RPC_PASSWORD");
    assert!(labelled_processes(home.path()).is_empty());
    assert!(!home.path().join("logs/mining").exists());

    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("submit_target = \"solo\""), "{text}");
    let pool = text.replace(
        "submit_target = \"solo\"",
        "submit_target = \"pool:stratum+tcp://pool.example:3333\"",
    );
    std::fs::write(&config, pool).unwrap();
    let run = home.jarvis(&["mine", "start"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("pool"), "{run}");
    assert!(labelled_processes(home.path()).is_empty());
    assert!(home.sidecar().is_none());
}

#[test]
fn counts_come_from_log_lines_when_the_gateway_serves_no_metrics() {
    let home = Home::new().configured();
    home.jarvis_env(
        &["mine", "start"],
        &[("TEST_GATEWAY_NO_METRICS", Some("1"))],
    )
    .code(0);
    let status = home.wait_status("shares from the log lines", |s| Home::accepted(s) >= 2);
    assert_eq!(status["state"], "running");
    assert!(
        status["stats"]["shares_submitted"].as_u64().unwrap() >= 2,
        "{status}"
    );
    home.jarvis(&["mine", "stop"]).code(0);
}

#[test]
fn a_recorded_pid_that_another_process_now_holds_is_forgotten_never_signalled() {
    let home = Home::new().configured();
    // An unrelated process holds the PID the record names, since another time.
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let table = serde_json::json!({
        "processes": [{
            "provider": "cpu-pearl",
            "component": "0".repeat(64),
            "session": "an-old-session",
            "name": "pearl-gateway",
            "program": "pearl-gateway",
            "pid": bystander.id(),
            "start_time": 1,
            "ports": [home.gateway_port],
            "secrets": [],
            "log": "pearl-gateway.log"
        }]
    });
    std::fs::create_dir_all(home.path().join("runtime")).unwrap();
    std::fs::write(
        home.path().join("runtime/processes.json"),
        serde_json::to_vec(&table).unwrap(),
    )
    .unwrap();

    let status = home.status();
    assert!(
        status["repairs"]
            .to_string()
            .contains("its PID belongs to another process now"),
        "{status}"
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was signalled"
    );
    assert!(!home.path().join("runtime/processes.json").exists());
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// A community provider that starts a process and then returns without a
/// session record: the host stops the process it started, whatever the
/// provider does next.
#[test]
fn the_host_stops_what_a_community_provider_started_when_its_start_fails() {
    let home = Home::new();
    let escape = home.path().join("escape.wasm");
    std::fs::copy(env!("GUEST_ESCAPE"), &escape).unwrap();
    home.jarvis(&[
        "mine",
        "providers",
        "install",
        "--yes",
        escape.to_str().unwrap(),
    ])
    .code(0);
    std::fs::write(
        home.path().join("mining/policy.toml"),
        r#"
[providers.escape]
capabilities = ["containers", "sidecar", "processes"]
[providers.escape.processes]
programs = ["pearl-gateway"]
env = ["PEARLD_*", "MINER_RPC_*", "METRICS_BIND"]
secrets = ["PEARLD_RPC_PASSWORD"]
ports = ["1024-65535"]
"#,
    )
    .unwrap();
    let (port, metrics) = (home.gateway_port, home.metrics_port);
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            r#"
[mining]
provider = "escape"
wallet_address = "{WALLET}"
submit_target = "solo"

[mining.extra]
attack = "spawn"
secret = "PEARLD_RPC_PASSWORD"
ports = ["{port}", "{metrics}"]
env = ["MINER_RPC_TRANSPORT=tcp", "MINER_RPC_PORT={port}", "METRICS_BIND=127.0.0.1:{metrics}", "PEARLD_MINING_ADDRESS={WALLET}"]
"#
        ),
    )
    .unwrap();
    let run = home.jarvis(&["mine", "start", "--no-wait"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("without writing a session record"),
        "{run}"
    );
    assert!(
        run.stderr.contains("stopped process escape-process"),
        "{run}"
    );
    assert!(
        labelled_processes(home.path()).is_empty(),
        "{:?}",
        labelled_processes(home.path())
    );
    let audit = std::fs::read_to_string(home.path().join("logs/mining-audit.jsonl")).unwrap();
    assert!(
        audit.contains("host.teardown process=escape-process"),
        "{audit}"
    );
}

/// OpenJarvis 1.0.4 (from PyPI) reads our session of processes as its own
/// cpu session: its `mine status` shows both PIDs alive and the gateway's
/// counters from `metrics_url`.
#[test]
fn openjarvis_reads_our_cpu_session_as_its_own() {
    use jarvis_mine_tests::openjarvis::openjarvis_command;
    let home = Home::new().configured();
    home.jarvis(&["mine", "start"]).code(0);
    let ours = home.wait_status("accepted shares", |s| Home::accepted(s) > 0);
    let record = home.sidecar().unwrap();
    let theirs = wait_for(Duration::from_secs(30), || {
        let run = Run::of(
            "openjarvis jarvis mine status",
            openjarvis_command("jarvis", home.path()).args(["mine", "status"]),
        );
        (run.code == Some(0) && run.row("Shares accepted").is_some()).then_some(run)
    })
    .expect("OpenJarvis's status shows the gateway's counters");
    assert_eq!(theirs.row("provider"), Some("cpu-pearl"), "{theirs}");
    for (row, key) in [
        ("gateway pid", "gateway_pid"),
        ("miner pid", "miner_loop_pid"),
    ] {
        assert_eq!(
            theirs.row(row),
            Some(format!("{} (alive)", record[key]).as_str()),
            "{theirs}"
        );
    }
    let accepted: u64 = theirs.row("Shares accepted").unwrap().parse().unwrap();
    assert!(accepted >= Home::accepted(&ours), "{theirs}");
    home.jarvis(&["mine", "stop"]).code(0);
}

/// A gateway that exits during start (pearld refused its password): the
/// start fails saying so, with the exit code this command saw, and nothing
/// is left behind.
#[test]
fn a_gateway_that_exits_during_start_fails_it_with_its_exit_code() {
    let home = Home::new().configured();
    let run = home.jarvis_env(
        &["mine", "start"],
        &[("TEST_GATEWAY_EXPECTED_PW", Some("another-password"))],
    );
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr
            .contains("process 'pearl-gateway' exited with code 3 before it listened"),
        "{run}"
    );
    assert!(run.stderr.contains("pearl-gateway.log"), "{run}");
    assert!(labelled_processes(home.path()).is_empty());
    assert!(home.sidecar().is_none());
    assert_eq!(home.status()["state"], "stopped");
    home.jarvis(&["mine", "logs"])
        .code(0)
        .stdout_has("pearld authentication failed");
}
