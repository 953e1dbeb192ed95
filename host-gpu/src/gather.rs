//! All probes at once: each runs on its own thread, so gathering takes about
//! as long as the slowest (Docker's round trips or Python's start-up).

use std::path::PathBuf;
use std::thread;

use crate::disk::disk_facts;
use crate::docker::docker_facts;
use crate::facts::{DockerFacts, GpuFacts, HardwareFacts};
use crate::nvml::{self, NvmlReport};
use crate::pearl::{PythonProbe, pearl_facts};
use crate::system::{SystemFacts, system_facts};

/// What [`gather`] probes. The default probes everything with the system's
/// NVML library.
#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// The NVML library to load; `None` means `$JARVIS_NVML_LIBRARY`, else the
    /// system's (see [`nvml::gpus`]).
    pub nvml_library: Option<PathBuf>,
    /// Leave `docker` unknown instead of asking the daemon.
    pub skip_docker: bool,
    /// How the Python fields of `pearl` are learnt (run `python3`, reuse a
    /// cached answer, or leave them unknown).
    pub python: PythonProbe,
    /// Where the Docker daemon's version may be cached (docker.rs).
    pub docker_cache: Option<crate::probe_cache::CacheDir>,
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
        let pearl = scope.spawn(|| pearl_facts(&options.python));
        let docker = (!options.skip_docker)
            .then(|| scope.spawn(|| docker_facts_blocking(options.docker_cache.as_ref())));
        let system = system_facts();

        // A probe that panicked (a broken driver library, say) costs only its
        // own facts.
        let nvml = nvml.join().unwrap_or_else(|_| NvmlReport {
            note: Some("the NVML probe panicked".into()),
            ..NvmlReport::default()
        });
        let (gpus, gpu_note) = match apple_silicon_gpu(&system) {
            Some(apple) if nvml.gpus.is_empty() => (vec![apple], None),
            _ => (nvml.gpus, nvml.note),
        };
        HardwareFacts {
            os: Some(system.os),
            arch: Some(system.arch),
            cpu_model: system.cpu_model,
            cpu_cores: system.cpu_cores,
            ram_mib: system.ram_mib,
            gpus,
            gpu_note,
            nvidia_driver_version: nvml.driver_version,
            cuda_version: nvml.cuda_version,
            disk: disk.join().ok(),
            docker: docker.and_then(|docker| docker.join().ok()),
            pearl: pearl.join().ok(),
        }
    })
}

/// Apple Silicon's integrated GPU, which shares the machine's memory. NVML
/// never sees it, so it is described from the system facts.
fn apple_silicon_gpu(system: &SystemFacts) -> Option<GpuFacts> {
    (system.os == "darwin" && system.arch == "aarch64").then(|| GpuFacts {
        index: 0,
        uuid: None,
        name: system
            .cpu_model
            .clone()
            .unwrap_or_else(|| "Apple Silicon".into()),
        vendor: "apple".into(),
        compute_capability: None,
        memory_total_mib: system.ram_mib,
    })
}

/// The Docker probe on a small runtime of its own, so callers need none.
fn docker_facts_blocking(version_cache: Option<&crate::probe_cache::CacheDir>) -> DockerFacts {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(docker_facts(version_cache)),
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
    fn apple_silicon_has_one_integrated_gpu() {
        let mac = SystemFacts {
            os: "darwin".into(),
            arch: "aarch64".into(),
            cpu_model: Some("Apple M3 Max".into()),
            cpu_cores: Some(16),
            ram_mib: Some(131_072),
        };
        let gpu = apple_silicon_gpu(&mac).unwrap();
        assert_eq!(
            (gpu.name.as_str(), gpu.vendor.as_str()),
            ("Apple M3 Max", "apple")
        );
        assert_eq!(gpu.memory_total_mib, Some(131_072));
        let intel_mac = SystemFacts {
            arch: "x86_64".into(),
            ..mac.clone()
        };
        assert!(apple_silicon_gpu(&intel_mac).is_none());
        let linux = SystemFacts {
            os: "linux".into(),
            ..mac
        };
        assert!(apple_silicon_gpu(&linux).is_none());
    }

    #[test]
    fn skipped_probes_are_unknown() {
        let facts = gather(&GatherOptions {
            nvml_library: Some("/nonexistent/libnvidia-ml.so.1".into()),
            skip_docker: true,
            python: PythonProbe::Skip,
            docker_cache: None,
        });
        assert_eq!(facts.docker, None);
        let pearl = facts.pearl.expect("the gateway is always looked for");
        assert_eq!(pearl.python_packages, None);
        assert!(facts.gpus.is_empty() && facts.gpu_note.is_some());
        assert_eq!(facts.arch.as_deref(), Some(std::env::consts::ARCH));
    }
}
