//! The hardware facts record: what the host knows about itself, as data.
//!
//! This is both the native gatherer's output and the `--facts FILE` format
//! (docs/facts.md). Every field is optional so a partial file is valid; a
//! missing field means "unknown", which providers treat as absent.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareFacts {
    /// "linux", "darwin", "windows".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// "x86_64", "aarch64".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuFacts>,
    /// Why `gpus` is empty when the host could not look (no NVML library...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvidia_driver_version: Option<String>,
    /// CUDA driver API version, "12.4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pearl: Option<PearlFacts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFacts {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: String,
    /// Lower-case: "nvidia", "amd", "apple".
    #[serde(default)]
    pub vendor: String,
    /// "9.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_mib: Option<u64>,
}

/// Free space where models are cached (the Hugging Face cache, else home).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_mib: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// First line of the error when the daemon was not reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PearlFacts {
    /// `pearl-gateway` on PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_on_path: Option<bool>,
    /// Pearl import names importable by `python3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_packages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_installed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_mps_built: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_mps_available: Option<bool>,
}

impl HardwareFacts {
    /// Parses a facts file, normalising what users write by hand (vendor case).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut facts: HardwareFacts = serde_json::from_str(text)?;
        for gpu in &mut facts.gpus {
            gpu.vendor = gpu.vendor.to_ascii_lowercase();
        }
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses() {
        let facts = HardwareFacts::from_json(
            r#"{"os":"linux","arch":"x86_64","gpus":[{"index":0,"name":"NVIDIA H100 80GB HBM3","vendor":"nvidia","compute_capability":"9.0","memory_total_mib":81559}]}"#,
        )
        .unwrap();
        assert_eq!(facts.gpus[0].memory_total_mib, Some(81_559));
        assert!(facts.docker.is_none() && facts.pearl.is_none());
    }

    #[test]
    fn empty_object_is_all_unknown() {
        assert_eq!(
            HardwareFacts::from_json("{}").unwrap(),
            HardwareFacts::default()
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let err = HardwareFacts::from_json("{\n  \"gpu\": []\n}").unwrap_err();
        assert_eq!(err.line(), 2);
        assert!(err.to_string().contains("unknown field `gpu`"), "{err}");
    }

    #[test]
    fn vendor_is_lower_cased() {
        let facts =
            HardwareFacts::from_json(r#"{"gpus":[{"index":0,"vendor":"NVIDIA"}]}"#).unwrap();
        assert_eq!(facts.gpus[0].vendor, "nvidia");
    }
}
