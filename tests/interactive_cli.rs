//! What a person at a terminal sees: `init`'s prompts (a bad answer is
//! asked again, Ctrl-C writes nothing) and `status --watch`'s live table
//! (Ctrl-C ends it cleanly), driven through a pseudo-terminal.

use jarvis_mine_tests::run::jarvis_mine;
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};
use std::path::Path;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
/// Every expectation waits at most this long (a deadline, not a pause).
const DEADLINE_MS: u64 = 30_000;
const WALLET: &str = "prl1qexampleaddress";

fn h100_facts(home: &Path) -> String {
    let file = home.join("facts.json");
    std::fs::write(
        &file,
        r#"{"os":"linux","arch":"x86_64","gpus":[{"index":0,"name":"NVIDIA H100 80GB HBM3","vendor":"nvidia","compute_capability":"9.0","memory_total_mib":81559}]}"#,
    )
    .unwrap();
    file.display().to_string()
}

fn on_terminal(home: &Path, args: &[&str]) -> PtySession {
    let mut command = jarvis_mine(JARVIS, home, args);
    // The pty is already fd 0, 1 and 2: keep it (jarvis_mine closes stdin).
    command
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::inherit());
    spawn_command(command, Some(DEADLINE_MS)).expect("a pty session")
}

/// The status a shell reports: the exit code, or 128 + the signal (Ctrl-C
/// is SIGINT: the terminal's at a line prompt, and at the yes/no prompt,
/// read in raw mode, the one dialoguer's terminal crate raises; Ctrl-D is
/// our own exit 130).
fn exit_code(session: &PtySession) -> i32 {
    match session.process.wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        other => panic!("not an exit: {other:?}"),
    }
}

fn init_args(facts: &str) -> Vec<&str> {
    vec![
        "init",
        "--provider",
        "vllm-pearl",
        "--facts",
        facts,
        "--no-image",
    ]
}

#[test]
fn init_asks_again_after_a_bad_answer_shows_what_it_writes_and_writes_on_yes() {
    let home = tempfile::tempdir().unwrap();
    let facts = h100_facts(home.path());
    let mut term = on_terminal(home.path(), &init_args(&facts));
    term.exp_string("asks before writing").unwrap();
    term.exp_string("Pearl wallet address").unwrap();
    term.send_line("bc1qnotpearl").unwrap();
    // The reason, and the same question again: no exit 4.
    term.exp_string("expected 'prl1q...' or 'prl1p...' prefix")
        .unwrap();
    term.send_line(WALLET).unwrap();
    term.exp_string("pearld RPC URL").unwrap();
    term.send_line("localhost:44107").unwrap();
    term.exp_string("must be an http:// or https:// URL")
        .unwrap();
    term.send_line("").unwrap();
    term.exp_string("pearld RPC user").unwrap();
    term.send_line("").unwrap();
    term.exp_string("pearld password").unwrap();
    term.send_line("").unwrap();
    term.exp_string("This will be written to").unwrap();
    term.exp_string(&format!("wallet_address = \"{WALLET}\""))
        .unwrap();
    term.exp_string("Write it?").unwrap();
    assert!(
        !home.path().join("config.toml").exists(),
        "nothing written before the answer"
    );
    term.send("y").unwrap();
    term.flush().unwrap();
    term.exp_string("Wrote [mining] for vllm-pearl").unwrap();
    term.exp_eof().unwrap();
    assert_eq!(exit_code(&term), 0);
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("wallet_address = \"{WALLET}\"")),
        "{config}"
    );
    assert!(
        config.contains("pearld_rpc_url = \"http://localhost:44107\""),
        "{config}"
    );
}

#[test]
fn ctrl_c_or_ctrl_d_at_any_prompt_writes_nothing() {
    for (key, answers) in [('c', 0), ('d', 0), ('c', 1), ('c', 4)] {
        let home = tempfile::tempdir().unwrap();
        let facts = h100_facts(home.path());
        let mut term = on_terminal(home.path(), &init_args(&facts));
        term.exp_string("Pearl wallet address").unwrap();
        // Answer the first `answers` questions, then interrupt.
        let replies = [WALLET, "", "", ""];
        for reply in &replies[..answers] {
            term.send_line(reply).unwrap();
        }
        if answers == 4 {
            term.exp_string("Write it?").unwrap();
        }
        term.send_control(key).unwrap();
        term.exp_eof().unwrap();
        let code = exit_code(&term);
        assert_eq!(code, 130, "Ctrl-{key} after {answers} answers");
        assert!(
            !home.path().join("config.toml").exists(),
            "Ctrl-{key} after {answers} answers wrote the config"
        );
    }
}

#[test]
fn status_watch_redraws_and_ends_cleanly_on_ctrl_c() {
    let home = tempfile::tempdir().unwrap();
    let mut term = on_terminal(home.path(), &["status", "--watch", "1"]);
    term.exp_string("state:").unwrap();
    term.exp_string("refreshing every 1 s; Ctrl-C to stop")
        .unwrap();
    // A second frame: the screen is cleared and drawn again.
    term.exp_string("\x1b[2J").unwrap();
    term.exp_string("state:").unwrap();
    term.send_control('c').unwrap();
    term.exp_eof().unwrap();
    assert_eq!(exit_code(&term), 0);
}

#[test]
fn status_watch_piped_prints_one_plain_line_per_refresh() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    let mut child = jarvis_mine(JARVIS, home.path(), &["status", "--watch", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        assert!(line.contains(" UTC state="), "{line}");
        assert!(
            !line.contains('\x1b'),
            "no terminal codes when piped: {line:?}"
        );
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "Ctrl-C is a clean end"
    );
}

#[test]
fn a_slow_probe_is_named_while_it_runs_and_its_timeout_says_what_it_waited_for() {
    // A "pearld" that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"{WALLET}\"\n\n[mining.extra]\npearld_rpc_url = \"{url}\"\n"),
    )
    .unwrap();
    let facts = h100_facts(home.path());
    let mut term = on_terminal(home.path(), &["doctor", "--facts", &facts]);
    term.exp_string(&format!("waiting for pearld at {url} (up to 5 s)"))
        .unwrap();
    term.exp_string(&format!("no answer from {url} within 5 s"))
        .unwrap();
    term.exp_eof().unwrap();
    assert_eq!(exit_code(&term), 0);
    drop(silent);
}

#[test]
fn completion_scripts_for_every_shell() {
    let home = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef jarvis"),
        ("fish", "complete -c jarvis"),
        ("elvish", "edit:completion:arg-completer"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = std::process::Command::new(JARVIS)
            .args(["completions", shell])
            .env("OPENJARVIS_HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("doctor"), "{shell} completes subcommands");
    }
}
