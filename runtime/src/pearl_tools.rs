//! Pearl's own command-line tools, `pearld` (the full node), `oyster` (the
//! wallet daemon) and `prlctl` (the RPC client): where they are on this host,
//! and the command lines `jarvis pearl` runs (reference §5.2).
//!
//! **Where a tool is looked for**, first match wins ([`Search`]):
//!
//! 1. `PATH`;
//! 2. `<root>/bin/<name>` for the roots `--pearl-home`, `$PEARL_HOME`,
//!    `./pearl`, `../pearl`, `~/pearl` (a Pearl checkout, whose build puts the
//!    tools in `bin/`), as the reference does;
//! 3. `$XDG_BIN_HOME`, else `~/.local/bin`: where Pearl's install script puts
//!    them, which is not on every user's PATH (the reference misses it).
//!
//! A candidate counts only if it is a regular file (through symlinks) that
//! this user may execute.
//!
//! **Secrets.** A password passed to a tool (`-P`, `--password`, any
//! `--…pass…` option) is on the tool's command line, as Pearl's tools take
//! it; it never appears in what we print or log: [`Invocation`]'s
//! [`Display`](std::fmt::Display) shows `[REDACTED]` in its place
//! ([`redact_args`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::redact::REDACTED;

/// One of Pearl's tools that `jarvis pearl` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `pearld`, the full node (`jarvis pearl node`).
    Node,
    /// `oyster`, the wallet daemon (`jarvis pearl wallet`).
    Wallet,
    /// `prlctl`, the RPC client for both (`jarvis pearl ctl`, `address`).
    Ctl,
}

impl Tool {
    /// In the order `jarvis pearl doctor` lists them.
    pub const ALL: [Tool; 3] = [Tool::Node, Tool::Wallet, Tool::Ctl];

    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            Tool::Node => "pearld",
            Tool::Wallet => "oyster",
            Tool::Ctl => "prlctl",
        }
    }

    /// What it is, for people.
    pub fn role(self) -> &'static str {
        match self {
            Tool::Node => "full node",
            Tool::Wallet => "wallet daemon",
            Tool::Ctl => "RPC client",
        }
    }
}

/// Where a candidate directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A directory on `PATH`.
    Path,
    /// `--pearl-home DIR`: `DIR/bin`.
    PearlHomeFlag,
    /// `$PEARL_HOME/bin`.
    PearlHomeEnv,
    /// `./pearl/bin`.
    CurrentDir,
    /// `../pearl/bin`.
    ParentDir,
    /// `~/pearl/bin`.
    HomeDir,
    /// `$XDG_BIN_HOME`, else `~/.local/bin` (Pearl's install script).
    UserBin,
}

impl Source {
    /// How `doctor` and the messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Source::Path => "PATH",
            Source::PearlHomeFlag => "--pearl-home",
            Source::PearlHomeEnv => "$PEARL_HOME",
            Source::CurrentDir => "./pearl",
            Source::ParentDir => "../pearl",
            Source::HomeDir => "~/pearl",
            Source::UserBin => "~/.local/bin",
        }
    }
}

/// A directory a tool is looked for in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: Source,
    pub dir: PathBuf,
}

/// Where to look, in order: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    candidates: Vec<Candidate>,
    /// A root named by `--pearl-home` or `$PEARL_HOME` that is not a
    /// directory: almost always a typo, worth a warning.
    missing_roots: Vec<(Source, PathBuf)>,
}

/// The inputs of a [`Search`]: the process's environment, or a test's.
#[derive(Debug, Clone, Default)]
pub struct SearchInputs {
    /// `$PATH`.
    pub path: Option<OsString>,
    /// `--pearl-home`.
    pub pearl_home_flag: Option<PathBuf>,
    /// `$PEARL_HOME`.
    pub pearl_home_env: Option<OsString>,
    /// The working directory (for `./pearl`, `../pearl`).
    pub current_dir: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_BIN_HOME`.
    pub xdg_bin_home: Option<PathBuf>,
}

impl SearchInputs {
    /// This process's environment, with `--pearl-home` if given. Empty
    /// variables count as unset.
    pub fn from_env(pearl_home_flag: Option<PathBuf>) -> SearchInputs {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        SearchInputs {
            path: var("PATH"),
            pearl_home_flag,
            pearl_home_env: var("PEARL_HOME"),
            current_dir: std::env::current_dir().ok(),
            home: var("HOME").map(PathBuf::from),
            xdg_bin_home: var("XDG_BIN_HOME").map(PathBuf::from),
        }
    }
}

impl Search {
    /// The candidate directories for these inputs, in order.
    pub fn new(inputs: &SearchInputs) -> Search {
        let mut search = Search::default();
        if let Some(path) = &inputs.path {
            for dir in std::env::split_paths(path) {
                // An empty entry means the working directory to a shell;
                // `./pearl` is the only working-directory place we search.
                if !dir.as_os_str().is_empty() {
                    search.push(Source::Path, dir);
                }
            }
        }
        let absolute = |dir: PathBuf| match &inputs.current_dir {
            Some(cwd) if dir.is_relative() => cwd.join(dir),
            _ => dir,
        };
        let named_roots = [
            (Source::PearlHomeFlag, inputs.pearl_home_flag.clone()),
            (
                Source::PearlHomeEnv,
                inputs.pearl_home_env.clone().map(PathBuf::from),
            ),
        ];
        for (source, root) in named_roots {
            if let Some(root) = root {
                let root = absolute(root);
                if !root.is_dir() {
                    search.missing_roots.push((source, root.clone()));
                }
                search.push(source, root.join("bin"));
            }
        }
        if let Some(cwd) = &inputs.current_dir {
            search.push(Source::CurrentDir, cwd.join("pearl").join("bin"));
            // The working directory is physical (getcwd), so its parent is `..`.
            let parent = cwd.parent().unwrap_or(cwd);
            search.push(Source::ParentDir, parent.join("pearl").join("bin"));
        }
        if let Some(home) = &inputs.home {
            search.push(Source::HomeDir, home.join("pearl").join("bin"));
        }
        match (&inputs.xdg_bin_home, &inputs.home) {
            (Some(bin), _) => search.push(Source::UserBin, absolute(bin.clone())),
            (None, Some(home)) => search.push(Source::UserBin, home.join(".local").join("bin")),
            (None, None) => {}
        }
        search
    }

    /// The search of this process's environment.
    pub fn from_env(pearl_home_flag: Option<PathBuf>) -> Search {
        Search::new(&SearchInputs::from_env(pearl_home_flag))
    }

    /// Adds `dir` unless it is already a candidate (`~/pearl` is `./pearl`
    /// in the home directory): looked in once, under its first source.
    fn push(&mut self, source: Source, dir: PathBuf) {
        if !self.candidates.iter().any(|c| c.dir == dir) {
            self.candidates.push(Candidate { source, dir });
        }
    }

    /// Every directory looked in, in order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// `--pearl-home` or `$PEARL_HOME` naming something that is not a
    /// directory.
    pub fn missing_roots(&self) -> &[(Source, PathBuf)] {
        &self.missing_roots
    }

    /// The first executable `tool` among the candidates.
    pub fn resolve(&self, tool: Tool) -> Result<Found, NotFound> {
        for candidate in &self.candidates {
            let path = candidate.dir.join(tool.binary());
            if is_executable_file(&path) {
                tracing::debug!(
                    "{}: found {} ({})",
                    tool.binary(),
                    path.display(),
                    candidate.source.label()
                );
                return Ok(Found {
                    tool,
                    path,
                    source: candidate.source,
                });
            }
            tracing::debug!("{}: not in {}", tool.binary(), candidate.dir.display());
        }
        Err(NotFound {
            tool,
            searched: self.candidates.clone(),
            missing_roots: self.missing_roots.clone(),
        })
    }
}

/// A regular file (through symlinks) this user may execute.
fn is_executable_file(path: &Path) -> bool {
    if !path.metadata().is_ok_and(|meta| meta.is_file()) {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::access(c_path.as_ptr(), libc::X_OK) == 0 }
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// A tool and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub tool: Tool,
    pub path: PathBuf,
    pub source: Source,
}

/// A tool found nowhere; its message says where we looked and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub tool: Tool,
    pub searched: Vec<Candidate>,
    pub missing_roots: Vec<(Source, PathBuf)>,
}

/// What to do when a tool is missing (the reference's advice, plus the
/// install script's directory).
pub const INSTALL_HINT: &str = "Set PEARL_HOME=/path/to/pearl (a Pearl checkout whose bin/ holds the tools), pass --pearl-home DIR, or put Pearl's bin/ directory on PATH; Pearl's install script puts the tools in ~/.local/bin.";

impl NotFound {
    /// The places looked in (see [`places`]).
    pub fn places(&self) -> String {
        places(&self.searched)
    }
}

/// The places `candidates` name, for people: `PATH, --pearl-home
/// (/x/bin), …` (the PATH entries as one).
pub fn places(candidates: &[Candidate]) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut on_path = false;
    for candidate in candidates {
        if candidate.source == Source::Path {
            on_path = true;
        } else {
            shown.push(format!(
                "{} ({})",
                candidate.source.label(),
                candidate.dir.display()
            ));
        }
    }
    shown.insert(0, if on_path { "PATH" } else { "PATH (unset)" }.to_owned());
    shown.join(", ")
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pearl binary '{}' not found (looked in {}).",
            self.tool.binary(),
            self.places()
        )?;
        for (source, root) in &self.missing_roots {
            write!(
                f,
                "\n{} {} is not a directory.",
                source.label(),
                root.display()
            )?;
        }
        write!(f, "\n{INSTALL_HINT}")
    }
}

impl std::error::Error for NotFound {}

// ---------------------------------------------------------------------------
// Command lines.

/// A program and its arguments, shown with secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Invocation {
    /// `found`'s tool with these arguments, passed on unchanged.
    pub fn passthrough(found: &Found, args: &[OsString]) -> Invocation {
        Invocation {
            program: found.path.clone(),
            args: args.to_vec(),
        }
    }

    /// The command to spawn or exec.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

impl fmt::Display for Invocation {
    /// Shell-quoted, every password replaced by `[REDACTED]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program.to_string_lossy()))?;
        for arg in redact_args(&self.args) {
            f.write_str(" ")?;
            if arg.contains(REDACTED) {
                // Ours: shown as it is, not quoted as if it were typed.
                f.write_str(&arg)?;
            } else {
                f.write_str(&shell_quote(&arg))?;
            }
        }
        Ok(())
    }
}

/// Whether a long option (its name after `--`, before any `=`) carries a
/// password: `--password`, `--rpcpass`, `--walletpass`, `--rpclimitpass`…
fn is_secret_long(name: &str) -> bool {
    name.to_ascii_lowercase().contains("pass")
}

/// `args` as text with the value of every password option replaced by
/// `[REDACTED]`: the argument after `-P` or a long option whose name holds
/// `pass` (`--rpcpass X`), and the attached forms `-PX` and `--rpcpass=X`.
/// Pearl's tools (btcd's flag parser) read `-P` as the password everywhere.
pub fn redact_args(args: &[OsString]) -> Vec<String> {
    let mut shown = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        let text = arg.to_string_lossy();
        if std::mem::take(&mut hide_next) {
            shown.push(REDACTED.to_owned());
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, _)) if is_secret_long(name) => {
                    shown.push(format!("--{name}={REDACTED}"));
                    continue;
                }
                None if !long.is_empty() && is_secret_long(long) => hide_next = true,
                _ => {}
            }
        } else if let Some(value) = text.strip_prefix("-P") {
            if value.is_empty() {
                hide_next = true;
            } else {
                let value = value.strip_prefix('=').map_or("", |_| "=");
                shown.push(format!("-P{value}{REDACTED}"));
                continue;
            }
        }
        shown.push(text.into_owned());
    }
    shown
}

/// `text` as a POSIX shell word: as it is when it is plain, else in single
/// quotes.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `jarvis pearl address`'s options (reference §5.2), with its defaults in
/// [`AddressOptions::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressOptions {
    /// The wallet's RPC user (`-u`).
    pub user: String,
    /// The wallet's RPC password (`-P`).
    pub password: String,
    /// The wallet's RPC `host:port` (`-s`), not a URL.
    pub server: String,
    /// Plain HTTP (`--notls`).
    pub no_tls: bool,
    /// With TLS, accept the wallet's self-signed certificate
    /// (`--skipverify`).
    pub skip_verify: bool,
}

/// The Oyster wallet's mainnet RPC port.
pub const WALLET_SERVER: &str = "localhost:44207";

impl Default for AddressOptions {
    /// The reference's user, password and server; TLS without verifying
    /// the certificate, as Pearl's runbook does (the wallet serves TLS by
    /// default; the reference's `--notls` default fails against it).
    fn default() -> Self {
        AddressOptions {
            user: "rpcuser".to_owned(),
            password: "rpcpass".to_owned(),
            server: WALLET_SERVER.to_owned(),
            no_tls: false,
            skip_verify: true,
        }
    }
}

impl AddressOptions {
    /// `prlctl`'s arguments: `--wallet` (without it prlctl asks the node),
    /// the transport flag, `-u U -P P -s S getnewaddress`.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--wallet".into()];
        if self.no_tls {
            args.push("--notls".into());
        } else if self.skip_verify {
            args.push("--skipverify".into());
        }
        for arg in [
            "-u",
            &self.user,
            "-P",
            &self.password,
            "-s",
            &self.server,
            "getnewaddress",
        ] {
            args.push(arg.into());
        }
        args
    }
}

/// `--server`'s check: `host:port`, which prlctl wants, not a URL.
pub fn parse_server(text: &str) -> Result<String, String> {
    if text.contains("://") {
        let bare = text
            .split_once("://")
            .map_or(text, |(_, rest)| rest)
            .trim_end_matches('/');
        return Err(format!("prlctl takes host:port, not a URL: use {bare}"));
    }
    if text.trim().is_empty() {
        return Err(format!("give host:port, e.g. {WALLET_SERVER}"));
    }
    Ok(text.to_owned())
}

// ---------------------------------------------------------------------------
// Running.

/// The exit code a shell would report for a child's status: its own code,
/// or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return (code & 0xff) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128u8.wrapping_add((signal & 0x7f) as u8);
        }
    }
    1
}

/// A tool that was found but could not be started.
#[derive(Debug)]
pub struct RunError {
    pub program: PathBuf,
    pub error: std::io::Error,
}

impl RunError {
    /// The file vanished since it was found, or names a missing
    /// interpreter (`#!`); otherwise it exists but cannot be run.
    pub fn not_found(&self) -> bool {
        self.error.kind() == std::io::ErrorKind::NotFound
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot run {}: {}", self.program.display(), self.error)
    }
}

impl std::error::Error for RunError {}

/// Hands the process over to the tool, which inherits stdin, stdout,
/// stderr and signals, and whose exit code is therefore ours: on Unix the
/// tool replaces this process (`exec`), so this returns only if it could not
/// be started; elsewhere it is waited for and its exit code returned.
pub fn hand_over(invocation: &Invocation) -> Result<u8, RunError> {
    let mut command = invocation.command();
    let failed = |error| RunError {
        program: invocation.program.clone(),
        error,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(failed(command.exec()))
    }
    #[cfg(not(unix))]
    {
        command.status().map(exit_code).map_err(failed)
    }
}

/// Runs the tool to its end with stdin closed, capturing its output.
pub fn run_captured(invocation: &Invocation) -> Result<std::process::Output, RunError> {
    invocation
        .command()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| RunError {
            program: invocation.program.clone(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[cfg(unix)]
    fn tool_at(dir: &Path, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn inputs(root: &Path) -> SearchInputs {
        SearchInputs {
            path: Some(std::env::join_paths([root.join("p1"), root.join("p2")]).unwrap()),
            pearl_home_flag: Some(root.join("flag")),
            pearl_home_env: Some(root.join("env").into()),
            current_dir: Some(root.join("work")),
            home: Some(root.join("home")),
            xdg_bin_home: None,
        }
    }

    #[test]
    fn candidates_follow_the_reference_order_then_the_user_bin() {
        let root = Path::new("/r");
        let search = Search::new(&inputs(root));
        let got: Vec<(Source, PathBuf)> = search
            .candidates()
            .iter()
            .map(|c| (c.source, c.dir.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Source::Path, root.join("p1")),
                (Source::Path, root.join("p2")),
                (Source::PearlHomeFlag, root.join("flag/bin")),
                (Source::PearlHomeEnv, root.join("env/bin")),
                (Source::CurrentDir, root.join("work/pearl/bin")),
                (Source::ParentDir, root.join("pearl/bin")),
                (Source::HomeDir, root.join("home/pearl/bin")),
                (Source::UserBin, root.join("home/.local/bin")),
            ]
        );
        // Neither root exists: both are reported.
        assert_eq!(search.missing_roots().len(), 2);
    }

    #[test]
    fn relative_roots_are_taken_from_the_working_directory_and_xdg_bin_wins() {
        let search = Search::new(&SearchInputs {
            pearl_home_flag: Some("co".into()),
            current_dir: Some("/w".into()),
            home: Some("/h".into()),
            xdg_bin_home: Some("/xdg".into()),
            ..SearchInputs::default()
        });
        let dirs: Vec<&Path> = search
            .candidates()
            .iter()
            .map(|c| c.dir.as_path())
            .collect();
        assert_eq!(
            dirs,
            [
                Path::new("/w/co/bin"),
                Path::new("/w/pearl/bin"),
                Path::new("/pearl/bin"),
                Path::new("/h/pearl/bin"),
                Path::new("/xdg"),
            ]
        );
    }

    #[test]
    fn a_directory_is_looked_in_once_under_its_first_source() {
        let search = Search::new(&SearchInputs {
            path: Some("/h/pearl/bin".into()),
            current_dir: Some("/h".into()),
            home: Some("/h".into()),
            ..SearchInputs::default()
        });
        let got: Vec<Source> = search.candidates().iter().map(|c| c.source).collect();
        // /h/pearl/bin is on PATH, and is both ./pearl and ~/pearl.
        assert_eq!(got, [Source::Path, Source::ParentDir, Source::UserBin]);
    }

    #[cfg(unix)]
    #[test]
    fn the_first_executable_file_wins() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        let search = Search::new(&inputs(root));
        // Nowhere yet.
        let missing = search.resolve(Tool::Node).unwrap_err();
        let message = missing.to_string();
        assert!(
            message.starts_with("Pearl binary 'pearld' not found"),
            "{message}"
        );
        assert!(message.contains("PEARL_HOME=/path/to/pearl"), "{message}");
        assert!(message.contains("is not a directory"), "{message}");
        // Last place first, then earlier places take over one by one.
        let places = [
            (root.join("home/.local/bin"), Source::UserBin),
            (root.join("home/pearl/bin"), Source::HomeDir),
            (root.join("pearl/bin"), Source::ParentDir),
            (root.join("work/pearl/bin"), Source::CurrentDir),
            (root.join("env/bin"), Source::PearlHomeEnv),
            (root.join("flag/bin"), Source::PearlHomeFlag),
            (root.join("p2"), Source::Path),
        ];
        fs::create_dir_all(root.join("work")).unwrap();
        for (dir, source) in places {
            let path = tool_at(&dir, "pearld", 0o755);
            let found = Search::new(&inputs(root)).resolve(Tool::Node).unwrap();
            assert_eq!(found.source, source, "{}", dir.display());
            assert_eq!(
                fs::canonicalize(&found.path).unwrap(),
                fs::canonicalize(&path).unwrap()
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn not_executable_and_directories_do_not_count() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        tool_at(&root.join("p1"), "prlctl", 0o644);
        fs::create_dir_all(root.join("p1/oyster")).unwrap();
        let search = Search::new(&inputs(root));
        assert!(search.resolve(Tool::Ctl).is_err());
        assert!(search.resolve(Tool::Wallet).is_err());
        let good = tool_at(&root.join("p2"), "prlctl", 0o700);
        assert_eq!(search.resolve(Tool::Ctl).unwrap().path, good);
    }

    #[test]
    fn address_builds_the_runbook_command() {
        let args = AddressOptions::default().args();
        assert_eq!(
            args,
            os(&[
                "--wallet",
                "--skipverify",
                "-u",
                "rpcuser",
                "-P",
                "rpcpass",
                "-s",
                "localhost:44207",
                "getnewaddress"
            ])
        );
        let plain = AddressOptions {
            user: "alice".into(),
            password: "secret".into(),
            server: "localhost:44209".into(),
            no_tls: true,
            skip_verify: true,
        };
        assert_eq!(
            plain.args(),
            os(&[
                "--wallet",
                "--notls",
                "-u",
                "alice",
                "-P",
                "secret",
                "-s",
                "localhost:44209",
                "getnewaddress"
            ])
        );
        let verified = AddressOptions {
            skip_verify: false,
            ..AddressOptions::default()
        };
        assert!(
            !verified
                .args()
                .iter()
                .any(|a| a == "--skipverify" || a == "--notls")
        );
    }

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let shown = redact_args(&os(&[
            "--wallet",
            "-P",
            "s1",
            "-Ps2",
            "-P=s3",
            "--rpcpass",
            "s4",
            "--walletpass=s5",
            "--password",
            "s6",
            "-u",
            "user",
            "getinfo",
            "--RPCPASS",
            "s7",
        ]));
        assert_eq!(
            shown,
            [
                "--wallet",
                "-P",
                REDACTED,
                &format!("-P{REDACTED}"),
                &format!("-P={REDACTED}"),
                "--rpcpass",
                REDACTED,
                &format!("--walletpass={REDACTED}"),
                "--password",
                REDACTED,
                "-u",
                "user",
                "getinfo",
                "--RPCPASS",
                REDACTED,
            ]
        );
        // A trailing -P hides nothing and breaks nothing.
        assert_eq!(redact_args(&os(&["-P"])), ["-P"]);
    }

    #[test]
    fn an_invocation_shows_quoted_and_redacted() {
        let invocation = Invocation {
            program: "/opt/pearl/bin/prlctl".into(),
            args: AddressOptions {
                password: "it's secret".into(),
                user: "a b".into(),
                ..AddressOptions::default()
            }
            .args(),
        };
        let shown = invocation.to_string();
        assert_eq!(
            shown,
            "/opt/pearl/bin/prlctl --wallet --skipverify -u 'a b' -P [REDACTED] -s localhost:44207 getnewaddress"
        );
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn server_is_host_and_port() {
        assert_eq!(
            parse_server("localhost:44209"),
            Ok("localhost:44209".into())
        );
        let err = parse_server("https://localhost:44207/").unwrap_err();
        assert!(err.contains("use localhost:44207"), "{err}");
        assert!(parse_server(" ").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_are_the_shells() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(42 << 8)), 42);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGTERM (15).
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        let gone = RunError {
            program: "/x".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(gone.not_found());
        let denied = RunError {
            program: "/x".into(),
            error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(!denied.not_found());
    }
}
