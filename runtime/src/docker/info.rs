//! What `docker info` says about the daemon: its version and the container
//! runtimes it knows (the NVIDIA Container Toolkit registers `nvidia`).

use std::collections::BTreeSet;

use serde::Serialize;

use super::Docker;
use super::error::DockerError;

/// The parts of `docker info` the host judges. Nothing here can hold a
/// secret (no proxy settings, no registry configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DaemonInfo {
    /// e.g. "24.0.7"; `None` when the daemon did not say.
    pub server_version: Option<String>,
    /// Registered runtimes by name, sorted: "io.containerd.runc.v2",
    /// "nvidia", "runc".
    pub runtimes: Vec<String>,
    pub default_runtime: Option<String>,
    /// Where the daemon reads CDI specs (API 1.44+), which the NVIDIA
    /// toolkit can use instead of a runtime.
    pub cdi_spec_dirs: Vec<String>,
    pub operating_system: Option<String>,
    pub kernel_version: Option<String>,
}

impl DaemonInfo {
    /// Whether an NVIDIA runtime is registered (by name, or as the default).
    pub fn nvidia_runtime(&self) -> bool {
        self.runtimes
            .iter()
            .chain(self.default_runtime.as_ref())
            .any(|name| name.to_ascii_lowercase().contains("nvidia"))
    }
}

impl Docker {
    /// `docker info`: the daemon's version and runtimes.
    pub fn info(&self) -> Result<DaemonInfo, DockerError> {
        let info = self
            .call(
                "asking the Docker daemon for its info",
                self.timeouts.request,
                self.client.info(),
            )?
            .map_err(|error| self.error("asking the Docker daemon for its info", &error))?;
        let runtimes: BTreeSet<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        Ok(DaemonInfo {
            server_version: info.server_version.filter(|v| !v.is_empty()),
            runtimes: runtimes.into_iter().collect(),
            default_runtime: info.default_runtime.filter(|r| !r.is_empty()),
            cdi_spec_dirs: info.cdi_spec_dirs.unwrap_or_default(),
            operating_system: info.operating_system.filter(|v| !v.is_empty()),
            kernel_version: info.kernel_version.filter(|v| !v.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nvidia_runtime_is_found_by_name_or_as_the_default() {
        let mut info = DaemonInfo {
            runtimes: vec!["io.containerd.runc.v2".into(), "runc".into()],
            ..DaemonInfo::default()
        };
        assert!(!info.nvidia_runtime());
        info.default_runtime = Some("nvidia".into());
        assert!(info.nvidia_runtime());
        info.default_runtime = None;
        info.runtimes.push("nvidia".into());
        assert!(info.nvidia_runtime());
    }
}
