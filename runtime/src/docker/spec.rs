//! The container the host asks Docker for, and its translation into the
//! Engine API's create request.
//!
//! The spec offers only what a mining container needs. It has no way to ask
//! for privileged mode, added capabilities, the host's PID or IPC namespace,
//! devices other than GPUs, or the Docker socket beyond a bind mount that the
//! policy layer vets: those fields are never set in the request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, Mount as BollardMount, MountType,
    PortBinding as BollardPortBinding, RestartPolicy as BollardRestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptions, CreateContainerOptionsBuilder};

use super::error::DockerError;

/// A container to create. `env` values are already resolved and may hold
/// secrets: `Debug` shows only their names, and errors never include them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Docker's container name; `None` lets Docker pick one.
    pub name: Option<String>,
    pub image: String,
    /// Arguments to the image's entrypoint (Docker's `Cmd`).
    pub args: Vec<String>,
    /// `(name, value)`; values may be secrets.
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub gpus: GpuRequest,
    pub mounts: Vec<Mount>,
    pub shm_size_bytes: Option<u64>,
    /// "host", "bridge", "none" or a network's name; empty = the daemon's default.
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    /// Published ports (ignored by Docker with `network_mode = "host"`).
    pub ports: Vec<PortBinding>,
    /// Memory limit in bytes (the policy's `quotas.memory_mib`); `None`: none.
    pub memory_bytes: Option<u64>,
}

/// Which GPUs the container gets, as Docker device requests with the `gpu`
/// capability and no driver (what `docker run --gpus` and docker-py send; the
/// daemon picks the NVIDIA driver by capability).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GpuRequest {
    #[default]
    None,
    /// Every GPU (`count = -1`).
    All,
    /// This many GPUs.
    Count(u32),
    /// These host GPUs, by index or UUID.
    DeviceIds(Vec<String>),
}

/// A bind mount of a host directory. The host path must exist: unlike the
/// legacy `Binds`, a `Mounts` entry never makes Docker create a root-owned
/// directory on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// A published TCP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
    /// e.g. "127.0.0.1"; `None` = every interface.
    pub host_ip: Option<String>,
}

/// Docker's restart policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    UnlessStopped,
    Always,
    /// Restart after a non-zero exit, at most this many times (`None` = no limit).
    OnFailure(Option<u32>),
}

impl FromStr for RestartPolicy {
    type Err = String;

    /// `no`, `unless-stopped`, `always`, `on-failure` or `on-failure:<N>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "no" | "" => Ok(RestartPolicy::No),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure(None)),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse().ok())
                .map(|n| RestartPolicy::OnFailure(Some(n)))
                .ok_or_else(|| {
                    format!(
                        "unknown restart policy '{other}': use no, unless-stopped, always, on-failure or on-failure:<N>"
                    )
                }),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(name, _)| format!("{name}=<hidden>"))
            .collect();
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("args", &self.args)
            .field("env", &env)
            .field("labels", &self.labels)
            .field("gpus", &self.gpus)
            .field("mounts", &self.mounts)
            .field("shm_size_bytes", &self.shm_size_bytes)
            .field("network_mode", &self.network_mode)
            .field("restart_policy", &self.restart_policy)
            .field("ports", &self.ports)
            .field("memory_bytes", &self.memory_bytes)
            .finish()
    }
}

impl ContainerSpec {
    /// The resolved environment values, for redacting what Docker says back.
    pub fn env_values(&self) -> impl Iterator<Item = &str> {
        self.env.iter().map(|(_, value)| value.as_str())
    }

    /// How errors name this container: its name, else its image.
    pub(crate) fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.image)
    }
}

/// The Engine API request for `spec`. Fails only on a spec Docker would
/// misread (an environment name containing `=`), never echoing a value.
pub(crate) fn create_request(
    spec: &ContainerSpec,
) -> Result<(CreateContainerOptions, ContainerCreateBody), DockerError> {
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(DockerError::Failed(format!(
                "invalid environment variable name '{}' for container '{}': names must be non-empty and contain no '='",
                name.escape_debug(),
                spec.display_name()
            )));
        }
        env.push(format!("{name}={value}"));
    }

    let mut options = CreateContainerOptionsBuilder::default();
    if let Some(name) = &spec.name {
        options = options.name(name);
    }

    let exposed: Vec<String> = spec
        .ports
        .iter()
        .map(|p| format!("{}/tcp", p.container_port))
        .collect();
    let mut port_bindings: HashMap<String, Option<Vec<BollardPortBinding>>> = HashMap::new();
    for port in &spec.ports {
        port_bindings
            .entry(format!("{}/tcp", port.container_port))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(BollardPortBinding {
                host_ip: port.host_ip.clone(),
                host_port: Some(port.host_port.to_string()),
            });
    }

    let host_config = HostConfig {
        device_requests: device_requests(&spec.gpus),
        mounts: (!spec.mounts.is_empty()).then(|| spec.mounts.iter().map(bind_mount).collect()),
        shm_size: spec
            .shm_size_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        network_mode: (!spec.network_mode.is_empty()).then(|| spec.network_mode.clone()),
        restart_policy: Some(restart_policy(spec.restart_policy)),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        memory: spec
            .memory_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        // Kept after a crash so its logs can be read (reference §3.2).
        auto_remove: Some(false),
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: (!env.is_empty()).then_some(env),
        labels: (!spec.labels.is_empty()).then(|| {
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(false),
        open_stdin: Some(false),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    };
    Ok((options.build(), body))
}

fn device_requests(gpus: &GpuRequest) -> Option<Vec<DeviceRequest>> {
    let request = |count: Option<i64>, device_ids: Option<Vec<String>>| DeviceRequest {
        driver: None,
        count,
        device_ids,
        capabilities: Some(vec![vec!["gpu".to_owned()]]),
        options: None,
    };
    match gpus {
        GpuRequest::None => None,
        GpuRequest::All => Some(vec![request(Some(-1), None)]),
        GpuRequest::Count(n) => Some(vec![request(Some(i64::from(*n)), None)]),
        GpuRequest::DeviceIds(ids) => Some(vec![request(None, Some(ids.clone()))]),
    }
}

fn bind_mount(mount: &Mount) -> BollardMount {
    BollardMount {
        typ: Some(MountType::BIND),
        source: Some(mount.host_path.to_string_lossy().into_owned()),
        target: Some(mount.container_path.clone()),
        read_only: Some(mount.read_only),
        ..Default::default()
    }
}

fn restart_policy(policy: RestartPolicy) -> BollardRestartPolicy {
    let (name, retries) = match policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    BollardRestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miner_spec() -> ContainerSpec {
        ContainerSpec {
            name: Some("openjarvis-pearl-miner".into()),
            image: "openjarvis/pearl-miner:master".into(),
            args: vec!["model".into(), "--port".into(), "8000".into()],
            env: vec![
                ("PEARLD_RPC_PASSWORD".into(), "hunter2-secret".into()),
                ("NVIDIA_VISIBLE_DEVICES".into(), "1,3".into()),
            ],
            labels: BTreeMap::from([("jarvis.provider".into(), "vllm-pearl".into())]),
            gpus: GpuRequest::DeviceIds(vec!["1".into(), "3".into()]),
            mounts: vec![Mount {
                host_path: "/models/m".into(),
                container_path: "/models/openjarvis-local-pearl-model".into(),
                read_only: true,
            }],
            shm_size_bytes: Some(8 << 30),
            network_mode: "host".into(),
            restart_policy: RestartPolicy::UnlessStopped,
            ports: vec![PortBinding {
                container_port: 8000,
                host_port: 18000,
                host_ip: Some("127.0.0.1".into()),
            }],
            memory_bytes: None,
        }
    }

    fn json(spec: &ContainerSpec) -> serde_json::Value {
        let (_, body) = create_request(spec).unwrap();
        serde_json::to_value(body).unwrap()
    }

    #[test]
    fn the_request_carries_the_spec() {
        let body = json(&miner_spec());
        let host = &body["HostConfig"];
        assert_eq!(body["Image"], "openjarvis/pearl-miner:master");
        assert_eq!(body["Cmd"], serde_json::json!(["model", "--port", "8000"]));
        assert_eq!(
            body["Env"],
            serde_json::json!([
                "PEARLD_RPC_PASSWORD=hunter2-secret",
                "NVIDIA_VISIBLE_DEVICES=1,3"
            ])
        );
        assert_eq!(body["Labels"]["jarvis.provider"], "vllm-pearl");
        assert_eq!(body["ExposedPorts"], serde_json::json!({"8000/tcp": {}}));
        assert_eq!(
            host["DeviceRequests"],
            serde_json::json!([{"DeviceIDs": ["1", "3"], "Capabilities": [["gpu"]]}])
        );
        assert_eq!(host["ShmSize"], 8u64 << 30);
        assert_eq!(host["NetworkMode"], "host");
        assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
        assert_eq!(host["AutoRemove"], false);
        assert_eq!(host["Mounts"][0]["Type"], "bind");
        assert_eq!(host["Mounts"][0]["ReadOnly"], true);
        assert_eq!(
            host["PortBindings"]["8000/tcp"],
            serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "18000"}])
        );
    }

    #[test]
    fn all_gpus_is_count_minus_one() {
        let spec = ContainerSpec {
            gpus: GpuRequest::All,
            ..miner_spec()
        };
        assert_eq!(
            json(&spec)["HostConfig"]["DeviceRequests"],
            serde_json::json!([{"Count": -1, "Capabilities": [["gpu"]]}])
        );
        let none = ContainerSpec {
            gpus: GpuRequest::None,
            ..miner_spec()
        };
        assert!(json(&none)["HostConfig"].get("DeviceRequests").is_none());
    }

    #[test]
    fn no_privilege_is_ever_requested() {
        let body = json(&miner_spec());
        let host = body["HostConfig"].as_object().unwrap();
        for key in [
            "Privileged",
            "CapAdd",
            "PidMode",
            "IpcMode",
            "Devices",
            "SecurityOpt",
            "UsernsMode",
            "Binds",
        ] {
            assert!(!host.contains_key(key), "{key} is set: {host:?}");
        }
    }

    #[test]
    fn debug_hides_env_values() {
        let shown = format!("{:?}", miner_spec());
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("PEARLD_RPC_PASSWORD=<hidden>"), "{shown}");
    }

    #[test]
    fn a_bad_env_name_is_refused_without_its_value() {
        let spec = ContainerSpec {
            env: vec![("A=B".into(), "hunter2-secret".into())],
            ..miner_spec()
        };
        let error = create_request(&spec).unwrap_err().to_string();
        assert!(
            error.contains("A=B") && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn restart_policies_parse_and_print() {
        for text in [
            "no",
            "unless-stopped",
            "always",
            "on-failure",
            "on-failure:5",
        ] {
            let policy: RestartPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }
}
