//! The session files on disk: the sidecar OpenJarvis reads (checked against a
//! re-implementation of OpenJarvis's engine-discovery gate, reference §7) and
//! the session lock (contention, and release when the holder is SIGKILLed).

use jarvis_mine::home::HomePath;
use jarvis_mine::paths::Paths;
use jarvis_mine::session::lock::{LockError, SessionLock};
use jarvis_mine::session::sidecar::{self, SessionRecord};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn record() -> SessionRecord {
    SessionRecord {
        provider: "vllm-pearl".into(),
        vllm_endpoint: "http://127.0.0.1:8000/v1".into(),
        model: "pearl-ai/Llama-3.3-70B-Instruct-pearl".into(),
        gateway_url: "http://127.0.0.1:8337".into(),
        gateway_metrics_url: "http://127.0.0.1:8339".into(),
        container_id: "4f1c2a9e8b7d".into(),
        wallet_address: "prl1qexampleaddress".into(),
        started_at: 1_760_000_000,
        session_id: Some("9b2e6c1d".into()),
        image: Some("openjarvis/pearl-miner:master".into()),
        workers: Vec::new(),
    }
}

/// OpenJarvis's `_maybe_register_mining_sidecar_engine` gate (§7): the file
/// parses as a JSON object whose `vllm_endpoint` and `model` are non-empty
/// strings; the engine host is the endpoint without trailing `/` and one
/// trailing `/v1`. Returns (host, model), or None where OpenJarvis would
/// silently skip registration.
fn openjarvis_gate(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let Value::Object(sidecar) = serde_json::from_str::<Value>(&text).ok()? else {
        return None;
    };
    let endpoint = sidecar.get("vllm_endpoint")?.as_str()?;
    let model = sidecar.get("model")?.as_str()?;
    if endpoint.is_empty() || model.is_empty() {
        return None;
    }
    let host = endpoint.trim_end_matches('/');
    let host = host.strip_suffix("/v1").unwrap_or(host);
    Some((host.to_owned(), model.to_owned()))
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn written_sidecar_passes_openjarvis_gate() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).sidecar();
    let record = record();
    sidecar::validate(&record).unwrap();
    sidecar::write(&path, &record).unwrap(); // creates <home>/runtime

    assert_eq!(
        openjarvis_gate(&path.absolute()),
        Some((
            "http://127.0.0.1:8000".to_owned(),
            "pearl-ai/Llama-3.3-70B-Instruct-pearl".to_owned()
        ))
    );
    assert_eq!(sidecar::read(&path).unwrap(), Some(record));
    assert_eq!(
        dir_names(path.absolute().parent().unwrap()),
        ["mining.json"],
        "no temp files left"
    );
}

#[cfg(unix)]
#[test]
fn sidecar_is_private_even_over_a_public_file() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).sidecar();
    path.parent().unwrap().create_dir_all().unwrap();
    std::fs::write(path.absolute(), "{}").unwrap();
    std::fs::set_permissions(path.absolute(), std::fs::Permissions::from_mode(0o644)).unwrap();
    sidecar::write(&path, &record()).unwrap();
    let mode = std::fs::metadata(path.absolute())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn sidecar_text_is_sorted_indented_and_only_the_fields() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).sidecar();
    let record = record();
    sidecar::write(&path, &record).unwrap();
    let text = std::fs::read_to_string(path.absolute()).unwrap();

    // Reference format: indent 2, sorted keys, no trailing newline.
    assert!(text.starts_with("{\n  \""), "{text}");
    assert!(text.ends_with("\n}"), "{text}");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("  \"")?.split('"').next())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);

    // Exactly the record's fields, with the record's values: nothing else can
    // reach the file (there is no field a secret could go in), and no key
    // OpenJarvis reads as something else (`metrics_url`: gateway metrics;
    // `gateway_pid`/`miner_loop_pid`: processes `mine stop` kills).
    let expected = serde_json::json!({
        "provider": record.provider,
        "vllm_endpoint": record.vllm_endpoint,
        "model": record.model,
        "gateway_url": record.gateway_url,
        "gateway_metrics_url": record.gateway_metrics_url,
        "container_id": record.container_id,
        "wallet_address": record.wallet_address,
        "started_at": record.started_at,
        "session_id": record.session_id,
        "image": record.image,
    });
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    assert_eq!(keys.len(), 10);
}

#[test]
fn a_crash_mid_write_does_not_affect_read() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).sidecar();
    let dir = path.absolute().parent().unwrap().to_owned();
    sidecar::write(&path, &record()).unwrap();

    // What a writer killed between creating and renaming its temp file leaves.
    std::fs::write(
        dir.join(".mining-Zx81Qa.tmp"),
        "{\n  \"container_id\": \"dead",
    )
    .unwrap();
    assert_eq!(sidecar::read(&path).unwrap(), Some(record()));
    assert!(openjarvis_gate(&path.absolute()).is_some());

    // And a crash before the first rename leaves no sidecar at all.
    sidecar::remove(&path).unwrap();
    assert_eq!(sidecar::read(&path).unwrap(), None);
    assert_eq!(openjarvis_gate(&path.absolute()), None);

    // The next session writes normally beside the debris.
    let mut next = record();
    next.container_id = "a11ce0000000".into();
    sidecar::write(&path, &next).unwrap();
    assert_eq!(sidecar::read(&path).unwrap(), Some(next));
    assert_eq!(dir_names(&dir), [".mining-Zx81Qa.tmp", "mining.json"]);
}

#[test]
fn a_failed_write_leaves_no_temp_file_and_no_sidecar() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).sidecar();
    // A non-empty directory where the sidecar should be: the rename fails
    // (running as root, permissions would not).
    std::fs::create_dir_all(path.absolute().join("occupied")).unwrap();
    let err = sidecar::write(&path, &record()).unwrap_err();
    assert!(err.to_string().starts_with("cannot write sidecar"), "{err}");
    assert_eq!(
        dir_names(path.absolute().parent().unwrap()),
        ["mining.json"]
    );
    assert!(path.absolute().is_dir());
}

#[test]
fn unknown_keys_from_openjarvis_are_tolerated() {
    let home = tempfile::tempdir().unwrap();
    let path = jarvis_mine::home::root(home.path()).join("mining.json");
    let mut value: Value = serde_json::from_str(&sidecar::to_json(&record())).unwrap();
    value["engine_hint"] = "vllm-pearl-mining".into();
    std::fs::write(path.absolute(), value.to_string()).unwrap();
    assert_eq!(sidecar::read(&path).unwrap(), Some(record()));
}

// ---------------------------------------------------------------------------
// The session lock, across processes: this test binary re-executes itself
// running only `lock_holder_child`, which takes the lock when
// `JARVIS_TEST_LOCK_HOLDER` names a home.

const HOLDER_ENV: &str = "JARVIS_TEST_LOCK_HOLDER";
const HOLD_MS_ENV: &str = "JARVIS_TEST_LOCK_HOLD_MS";

/// Not a test of its own: the child process's body. Holds the lock for
/// `$JARVIS_TEST_LOCK_HOLD_MS` (default: until killed, at most 60 s).
#[test]
fn lock_holder_child() {
    let Some(home) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let hold = std::env::var(HOLD_MS_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let path = Paths::with_home(home).lock_file();
    let lock = SessionLock::acquire_for(&path, Duration::from_secs(30), "start")
        .expect("child takes the lock");
    std::thread::sleep(hold);
    drop(lock);
}

/// A child process holding the lock of the home at `home`.
fn spawn_holder(home: &Path, hold_ms: Option<u64>) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "lock_holder_child",
            "--exact",
            "--test-threads=1",
            "--quiet",
        ])
        .env(HOLDER_ENV, home)
        .env_remove(HOLD_MS_ENV)
        .stdout(Stdio::null());
    if let Some(ms) = hold_ms {
        command.env(HOLD_MS_ENV, ms.to_string());
    }
    command.spawn().unwrap()
}

/// Waits until `child` holds the lock (it has written its pid).
fn wait_until_held_by(path: &HomePath, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(holder) = SessionLock::holder(path).unwrap()
            && holder.pid == Some(child.id())
        {
            assert_eq!(holder.operation.as_deref(), Some("start"));
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("lock holder exited early: {status}");
        }
        assert!(Instant::now() < deadline, "child never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(unix)]
#[test]
fn sigkill_releases_the_lock() {
    use std::os::unix::process::ExitStatusExt;
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).lock_file();
    let mut child = spawn_holder(home.path(), None);
    wait_until_held_by(&path, &mut child);

    match SessionLock::acquire(&path, Duration::ZERO) {
        Err(LockError::Busy { holder, .. }) => assert_eq!(holder.pid, Some(child.id())),
        other => panic!("expected busy, got {other:?}"),
    }

    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));

    let start = Instant::now();
    let lock = SessionLock::acquire(&path, Duration::ZERO).expect("the kernel released it");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(
        SessionLock::holder(&path).unwrap().unwrap().pid,
        Some(std::process::id())
    );
    drop(lock);
}

#[test]
fn a_second_process_waits_for_the_first() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).lock_file();
    let mut child = spawn_holder(home.path(), Some(600));
    wait_until_held_by(&path, &mut child);

    let start = Instant::now();
    let lock = SessionLock::acquire(&path, Duration::from_secs(30)).unwrap();
    let waited = start.elapsed();
    assert!(child.wait().unwrap().success());
    assert!(
        waited >= Duration::from_millis(100),
        "waited only {waited:?}"
    );
    assert_eq!(
        SessionLock::holder(&path).unwrap().unwrap().pid,
        Some(std::process::id())
    );
    drop(lock);
    assert_eq!(SessionLock::holder(&path).unwrap(), None);
}

#[test]
fn a_second_thread_waits_for_the_first() {
    let home = tempfile::tempdir().unwrap();
    let path = Paths::with_home(home.path()).lock_file();
    let first = SessionLock::acquire(&path, Duration::ZERO).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let second = SessionLock::acquire(&path, Duration::from_secs(30)).unwrap();
            tx.send(start.elapsed()).unwrap();
            drop(second);
        })
    };
    // Still waiting while the first is held.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(first);
    let waited = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(waited >= Duration::from_millis(300));
    waiter.join().unwrap();

    // A timeout that expires says so, and by whom.
    let _held = SessionLock::acquire(&path, Duration::ZERO).unwrap();
    let err = SessionLock::acquire(&path, Duration::from_millis(120)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("held by pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("gave up after 0."), "{message}");
}
