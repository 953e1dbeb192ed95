//! `jarvis mine supervise` and `jarvis mine service` end to end: the real
//! binary, a temporary home per test, the machine's Docker engine and the
//! fake miner image, three workers on three fake H100s. The watchdog
//! restarts a killed worker through the lifecycle (audited), leaves a
//! crash-looping one stopped, obeys a `jarvis mine stop`, leaves the miners
//! running on SIGTERM unless `--stop-on-exit`; the exporter serves what it
//! saw; systemd hears READY, STATUS and WATCHDOG.
#![cfg(target_os = "linux")]

use jarvis_mine::docker::Docker;
use jarvis_mine::host::LABEL_HOME;
use jarvis_mine_tests::run::{Run, jarvis_mine, output_within, wait_for};
use jarvis_mine_tests::{
    HomeContainers, MinerLock, fake_miner_init, fake_nvml_library, free_port_block, h100s, kill,
    kill_container, miner_lock,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const WALLET: &str = "prl1qexampleaddress";
const PASSWORD: &str = "supervise-password";
const DEADLINE: Duration = Duration::from_secs(120);

/// One fixed-name miner at a time: in this process, and on this machine.
fn one_miner_at_a_time() -> (MutexGuard<'static, ()>, MinerLock) {
    static MINER: Mutex<()> = Mutex::new(());
    let guard = MINER.lock().unwrap_or_else(|p| p.into_inner());
    (guard, miner_lock())
}

/// A home with a running session, stopped and cleaned up when dropped.
struct Session {
    home: tempfile::TempDir,
    /// Fake H100s, one worker each.
    gpus: u32,
    _containers: HomeContainers,
    _one: Option<(MutexGuard<'static, ()>, MinerLock)>,
}

impl Session {
    /// Three workers: `init` with `vllm_args` for the fake miner, then
    /// `start START_ARGS`.
    fn start(vllm_args: &[&str], start_args: &[&str]) -> Session {
        let init: Vec<String> = vllm_args
            .iter()
            .map(|arg| format!("--vllm-arg={arg}"))
            .collect();
        let port = free_port_block(3);
        Session::start_with(Some(one_miner_at_a_time()), 3, port, &init, "", start_args)
    }

    /// `init` (vLLM on `vllm_port`, with `init_args` after the fake
    /// miner's, and `extra` lines in `[mining.extra]`) on `gpus` fake
    /// H100s, then `start START_ARGS`.
    fn start_with(
        one: Option<(MutexGuard<'static, ()>, MinerLock)>,
        gpus: u32,
        vllm_port: u16,
        init_args: &[String],
        extra: &str,
        start_args: &[&str],
    ) -> Session {
        let home = tempfile::tempdir().unwrap();
        let containers = HomeContainers::new(&home.path().canonicalize().unwrap());
        let session = Session {
            home,
            gpus,
            _containers: containers,
            _one: one,
        };
        let mut init = fake_miner_init(WALLET, vllm_port);
        init.extend(init_args.iter().cloned());
        session
            .run(&init.iter().map(String::as_str).collect::<Vec<_>>())
            .code(0);
        if !extra.is_empty() {
            let config = session.path().join("config.toml");
            let text = std::fs::read_to_string(&config).unwrap();
            let text = text.replacen("[mining.extra]\n", &format!("[mining.extra]\n{extra}\n"), 1);
            std::fs::write(&config, text).unwrap();
        }
        let mut start = vec!["start"];
        start.extend(start_args);
        session.run(&start).code(0);
        session
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = jarvis_mine(JARVIS, self.path(), args);
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        command
            .env("PEARLD_RPC_PASSWORD", PASSWORD)
            .env("JARVIS_NVML_LIBRARY", fake_nvml_library())
            .env("FAKE_NVML_GPUS", h100s(self.gpus));
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::new(
            format!("jarvis mine {}", args.join(" ")),
            output_within(&mut self.command(args), DEADLINE),
        )
    }

    /// The workers' container ids, worker 0 first.
    fn workers(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path().join("runtime/mining.json")).unwrap();
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        match record["workers"].as_array() {
            Some(workers) => workers
                .iter()
                .map(|w| w["container_id"].as_str().unwrap().to_owned())
                .collect(),
            None => vec![record["container_id"].as_str().unwrap().to_owned()],
        }
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.path().join("logs/mining-audit.jsonl")).unwrap_or_default()
    }

    /// `jarvis mine supervise ARGS`, running.
    fn supervise(&self, args: &[&str]) -> Supervisor {
        let mut all = vec![
            "supervise",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
        ];
        all.extend(args);
        let mut child = self
            .command(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let mut supervisor = Supervisor {
            child,
            lines,
            seen: Vec::new(),
            metrics: String::new(),
        };
        let line = supervisor.wait_line("supervising session");
        let url = line
            .split("metrics on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no metrics address in {line:?}"))
            .trim_end_matches(')')
            .to_owned();
        supervisor.metrics = url;
        supervisor
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

struct Supervisor {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    metrics: String,
}

impl Supervisor {
    /// Waits for a line of its stderr containing `text`.
    #[track_caller]
    fn wait_line(&mut self, text: &str) -> String {
        let found = wait_for(DEADLINE, || {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            self.seen
                .iter()
                .find(|l| l.contains(text))
                .cloned()
                .or_else(|| {
                    // Block briefly on the next line rather than spin.
                    if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                        self.seen.push(line);
                    }
                    None
                })
        });
        found.unwrap_or_else(|| panic!("no line with {text:?} in:\n{}", self.seen.join("\n")))
    }

    /// One scrape of its exporter.
    fn scrape(&self) -> String {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        agent
            .get(&self.metrics)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// The value of the first sample starting with `prefix`.
    fn sample(&self, prefix: &str) -> Option<f64> {
        let text = self.scrape();
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[track_caller]
    fn wait_sample(&self, prefix: &str, value: f64) {
        let got = wait_for(DEADLINE, || {
            (self.sample(prefix) == Some(value)).then_some(())
        });
        assert!(
            got.is_some(),
            "{prefix} never became {value}:\n{}",
            self.scrape()
        );
    }

    /// Waits for it to exit; its exit code.
    #[track_caller]
    fn exit_code(&mut self) -> i32 {
        let status = wait_for(DEADLINE, || self.child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("supervise did not exit:\n{}", self.seen.join("\n")));
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        status.code().unwrap_or(-1)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker() -> Docker {
    Docker::connect().expect("the test machine runs a Docker engine")
}

fn running(id: &str) -> bool {
    docker().inspect(id).unwrap().is_some_and(|s| s.running)
}

fn home_containers(home: &Path) -> usize {
    docker()
        .list_labelled(
            LABEL_HOME,
            Some(&home.canonicalize().unwrap().display().to_string()),
        )
        .unwrap()
        .len()
}

#[test]
fn a_killed_worker_is_restarted_and_a_stop_is_obeyed() {
    let session = Session::start(&[], &[]);
    let workers = session.workers();
    assert_eq!(workers.len(), 3);
    // Every fake miner has logged its three blocks before the supervisor's
    // first look, so what the history counts is what came after.
    let settled = wait_for(DEADLINE, || {
        let status = session.run(&["status", "--json"]).json();
        (status["stats"]["shares_submitted"] == 9).then_some(())
    });
    assert!(
        settled.is_some(),
        "the fake miners never logged their blocks"
    );
    let mut supervisor = session.supervise(&["--stats-interval", "1s"]);
    supervisor.wait_sample(r#"jarvis_mine_worker_up{worker="2""#, 1.0);
    supervisor.wait_sample(r#"jarvis_mine_shares_accepted_total{worker="1""#, 2.0);

    kill_container(&workers[1]);
    supervisor.wait_line("worker 1 is exited: restarting it");
    supervisor.wait_sample(r#"jarvis_mine_worker_restarts_total{worker="1""#, 1.0);
    supervisor.wait_sample(r#"jarvis_mine_worker_up{worker="1""#, 1.0);
    assert!(
        running(&workers[1]),
        "worker 1 runs again, in its own container"
    );
    assert!(running(&workers[0]) && running(&workers[2]));
    let audit = session.audit();
    assert!(
        audit.contains("host.restart-worker worker=1") && audit.contains("reason=exited"),
        "{audit}"
    );
    assert_eq!(
        supervisor.sample(r#"jarvis_mine_worker_restarts_total{worker="0""#),
        Some(0.0)
    );
    // The restarted miner logs its three blocks again, two accepted and,
    // last, one rejected.
    supervisor.wait_sample(r#"jarvis_mine_shares_accepted_total{worker="1""#, 4.0);
    supervisor.wait_sample(r#"jarvis_mine_shares_rejected_total{worker="1""#, 2.0);

    // A stop from outside is obeyed: the supervisor ends, nothing restarts.
    session.run(&["stop"]).code(0);
    assert_eq!(supervisor.exit_code(), 0);
    supervisor.wait_line("the session ended: it was stopped");
    assert_eq!(home_containers(session.path()), 0);
    assert!(!session.path().join("runtime/mining.json").exists());

    // Every look was recorded: the history counts what was accepted while
    // it watched (the restarted worker's two), from its first look on.
    let history = session.run(&["history", "--json"]).code(0).json();
    assert_eq!(history["totals"]["shares_accepted"], 2, "{history:#}");
    assert_eq!(history["totals"]["shares_submitted"], 3, "{history:#}");
}

#[test]
fn sigterm_leaves_the_miners_running_unless_told_to_stop_them() {
    let session = Session::start(&[], &[]);
    let workers = session.workers();
    let mut supervisor = session.supervise(&[]);
    kill(supervisor.child.id(), "-TERM");
    assert_eq!(supervisor.exit_code(), 0);
    supervisor.wait_line("the miners keep running");
    assert!(workers.iter().all(|id| running(id)));
    session.run(&["status"]).code(0).stdout_has("running");

    let mut supervisor = session.supervise(&["--stop-on-exit"]);
    kill(supervisor.child.id(), "-INT");
    assert_eq!(supervisor.exit_code(), 0);
    supervisor.wait_line("stopping the miners (--stop-on-exit)");
    assert_eq!(home_containers(session.path()), 0);
}

#[test]
fn a_crash_looping_worker_is_left_stopped_after_the_hourly_cap() {
    // Every worker crashes 1.5 s after it starts; Docker restarts it
    // (`unless-stopped`), which counts against the cap.
    let session = Session::start(&["--fake-exit-after-ms", "1500"], &["--no-wait"]);
    let workers = session.workers();
    let mut supervisor = session.supervise(&["--restarts-per-hour", "2"]);
    for index in 0..3 {
        supervisor.wait_line(&format!("worker {index}: "));
    }
    let line = supervisor.wait_line("left stopped");
    assert!(
        line.contains("the cap is 2") && line.contains("crash-loop"),
        "{line}"
    );
    for index in 0..3 {
        supervisor.wait_sample(
            &format!(r#"jarvis_mine_worker_failed{{worker="{index}""#),
            1.0,
        );
    }
    // Stopped for good: Docker restarts it no more.
    for id in &workers {
        let stopped = wait_for(DEADLINE, || (!running(id)).then_some(()));
        assert!(stopped.is_some(), "{id} still runs");
    }
    let audited = wait_for(DEADLINE, || {
        session.audit().contains("host.fail-worker").then_some(())
    });
    assert!(audited.is_some(), "{}", session.audit());
}

#[test]
fn systemd_hears_ready_status_and_watchdog_pings() {
    use std::os::unix::net::UnixDatagram;
    let session = Session::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut command = session.command(&["supervise", "--listen", "none", "--interval", "5s"]);
    command
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut heard = Vec::new();
    let mut buffer = [0u8; 4096];
    // READY first, then watchdog pings well inside 5 s looks (every 200 ms).
    while heard
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = socket.recv(&mut buffer).expect("a notice within 30 s");
        heard.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    assert!(heard[0].contains("READY=1"), "{heard:?}");
    assert!(
        heard[0].contains("STATUS=session ") && heard[0].contains("3 of 3 workers up"),
        "{heard:?}"
    );
    kill(child.id(), "-TERM");
    let stopping = wait_for(DEADLINE, || {
        let n = socket.recv(&mut buffer).ok()?;
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        message.contains("STOPPING=1").then_some(())
    });
    assert!(stopping.is_some(), "{heard:?}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn service_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = jarvis_mine(JARVIS, home.path(), args);
        command.env("XDG_CONFIG_HOME", config.path());
        Run::new(
            format!("jarvis mine {}", args.join(" ")),
            output_within(&mut command, DEADLINE),
        )
    };
    run(&["service", "install", "--no-systemctl"]).code(0);
    let unit_path = config.path().join("systemd/user/jarvis-mine.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let home_path = home.path().canonicalize().unwrap();
    assert!(unit.contains("Type=notify\n"), "{unit}");
    assert!(unit.contains(" mine supervise\n"), "{unit}");
    assert!(
        unit.contains(&format!(
            "Environment=\"OPENJARVIS_HOME={}\"",
            home_path.display()
        )),
        "{unit}"
    );
    assert!(!unit.contains(PASSWORD));
    // What systemd itself says of it, where its tool is installed: nothing.
    if let Ok(tool) = which::which("systemd-analyze") {
        let output = std::process::Command::new(tool)
            .arg("verify")
            .arg(&unit_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains(unit_path.to_str().unwrap()), "{stderr}");
    }
    run(&["service", "uninstall", "--no-systemctl"]).code(0);
    assert!(!unit_path.exists());
    run(&["service", "uninstall", "--no-systemctl"])
        .code(0)
        .stdout_has("was not installed");
    run(&["service", "install", "--no-systemctl", "--name", "../evil"]).code(2);
}

/// Three homes on this machine stand for three hosts: each runs its own
/// session (its own container names and ports) and its own supervisor; the
/// real Prometheus scrapes the three exporters, and its query API says each
/// is up and sums their accepted shares.
#[test]
fn a_real_prometheus_scrapes_three_supervisors() {
    let prometheus = which::which("prometheus")
        .expect("Prometheus is installed (scripts/test installs Debian's `prometheus` package)");
    let one = one_miner_at_a_time();
    let pid = std::process::id();
    let sessions: Vec<Session> = (0..3)
        .map(|host| {
            let ports = free_port_block(3);
            let init = [
                "--gateway-port".to_owned(),
                (ports + 1).to_string(),
                "--gateway-metrics-port".to_owned(),
                (ports + 2).to_string(),
            ];
            let extra = format!("container_name = \"jarvis-test-host{host}-{pid}\"");
            Session::start_with(None, 1, ports, &init, &extra, &[])
        })
        .collect();
    let supervisors: Vec<Supervisor> = sessions
        .iter()
        .map(|s| s.supervise(&["--stats-interval", "1s"]))
        .collect();
    let targets: Vec<String> = supervisors
        .iter()
        .map(|s| {
            s.metrics
                .trim_start_matches("http://")
                .trim_end_matches("/metrics")
                .to_owned()
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: jarvis-mine\n    static_configs:\n      \
             - targets: [{}]\n",
            targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let web = free_port_block(1);
    let server = std::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = KillOnDrop(server);
    let query = |promql: &str| -> Option<Vec<serde_json::Value>> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let body = agent
            .get(format!("http://127.0.0.1:{web}/api/v1/query"))
            .query("query", promql)
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"].as_array().cloned()
    };
    let value = |sample: &serde_json::Value| sample["value"][1].as_str().unwrap().to_owned();
    let up = wait_for(DEADLINE, || {
        let result = query(r#"up{job="jarvis-mine"} == 1"#)?;
        (result.len() == 3).then_some(result)
    })
    .expect("Prometheus never saw the three supervisors up");
    let mut instances: Vec<String> = up
        .iter()
        .map(|s| s["metric"]["instance"].as_str().unwrap().to_owned())
        .collect();
    instances.sort();
    let mut expected = targets.clone();
    expected.sort();
    assert_eq!(instances, expected);
    // Each fake miner logs three blocks, two of them accepted.
    let total = wait_for(DEADLINE, || {
        let result = query("sum(jarvis_mine_shares_accepted_total)")?;
        let total = value(result.first()?);
        (total == "6").then_some(total)
    });
    assert_eq!(total.as_deref(), Some("6"));
    let per_host = query("sum by (instance) (jarvis_mine_shares_accepted_total)").unwrap();
    assert_eq!(per_host.len(), 3);
    assert!(per_host.iter().all(|s| value(s) == "2"), "{per_host:?}");
    drop(supervisors);
    drop(sessions);
    drop(one);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jarvis mine top` once through a pseudo-terminal: it reads the running
/// supervisor's exporter (`--from`), draws the workers and GPUs, and `q`
/// ends it with exit 0; without a supervisor it looks itself.
#[test]
fn top_draws_the_supervisors_look_on_a_terminal_and_q_ends_it() {
    use rexpect::process::wait::WaitStatus;
    use rexpect::session::spawn_command;
    let session = Session::start(&[], &[]);
    let supervisor = session.supervise(&[]);
    supervisor.wait_sample(r#"jarvis_mine_worker_up{worker="2""#, 1.0);
    let on_terminal = |args: &[&str]| {
        // A new pty has no size: give it one (as a terminal window would)
        // before top starts, through the shell that then becomes top.
        let inner = session.command(args);
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("stty rows 30 cols 120 && exec \"$0\" \"$@\"")
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env("TERM", "xterm")
            // The pty is fds 0, 1 and 2: keep it.
            .stdin(Stdio::inherit());
        spawn_command(command, Some(60_000)).expect("a pty session")
    };
    let mut term = on_terminal(&["top", "--from", &supervisor.metrics]);
    // ratatui moves the cursor between words: expect them one by one.
    term.exp_string("supervisor").unwrap();
    term.exp_string("workers").unwrap();
    term.exp_string("running").unwrap();
    term.exp_string("GPUs").unwrap();
    term.send("q").unwrap();
    term.flush().unwrap();
    assert!(matches!(
        term.process.wait().unwrap(),
        WaitStatus::Exited(_, 0)
    ));
    // No supervisor answers there: top looks itself.
    let mut term = on_terminal(&["top", "--from", "http://127.0.0.1:9/metrics"]);
    term.exp_string("looks").unwrap();
    term.exp_string("answers)").unwrap();
    term.send("q").unwrap();
    term.flush().unwrap();
    assert!(matches!(
        term.process.wait().unwrap(),
        WaitStatus::Exited(_, 0)
    ));
}

/// Idle-fill runs under the supervisor: a driver per running worker sends
/// synthetic requests (the exporter counts them); `idle_fill = "off"` sends
/// none.
#[test]
fn idle_fill_runs_for_each_worker_unless_the_config_turns_it_off() {
    let session = Session::start(&[], &[]);
    let mut supervisor = session.supervise(&[]);
    for worker in 0..3 {
        supervisor.wait_sample(
            &format!(r#"jarvis_mine_idle_fill_active{{worker="{worker}""#),
            1.0,
        );
    }
    let sent = wait_for(DEADLINE, || {
        supervisor
            .sample(r#"jarvis_mine_idle_fill_requests_total{worker="1""#)
            .filter(|sent| *sent >= 3.0)
    });
    assert!(sent.is_some(), "{}", supervisor.scrape());
    kill(supervisor.child.id(), "-TERM");
    assert_eq!(supervisor.exit_code(), 0);

    let config = session.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "[mining.extra]\n",
            "[mining.extra]\nidle_fill = \"off\"\n",
            1,
        ),
    )
    .unwrap();
    let supervisor = session.supervise(&[]);
    supervisor.wait_sample(r#"jarvis_mine_worker_up{worker="2""#, 1.0);
    assert!(
        !supervisor.scrape().contains("jarvis_mine_idle_fill_"),
        "{}",
        supervisor.scrape()
    );
}

/// A running worker whose vLLM never answers `/v1/models` (it stays
/// "loading") is restarted once `--unhealthy-after` has passed, and the
/// audit says why.
#[test]
fn a_worker_whose_vllm_never_answers_is_restarted_as_unhealthy() {
    let session = Session::start(&["--fake-ready-after-ms", "3600000"], &["--no-wait"]);
    let mut supervisor =
        session.supervise(&["--stats-interval", "300ms", "--unhealthy-after", "1s"]);
    supervisor.wait_line("worker 0 is unhealthy: restarting it");
    supervisor.wait_sample(r#"jarvis_mine_worker_restarts_total{worker="0""#, 1.0);
    let audit = session.audit();
    assert!(
        audit.contains("host.restart-worker worker=0") && audit.contains("reason=unhealthy"),
        "{audit}"
    );
}

/// A worker that serves requests (idle-fill's) but submits no share is
/// stalled: restarted once `--stall-after` has passed with load and no
/// submission.
#[test]
fn a_worker_with_load_and_no_share_is_restarted_as_stalled() {
    let session = Session::start(&["--fake-blocks", "0"], &[]);
    let mut supervisor = session.supervise(&["--stats-interval", "300ms", "--stall-after", "2s"]);
    let line = supervisor.wait_line("is stalled: restarting it");
    assert!(line.contains("worker "), "{line}");
    // The notice comes first, then the restart and its audit record.
    let audited = wait_for(DEADLINE, || {
        session.audit().contains("reason=stalled").then_some(())
    });
    assert!(audited.is_some(), "{}", session.audit());
}
