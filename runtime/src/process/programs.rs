//! The programs a provider may run: names the host resolves, never a path
//! from the guest. Each program says which arguments and environment
//! variables it takes, checked as text before the policy is asked: a
//! trusted program given `LD_PRELOAD`, `PYTHONPATH` or an argument it would
//! read as code would run the provider's code outside the sandbox.

use crate::home::HomePath;
use std::path::PathBuf;
use std::process::Command;

/// The miner loop this project ships (runtime/miner-loops/), written under
/// the home before each start and run by `python3`.
const MINER_LOOP_SOURCE: &str = include_str!("../../miner-loops/pearl_miner_loop.py");
const MINER_LOOP_FILE: &str = "lib/miner-loops/pearl_miner_loop.py";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Pearl's `pearl-gateway` console script, found on PATH.
    Gateway,
    /// Our miner loop (`pearl_miner_loop.py`), run by `python3` on PATH.
    MinerLoop,
}

/// Variables `pearl-gateway` reads (its `config.py`, reference §9.2).
const GATEWAY_ENV: [&str; 12] = [
    "PEARLD_RPC_URL",
    "PEARLD_RPC_USER",
    "PEARLD_RPC_PASSWORD",
    "PEARLD_MINING_ADDRESS",
    "PEARLD_REFRESH_INTERVAL_SECONDS",
    "MINER_RPC_TRANSPORT",
    "MINER_RPC_HOST",
    "MINER_RPC_PORT",
    "METRICS_BIND",
    "LOGGING_LEVEL",
    "GATEWAY_PROOF_MAX_PENDING",
    "PEARL_GATEWAY_WARMUP_SHAPE",
];

/// The miner loop's options; each takes one value.
const MINER_LOOP_OPTIONS: [&str; 9] = [
    "--backend",
    "--gateway-host",
    "--gateway-port",
    "--m",
    "--n",
    "--k",
    "--rank",
    "--connect-timeout-seconds",
    "--connect-retry-seconds",
];

impl Program {
    pub const ALL: [Program; 2] = [Program::Gateway, Program::MinerLoop];

    pub fn parse(name: &str) -> Option<Program> {
        Program::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name providers and policies use.
    pub fn name(self) -> &'static str {
        match self {
            Program::Gateway => "pearl-gateway",
            Program::MinerLoop => "pearl-miner-loop",
        }
    }

    /// Whether the program reads `variable` (anything else is refused).
    pub fn takes_env(self, variable: &str) -> bool {
        match self {
            Program::Gateway => GATEWAY_ENV.contains(&variable),
            Program::MinerLoop => false,
        }
    }

    /// Checks the arguments as the program would read them.
    pub fn check_args(self, args: &[String]) -> Result<(), String> {
        match self {
            Program::Gateway => {
                let mut words: Vec<&str> = args.iter().map(String::as_str).collect();
                words.retain(|w| *w != "-v");
                if words == ["start"] && args.len() <= 2 {
                    Ok(())
                } else {
                    Err("pearl-gateway takes `start` (and optionally `-v`)".into())
                }
            }
            Program::MinerLoop => {
                let mut rest = args.iter();
                while let Some(option) = rest.next() {
                    if !MINER_LOOP_OPTIONS.contains(&option.as_str()) {
                        return Err(format!(
                            "pearl-miner-loop has no option {:?}; it takes {}",
                            truncated(option),
                            MINER_LOOP_OPTIONS.join(", ")
                        ));
                    }
                    match rest.next() {
                        Some(value) if plain_value(value) => {}
                        _ => {
                            return Err(format!(
                                "{option} needs a value of letters, digits, '.', ':' or '-'"
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The command that runs the program, or why it cannot run here.
    pub fn command(self, home: &HomePath) -> Result<Command, String> {
        match self {
            Program::Gateway => {
                let path = which::which("pearl-gateway").map_err(|_| {
                    format!(
                        "`pearl-gateway` is not on PATH; {}",
                        pearl_catalog::tools::INSTALL_HINT
                    )
                })?;
                Ok(Command::new(path))
            }
            Program::MinerLoop => {
                let python = interpreter()?;
                let script = home.join(MINER_LOOP_FILE);
                install_miner_loop(&script)
                    .map_err(|err| format!("cannot write the miner loop to {script}: {err}"))?;
                let mut command = Command::new(python);
                command.arg("-u").arg(script.absolute());
                Ok(command)
            }
        }
    }
}

/// The interpreter `python3` on PATH runs, by its own account: a version
/// manager's shim (pyenv) is a chain of scripts, and the process the host
/// records must be Python itself.
fn interpreter() -> Result<PathBuf, String> {
    let missing =
        || "`python3` is not on PATH; the miner loop needs Python 3.10 or newer".to_owned();
    let python3 = which::which("python3").map_err(|_| missing())?;
    let out = Command::new(&python3)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {}: {err}", python3.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_absolute() {
        Ok(path)
    } else {
        Ok(python3)
    }
}

/// Writes the shipped miner loop where `python3` runs it, unless the same
/// bytes are there already.
fn install_miner_loop(script: &HomePath) -> std::io::Result<()> {
    if script
        .read()
        .is_ok_and(|bytes| bytes == MINER_LOOP_SOURCE.as_bytes())
    {
        return Ok(());
    }
    if let Some(dir) = script.parent() {
        dir.create_dir_all_with_mode(0o700)?;
    }
    script.write_atomically(
        crate::atomic_file::Mode::Fixed(0o600),
        MINER_LOOP_SOURCE.as_bytes(),
    )
}

/// An option value: a number, a host name or address, a backend name.
fn plain_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
        || value.parse::<f64>().is_ok_and(f64::is_finite)
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn programs_are_names_never_paths() {
        assert_eq!(Program::parse("pearl-gateway"), Some(Program::Gateway));
        assert_eq!(Program::parse("pearl-miner-loop"), Some(Program::MinerLoop));
        for other in [
            "/usr/bin/pearl-gateway",
            "python3",
            "sh",
            "../pearl-gateway",
            "",
        ] {
            assert_eq!(Program::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_gateway_takes_start_and_its_own_variables_only() {
        assert!(Program::Gateway.check_args(&args(&["start"])).is_ok());
        assert!(Program::Gateway.check_args(&args(&["-v", "start"])).is_ok());
        for bad in [
            &["stop"][..],
            &["start", "start"],
            &[],
            &["start", "--config", "/x"],
        ] {
            assert!(Program::Gateway.check_args(&args(bad)).is_err(), "{bad:?}");
        }
        assert!(Program::Gateway.takes_env("PEARLD_RPC_PASSWORD"));
        for bad in [
            "LD_PRELOAD",
            "PYTHONPATH",
            "PATH",
            "PYTHONSTARTUP",
            "OPENJARVIS_MINING_HOME",
        ] {
            assert!(!Program::Gateway.takes_env(bad), "{bad}");
        }
    }

    #[test]
    fn the_miner_loop_takes_its_options_with_plain_values() {
        let ok = args(&[
            "--backend",
            "cpu",
            "--gateway-host",
            "127.0.0.1",
            "--m",
            "256",
        ]);
        assert!(Program::MinerLoop.check_args(&ok).is_ok());
        assert!(
            Program::MinerLoop
                .check_args(&args(&["--connect-retry-seconds", "0.25"]))
                .is_ok()
        );
        for bad in [
            &["-c", "import os"][..],
            &["--m"],
            &["--m", "--n"],
            &["--gateway-host", "x;rm -rf /"],
            &["extra.py"],
            &["--backend", "cpu", "-m", "http.server"],
        ] {
            assert!(
                Program::MinerLoop.check_args(&args(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(!Program::MinerLoop.takes_env("PEARLD_RPC_PASSWORD"));
    }
}
