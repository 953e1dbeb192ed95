//! systemd: the notify protocol while `supervise` runs (`READY=1` once the
//! first look is taken, `STATUS=` lines, `WATCHDOG=1` pings at half the
//! unit's `WatchdogSec`, `STOPPING=1`), and the unit `jarvis mine service
//! install` writes. Outside systemd (`NOTIFY_SOCKET` unset) the notices are
//! no-ops.

use sd_notify::NotifyState;
use std::path::Path;
use std::time::Duration;

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line (what `systemctl status` shows).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `WATCHDOG=1`: the loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to ping systemd's watchdog: half its `WatchdogSec`, when the
/// unit has one.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|limit| limit / 2)
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {err}");
    }
}

/// Where a unit is installed and managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The user's own manager (`systemctl --user`): the default.
    User,
    /// The system manager (`/etc/systemd/system`, root).
    System,
}

impl Scope {
    /// `systemctl`'s arguments for this scope.
    pub fn systemctl_args(self) -> &'static [&'static str] {
        match self {
            Scope::User => &["--user"],
            Scope::System => &[],
        }
    }

    fn wanted_by(self) -> &'static str {
        match self {
            Scope::User => "default.target",
            Scope::System => "multi-user.target",
        }
    }
}

/// The unit that runs `jarvis mine supervise` for the home `home`:
/// `Type=notify` with a watchdog, restarted when it fails (not when it
/// exits 0, which it does when `jarvis mine stop` ended the session).
/// Secrets are never in it: `EnvironmentFile=` names `env_file`, a file
/// the user writes (`PEARLD_RPC_PASSWORD=...`, mode 0600), optional.
pub fn unit(jarvis: &Path, home: &Path, env_file: &Path, scope: Scope) -> String {
    // systemd expands `%` specifiers everywhere: a literal one is `%%`.
    let escape = |text: String| text.replace('%', "%%");
    let quote = |text: String| {
        let text = escape(text);
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    };
    let mut unit = format!(
        "[Unit]
Description=Pearl mining supervisor (jarvis mine supervise) for {home}
Documentation=https://github.com/open-jarvis/jarvis-mine/blob/main/docs/user-guide.md
After=docker.service network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={jarvis} mine supervise
Environment={env}
EnvironmentFile=-{env_file}
WatchdogSec=60
Restart=on-failure
RestartSec=10
TimeoutStopSec=30
",
        home = home.display(),
        jarvis = quote(jarvis.display().to_string()),
        env = quote(format!("OPENJARVIS_HOME={}", home.display())),
        // One path to the end of the line: no quotes here.
        env_file = escape(env_file.display().to_string()),
    );
    if scope == Scope::System {
        unit.push_str("User=root\n");
    }
    unit.push_str(&format!("\n[Install]\nWantedBy={}\n", scope.wanted_by()));
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_supervise_for_the_home_and_holds_no_secret() {
        let text = unit(
            Path::new("/usr/local/bin/jarvis"),
            Path::new("/home/ada/.openjarvis"),
            Path::new("/home/ada/.openjarvis/supervise.env"),
            Scope::User,
        );
        assert!(text.contains("ExecStart=\"/usr/local/bin/jarvis\" mine supervise\n"));
        assert!(text.contains("Environment=\"OPENJARVIS_HOME=/home/ada/.openjarvis\"\n"));
        assert!(text.contains("EnvironmentFile=-/home/ada/.openjarvis/supervise.env\n"));
        assert!(text.contains("Type=notify\n") && text.contains("WatchdogSec=60\n"));
        assert!(text.contains("Restart=on-failure\n"));
        assert!(text.ends_with("[Install]\nWantedBy=default.target\n"));
        assert!(!text.contains("PEARLD_RPC_PASSWORD"));
        let system = unit(
            Path::new("/opt/jarvis dir/jarvis"),
            Path::new("/srv/mine"),
            Path::new("/srv/mine/supervise.env"),
            Scope::System,
        );
        assert!(system.contains("ExecStart=\"/opt/jarvis dir/jarvis\" mine supervise\n"));
        let percent = unit(
            Path::new("/opt/j%h/jarvis"),
            Path::new("/srv/100%"),
            Path::new("/srv/100%/supervise.env"),
            Scope::User,
        );
        assert!(percent.contains("ExecStart=\"/opt/j%%h/jarvis\" mine supervise\n"));
        assert!(percent.contains("EnvironmentFile=-/srv/100%%/supervise.env\n"));
        assert!(system.ends_with("[Install]\nWantedBy=multi-user.target\n"));
    }
}
