//! Steps 1, 2 and 4 of the runbook: the GPUs (`nvidia-smi`: NVML, or a
//! facts file), the Docker daemon and its NVIDIA runtime (`docker info`),
//! and the free space where models are cached (`df -h ~/.cache`).

use super::criteria::{Criterion, DISK, DOCKER, GPUS, NVIDIA_RUNTIME};
use crate::docker::{DaemonInfo, Docker};
use crate::doctor::{MIN_FREE_DISK_GIB, gib, gpu_memory, gpu_qualifies};
use crate::facts::GpuSelection;
use host_gpu::HardwareFacts;

/// Where the facts came from, as the details say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// This host, through NVML (and its disk and Docker probes).
    Probed,
    /// A facts file standing in for this host's hardware.
    File(&'a std::path::Path),
}

impl Source<'_> {
    /// How a detail ends: `probed` on this host, else which file.
    fn suffix(self, probed: &str) -> String {
        match self {
            Source::Probed => probed.to_owned(),
            Source::File(path) => format!(" (from {})", path.display()),
        }
    }
}

/// `NVIDIA GPUs`: the GPUs the config selects (all when it selects none)
/// are NVIDIA Hopper GPUs with the model's memory, as vllm-pearl needs.
pub fn gpus(
    facts: &HardwareFacts,
    source: Source,
    selection: &GpuSelection,
    model: &str,
) -> Criterion {
    let selected: Vec<&host_gpu::GpuFacts> = facts
        .gpus
        .iter()
        .filter(|gpu| selection.selects(gpu))
        .collect();
    if selected.is_empty() {
        let why = match (&facts.gpu_note, selection.spec()) {
            (_, Some(spec)) if !facts.gpus.is_empty() => {
                format!("cuda_visible_devices = {spec} selects none of this host's GPUs")
            }
            (Some(note), _) => format!("no NVIDIA GPU: {note}"),
            (None, _) => "no NVIDIA GPU".to_owned(),
        };
        return Criterion::fail(GPUS, format!("{why}{}", source.suffix(" (NVML)")));
    }
    let describe = |gpu: &host_gpu::GpuFacts| {
        let cc = gpu.compute_capability.as_deref().unwrap_or("cc unknown");
        let memory = gpu
            .memory_total_mib
            .map_or_else(|| "memory unknown".to_owned(), gpu_memory);
        format!("GPU {} {} ({cc}, {memory})", gpu.index, gpu.name)
    };
    let unfit: Vec<String> = selected
        .iter()
        .filter(|gpu| !gpu_qualifies(gpu, model))
        .map(|gpu| describe(gpu))
        .collect();
    let driver = facts
        .nvidia_driver_version
        .as_ref()
        .map(|driver| {
            let cuda = facts
                .cuda_version
                .as_deref()
                .map(|v| format!(", CUDA {v}"))
                .unwrap_or_default();
            format!("; driver {driver}{cuda}")
        })
        .unwrap_or_default();
    if unfit.is_empty() {
        let all: Vec<String> = selected.iter().map(|gpu| describe(gpu)).collect();
        Criterion::pass(
            GPUS,
            format!("{}{driver}{}", all.join(", "), source.suffix(" (NVML)")),
        )
    } else {
        Criterion::fail(
            GPUS,
            format!(
                "cannot mine {model} (needs compute capability 9.0, H100/H200, and the model's memory): {}{}; \
                 leave such GPUs out with [mining.extra].cuda_visible_devices",
                unfit.join(", "),
                source.suffix(" (NVML)")
            ),
        )
    }
}

/// `Docker daemon`: it answers `docker info`.
pub fn daemon(docker: &Result<std::sync::Arc<Docker>, String>) -> (Criterion, Option<DaemonInfo>) {
    let docker = match docker {
        Ok(docker) => docker,
        Err(err) => return (Criterion::fail(DOCKER, err.clone()), None),
    };
    match docker.info() {
        Ok(info) => {
            let detail = format!(
                "running {} (API {}) at {}; runtimes: {}",
                info.server_version
                    .as_deref()
                    .unwrap_or("(version unknown)"),
                docker.api_version(),
                docker.host(),
                if info.runtimes.is_empty() {
                    "none listed".to_owned()
                } else {
                    info.runtimes.join(", ")
                }
            );
            (Criterion::pass(DOCKER, detail), Some(info))
        }
        Err(err) => (Criterion::fail(DOCKER, err.to_string()), None),
    }
}

/// `NVIDIA runtime`: the NVIDIA Container Toolkit is registered with the
/// daemon, or a GPU container ran (the toolkit's hook serves `--gpus`
/// without a registered runtime). With a facts file standing in for this
/// host's GPUs, a missing runtime is not judged.
pub fn nvidia_runtime(
    info: Option<&DaemonInfo>,
    source: Source,
    gpu_container_ran: bool,
) -> Criterion {
    let Some(info) = info else {
        return Criterion::skip(
            NVIDIA_RUNTIME,
            "not checked: the Docker daemon did not answer",
        );
    };
    let listed = if info.runtimes.is_empty() {
        "none listed".to_owned()
    } else {
        info.runtimes.join(", ")
    };
    if info.nvidia_runtime() {
        let default = info
            .default_runtime
            .as_deref()
            .map(|d| format!(", default {d}"))
            .unwrap_or_default();
        return Criterion::pass(
            NVIDIA_RUNTIME,
            format!("registered (runtimes: {listed}{default})"),
        );
    }
    if gpu_container_ran {
        return Criterion::pass(
            NVIDIA_RUNTIME,
            format!("no nvidia runtime registered (runtimes: {listed}), but a GPU container ran"),
        );
    }
    let missing =
        format!("no nvidia runtime is registered with this Docker daemon (runtimes: {listed})");
    match source {
        Source::File(path) => Criterion::skip(
            NVIDIA_RUNTIME,
            format!(
                "{missing}; not judged: {} stands in for this host's GPUs",
                path.display()
            ),
        ),
        Source::Probed => Criterion::fail(
            NVIDIA_RUNTIME,
            format!(
                "{missing}: install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure \
                 --runtime=docker && sudo systemctl restart docker`"
            ),
        ),
    }
}

/// `Model cache disk`: at least 200 GiB free where the model is cached (the
/// Hugging Face cache), as doctor's `Free space` row measures it.
pub fn disk(facts: &HardwareFacts, source: Source) -> Criterion {
    let disk = facts.disk.clone().unwrap_or_default();
    let Some(free_mib) = disk.free_mib else {
        return match source {
            Source::File(path) => {
                Criterion::skip(DISK, format!("not in the facts file {}", path.display()))
            }
            Source::Probed => Criterion::fail(
                DISK,
                "could not measure the Hugging Face cache's free space",
            ),
        };
    };
    let at = disk
        .path
        .as_deref()
        .map(|p| format!(" at {p}"))
        .unwrap_or_default();
    let free = gib(free_mib);
    Criterion::judged(
        DISK,
        free_mib / 1024 >= MIN_FREE_DISK_GIB,
        format!(
            "{free} free{at} (needs ≥ {MIN_FREE_DISK_GIB} GiB){}",
            source.suffix("")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(gpus: &[(&str, &str, u64)]) -> HardwareFacts {
        HardwareFacts {
            gpus: gpus
                .iter()
                .enumerate()
                .map(|(index, (name, cc, mib))| host_gpu::GpuFacts {
                    index: index as u32,
                    uuid: None,
                    name: (*name).into(),
                    vendor: "nvidia".into(),
                    compute_capability: Some((*cc).into()),
                    memory_total_mib: Some(*mib),
                })
                .collect(),
            nvidia_driver_version: Some("550.54.15".into()),
            cuda_version: Some("12.4".into()),
            ..HardwareFacts::default()
        }
    }

    const MODEL: &str = pearl_catalog::DEFAULT_PEARL_MODEL;

    #[test]
    fn an_h100_passes_and_a_4090_beside_it_fails_unless_left_out() {
        let h100 = facts(&[("NVIDIA H100 80GB HBM3", "9.0", 81_559)]);
        let all = GpuSelection::new(None);
        let pass = gpus(&h100, Source::Probed, &all, MODEL);
        assert!(pass.passed, "{pass:?}");
        assert_eq!(
            pass.detail,
            "GPU 0 NVIDIA H100 80GB HBM3 (9.0, 79.6 GiB (80 GB class)); driver 550.54.15, CUDA 12.4 (NVML)"
        );
        let mixed = facts(&[
            ("NVIDIA H100 80GB HBM3", "9.0", 81_559),
            ("NVIDIA GeForce RTX 4090", "8.9", 24_564),
        ]);
        let fail = gpus(&mixed, Source::Probed, &all, MODEL);
        assert!(
            fail.failed() && fail.detail.contains("GPU 1 NVIDIA GeForce RTX 4090"),
            "{fail:?}"
        );
        let first = GpuSelection::new(Some("0"));
        assert!(gpus(&mixed, Source::Probed, &first, MODEL).passed);
        let none = gpus(&HardwareFacts::default(), Source::Probed, &all, MODEL);
        assert_eq!(none.detail, "no NVIDIA GPU (NVML)");
    }

    #[test]
    fn the_runtime_is_judged_only_on_the_host_itself() {
        let runc = DaemonInfo {
            runtimes: vec!["runc".into()],
            ..DaemonInfo::default()
        };
        let file = std::path::Path::new("docs/facts/h100.json");
        assert!(nvidia_runtime(Some(&runc), Source::Probed, false).failed());
        assert!(nvidia_runtime(Some(&runc), Source::Probed, true).passed);
        let what_if = nvidia_runtime(Some(&runc), Source::File(file), false);
        assert!(
            what_if.skipped && what_if.detail.contains("docs/facts/h100.json"),
            "{what_if:?}"
        );
        let nvidia = DaemonInfo {
            runtimes: vec!["nvidia".into(), "runc".into()],
            ..DaemonInfo::default()
        };
        assert!(nvidia_runtime(Some(&nvidia), Source::File(file), false).passed);
        assert!(nvidia_runtime(None, Source::Probed, false).skipped);
    }

    #[test]
    fn the_disk_needs_200_gib_and_a_facts_file_without_it_is_not_judged() {
        let with = |free_mib| HardwareFacts {
            disk: Some(host_gpu::DiskFacts {
                path: Some("/home/me/.cache/huggingface".into()),
                free_mib: Some(free_mib),
            }),
            ..HardwareFacts::default()
        };
        assert!(disk(&with(300 * 1024), Source::Probed).passed);
        let short = disk(&with(56 * 1024), Source::Probed);
        assert!(short.failed(), "{short:?}");
        assert_eq!(
            short.detail,
            "56.0 GiB free at /home/me/.cache/huggingface (needs ≥ 200 GiB)"
        );
        let file = std::path::Path::new("h100.json");
        assert!(disk(&HardwareFacts::default(), Source::File(file)).skipped);
        assert!(disk(&HardwareFacts::default(), Source::Probed).failed());
    }
}
