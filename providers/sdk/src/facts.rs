//! Questions `detect` asks of the hardware facts, answered the same way by
//! every provider. Facts the host could not learn are `None`, and these
//! helpers treat them as "not known", never as a yes.

use crate::types::{DockerFacts, Gpu, HardwareFacts, PearlFacts};

impl HardwareFacts {
    /// A host about which nothing is known: every fact `None`, no GPU. The
    /// starting point for facts in a provider's unit tests.
    pub fn unknown() -> Self {
        HardwareFacts {
            os: None,
            arch: None,
            cpu_model: None,
            cpu_cores: None,
            ram_mib: None,
            gpus: Vec::new(),
            visible_devices: None,
            gpu_note: None,
            nvidia_driver_version: None,
            cuda_version: None,
            disk_free_mib: None,
            disk_path: None,
            docker: DockerFacts {
                reachable: None,
                version: None,
            },
            pearl: PearlFacts {
                gateway_on_path: None,
                python_packages: None,
                torch_installed: None,
                torch_mps_built: None,
                torch_mps_available: None,
            },
        }
    }

    /// The operating system, or "unknown".
    pub fn os_name(&self) -> &str {
        self.os.as_deref().unwrap_or("unknown")
    }

    /// The GPUs of one vendor (compared case-insensitively: "nvidia", "apple").
    pub fn gpus_by_vendor<'a>(&'a self, vendor: &'a str) -> impl Iterator<Item = &'a Gpu> {
        self.gpus
            .iter()
            .filter(move |gpu| gpu.vendor.eq_ignore_ascii_case(vendor))
    }

    /// The largest memory among one vendor's GPUs, in MiB, when any reports it.
    pub fn largest_gpu_mib(&self, vendor: &str) -> Option<u64> {
        self.gpus_by_vendor(vendor)
            .filter_map(|gpu| gpu.memory_total_mib)
            .max()
    }

    /// The Docker daemon answered the host's ping.
    pub fn docker_reachable(&self) -> bool {
        self.docker.reachable == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::types::{Gpu, HardwareFacts};

    fn gpu(vendor: &str, mib: Option<u64>) -> Gpu {
        Gpu {
            index: 0,
            uuid: None,
            name: "g".into(),
            vendor: vendor.into(),
            compute_capability: None,
            memory_total_mib: mib,
        }
    }

    fn facts(gpus: Vec<Gpu>) -> HardwareFacts {
        HardwareFacts {
            gpus,
            ..HardwareFacts::unknown()
        }
    }

    #[test]
    fn unknown_is_never_a_yes() {
        let f = facts(vec![
            gpu("NVIDIA", Some(24_564)),
            gpu("nvidia", None),
            gpu("amd", Some(196_608)),
        ]);
        assert_eq!(f.os_name(), "unknown");
        assert_eq!(f.gpus_by_vendor("nvidia").count(), 2);
        assert_eq!(f.largest_gpu_mib("nvidia"), Some(24_564));
        assert_eq!(f.largest_gpu_mib("apple"), None);
        assert!(!f.docker_reachable());
    }
}
