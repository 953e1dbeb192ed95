//! One finished command of a CLI test, and polling for a condition: what
//! the end-to-end tests share.

use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One finished command.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(what: impl Into<String>, out: Output) -> Run {
        Run {
            what: what.into(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `command` to its end.
    pub fn of(what: impl Into<String>, command: &mut Command) -> Run {
        Run::new(what, command.output().unwrap())
    }

    /// Asserts the exit code; returns self for further checks.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(self.code, Some(expected), "{self}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}: {self}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}: {self}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// The value of an output row (`label:   value`); the first, where two
    /// rows share a label.
    pub fn row(&self, label: &str) -> Option<&str> {
        let prefix = format!("{label}:");
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::trim))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// How often [`wait_for`] asks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` every [`POLL`] until it gives `Some`, for at most `limit`: the
/// one wait-on-a-condition of the CLI suites (never a fixed pause).
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// `jarvis mine ARGS` of the binary at `jarvis`, isolated from this
/// machine: an empty environment but `PATH`, the home `home`, no system
/// policy, no stdin.
pub fn jarvis_mine(jarvis: &str, home: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(jarvis);
    command
        .arg("mine")
        .args(args)
        .env_clear()
        .env("OPENJARVIS_HOME", home)
        // Whatever this machine's /etc says, no system policy.
        .env(
            "OPENJARVIS_MINING_POLICY",
            home.join("no-system-policy.toml"),
        )
        .env("PATH", std::env::var_os("PATH").unwrap())
        .stdin(std::process::Stdio::null());
    command
}

/// Runs `command` with its output captured, killing it (and failing) if it
/// has not finished within `limit`.
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if wait_for(limit, || child.try_wait().unwrap()).is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("{command:?} did not finish within {limit:?}");
    }
    child.wait_with_output().unwrap()
}

/// Starts every command at once, then waits for each: `what` names them in
/// failures. For races between commands (concurrent starts).
pub fn all_at_once(what: &str, commands: impl IntoIterator<Item = Command>) -> Vec<Run> {
    let children: Vec<std::process::Child> = commands
        .into_iter()
        .map(|mut command| {
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| Run::new(what, child.wait_with_output().unwrap()))
        .collect()
}
