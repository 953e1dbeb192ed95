//! Files a user names (or leaves in the home) that are not what they should
//! be: `/dev/zero`, a FIFO with no writer, a directory, a socket, a file over
//! its cap, a large file that is not a component. Every command that reads
//! one (`doctor --facts`, `init --facts`, `policy check`, `providers
//! install|inspect`, the config file) exits 2 at once with a message naming
//! the path and what it is; none hangs or reads it whole.

use jarvis_mine_tests::run::{jarvis_mine, output_within};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
/// Far above a normal run (the first compiles the built-ins), far below a hang.
const DEADLINE: Duration = Duration::from_secs(120);

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `jarvis mine ARGS` (with `env`), killing it at the deadline.
    fn run(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = jarvis_mine(JARVIS, self.path(), args);
        for (name, value) in env {
            command.env(name, value);
        }
        output_within(&mut command, DEADLINE)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A sparse file of `len` bytes that starts with `head`.
    fn sparse(&self, name: &str, head: &[u8], len: u64) -> PathBuf {
        let path = self.file(name, head);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        path
    }

    fn fifo(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        path
    }
}

/// The bad inputs every reader must refuse, with what the message says.
fn bad_inputs(home: &Home, over_cap: u64) -> (Vec<(PathBuf, &'static str)>, UnixListener) {
    let dir = home.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let socket_path = home.path().join("a-socket");
    let socket = UnixListener::bind(&socket_path).unwrap();
    let inputs = vec![
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (
            home.fifo("a-fifo"),
            "is a FIFO (named pipe), not a regular file",
        ),
        (dir, "is a directory, not a regular file"),
        (socket_path, "is a socket, not a regular file"),
        (home.sparse("over-cap", b"{}", over_cap), "more than the"),
    ];
    (inputs, socket)
}

fn assert_refused(out: &Output, what: &str, path: &Path, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what} {}: {stderr}",
        path.display()
    );
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains(says),
        "{what} {}: expected {says:?} in {stderr}",
        path.display()
    );
}

#[test]
fn facts_policy_and_config_readers_refuse_what_is_not_a_small_regular_file() {
    let home = Home::new();
    let over_cap = (4 << 20) + 1;
    let (inputs, _socket) = bad_inputs(&home, over_cap);
    let good_facts = home.file("facts.json", br#"{"os":"linux","arch":"x86_64","gpus":[]}"#);
    let good_facts = good_facts.to_str().unwrap();
    for (path, says) in &inputs {
        let file = path.to_str().unwrap();
        for args in [
            vec!["doctor", "--facts", file],
            vec!["init", "--yes", "--facts", file],
            vec!["policy", "check", file],
        ] {
            assert_refused(&home.run(&args, &[]), &args[0..1].join(" "), path, says);
        }
        let out = home.run(
            &["doctor", "--facts", good_facts],
            &[("OPENJARVIS_CONFIG", path)],
        );
        assert_refused(&out, "config", path, says);
    }
}

#[test]
fn component_readers_refuse_what_is_not_a_component_before_reading_it() {
    let home = Home::new();
    let over_cap = (256 << 20) + 1;
    let (mut inputs, _socket) = bad_inputs(&home, over_cap);
    // Large but within the cap: refused from its first bytes.
    inputs.push((
        home.sparse("large-junk.wasm", b"not wasm", 200 << 20),
        "not a WebAssembly file",
    ));
    inputs.push((
        home.sparse("large-core.wasm", b"\0asm\x01\0\0\0", 200 << 20),
        "a core WebAssembly module, not a component",
    ));
    for (path, says) in &inputs {
        let file = path.to_str().unwrap();
        for args in [
            vec!["providers", "install", "--yes", file],
            vec!["providers", "inspect", file],
        ] {
            assert_refused(&home.run(&args, &[]), &args[0..2].join(" "), path, says);
        }
    }
    assert!(!home.path().join("mining/providers").exists());
}

#[test]
fn a_fifo_among_installed_providers_is_reported_not_waited_on() {
    let home = Home::new();
    std::fs::create_dir_all(home.path().join("mining/providers")).unwrap();
    home.fifo("mining/providers/stuck.wasm");
    let out = home.run(&["providers", "list", "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failure = &listing["failures"][0];
    assert_eq!(failure["name"], "stuck.wasm", "{listing}");
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("is a FIFO (named pipe), not a regular file"),
        "{listing}"
    );
}
