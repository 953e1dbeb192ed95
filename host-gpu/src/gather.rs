//! All probes at once: each runs on its own thread, so gathering takes about
//! as long as the slowest (Docker's round trips or Python's start-up).

use std::path::PathBuf;
use std::thread;

use crate::disk::disk_facts;
use crate::docker::docker_facts;
use crate::facts::{DockerFacts, HardwareFacts};
use crate::nvml::{self, NvmlReport};
use crate::pearl::pearl_facts;
use crate::system::system_facts;

/// What [`gather`] probes. The default probes everything with the system's
/// NVML library.
#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// The NVML library to load; `None` means `$JARVIS_NVML_LIBRARY`, else the
    /// system's (see [`nvml::gpus`]).
    pub nvml_library: Option<PathBuf>,
    /// Leave `docker` unknown instead of asking the daemon.
    pub skip_docker: bool,
    /// Leave the Python fields of `pearl` unknown instead of running `python3`.
    pub skip_python: bool,
}

/// Gathers this host's facts. Never fails: what a probe cannot learn is left
/// unknown (`None`), and a missing NVML is explained in `gpu_note`.
///
/// Blocks for up to a few seconds (Docker's 2 s, Python's 5 s at worst); from
/// async code, call it through `spawn_blocking`.
pub fn gather(options: &GatherOptions) -> HardwareFacts {
    thread::scope(|scope| {
        let nvml = scope.spawn(|| nvml::gpus(options.nvml_library.as_deref()));
        let disk = scope.spawn(disk_facts);
        let pearl = scope.spawn(|| pearl_facts(!options.skip_python));
        let docker = (!options.skip_docker).then(|| scope.spawn(docker_facts_blocking));
        let system = system_facts();

        // A probe that panicked (a broken driver library, say) costs only its
        // own facts.
        let nvml = nvml.join().unwrap_or_else(|_| NvmlReport {
            note: Some("the NVML probe panicked".into()),
            ..NvmlReport::default()
        });
        HardwareFacts {
            os: Some(system.os),
            arch: Some(system.arch),
            cpu_model: system.cpu_model,
            cpu_cores: system.cpu_cores,
            ram_mib: system.ram_mib,
            gpus: nvml.gpus,
            gpu_note: nvml.note,
            nvidia_driver_version: nvml.driver_version,
            cuda_version: nvml.cuda_version,
            disk: disk.join().ok(),
            docker: docker.and_then(|docker| docker.join().ok()),
            pearl: pearl.join().ok(),
        }
    })
}

/// The Docker probe on a small runtime of its own, so callers need none.
fn docker_facts_blocking() -> DockerFacts {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(docker_facts()),
        Err(error) => DockerFacts {
            reachable: Some(false),
            version: None,
            error: Some(format!("could not start the Docker client: {error}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_probes_are_unknown() {
        let facts = gather(&GatherOptions {
            nvml_library: Some("/nonexistent/libnvidia-ml.so.1".into()),
            skip_docker: true,
            skip_python: true,
        });
        assert_eq!(facts.docker, None);
        let pearl = facts.pearl.expect("the gateway is always looked for");
        assert_eq!(pearl.python_packages, None);
        assert!(facts.gpus.is_empty() && facts.gpu_note.is_some());
        assert_eq!(facts.arch.as_deref(), Some(std::env::consts::ARCH));
    }
}
