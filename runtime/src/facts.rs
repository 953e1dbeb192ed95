//! Hardware facts as the guest sees them: the host's record converted to the
//! WIT type, narrowed to the GPUs the configuration selects; and the
//! `--facts FILE` that replaces probing this host.

use crate::bindings::{DockerFacts, Gpu, HardwareFacts, PearlFacts};
use crate::bounded_read::{self, InputFile, ReadError};
use std::path::{Path, PathBuf};

/// A `--facts` file: even a 64-GPU box's facts are a few KiB.
pub const FACTS_FILE: InputFile = InputFile {
    noun: "a facts file",
    expected: "a JSON file of hardware facts (see docs/facts.md)",
    max_bytes: 4 << 20,
    header: None,
};

/// Why a `--facts` file was not used.
#[derive(Debug, thiserror::Error)]
pub enum FactsFileError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error(
        "{path}:{line}:{column}: invalid facts file: {message} (the schema is in docs/facts.md)"
    )]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Reads hardware facts from a JSON file (docs/facts.md).
pub fn load(path: &Path) -> Result<host_gpu::HardwareFacts, FactsFileError> {
    let text = bounded_read::read_text(path, &FACTS_FILE)?;
    host_gpu::HardwareFacts::from_json(&text).map_err(|err| FactsFileError::Invalid {
        path: path.to_owned(),
        line: err.line(),
        column: err.column(),
        message: err.to_string(),
    })
}

/// `[mining.extra].cuda_visible_devices`: GPU indexes or UUIDs, comma-separated.
/// Empty means every GPU (the reference's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuSelection(Option<String>);

impl GpuSelection {
    pub fn new(spec: Option<&str>) -> Self {
        GpuSelection(
            spec.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        )
    }

    pub fn spec(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub fn selects(&self, gpu: &host_gpu::GpuFacts) -> bool {
        self.includes(gpu.index, gpu.uuid.as_deref())
    }

    /// Whether the GPU with this NVML index and UUID is selected: what
    /// `detect`'s facts keep, and what the `gpu-telemetry` import reads.
    pub fn includes(&self, index: u32, uuid: Option<&str>) -> bool {
        match self.ids() {
            None => true,
            Some(ids) => ids.iter().any(|id| {
                id.parse::<u32>().is_ok_and(|wanted| wanted == index)
                    || uuid.is_some_and(|uuid| uuid.eq_ignore_ascii_case(id))
            }),
        }
    }

    /// The selected GPUs one by one (indexes or UUIDs, as written); `None`
    /// is every GPU.
    pub fn ids(&self) -> Option<Vec<&str>> {
        self.0.as_deref().map(|spec| {
            spec.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .collect()
        })
    }
}

/// Converts host facts to the WIT record a provider receives.
pub fn to_guest(facts: &host_gpu::HardwareFacts, selection: &GpuSelection) -> HardwareFacts {
    let docker = facts.docker.clone().unwrap_or_default();
    let pearl = facts.pearl.clone().unwrap_or_default();
    let disk = facts.disk.clone().unwrap_or_default();
    HardwareFacts {
        os: facts.os.clone(),
        arch: facts.arch.clone(),
        cpu_model: facts.cpu_model.clone(),
        cpu_cores: facts.cpu_cores,
        ram_mib: facts.ram_mib,
        gpus: guest_gpus(&facts.gpus, selection),
        visible_devices: selection.spec().map(str::to_owned),
        gpu_note: facts.gpu_note.clone(),
        nvidia_driver_version: facts.nvidia_driver_version.clone(),
        cuda_version: facts.cuda_version.clone(),
        disk_free_mib: disk.free_mib,
        disk_path: disk.path,
        docker: DockerFacts {
            reachable: docker.reachable,
            version: docker.version,
        },
        pearl: PearlFacts {
            gateway_on_path: pearl.gateway_on_path,
            python_packages: pearl.python_packages,
            torch_installed: pearl.torch_installed,
            torch_mps_built: pearl.torch_mps_built,
            torch_mps_available: pearl.torch_mps_available,
        },
    }
}

/// The GPUs `selection` names, as a provider receives them.
pub fn guest_gpus(gpus: &[host_gpu::GpuFacts], selection: &GpuSelection) -> Vec<Gpu> {
    gpus.iter()
        .filter(|gpu| selection.selects(gpu))
        .map(|gpu| Gpu {
            index: gpu.index,
            uuid: gpu.uuid.clone(),
            name: gpu.name.clone(),
            vendor: gpu.vendor.clone(),
            compute_capability: gpu.compute_capability.clone(),
            memory_total_mib: gpu.memory_total_mib,
        })
        .collect()
}

/// The built-in providers, in the order `auto` considers them after the
/// one the hardware suggests.
pub const BUILTIN_PROVIDERS: [&str; 3] = ["vllm-pearl", "apple-mps-pearl", "cpu-pearl"];

/// What `init --provider auto` picks: the provider the hardware suggests
/// (reference §2.4) if it can start here, else the first built-in that can
/// (`can_start` is its sandboxed `detect`). `Err` carries the suggested one
/// when none can, so its problems are the ones to show.
pub fn auto_provider(
    facts: &host_gpu::HardwareFacts,
    can_start: impl Fn(&str) -> bool,
) -> Result<&'static str, &'static str> {
    let preferred = default_provider(facts);
    std::iter::once(preferred)
        .chain(BUILTIN_PROVIDERS.into_iter().filter(|id| *id != preferred))
        .find(|id| can_start(id))
        .ok_or(preferred)
}

/// The provider a host like this would use (reference §2.4), whether or not
/// it can start here.
pub fn default_provider(facts: &host_gpu::HardwareFacts) -> &'static str {
    let os = facts.os.as_deref().unwrap_or_default();
    let has = |vendor: &str| {
        facts
            .gpus
            .iter()
            .any(|gpu| gpu.vendor.eq_ignore_ascii_case(vendor))
    };
    match os {
        "darwin" if has("apple") => "apple-mps-pearl",
        "linux" if has("nvidia") => "vllm-pearl",
        _ => "cpu-pearl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_gpu::GpuFacts;

    fn gpu(index: u32, uuid: &str) -> GpuFacts {
        GpuFacts {
            index,
            uuid: Some(uuid.into()),
            ..GpuFacts::default()
        }
    }

    #[test]
    fn selection_by_index_or_uuid() {
        let facts = host_gpu::HardwareFacts {
            gpus: vec![gpu(0, "GPU-a"), gpu(1, "GPU-b"), gpu(2, "GPU-c")],
            ..Default::default()
        };
        let pick = |spec: Option<&str>| -> Vec<u32> {
            to_guest(&facts, &GpuSelection::new(spec))
                .gpus
                .iter()
                .map(|g| g.index)
                .collect()
        };
        assert_eq!(pick(None), [0, 1, 2]);
        assert_eq!(pick(Some("")), [0, 1, 2]);
        assert_eq!(pick(Some("0, 2")), [0, 2]);
        assert_eq!(pick(Some("gpu-b")), [1]);
        assert!(pick(Some("7")).is_empty());
        let guest = to_guest(&facts, &GpuSelection::new(Some("1")));
        assert_eq!(guest.visible_devices.as_deref(), Some("1"));
    }

    #[test]
    fn a_selection_lists_its_ids_and_includes_by_index_or_uuid() {
        assert_eq!(GpuSelection::new(None).ids(), None);
        assert_eq!(GpuSelection::new(Some("  ")).ids(), None);
        let selection = GpuSelection::new(Some(" 2, GPU-b ,,"));
        assert_eq!(selection.ids(), Some(vec!["2", "GPU-b"]));
        assert!(selection.includes(2, None));
        assert!(selection.includes(7, Some("gpu-B")));
        assert!(!selection.includes(1, Some("GPU-a")));
        // Nothing but separators selects nothing.
        let nothing = GpuSelection::new(Some(","));
        assert_eq!(nothing.ids(), Some(vec![]));
        assert!(!nothing.includes(0, Some("GPU-a")));
        assert!(GpuSelection::new(None).includes(5, None));
    }

    #[test]
    fn auto_prefers_the_hardwares_provider_but_only_one_that_can_start() {
        let linux = host_gpu::HardwareFacts {
            os: Some("linux".into()),
            ..Default::default()
        };
        assert_eq!(auto_provider(&linux, |_| true), Ok("cpu-pearl"));
        assert_eq!(auto_provider(&linux, |_| false), Err("cpu-pearl"));
        let h100 = host_gpu::HardwareFacts {
            os: Some("linux".into()),
            gpus: vec![GpuFacts {
                vendor: "nvidia".into(),
                ..GpuFacts::default()
            }],
            ..Default::default()
        };
        assert_eq!(auto_provider(&h100, |_| true), Ok("vllm-pearl"));
        assert_eq!(
            auto_provider(&h100, |id| id == "cpu-pearl"),
            Ok("cpu-pearl")
        );
    }
}
