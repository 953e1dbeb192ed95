//! OpenJarvis itself (the PyPI package, 1.0.4), as `scripts/setup-openjarvis`
//! installs it, for tests that run its own sidecar readers against ours.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The version `scripts/setup-openjarvis` pins.
pub const OPENJARVIS_VERSION: &str = "1.0.4";

const MISSING: &str = "OpenJarvis 1.0.4 missing: run scripts/setup-openjarvis \
    (looked in $JARVIS_OPENJARVIS_VENV, else ~/.cache/jarvis-mine/openjarvis-venv)";

/// The virtualenv holding OpenJarvis: `$JARVIS_OPENJARVIS_VENV`, else
/// `~/.cache/jarvis-mine/openjarvis-venv`. Panics, saying how to install it,
/// when it is missing or holds another version.
pub fn openjarvis_venv() -> PathBuf {
    let venv = std::env::var_os("JARVIS_OPENJARVIS_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".cache/jarvis-mine/openjarvis-venv"))
        })
        .unwrap_or_else(|| panic!("{MISSING}"));
    let dist_info = format!("openjarvis-{OPENJARVIS_VERSION}.dist-info");
    let installed = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|python| {
            python
                .path()
                .join("site-packages")
                .join(&dist_info)
                .is_dir()
        });
    assert!(
        installed && venv.join("bin/jarvis").is_file(),
        "{MISSING}; {} has no {dist_info}",
        venv.display()
    );
    venv
}

/// A command of the OpenJarvis virtualenv (`jarvis`, `python`) with nothing
/// of the caller's environment but `PATH` and `DOCKER_HOST`: `home` is its
/// OpenJarvis home (`$OPENJARVIS_HOME`) and `$HOME`, and it never asks PyPI
/// for updates.
pub fn openjarvis_command(program: &str, home: &Path) -> Command {
    let mut command = Command::new(openjarvis_venv().join("bin").join(program));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("OPENJARVIS_HOME", home)
        .env("OPENJARVIS_NO_UPDATE_CHECK", "1")
        .stdin(std::process::Stdio::null());
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    command
}
