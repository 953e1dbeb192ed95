//! The `quotas` keys (`[providers.ID.quotas]`): how much one provider may
//! hold and do. Every quota has a safe default, so a provider no file
//! limits is still bounded;
//! the smallest value any view sets applies, else the default.

use super::containers::{GpuAsk, RunRequest};
use super::values::Bounded;
use super::{Denial, ProviderPolicy};
use serde::{Deserialize, Serialize};

/// The most containers any provider may hold at once.
pub const MAX_CONTAINERS: u64 = 8;
/// Default shared-memory size ceiling of one container (vLLM uses 8 GiB).
pub const DEFAULT_SHM_MIB: u64 = 16 << 10;
/// Default size of the session record a provider may write.
pub const DEFAULT_SIDECAR_BYTES: u64 = 16 << 10;
/// Default privileged calls in one provider call.
pub const DEFAULT_PRIVILEGED_CALLS: u64 = 1000;
/// The most processes any provider may hold at once.
pub const MAX_PROCESSES: u64 = 16;
/// Default processes one provider may hold (a gateway and a miner loop,
/// with room for one more pair while an old one is stopped).
pub const DEFAULT_PROCESSES: u64 = 4;
/// Default GPUs one container may be given.
pub const DEFAULT_GPUS_PER_CONTAINER: u64 = 8;

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRules {
    /// Containers the provider may hold at once (running or not).
    /// Default: one per granted GPU, at least 1, at most 8.
    pub containers: Option<Bounded<0, MAX_CONTAINERS>>,
    /// Host processes the provider may hold at once (running).
    pub processes: Option<Bounded<0, MAX_PROCESSES>>,
    /// GPUs one container may be given.
    pub gpus_per_container: Option<Bounded<0, 64>>,
    /// Shared memory of one container, in MiB.
    pub shm_mib: Option<Bounded<0, { 64 << 10 }>>,
    /// Memory limit the host sets on each container, in MiB (default: none).
    pub memory_mib: Option<Bounded<64, { 4 << 20 }>>,
    /// Size of the session record (the sidecar), in bytes.
    pub sidecar_bytes: Option<Bounded<512, { 1 << 20 }>>,
    /// Privileged calls in one provider call.
    pub privileged_calls: Option<Bounded<1, 100_000>>,
}

/// One quota in force: its value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub value: u64,
    /// `providers."x".quotas.containers`, or `quotas.containers` for a default.
    pub key: String,
    /// The file that set it; `None` for the built-in default.
    pub file: Option<std::path::PathBuf>,
}

impl Quota {
    /// Where a user reads or changes it.
    pub fn source(&self) -> String {
        match &self.file {
            Some(file) => format!("{} in {}", self.key, file.display()),
            None => format!(
                "{} (default {}; set it in the policy to change it)",
                self.key, self.value
            ),
        }
    }

    pub fn deny(&self, capability: &'static str, what: impl std::fmt::Display) -> Denial {
        Denial {
            capability: Some(capability),
            rule: super::Rule::PolicyKey {
                key: self.key.clone(),
                file: self.file.clone().unwrap_or_default(),
            },
            reason: format!("{what}: the quota is {} ({})", self.value, self.source()),
        }
    }
}

impl ProviderPolicy {
    /// The smallest value any view sets for one quota, else `default`.
    fn quota(&self, name: &str, get: impl Fn(&QuotaRules) -> Option<u64>, default: u64) -> Quota {
        self.views
            .iter()
            .filter_map(|view| {
                let value = get(view.grant.as_ref()?.quotas.as_ref()?)?;
                Some(Quota {
                    value,
                    key: format!("{}.quotas.{name}", view.key),
                    file: Some(view.file.clone()),
                })
            })
            .min_by_key(|q| q.value)
            .unwrap_or_else(|| Quota {
                value: default,
                key: format!("providers.\"{}\".quotas.{name}", self.provider),
                file: None,
            })
    }

    /// Containers this provider may hold at once, given how many GPUs the
    /// policy lets it use on this host.
    pub fn containers_quota(&self, granted_gpus: usize) -> Quota {
        let default = (granted_gpus as u64).clamp(1, MAX_CONTAINERS);
        // A file may raise the default up to MAX_CONTAINERS.
        let mut quota = self.quota("containers", |q| q.containers.map(|b| b.0), MAX_CONTAINERS);
        if quota.file.is_none() {
            quota.value = default;
        }
        quota
    }

    /// Processes this provider may hold at once.
    pub fn processes_quota(&self) -> Quota {
        self.quota("processes", |q| q.processes.map(|b| b.0), DEFAULT_PROCESSES)
    }

    pub fn sidecar_quota(&self) -> Quota {
        self.quota(
            "sidecar_bytes",
            |q| q.sidecar_bytes.map(|b| b.0),
            DEFAULT_SIDECAR_BYTES,
        )
    }

    pub fn privileged_calls_quota(&self) -> Quota {
        self.quota(
            "privileged_calls",
            |q| q.privileged_calls.map(|b| b.0),
            DEFAULT_PRIVILEGED_CALLS,
        )
    }

    /// The memory limit the host puts on each container, if any view sets one.
    pub fn container_memory_bytes(&self) -> Option<u64> {
        let quota = self.quota("memory_mib", |q| q.memory_mib.map(|b| b.0), u64::MAX);
        quota.file.map(|_| quota.value << 20)
    }

    /// The per-container quotas a launch must fit (GPUs, shared memory).
    pub(super) fn container_quotas(&self, run: &RunRequest) -> Result<(), Denial> {
        let gpus = self.quota(
            "gpus_per_container",
            |q| q.gpus_per_container.map(|b| b.0),
            DEFAULT_GPUS_PER_CONTAINER,
        );
        let asked = match &run.gpus {
            GpuAsk::None => 0,
            GpuAsk::Count(n) => u64::from(*n),
            GpuAsk::Ids(ids) => ids.len() as u64,
            // "all" is as many as the quota: the host cannot know more here.
            GpuAsk::All => 0,
        };
        if asked > gpus.value {
            return Err(gpus.deny("containers", format!("a container asked for {asked} GPUs")));
        }
        let shm = self.quota("shm_mib", |q| q.shm_mib.map(|b| b.0), DEFAULT_SHM_MIB);
        if let Some(bytes) = run.shm_bytes
            && bytes > shm.value << 20
        {
            return Err(shm.deny(
                "containers",
                format!(
                    "a container asked for {} MiB of shared memory",
                    bytes.div_ceil(1 << 20)
                ),
            ));
        }
        Ok(())
    }
}
