//! `jarvis mine service install|uninstall`: a systemd unit that runs
//! `jarvis mine supervise` for this home (`supervise::systemd::unit`),
//! checked with `systemd-analyze verify` where that exists, then enabled
//! and started (or stopped, disabled and removed) with `systemctl`.

use super::session::paths;
use super::{CliError, CliResult};
use crate::atomic_file::Mode;
use crate::supervise::systemd::{Scope, unit};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine service install                # your user's systemd, started now and at login
  sudo jarvis mine service install --system  # the system's, started at boot
  jarvis mine service uninstall")]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Write the unit, check it, enable it and start it.
    #[command(after_help = "Examples:
  jarvis mine service install
  sudo jarvis mine service install --system
  jarvis mine service install --no-systemctl   # only write the unit")]
    Install(ScopeArgs),
    /// Stop and disable the unit, and remove it.
    #[command(after_help = "Examples:
  jarvis mine service uninstall
  sudo jarvis mine service uninstall --system")]
    Uninstall(ScopeArgs),
}

#[derive(Args)]
struct ScopeArgs {
    /// The system's manager (/etc/systemd/system, as root) instead of your user's.
    #[arg(long)]
    system: bool,
    /// The unit's name.
    #[arg(long, default_value = "jarvis-mine.service", value_parser = parse_name)]
    name: String,
    /// Only write (or remove) the unit file: do not call systemctl.
    #[arg(long)]
    no_systemctl: bool,
}

fn parse_name(text: &str) -> Result<String, String> {
    let valid = text.ends_with(".service")
        && text.len() > ".service".len()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a unit name: letters, digits, `-`, `_`, `.` and `@`, ending in .service"
        ))
    }
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        if self.system {
            Scope::System
        } else {
            Scope::User
        }
    }

    /// Where the unit file goes.
    fn unit_path(&self) -> Result<PathBuf, CliError> {
        let dir = match self.scope() {
            Scope::System => PathBuf::from("/etc/systemd/system"),
            Scope::User => {
                let config = std::env::var_os("XDG_CONFIG_HOME")
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
                    .ok_or_else(|| {
                        CliError::invalid_input(
                            "neither XDG_CONFIG_HOME nor HOME is set: cannot find your systemd user directory",
                        )
                    })?;
                config.join("systemd/user")
            }
        };
        Ok(dir.join(&self.name))
    }
}

pub fn run(args: &ServiceArgs) -> CliResult {
    match &args.command {
        ServiceCommand::Install(scope) => install(scope),
        ServiceCommand::Uninstall(scope) => uninstall(scope),
    }
}

fn install(args: &ScopeArgs) -> CliResult {
    let paths = paths()?;
    let jarvis = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .map_err(|err| CliError::failure(format!("cannot tell where this jarvis is: {err}")))?;
    let home = paths.home().to_path_buf();
    let env_file = home.join("supervise.env");
    let text = unit(&jarvis, &home, &env_file, args.scope());
    let path = args.unit_path()?;
    crate::atomic_file::write_path(&path, Mode::Fixed(0o644), text.as_bytes())
        .map_err(|err| CliError::failure(format!("cannot write {}: {err}", path.display())))?;
    super::output::println!("wrote {}", path.display());
    if let Some(problem) = verify(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(CliError::failure(format!(
            "systemd-analyze verify refused the unit, so it was removed again:\n{problem}"
        )));
    }
    super::output::println!(
        "secrets are not in the unit: put PEARLD_RPC_PASSWORD=... in {} (mode 0600) if the \
         supervisor must start a session",
        env_file.display()
    );
    if args.no_systemctl {
        return Ok(ExitCode::SUCCESS);
    }
    systemctl(args.scope(), &["daemon-reload"])?;
    systemctl(args.scope(), &["enable", "--now", &args.name])?;
    super::output::println!(
        "enabled and started {}; `systemctl {}status {}` shows it",
        args.name,
        if args.system { "" } else { "--user " },
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

fn uninstall(args: &ScopeArgs) -> CliResult {
    let path = args.unit_path()?;
    if !args.no_systemctl && path.exists() {
        systemctl(args.scope(), &["disable", "--now", &args.name])?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => super::output::println!("removed {}", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            super::output::println!("{} was not installed", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(err) => {
            return Err(CliError::failure(format!(
                "cannot remove {}: {err}",
                path.display()
            )));
        }
    }
    if !args.no_systemctl {
        systemctl(args.scope(), &["daemon-reload"])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `systemd-analyze verify`'s complaints about the unit, if it has any and
/// the tool exists: a failure, or a line about the unit's own file (it
/// warns and still exits 0 for a setting it ignores). Checked as the system
/// manager would, which needs no user session.
fn verify(path: &Path) -> Option<String> {
    let tool = which::which("systemd-analyze").ok()?;
    let output = Command::new(tool).arg("verify").arg(path).output().ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with(&path.display().to_string()))
        .collect();
    if !output.status.success() {
        return Some(format!("{}: {}", output.status, stderr.trim()));
    }
    (!about_unit.is_empty()).then(|| about_unit.join("\n"))
}

fn systemctl(scope: Scope, args: &[&str]) -> Result<(), CliError> {
    let shown = format!(
        "systemctl {}{}",
        scope
            .systemctl_args()
            .iter()
            .map(|a| format!("{a} "))
            .collect::<String>(),
        args.join(" ")
    );
    let output = Command::new("systemctl")
        .args(scope.systemctl_args())
        .args(args)
        .output()
        .map_err(|err| CliError::failure(format!("cannot run `{shown}`: {err}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(CliError::failure(format!(
        "`{shown}` failed: {}; the unit file is in place: run it yourself once systemd \
         runs here (or pass --no-systemctl)",
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
