//! `jarvis mine start --dry-run`: the provider's `start` runs as it would,
//! through the same gate and checks, against a host that records what it
//! would create instead of creating it. Imports that would change anything
//! else (stop, remove, spawn) are refused in a dry run, so nothing on the
//! host changes whatever the provider calls.

use crate::docker::{self, GpuRequest};
use crate::session::SessionRecord;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};

/// Imports a dry run refuses: each would change the host.
pub const REFUSED: [&str; 7] = [
    "containers.stop",
    "containers.remove",
    "sidecar.remove",
    "sidecar.write-processes",
    "processes.spawn",
    "processes.stop",
    "processes.wait-listening",
];

/// What `start` would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Images `start` would make present (pulled or built when missing).
    pub images: Vec<String>,
    pub containers: Vec<PlannedContainer>,
    /// The session record `start` would write.
    pub session: Option<SessionRecord>,
}

/// One container as the host would create it (secret values never appear:
/// the environment is listed by name).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedContainer {
    /// Docker's name, in the provider's namespace.
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    /// Variable names only.
    pub env: Vec<String>,
    /// "none", "all", "count N" or "devices".
    pub gpus: String,
    /// Host GPU ids, for a request by device.
    pub device_ids: Vec<String>,
    /// Host ports it would serve.
    pub ports: Vec<u16>,
    /// `host:container[:ro]`.
    pub mounts: Vec<String>,
    pub shm_size_bytes: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub network: String,
    pub restart: String,
}

/// Where a dry run's host calls record the plan.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Plan>>);

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Plan) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn image(&self, image: &str) {
        self.with(|plan| {
            if !plan.images.iter().any(|i| i == image) {
                plan.images.push(image.to_owned());
            }
        });
    }

    /// Records a container; returns the id `start` is told (no container
    /// has it).
    pub fn container(&self, spec: &docker::ContainerSpec, ports: &[u16]) -> String {
        let (gpus, device_ids) = match &spec.gpus {
            GpuRequest::None => ("none".to_owned(), Vec::new()),
            GpuRequest::All => ("all".to_owned(), Vec::new()),
            GpuRequest::Count(n) => (format!("count {n}"), Vec::new()),
            GpuRequest::DeviceIds(ids) => ("devices".to_owned(), ids.clone()),
        };
        let planned = PlannedContainer {
            name: spec.name.clone().unwrap_or_default(),
            image: spec.image.clone(),
            args: spec.args.clone(),
            env: spec.env.iter().map(|(name, _)| name.clone()).collect(),
            gpus,
            device_ids,
            ports: ports.to_vec(),
            mounts: spec
                .mounts
                .iter()
                .map(|m| {
                    let ro = if m.read_only { ":ro" } else { "" };
                    format!("{}:{}{ro}", m.host_path.display(), m.container_path)
                })
                .collect(),
            shm_size_bytes: spec.shm_size_bytes,
            memory_bytes: spec.memory_bytes,
            network: spec.network_mode.clone(),
            restart: spec.restart_policy.to_string(),
        };
        self.with(|plan| {
            plan.containers.push(planned);
            format!("dry-run-{}", plan.containers.len() - 1)
        })
    }

    pub fn session(&self, record: SessionRecord) {
        self.with(|plan| plan.session = Some(record));
    }

    pub fn plan(&self) -> Plan {
        self.with(|plan| plan.clone())
    }
}
