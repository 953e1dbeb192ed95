//! `jarvis mine policy show|check` and `jarvis mine audit` end to end: the
//! real binary against a temporary home, policy files and an audit log that
//! real decisions wrote.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");

fn command(home: &Path, args: &[&str], system_policy: &Path) -> Command {
    let mut command = Command::new(JARVIS);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENJARVIS_HOME", home)
        .env("OPENJARVIS_MINING_POLICY", system_policy)
        .stdin(Stdio::null());
    command
}

fn run(home: &Path, args: &[&str], system_policy: &Path) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command(home, args, system_policy).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A home with the hostile test provider installed and a system policy that
/// admits no installed provider: a doctor run records its `load` denial
/// (once a day).
fn refusing_home() -> (tempfile::TempDir, std::path::PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let providers = home.path().join("mining/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("hostile.wasm"),
        jarvis_mine_tests::hostile_component(),
    )
    .unwrap();
    let system = home.path().join("system-policy.toml");
    std::fs::write(&system, "[installed]\nallow = false\n").unwrap();
    (home, system)
}

#[test]
fn policy_show_says_what_each_provider_gets_and_from_where() {
    let home = tempfile::tempdir().unwrap();
    let system = home.path().join("system-policy.toml");
    std::fs::write(
        &system,
        "[default]\ncapabilities = [\"sidecar\"]\n[default.limits]\nmemory_mib = 32\n",
    )
    .unwrap();
    std::fs::create_dir_all(home.path().join("mining")).unwrap();
    let user = home.path().join("mining/policy.toml");
    std::fs::write(
        &user,
        "[providers.vllm-pearl]\ncapabilities = [\"containers\", \"sidecar\"]\n",
    )
    .unwrap();

    let (code, out, err) = run(
        home.path(),
        &[
            "mine",
            "policy",
            "show",
            "--provider",
            "vllm-pearl",
            "--json",
        ],
        &system,
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"][0]["state"], "loaded");
    let provider = &report["providers"][0];
    assert_eq!(provider["id"], "vllm-pearl");
    assert_eq!(provider["granted"], serde_json::json!(["sidecar"]));
    let withheld = provider["withheld"]["containers"].as_str().unwrap();
    assert!(
        withheld.contains(&format!(
            "capability 'containers' is not in default.capabilities (policy {})",
            system.display()
        )),
        "{withheld}"
    );
    assert_eq!(provider["limits"]["memory_bytes"], 32 << 20);
    let views = provider["views"].as_array().unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0]["role"], "grants");
    assert_eq!(views[0]["file"], user.display().to_string());
    assert_eq!(views[1]["role"], "ceiling");

    let (code, text, _) = run(home.path(), &["mine", "policy", "show"], &system);
    assert_eq!(code, 0);
    assert!(text.contains("containers withheld"), "{text}");
    assert!(text.contains("[providers.vllm-pearl]"), "{text}");

    let (code, _, err) = run(
        home.path(),
        &["mine", "policy", "show", "--provider", "nope"],
        &system,
    );
    assert_eq!(code, 2);
    assert!(err.contains("no provider 'nope' is loaded"), "{err}");
}

#[test]
fn policy_check_validates_a_file() {
    let home = tempfile::tempdir().unwrap();
    let none = home.path().join("none.toml");
    let good = home.path().join("good.toml");
    std::fs::write(
        &good,
        "[installed]\nallow = false\n[providers.x]\ncapabilities = []\n",
    )
    .unwrap();
    let (code, out, _) = run(
        home.path(),
        &["mine", "policy", "check", good.to_str().unwrap()],
        &none,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("valid (1 provider grant, installed providers disabled)"),
        "{out}"
    );
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "[providers.x.containers]\nimages = [\"[unclosed\"]\n").unwrap();
    let (code, _, err) = run(
        home.path(),
        &["mine", "policy", "check", bad.to_str().unwrap()],
        &none,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}:2:10: ", bad.display()))
            && err.contains("'[unclosed' is not valid"),
        "{err}"
    );
    let (code, _, err) = run(
        home.path(),
        &["mine", "policy", "check", none.to_str().unwrap()],
        &none,
    );
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn a_broken_user_policy_stops_the_command_with_its_position() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("mining")).unwrap();
    std::fs::write(
        home.path().join("mining/policy.toml"),
        "[providers.vllm-pearl]\ngpus = [\"all\"]\n",
    )
    .unwrap();
    let none = home.path().join("none.toml");
    let (code, _, err) = run(home.path(), &["mine", "doctor"], &none);
    assert_eq!(code, 2);
    assert!(err.contains("mining/policy.toml:2:8:"), "{err}");
    assert!(err.contains("must be \"*\", an NVML index"), "{err}");
}

#[test]
fn audit_reads_filters_and_follows_the_log() {
    let (home, system) = refusing_home();
    let (code, out, _) = run(home.path(), &["mine", "audit"], &system);
    assert_eq!(code, 0);
    assert!(out.contains("no matching records"), "{out}");

    // Refused on every command, recorded once a day, under the provider's id.
    for _ in 0..3 {
        let (code, _, err) = run(home.path(), &["mine", "doctor"], &system);
        assert_eq!(code, 0, "{err}");
    }
    let (_, out, _) = run(home.path(), &["mine", "audit", "--json"], &system);
    let records = json_lines(&out);
    assert_eq!(records.len(), 1, "{out}");
    let record = &records[0];
    assert_eq!(record["capability"], "load");
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["provider"], "hostile");
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("installed providers are disabled by installed.allow")
    );
    // Each policy below refuses it for another reason: one more record each.
    let refuse = |pin: usize| {
        let policy = format!("[installed]\nsha256 = [\"{pin:064}\"]\n");
        std::fs::write(&system, policy).unwrap();
        let (code, _, err) = run(home.path(), &["mine", "doctor"], &system);
        assert_eq!(code, 0, "{err}");
    };
    refuse(1);
    let (_, out, _) = run(
        home.path(),
        &["mine", "audit", "--json", "-n", "1"],
        &system,
    );
    assert_eq!(json_lines(&out).len(), 1);
    let (_, out, _) = run(
        home.path(),
        &["mine", "audit", "--denied", "--provider", "someone-else"],
        &system,
    );
    assert!(out.contains("no matching records"), "{out}");
    let (_, text, _) = run(home.path(), &["mine", "audit", "--denied"], &system);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("deny") && l.contains("hostile")),
        "{text}"
    );

    // -f prints what is written after it started: new refusals, until one
    // arrives (the follower starts reading at some point after it is spawned).
    let mut follower = command(
        home.path(),
        &["mine", "audit", "-f", "--json", "-n", "0"],
        &system,
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The same refusal under another file name is another record.
    let providers = home.path().join("mining/providers");
    let line = (1..40).find_map(|n| {
        let from = std::fs::read_dir(&providers)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::rename(from, providers.join(format!("hostile-{n}.wasm"))).unwrap();
        let (code, _, err) = run(home.path(), &["mine", "doctor"], &system);
        assert_eq!(code, 0, "{err}");
        received.recv_timeout(Duration::from_millis(500)).ok()
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let record: Value = serde_json::from_str(&line.expect("a followed record")).unwrap();
    assert_eq!(record["capability"], "load");
}
