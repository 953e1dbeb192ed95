//! Terminal injection: a provider whose version, description, reason and
//! log carry terminal controls (tests/guests/terminal), and arguments that
//! do. Human output shows every control as a visible escape, so no raw
//! control byte reaches the terminal; `--json` carries the exact text.

use jarvis_mine_tests::run::jarvis_mine;
use jarvis_mine_tests::terminal_component;
use jarvis_mine_tests::terminal_payload::PAYLOAD;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    /// A home with the terminal guest installed and a facts file.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("mining/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(providers.join("terminal.wasm"), terminal_component()).unwrap();
        std::fs::write(
            dir.path().join("facts.json"),
            r#"{"os":"linux","arch":"x86_64","gpus":[]}"#,
        )
        .unwrap();
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn facts(&self) -> String {
        self.path().join("facts.json").display().to_string()
    }

    /// A copy of the guest outside the providers directory.
    fn component_file(&self) -> PathBuf {
        let path = self.path().join("downloads/terminal.wasm");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, terminal_component()).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        jarvis_mine(JARVIS, self.path(), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs; asserts the exit code and that neither stream has a raw control.
    fn inert(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_inert(&stdout, &format!("{args:?} stdout"));
        assert_inert(&stderr, &format!("{args:?} stderr"));
        (stdout, stderr)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// No C0 control but `\n`, no DEL, no C1 control, no bidi control.
fn assert_inert(text: &str, what: &str) {
    for (at, c) in text.char_indices() {
        let control = (c < ' ' && c != '\n')
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !control,
            "{what}: raw {c:?} at byte {at}: {:?}",
            &text[at.saturating_sub(40)..text.len().min(at + 40)]
        );
    }
}

/// What the payload looks like escaped, in part: the OSC title and the
/// erase-line that tried to overwrite a verdict.
const SHOWN: [&str; 4] = [
    "\\x1b]0;owned title\\x07",
    "\\r\\x1b[2K",
    "\\u{9b}2K",
    "\\u{202e}desrever",
];

fn assert_shown_escaped(text: &str, what: &str) {
    for shown in SHOWN {
        assert!(text.contains(shown), "{what}: no {shown:?} in {text}");
    }
}

#[test]
fn doctor_shows_the_reason_escaped_on_its_own_line() {
    let home = Home::new();
    let facts = home.facts();
    let (stdout, stderr) = home.inert(&["doctor", "--facts", &facts], 0);
    let lines: Vec<&str> = stdout.lines().collect();
    let rows: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with("terminal"))
        .collect();
    // Rows start at column 2; wrapped text under the info column (25)
    // cannot pass for one.
    let at_row_column: Vec<&usize> = rows
        .iter()
        .filter(|&&i| lines[i].starts_with("  terminal"))
        .collect();
    assert_eq!(at_row_column.len(), 1, "one row, no faked one: {stdout}");
    assert!(
        rows.iter()
            .all(|&i| i == *at_row_column[0] || lines[i].starts_with(&" ".repeat(25))),
        "{stdout}"
    );
    let rows = [*at_row_column[0]];
    assert!(lines[rows[0]].contains("UNSUPPORTED"), "{}", lines[rows[0]]);
    // The reason, wrapped under the info column (at spaces only).
    let reason: Vec<&str> = lines[rows[0] + 1..]
        .iter()
        .take_while(|line| line.starts_with(&" ".repeat(25)))
        .map(|line| line.trim())
        .collect();
    // Wrapping folds runs of spaces at a break; compare with single spaces.
    let reason = reason.join(" ");
    let single: Vec<&str> = reason.split(' ').filter(|w| !w.is_empty()).collect();
    let single = single.join(" ");
    assert!(reason.starts_with("needs a GPU"), "{reason}");
    assert!(single.contains("\\n terminal SUPPORTED"), "{reason}");
    assert_shown_escaped(&reason, "doctor");
    // The provider's log line, on stderr, is escaped as well.
    assert!(stderr.contains("log line"), "{stderr}");
    let report = home.json(&["doctor", "--json", "--facts", &facts]);
    let terminal = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "terminal")
        .unwrap();
    assert_eq!(terminal["supported"], false);
    assert_eq!(
        terminal["reason"],
        format!("needs a GPU{PAYLOAD}\n  terminal  SUPPORTED")
    );
}

#[test]
fn providers_list_and_inspect_show_the_texts_escaped() {
    let home = Home::new();
    let (listing, _) = home.inert(&["providers", "list"], 0);
    assert_shown_escaped(&listing, "list");
    let file = home.component_file();
    let file = file.to_str().unwrap();
    for target in ["terminal", file] {
        let (shown, _) = home.inert(&["providers", "inspect", target], 0);
        assert_shown_escaped(&shown, target);
        assert!(
            shown.contains("harmless\\x1b]0;owned title"),
            "the description: {shown}"
        );
        let capability_lines = shown
            .lines()
            .filter(|l| l.trim_start().starts_with("capabilities"))
            .count();
        assert_eq!(capability_lines, 1, "the description faked a line: {shown}");
        let json = home.json(&["providers", "inspect", "--json", target]);
        assert_eq!(json["version"], format!("6.6.6{PAYLOAD}"));
        assert_eq!(
            json["description"],
            format!("harmless{PAYLOAD}\n  capabilities  none requested")
        );
    }
    let json = home.json(&["providers", "list", "--json"]);
    let terminal = json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "terminal")
        .unwrap();
    assert_eq!(terminal["version"], format!("6.6.6{PAYLOAD}"));
}

#[test]
fn the_install_consent_screen_shows_the_texts_escaped() {
    let home = Home::new();
    std::fs::remove_file(home.path().join("mining/providers/terminal.wasm")).unwrap();
    let file = home.component_file();
    let file = file.to_str().unwrap();
    // Without a terminal and without --yes: the screen, then a refusal.
    let (screen, _) = home.inert(&["providers", "install", file], 2);
    assert_shown_escaped(&screen, "consent screen");
    let (screen, _) = home.inert(&["providers", "install", "--yes", file], 0);
    assert_shown_escaped(&screen, "install --yes");
    assert!(
        screen.contains("Installed terminal 6.6.6\\x1b]0;"),
        "{screen}"
    );
}

/// On a real terminal, with colour: the only escape sequences are our own
/// SGR styles, and the hostile ones (title, erase, conceal) are text.
#[test]
fn on_a_terminal_only_our_styles_reach_it() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    }
    let on_terminal = |home: &Home, command: &str| {
        let mut child = Command::new("script")
            .args(["-qec", &format!("{JARVIS} mine {command}"), "/dev/null"])
            .env_clear()
            .env("OPENJARVIS_HOME", home.path())
            .env(
                "OPENJARVIS_MINING_POLICY",
                home.path().join("no-system-policy.toml"),
            )
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // Doctor with the guest installed; install's consent screen without it.
    let installed = Home::new();
    let fresh = Home::new();
    std::fs::remove_file(fresh.path().join("mining/providers/terminal.wasm")).unwrap();
    for (home, command) in [
        (&installed, format!("doctor --facts {}", installed.facts())),
        (
            &fresh,
            format!("providers install {}", fresh.component_file().display()),
        ),
    ] {
        let screen = on_terminal(home, &command);
        assert!(screen.contains("owned title"), "{command}: {screen:?}");
        // The terminal turns \n into \r\n; our SGR styles are the only escapes.
        let plain = screen.replace("\r\n", "\n");
        let sgr = regex_free_sgr_strip(&plain);
        assert_inert(&sgr, &command);
        assert!(!plain.contains("\x1b[8m") && !plain.contains("\x1b]"));
    }
}

/// Removes `ESC [ digits;… m` sequences, asserting every ESC starts one.
fn regex_free_sgr_strip(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let body = after.strip_prefix('[').unwrap_or_else(|| {
            panic!(
                "an escape that is not CSI: {:?}",
                &after[..after.len().min(20)]
            )
        });
        let end = body
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap();
        assert_eq!(&body[end..end + 1], "m", "not SGR: {:?}", &body[..end + 1]);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn arguments_echoed_in_errors_are_escaped() {
    let home = Home::new();
    let hostile = "\x1b]0;owned title\x07\r\x1b[2K\u{9b}2K\u{202e}x";
    let (_, stderr) = home.inert(&["policy", "show", "--provider", hostile], 2);
    assert!(
        stderr.contains("no provider '\\x1b]0;owned title"),
        "{stderr}"
    );
    let missing = home.path().join(format!("{hostile}.json"));
    let missing = missing.to_str().unwrap();
    let (_, stderr) = home.inert(&["doctor", "--facts", missing], 2);
    assert!(stderr.contains("\\x1b]0;owned title\\x07\\r"), "{stderr}");
    let (_, stderr) = home.inert(&["policy", "check", missing], 2);
    assert!(stderr.contains("does not exist"), "{stderr}");
    // A value clap itself refuses, quoted in its usage error.
    let (_, stderr) = home.inert(&["--memory-limit", hostile, "models"], 2);
    assert!(stderr.contains("--memory-limit"), "{stderr}");
}
