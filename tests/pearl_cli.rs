//! `jarvis pearl` end to end: the real binary with stand-ins for Pearl's
//! tools, small shell scripts that record their arguments and exit with the
//! code they are told, placed on PATH or in the places a Pearl checkout is
//! looked for. Each test has its own temporary tree: the working directory
//! (for `./pearl`, `../pearl`), `HOME` (for `~/pearl`, `~/.local/bin`) and
//! PATH are inside it, and nothing else of the environment is passed.

use jarvis_mine_tests::run::{Run, output_within};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const PASSWORD: &str = "hunter2secret";
/// What the stand-in prlctl answers to `getnewaddress`.
const ADDRESS: &str = "prl1qstandinaddress0000";

/// A stand-in: prints `ran <its path>`, records its arguments one per line
/// in `<its path>.argv`, exits with `$FAKE_EXIT` (0 by default). With
/// `$FAKE_ECHO` set it also prints its arguments on both streams, as a tool
/// that quotes its command line in an error would.
const STAND_IN: &str = r#"#!/bin/sh
: > "$0.argv"
for arg in "$@"; do printf '%s\n' "$arg" >> "$0.argv"; done
echo "ran $0"
if [ -n "$FAKE_ECHO" ]; then
  echo "args: $*"
  echo "args: $*" >&2
fi
case " $* " in *" getnewaddress "*) echo "ADDRESS" ;; esac
exit "${FAKE_EXIT:-0}"
"#;

/// One test's tree: `path/` (the only PATH entry), `work/` (the working
/// directory), `home/` (HOME).
struct Tree {
    _temp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let temp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(temp.path()).unwrap();
        for dir in ["path", "work", "home"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        Tree { _temp: temp, root }
    }

    fn dir(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Writes the stand-in `name` into `dir` (relative to the root).
    fn stand_in(&self, dir: &str, name: &str) -> PathBuf {
        let dir = self.dir(dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, STAND_IN.replace("ADDRESS", ADDRESS)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `jarvis ARGS` (ARGS start with `pearl` or a global flag) in this
    /// tree, with an empty environment but PATH and HOME, and no stdin.
    fn jarvis(&self, args: &[&str]) -> Command {
        let mut command = Command::new(JARVIS);
        command
            .args(args)
            .env_clear()
            .env("PATH", self.dir("path"))
            .env("HOME", self.dir("home"))
            .env("OPENJARVIS_HOME", self.dir("home/.openjarvis"))
            .current_dir(self.dir("work"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.jarvis(args);
        command.envs(env.iter().copied());
        Run::new(
            format!("jarvis {}", args.join(" ")),
            output_within(&mut command, Duration::from_secs(60)),
        )
    }
}

/// The arguments the stand-in at `path` last received.
fn argv(path: &Path) -> Vec<String> {
    let mut file = path.as_os_str().to_owned();
    file.push(".argv");
    let text =
        fs::read_to_string(&file).unwrap_or_else(|e| panic!("{} did not run: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

#[test]
fn path_wins_then_each_fallback_in_turn() {
    let tree = Tree::new();
    let env_home = tree.dir("env-home");
    let flag_home = tree.dir("flag-home");
    // Every place, in the order they are searched.
    let places = [
        (tree.stand_in("path", "prlctl"), "PATH"),
        (tree.stand_in("flag-home/bin", "prlctl"), "--pearl-home"),
        (tree.stand_in("env-home/bin", "prlctl"), "$PEARL_HOME"),
        (tree.stand_in("work/pearl/bin", "prlctl"), "./pearl"),
        (tree.stand_in("pearl/bin", "prlctl"), "../pearl"),
        (tree.stand_in("home/pearl/bin", "prlctl"), "~/pearl"),
        (tree.stand_in("home/.local/bin", "prlctl"), "~/.local/bin"),
    ];
    let flag = flag_home.to_str().unwrap();
    let env = [("PEARL_HOME", env_home.to_str().unwrap())];
    for (path, source) in &places {
        let run = tree.run_with(&["pearl", "ctl", "--pearl-home", flag, "getinfo"], &env);
        run.code(0).stdout_has(&format!("ran {}", path.display()));
        assert_eq!(argv(path), ["getinfo"], "{source}");
        // doctor says the same.
        let doctor = tree
            .run_with(&["pearl", "doctor", "--json", "--pearl-home", flag], &env)
            .code(0)
            .json();
        let prlctl = &doctor["tools"][2];
        assert_eq!(prlctl["name"], "prlctl");
        assert_eq!(prlctl["source"], *source);
        assert_eq!(prlctl["path"], path.to_str().unwrap());
        // Gone: the next place takes over.
        fs::remove_file(path).unwrap();
    }
    tree.run_with(&["pearl", "ctl", "--pearl-home", flag], &env)
        .code(127)
        .stderr_has("Pearl binary 'prlctl' not found");
}

#[test]
fn xdg_bin_home_replaces_the_local_bin() {
    let tree = Tree::new();
    tree.stand_in("home/.local/bin", "oyster");
    let xdg = tree.stand_in("xdg-bin", "oyster");
    let dir = tree.dir("xdg-bin");
    tree.run_with(
        &["pearl", "wallet"],
        &[("XDG_BIN_HOME", dir.to_str().unwrap())],
    )
    .code(0)
    .stdout_has(&format!("ran {}", xdg.display()));
}

#[test]
fn arguments_pass_through_unchanged() {
    let tree = Tree::new();
    let pearld = tree.stand_in("path", "pearld");
    let oyster = tree.stand_in("path", "oyster");
    let prlctl = tree.stand_in("path", "prlctl");

    // Options the tool has and we do not: from the first one on, all its.
    tree.run(&[
        "pearl",
        "ctl",
        "--wallet",
        "-u",
        "me",
        "getinfo",
        "--help",
        "-v",
        "--pearl-home",
        "x",
    ])
    .code(0);
    assert_eq!(
        argv(&prlctl),
        [
            "--wallet",
            "-u",
            "me",
            "getinfo",
            "--help",
            "-v",
            "--pearl-home",
            "x"
        ]
    );

    // Ours before --, the tool's after it (even our own flag names).
    let home = tree.dir("elsewhere");
    fs::create_dir_all(&home).unwrap();
    tree.run(&[
        "pearl",
        "node",
        "--pearl-home",
        home.to_str().unwrap(),
        "--",
        "--help",
        "-v",
        "--pearl-home",
        "--",
        "two words",
        "",
    ])
    .code(0);
    assert_eq!(
        argv(&pearld),
        ["--help", "-v", "--pearl-home", "--", "two words", ""]
    );

    // No arguments at all.
    tree.run(&["pearl", "wallet"]).code(0);
    assert!(argv(&oyster).is_empty());

    // -h before the tool's arguments is ours.
    tree.run(&["pearl", "node", "-h"])
        .code(0)
        .stdout_has("Examples:");
}

#[test]
fn the_tools_exit_code_is_ours() {
    let tree = Tree::new();
    for tool in ["pearld", "oyster", "prlctl"] {
        tree.stand_in("path", tool);
    }
    for (command, code) in [
        ("node", "0"),
        ("wallet", "3"),
        ("ctl", "42"),
        ("node", "255"),
    ] {
        let run = tree.run_with(&["pearl", command, "stop"], &[("FAKE_EXIT", code)]);
        run.code(code.parse().unwrap()).stdout_has("ran ");
        // Its output is its own: nothing of ours added.
        assert_eq!(run.stderr, "", "{run}");
    }
}

#[test]
fn address_builds_the_wallet_call() {
    let tree = Tree::new();
    let prlctl = tree.stand_in("path", "prlctl");

    // The runbook's command by default.
    tree.run(&["pearl", "address"]).code(0).stdout_has(ADDRESS);
    assert_eq!(
        argv(&prlctl),
        [
            "--wallet",
            "--skipverify",
            "-u",
            "rpcuser",
            "-P",
            "rpcpass",
            "-s",
            "localhost:44207",
            "getnewaddress"
        ]
    );

    tree.run(&[
        "pearl",
        "address",
        "-u",
        "alice",
        "-P",
        "secret",
        "-s",
        "localhost:44209",
        "--notls",
    ])
    .code(0);
    assert_eq!(
        argv(&prlctl),
        [
            "--wallet",
            "--notls",
            "-u",
            "alice",
            "-P",
            "secret",
            "-s",
            "localhost:44209",
            "getnewaddress"
        ]
    );

    // Verified TLS: neither flag. The later of --notls/--tls wins.
    tree.run(&["pearl", "address", "--notls", "--tls", "--verify"])
        .code(0);
    assert!(
        !argv(&prlctl)
            .iter()
            .any(|a| a == "--notls" || a == "--skipverify"),
        "{:?}",
        argv(&prlctl)
    );

    // The password from the environment.
    tree.run_with(
        &["pearl", "address"],
        &[("PEARL_WALLET_PASSWORD", "fromenv1")],
    )
    .code(0);
    assert!(argv(&prlctl).contains(&"fromenv1".to_owned()));

    // prlctl's failure is ours, and said.
    tree.run_with(&["pearl", "address"], &[("FAKE_EXIT", "3")])
        .code(3)
        .stderr_has("prlctl exited with 3");

    // A URL where host:port belongs is refused before anything runs.
    fs::remove_file(format!("{}.argv", prlctl.display())).unwrap();
    tree.run(&["pearl", "address", "-s", "https://localhost:44207"])
        .code(2)
        .stderr_has("use localhost:44207");
    assert!(!tree.dir("path/prlctl.argv").exists());
}

#[test]
fn a_password_is_never_shown() {
    let tree = Tree::new();
    let prlctl = tree.stand_in("path", "prlctl");
    let echo = [("FAKE_ECHO", "1")];
    for verbose in [None, Some("-v"), Some("-vv")] {
        let mut args: Vec<&str> = verbose.into_iter().collect();
        args.extend(["pearl", "address", "-u", "alice", "-P", PASSWORD]);
        let run = tree.run_with(&args, &echo);
        run.code(0).stdout_has(ADDRESS).stdout_has("[REDACTED]");
        assert!(
            !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
            "{run}"
        );
        // It did reach prlctl.
        assert!(argv(&prlctl).contains(&PASSWORD.to_owned()));
        if verbose.is_some() {
            run.stderr_has("-P [REDACTED] -s localhost:44207 getnewaddress");
        }
    }

    // From the environment, and when prlctl fails.
    let env = [
        ("PEARL_WALLET_PASSWORD", PASSWORD),
        ("FAKE_ECHO", "1"),
        ("FAKE_EXIT", "5"),
    ];
    let run = tree.run_with(&["-v", "pearl", "address"], &env);
    run.code(5);
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "{run}"
    );
    let help = tree.run_with(&["pearl", "address", "--help"], &env);
    help.code(0).stdout_has("PEARL_WALLET_PASSWORD");
    assert!(!help.stdout.contains(PASSWORD), "{help}");

    // Passed through: the -v line hides it in every spelling (the tool's own
    // output is the tool's; this stand-in prints no arguments).
    let run = tree.run(&[
        "-v",
        "pearl",
        "ctl",
        "--wallet",
        "-P",
        PASSWORD,
        &format!("--rpcpass={PASSWORD}"),
        "getbalance",
    ]);
    run.code(0)
        .stderr_has("running ")
        .stderr_has("--wallet -P [REDACTED] --rpcpass=[REDACTED] getbalance");
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "{run}"
    );

    // A usage error does not quote it either.
    let run = tree.run(&["pearl", "address", "-P", PASSWORD, "--bogus"]);
    run.code(2);
    assert!(!run.stderr.contains(PASSWORD), "{run}");

    // Nor does a missing prlctl.
    fs::remove_file(&prlctl).unwrap();
    let run = tree.run(&["-v", "pearl", "address", "-P", PASSWORD]);
    run.code(127);
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "{run}"
    );
}

#[test]
fn a_missing_tool_is_explained() {
    let tree = Tree::new();
    let typo = tree.dir("no-such-checkout");
    for (command, binary) in [
        ("node", "pearld"),
        ("wallet", "oyster"),
        ("ctl", "prlctl"),
        ("address", "prlctl"),
    ] {
        let run = tree.run(&["pearl", command, "--pearl-home", typo.to_str().unwrap()]);
        run.code(127)
            .stderr_has(&format!("Pearl binary '{binary}' not found"))
            .stderr_has("Set PEARL_HOME=/path/to/pearl")
            .stderr_has("put Pearl's bin/ directory on PATH")
            .stderr_has(&format!(
                "--pearl-home {} is not a directory",
                typo.display()
            ))
            .stderr_has(&format!(
                "~/pearl ({})",
                tree.dir("home/pearl/bin").display()
            ));
        assert_eq!(run.stdout, "", "{run}");
    }
}

#[test]
fn a_tool_that_cannot_start_is_126_or_127() {
    let tree = Tree::new();
    let script = |name: &str, text: String| {
        let path = tree.dir("path").join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    // Its interpreter is missing: "not found", as a shell says.
    let pearld = script("pearld", "#!/no/such/interpreter\n".to_owned());
    tree.run(&["pearl", "node"])
        .code(127)
        .stderr_has(&format!("cannot run {}", pearld.display()));
    // Its interpreter is a directory: found, but it cannot run.
    script("oyster", format!("#!{}\n", tree.dir("work").display()));
    tree.run(&["pearl", "wallet"])
        .code(126)
        .stderr_has("cannot run");
}

#[test]
fn doctor_says_what_is_found_where() {
    let tree = Tree::new();
    let pearld = tree.stand_in("path", "pearld");
    let prlctl = tree.stand_in("home/pearl/bin", "prlctl");

    let run = tree.run(&["pearl", "doctor"]);
    run.code(0)
        .stdout_has("Pearl CLI Doctor")
        .stdout_has(&format!("pearld   {} (from PATH) OK", pearld.display()))
        .stdout_has("oyster   not found FAIL")
        .stdout_has(&format!("prlctl   {} (from ~/pearl) OK", prlctl.display()))
        .stdout_has("Set PEARL_HOME=/path/to/pearl");
    // --strict: a missing tool is a failed check.
    tree.run(&["pearl", "doctor", "--strict"])
        .code(1)
        .stderr_has("not found: oyster");

    let json = tree.run(&["pearl", "doctor", "--json"]).code(0).json();
    assert_eq!(json["ready"], false);
    assert_eq!(json["tools"][1]["name"], "oyster");
    assert_eq!(json["tools"][1]["found"], false);
    assert!(json["tools"][1]["path"].is_null());
    assert_eq!(json["searched"][0]["source"], "PATH");

    tree.stand_in("work/pearl/bin", "oyster");
    let run = tree.run(&["pearl", "doctor", "--strict"]);
    run.code(0).stdout_has("(from ./pearl) OK");
    assert!(!run.stdout.contains("FAIL"), "{run}");
}

#[test]
fn help_lists_the_pearl_commands() {
    let tree = Tree::new();
    tree.run(&["--help"])
        .code(0)
        .stdout_has("pearl        Access Pearl node, wallet, and RPC tools");
    let run = tree.run(&["pearl", "--help"]);
    run.code(0);
    for command in ["doctor", "node", "wallet", "ctl", "address"] {
        run.stdout_has(&format!("  {command} "));
    }
}
