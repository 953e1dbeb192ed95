//! NVIDIA GPUs through NVML (nvml-wrapper), which loads the driver's
//! `libnvidia-ml` at run time, so hosts without the driver still run.

use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use crate::facts::GpuFacts;

/// Environment variable naming the NVML library file to load instead of the
/// system's `libnvidia-ml.so.1` (`nvml.dll` on Windows). Tests point it at a
/// fake library; hosts with the driver in an odd place point it at the real
/// one. An explicit path given to [`gpus`] takes precedence; empty is unset.
pub const LIBRARY_ENV: &str = "JARVIS_NVML_LIBRARY";

/// What NVML said about the host's NVIDIA GPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlReport {
    /// Every device NVML could open, in NVML index order.
    pub gpus: Vec<GpuFacts>,
    /// The system driver version, "550.54.15".
    pub driver_version: Option<String>,
    /// The CUDA driver API version, "12.4".
    pub cuda_version: Option<String>,
    /// Why NVML could not be used, or which GPUs it could not open.
    pub note: Option<String>,
}

/// Lists NVIDIA GPUs. Never fails: without a usable NVML the report has no
/// GPUs and a `note` saying why; a GPU NVML cannot open is left out (and named
/// in the note); a field one GPU cannot report is `None` (`name` empty).
///
/// The library is `lib_path`, else `$JARVIS_NVML_LIBRARY`, else the system's
/// (on macOS, which has no NVML, nothing is loaded).
pub fn gpus(lib_path: Option<&Path>) -> NvmlReport {
    let nvml = match open(lib_path) {
        Ok(nvml) => nvml,
        Err(note) => {
            return NvmlReport {
                note: Some(note),
                ..NvmlReport::default()
            };
        }
    };
    let mut report = NvmlReport {
        driver_version: nvml.sys_driver_version().ok(),
        cuda_version: nvml.sys_cuda_driver_version().ok().map(cuda_version),
        ..NvmlReport::default()
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            report.note = Some(format!("NVML could not count GPUs: {error}"));
            return report;
        }
    };
    let mut skipped = Vec::new();
    for index in 0..count {
        match nvml.device_by_index(index) {
            Ok(device) => report.gpus.push(GpuFacts {
                index,
                uuid: device.uuid().ok(),
                name: device.name().unwrap_or_default(),
                vendor: "nvidia".into(),
                compute_capability: device
                    .cuda_compute_capability()
                    .ok()
                    .map(|cc| format!("{}.{}", cc.major, cc.minor)),
                memory_total_mib: device.memory_info().ok().map(|m| m.total / (1024 * 1024)),
            }),
            Err(error) => skipped.push(format!("GPU {index}: {error}")),
        }
    }
    if !skipped.is_empty() {
        report.note = Some(format!("NVML could not open {}", skipped.join("; ")));
    }
    report
}

/// Loads and initialises NVML from `lib_path`, else `$JARVIS_NVML_LIBRARY`,
/// else the system's library (on macOS, which has no NVML, nothing is
/// loaded). The error is the reason, in words, that there is no NVML.
pub(crate) fn open(lib_path: Option<&Path>) -> Result<Nvml, String> {
    let lib_path = lib_path.map(Path::to_path_buf).or_else(|| {
        let from_env = std::env::var_os(LIBRARY_ENV).filter(|path| !path.is_empty());
        from_env.map(PathBuf::from)
    });
    if lib_path.is_none() && cfg!(target_os = "macos") {
        return Err("NVML (NVIDIA GPUs) does not exist on macOS".into());
    }
    let init = match &lib_path {
        Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
        None => Nvml::init(),
    };
    init.map_err(|error| {
        let library = lib_path.map_or(DEFAULT_LIBRARY.into(), |path| path.display().to_string());
        init_failure(&library, &error)
    })
}

/// The library nvml-wrapper loads when given no path.
const DEFAULT_LIBRARY: &str = if cfg!(target_os = "linux") {
    "libnvidia-ml.so.1"
} else {
    "nvml.dll"
};

fn init_failure(library: &str, error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(cause) => {
            format!("NVIDIA driver library {library} could not be loaded ({cause})")
        }
        NvmlError::FailedToLoadSymbol(cause) => {
            format!("{library} is not a usable NVML library ({cause})")
        }
        other => format!("NVML failed to initialise: {other}"),
    }
}

/// NVML's CUDA driver version integer (1000 × major + 10 × minor) as "12.4".
fn cuda_version(version: i32) -> String {
    format!("{}.{}", version / 1000, version % 1000 / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_versions_are_major_dot_minor() {
        assert_eq!(cuda_version(12040), "12.4");
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(11080), "11.8");
        assert_eq!(cuda_version(12090), "12.9");
    }
}
