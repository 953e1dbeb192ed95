//! `jarvis mine audit --verify` end to end, and what the audit log keeps of
//! a provider the policy refuses: the real binary against a temporary home
//! whose log the real appender wrote.

use jarvis_mine::audit::{AuditLog, Decision, Record};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");

/// `cli::exit::AUDIT_BROKEN`.
const AUDIT_BROKEN: i32 = 10;

fn run(home: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(JARVIS)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENJARVIS_HOME", home)
        .env("OPENJARVIS_MINING_POLICY", home.join("system-policy.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn log_path(home: &Path) -> PathBuf {
    home.join("logs/mining-audit.jsonl")
}

/// A home whose log holds `n` records written by the appender.
fn home_with_records(n: usize) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let log = AuditLog::new(jarvis_mine::paths::Paths::with_home(home.path()).audit_log());
    for i in 0..n {
        let mut record = Record::new(
            "acme",
            &"ab".repeat(32),
            "containers",
            format!("containers.inspect c{i}"),
        );
        record.decision = if i % 2 == 0 {
            Decision::Allow
        } else {
            Decision::Deny
        };
        log.append(&record).unwrap();
    }
    home
}

fn verify_json(home: &Path) -> (i32, Value) {
    let (code, out, err) = run(home, &["mine", "audit", "--verify", "--json"]);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, report)
}

#[test]
fn an_intact_log_verifies_with_its_count_and_exit_0() {
    let home = home_with_records(5);
    let (code, out, err) = run(home.path(), &["mine", "audit", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("audit log intact: 5 records in 1 file(s)"),
        "{out}"
    );
    assert!(
        out.contains("starting at the first record written"),
        "{out}"
    );
    let (code, report) = verify_json(home.path());
    assert_eq!(code, 0);
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], 5);
    assert_eq!(report["starts_at"], "genesis");
    assert!(report.get("broken").is_none(), "{report}");
}

#[test]
fn an_edited_log_is_broken_with_exit_10_and_says_where() {
    let home = home_with_records(5);
    let path = log_path(home.path());
    let text = std::fs::read_to_string(&path).unwrap();
    // Turn the second record's denial into an allow, as someone covering tracks would.
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                l.replace("\"deny\"", "\"allow\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_ne!(edited.join("\n") + "\n", text);
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();

    let (code, out, _) = run(home.path(), &["mine", "audit", "--verify"]);
    assert_eq!(code, AUDIT_BROKEN, "{out}");
    assert!(
        out.contains(&format!(
            "audit log broken: {} line 2: an edit",
            path.display()
        )),
        "{out}"
    );
    let (code, report) = verify_json(home.path());
    assert_eq!(code, AUDIT_BROKEN);
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken"]["kind"], "edit");
    assert_eq!(report["broken"]["line"], 2);
    assert_eq!(report["broken"]["file"], path.to_str().unwrap());
    assert_eq!(report["records"], 1, "records before the break");

    // Removing the line instead is a cut.
    let cut: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, cut.join("\n") + "\n").unwrap();
    let (code, report) = verify_json(home.path());
    assert_eq!(
        (code, report["broken"]["kind"].as_str()),
        (AUDIT_BROKEN, Some("cut"))
    );
}

#[test]
fn a_torn_last_line_is_a_note_not_a_break() {
    let home = home_with_records(3);
    let path = log_path(home.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"time\":\"2026-12-01T");
    std::fs::write(&path, bytes).unwrap();
    let (code, out, _) = run(home.path(), &["mine", "audit", "--verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is torn"), "{out}");
    assert!(out.contains("not tampering"), "{out}");
}

#[test]
fn verify_does_not_mix_with_the_readers_filters() {
    let home = home_with_records(1);
    let (code, _, err) = run(home.path(), &["mine", "audit", "--verify", "--denied"]);
    assert_eq!(code, 2, "{err}");
}

/// A home with the hostile test provider installed and a system policy that
/// refuses installed providers.
fn refusing_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let providers = home.path().join("mining/providers");
    std::fs::create_dir_all(&providers).unwrap();
    // A file name that is not the id: records must name the id.
    std::fs::write(
        providers.join("renamed-by-hand.wasm"),
        jarvis_mine_tests::hostile_component(),
    )
    .unwrap();
    std::fs::write(
        home.path().join("system-policy.toml"),
        "[installed]\nallow = false\n",
    )
    .unwrap();
    home
}

#[test]
fn a_refused_provider_is_recorded_once_a_day_under_its_id() {
    let home = refusing_home();
    for _ in 0..4 {
        let (code, _, err) = run(home.path(), &["mine", "doctor"]);
        assert_eq!(code, 0, "{err}");
    }
    let (_, out, _) = run(
        home.path(),
        &["mine", "audit", "--json", "--provider", "hostile"],
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{out}");
    assert_eq!(records[0]["capability"], "load");
    assert_eq!(records[0]["action"], "load renamed-by-hand.wasm");
    assert_eq!(records[0]["daily"], true);
    // A changed decision is recorded at once.
    std::fs::write(
        home.path().join("system-policy.toml"),
        format!("[installed]\nsha256 = [\"{}\"]\n", "0".repeat(64)),
    )
    .unwrap();
    run(home.path(), &["mine", "doctor"]);
    run(home.path(), &["mine", "doctor"]);
    let (_, out, _) = run(home.path(), &["mine", "audit", "--json"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, report) = verify_json(home.path());
    assert_eq!((code, report["records"].as_u64()), (0, Some(2)), "{report}");
}
