//! Starting a program detached: its own session and process group (so it
//! outlives the command and a terminal's signals, and its group can be
//! stopped as one), stdin from /dev/null, stdout and stderr appended to its
//! log, and the host's ownership labels in its environment.

use super::identity::{self, Observed};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Parts of a variable's name that mark it a secret: such variables of
/// this process's environment are not passed on, so a program gets a
/// secret only as a reference the policy granted.
const SECRET_MARKS: [&str; 7] = [
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "SECRET",
    "API_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

/// The environment a new process inherits from `jarvis`: everything but
/// secret-looking variables and the host's own labels.
fn inherited() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(name, _)| passed_on(&name.to_string_lossy()))
}

fn passed_on(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    !name.starts_with(super::LABEL_PREFIX) && !SECRET_MARKS.iter().any(|m| name.contains(m))
}

/// Spawns `command` with `env` added to the inherited environment and
/// `log` as its output. Returns the child and how the host sees it.
pub fn spawn(
    mut command: Command,
    args: &[String],
    env: &[(String, String)],
    log: std::fs::File,
) -> std::io::Result<(Child, Observed)> {
    command
        .args(args)
        .env_clear()
        .envs(inherited())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the
    // parent; it is all the child does between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // `spawn` returns once the program was exec'd (std reports a failed
    // exec through a pipe), so the process is in the table now, with its
    // start time, unless it already ended.
    let mut child = command.spawn()?;
    match identity::observe(child.id()) {
        Some(observed) => Ok((child, observed)),
        None => match child.try_wait()? {
            Some(status) => Err(std::io::Error::other(format!(
                "it exited at once ({status})"
            ))),
            // Not recordable, so not left running.
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other("cannot read its start time"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::passed_on;

    #[test]
    fn secrets_and_labels_are_not_inherited() {
        for name in [
            "PATH",
            "HOME",
            "PYTHONPATH",
            "LANG",
            "VIRTUAL_ENV",
            "HTTPS_PROXY",
        ] {
            assert!(passed_on(name), "{name}");
        }
        for name in [
            "PEARLD_RPC_PASSWORD",
            "HF_TOKEN",
            "hf_token",
            "HUGGING_FACE_HUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "OPENAI_API_KEY",
            "MY_PRIVATE_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "OPENJARVIS_MINING_SESSION",
        ] {
            assert!(!passed_on(name), "{name}");
        }
    }
}
