//! The `containers` import: a provider describes a container; the host
//! validates the description, asks the policy, then resolves secret
//! references, labels it with the provider's identity and creates it. A
//! provider may act only on containers carrying its own labels.

use super::{
    HostContext, IMPORT_ENSURE_IMAGE, LABEL_COMPONENT, LABEL_HOME, LABEL_PROVIDER, LABEL_SECRETS,
    LABEL_SESSION, docker_error,
};
use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::containers::{
    ContainerSpec, ContainerState, EnvValue, GpuRequest, Host, MountSource,
};
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{self, Docker};
use crate::policy::{GpuAsk, Request, RunRequest};
use crate::redact::Redactor;
use crate::sandbox::CallState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host paths no container may mount, whatever the spec says: neither
/// they, nor what is below them, nor a directory that holds one (mounting
/// `/run` would hand over the Docker socket in it just the same).
const FORBIDDEN_MOUNTS: [&str; 7] = [
    "/",
    "/proc",
    "/sys",
    "/dev",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
];
const MAX_ARGS: usize = 256;
const MAX_TEXT: usize = 4096;
const MAX_SHM_BYTES: u64 = 64 << 30;
/// Log lines read to answer one grep (the newest).
const GREP_WINDOW: usize = 200_000;
/// Patterns one grep may ask for, and their length: the search is host
/// time the guest's deadline does not see.
const MAX_PATTERNS: usize = 64;
const MAX_PATTERN_BYTES: usize = 1024;

impl Host for CallState {
    fn ensure_image(&mut self, image: String) -> Result<(), Error> {
        self.privileged(Capability::Containers, IMPORT_ENSURE_IMAGE, |gate| {
            check_image(&image)?;
            let host = gate.permit(Request::EnsureImage { image: &image })?;
            let docker = host.docker()?;
            let source = host.session.pearl_source_dir.clone();
            docker
                .ensure_image(&image, source.as_deref(), &mut host.session.progress)
                .map(drop)
                .map_err(docker_error)
        })
    }

    fn run(&mut self, spec: ContainerSpec) -> Result<String, Error> {
        self.privileged(Capability::Containers, "containers.run", |gate| {
            let mut plan = plan(spec)?;
            if gate.pins_digests() {
                plan.policy.image_digests = gate.image_digests(&plan.policy.image)?;
            }
            let host = gate.permit(Request::RunContainer(&plan.policy))?;
            let request = plan.finish(host)?;
            create_and_start(host, &request)
        })
    }

    fn stop(&mut self, id: String, timeout_seconds: u32) -> Result<(), Error> {
        self.privileged(Capability::Containers, "containers.stop", |gate| {
            let timeout =
                Duration::from_secs(u64::from(timeout_seconds.min(600))).min(gate.time_left());
            check_id(&id)?;
            let host = gate.permit(Request::Own { target: &id })?;
            let docker = host.docker()?;
            if owned(host, &docker, &id)?.is_none() {
                return Ok(());
            }
            docker.stop(&id, timeout).map_err(docker_error)
        })
    }

    fn remove(&mut self, id: String) -> Result<(), Error> {
        self.privileged(Capability::Containers, "containers.remove", |gate| {
            check_id(&id)?;
            let host = gate.permit(Request::Own { target: &id })?;
            let docker = host.docker()?;
            if owned(host, &docker, &id)?.is_none() {
                return Ok(());
            }
            docker.remove(&id).map_err(docker_error)
        })
    }

    fn inspect(&mut self, id: String) -> Result<Option<ContainerState>, Error> {
        self.privileged(Capability::Containers, "containers.inspect", |gate| {
            check_id(&id)?;
            let host = gate.permit(Request::Own { target: &id })?;
            let docker = host.docker()?;
            Ok(owned(host, &docker, &id)?.map(|state| ContainerState {
                status: state.status,
                running: state.running,
                exit_code: state.exit_code,
                started_at: state.started_at,
                finished_at: state.finished_at,
            }))
        })
    }

    fn grep_logs(
        &mut self,
        id: String,
        patterns: Vec<String>,
        limit: u32,
    ) -> Result<Vec<String>, Error> {
        self.privileged(Capability::Containers, "containers.grep-logs", |gate| {
            check_id(&id)?;
            if patterns.len() > MAX_PATTERNS || patterns.iter().any(|p| p.len() > MAX_PATTERN_BYTES)
            {
                return Err(invalid(format!(
                    "grep-logs takes at most {MAX_PATTERNS} patterns of {MAX_PATTERN_BYTES} bytes each"
                )));
            }
            let host = gate.permit(Request::Own { target: &id })?;
            let docker = host.docker()?;
            let Some(state) = owned(host, &docker, &id)? else {
                return Ok(Vec::new());
            };
            let redactor = redactor_for(&state.labels);
            let lines = docker.logs(&id, GREP_WINDOW).map_err(docker_error)?;
            let mut matching: Vec<String> = lines
                .iter()
                .filter(|line| patterns.iter().any(|p| line.contains(p.as_str())))
                .map(|line| redactor.redact_owned(line))
                .collect();
            let keep = limit as usize;
            if matching.len() > keep {
                matching.drain(..matching.len() - keep);
            }
            Ok(matching)
        })
    }
}

/// Creates and starts the container. A name held by a finished container of
/// an earlier session of this provider (kept for `jarvis mine logs`) is
/// taken over; one held by anything else is an error.
fn create_and_start(host: &HostContext, request: &docker::ContainerSpec) -> Result<String, Error> {
    let docker = host.docker()?;
    let name = request.name.clone().unwrap_or_default();
    let id = match docker.create(request) {
        Err(docker::DockerError::NameConflict(_)) => match owned(host, &docker, &name) {
            Ok(Some(old)) if !old.running => {
                docker.remove(&old.id).map_err(docker_error)?;
                docker.create(request).map_err(docker_error)?
            }
            _ => {
                return Err(Error::Failed(format!(
                    "a container named '{name}' already exists and is not a finished session of this provider: remove it with `docker rm -f {name}`"
                )));
            }
        },
        other => other.map_err(docker_error)?,
    };
    if let Err(err) = docker.start(&id) {
        // A created-but-never-started container would be an orphan.
        let _ = docker.remove(&id);
        return Err(docker_error(err));
    }
    Ok(id)
}

/// The container if it exists and belongs to this provider; `None` if gone.
fn owned(
    host: &HostContext,
    docker: &Docker,
    id: &str,
) -> Result<Option<docker::ContainerState>, Error> {
    let Some(state) = docker.inspect(id).map_err(docker_error)? else {
        return Ok(None);
    };
    let home = host.session.paths.home().display().to_string();
    match (
        state.labels.get(LABEL_PROVIDER),
        state.labels.get(LABEL_HOME),
    ) {
        (Some(owner), Some(owner_home)) if *owner == host.provider_id && *owner_home == home => {
            Ok(Some(state))
        }
        _ => Err(Error::Denied(format!(
            "container {} is not owned by provider '{}' of {home}",
            short(id),
            host.provider_id
        ))),
    }
}

/// Redacts the values of the secrets a container was created with.
pub fn redactor_for(labels: &BTreeMap<String, String>) -> Redactor {
    let names = labels
        .get(LABEL_SECRETS)
        .map(String::as_str)
        .unwrap_or_default();
    Redactor::new(
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .filter_map(|name| std::env::var(name).ok()),
    )
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// A container id or name as Docker spells them.
fn check_id(id: &str) -> Result<(), Error> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if plain {
        Ok(())
    } else {
        let shown: String = id.chars().take(64).collect();
        Err(invalid(format!(
            "container id or name {shown:?}{} is not valid",
            if shown.len() < id.len() { "..." } else { "" }
        )))
    }
}

fn check_image(image: &str) -> Result<(), Error> {
    let plain = !image.is_empty()
        && image.len() <= 255
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if plain {
        Ok(())
    } else {
        Err(invalid(format!("image reference {image:?} is not valid")))
    }
}

/// A validated spec: what the policy is asked about, and the Docker request
/// still missing what needs the policy's permit first (secret values, the
/// Hugging Face cache directory, the ownership labels).
struct Plan {
    policy: RunRequest,
    request: docker::ContainerSpec,
    /// `(index into request.env, host variable, required)`.
    secrets: Vec<(usize, String, bool)>,
    hf_cache: Option<PathBuf>,
}

/// Validates a provider's spec without touching anything.
fn plan(spec: ContainerSpec) -> Result<Plan, Error> {
    check_image(&spec.image)?;
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= 128
        && spec.name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        return Err(invalid(format!(
            "container name {:?} is not valid",
            spec.name
        )));
    }
    if spec.args.len() > MAX_ARGS || spec.args.iter().any(|a| a.len() > MAX_TEXT) {
        return Err(invalid(format!(
            "at most {MAX_ARGS} arguments of {MAX_TEXT} bytes each"
        )));
    }
    if spec.env.len() > MAX_ARGS {
        return Err(invalid(format!("at most {MAX_ARGS} environment variables")));
    }
    let mut secrets = Vec::new();
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in spec.env {
        let name_ok = name.len() <= 255
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(invalid(format!(
                "environment variable name {name:?} is not valid"
            )));
        }
        let value = match value {
            EnvValue::Text(text) if text.len() <= MAX_TEXT => text,
            EnvValue::Text(_) => {
                return Err(invalid(format!(
                    "the value of {name} is longer than {MAX_TEXT} bytes"
                )));
            }
            EnvValue::Secret(var) | EnvValue::OptionalSecret(var) if var.len() > 255 => {
                return Err(invalid(format!(
                    "secret variable name of {name} is too long"
                )));
            }
            EnvValue::Secret(var) => {
                secrets.push((env.len(), var, true));
                String::new()
            }
            EnvValue::OptionalSecret(var) => {
                secrets.push((env.len(), var, false));
                String::new()
            }
        };
        env.push((name, value));
    }
    let mut mounts = Vec::new();
    let mut hf_cache = None;
    for mount in spec.mounts {
        if !mount.target.starts_with('/') || mount.target == "/" {
            return Err(invalid(format!(
                "mount target {:?} must be an absolute path below /",
                mount.target
            )));
        }
        let host_path = match mount.source {
            MountSource::HfCache => {
                let dir = host_gpu::disk::hf_home().ok_or_else(|| {
                    Error::Unavailable("cannot locate the Hugging Face cache: set HF_HOME".into())
                })?;
                let dir = dir.canonicalize().unwrap_or(dir);
                hf_cache = Some(dir.clone());
                dir
            }
            MountSource::HostPath(path) => configured_dir(&path)?,
        };
        mounts.push(docker::Mount {
            host_path,
            container_path: mount.target,
            read_only: mount.read_only,
        });
    }
    let network_mode = match spec.network.as_str() {
        "host" | "bridge" | "none" => spec.network,
        other => {
            return Err(invalid(format!(
                "network {other:?} is not one of host, bridge, none"
            )));
        }
    };
    let restart_policy = spec.restart.parse().map_err(invalid)?;
    if spec
        .shm_size_bytes
        .is_some_and(|bytes| bytes > MAX_SHM_BYTES)
    {
        return Err(invalid("shm size is larger than 64 GiB".into()));
    }
    let (gpus, ask) = match spec.gpus {
        GpuRequest::None => (docker::GpuRequest::None, GpuAsk::None),
        GpuRequest::All => (docker::GpuRequest::All, GpuAsk::All),
        GpuRequest::Count(n) => (docker::GpuRequest::Count(n), GpuAsk::Count(n)),
        GpuRequest::DeviceIds(ids) => {
            (docker::GpuRequest::DeviceIds(ids.clone()), GpuAsk::Ids(ids))
        }
    };
    let ports: Vec<docker::PortBinding> = spec
        .ports
        .into_iter()
        .map(|p| docker::PortBinding {
            container_port: p.container,
            host_port: p.host,
            host_ip: Some("127.0.0.1".into()),
        })
        .collect();
    let policy = RunRequest {
        image: spec.image.clone(),
        image_digests: Vec::new(),
        gpus: ask,
        mounts: mounts
            .iter()
            .map(|m| (m.host_path.clone(), m.read_only))
            .collect(),
        network: network_mode.clone(),
        host_ports: ports.iter().map(|p| p.host_port).collect(),
        env_names: env.iter().map(|(name, _)| name.clone()).collect(),
        secrets: secrets.iter().map(|(_, var, _)| var.clone()).collect(),
    };
    Ok(Plan {
        policy,
        request: docker::ContainerSpec {
            name: Some(spec.name),
            image: spec.image,
            args: spec.args,
            env,
            labels: BTreeMap::new(),
            gpus,
            mounts,
            shm_size_bytes: spec.shm_size_bytes,
            network_mode,
            restart_policy,
            ports,
        },
        secrets,
        hf_cache,
    })
}

impl Plan {
    /// Completes the request once the policy has permitted it: reads the
    /// granted secrets, creates the cache directory, labels the container.
    fn finish(mut self, host: &HostContext) -> Result<docker::ContainerSpec, Error> {
        for (index, var, required) in &self.secrets {
            let value = match std::env::var(var) {
                Ok(value) => value,
                Err(_) if !required => String::new(),
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "environment variable '{var}' is not set; set it before running `jarvis mine start`"
                    )));
                }
            };
            self.request.env[*index].1 = value;
        }
        if let Some(dir) = &self.hf_cache {
            std::fs::create_dir_all(dir).map_err(|err| {
                Error::Failed(format!(
                    "cannot create the Hugging Face cache {}: {err}",
                    dir.display()
                ))
            })?;
        }
        let names: Vec<&str> = self
            .secrets
            .iter()
            .map(|(_, var, _)| var.as_str())
            .collect();
        self.request.labels = BTreeMap::from([
            (LABEL_PROVIDER.to_owned(), host.provider_id.clone()),
            (LABEL_COMPONENT.to_owned(), host.component_sha256.clone()),
            (LABEL_SESSION.to_owned(), host.session.id.clone()),
            (LABEL_SECRETS.to_owned(), names.join(",")),
            (
                LABEL_HOME.to_owned(),
                host.session.paths.home().display().to_string(),
            ),
        ]);
        Ok(self.request)
    }
}

/// A directory from configuration (`~` expanded), which must exist, be a
/// directory, and not be one of the host's sensitive paths.
fn configured_dir(path: &str) -> Result<PathBuf, Error> {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::home_dir().unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    };
    let resolved = expanded.canonicalize().map_err(|_| {
        Error::Invalid(format!(
            "local Pearl model path does not exist: {}",
            expanded.display()
        ))
    })?;
    if forbidden_mount(&resolved) {
        return Err(Error::Denied(format!(
            "mounting {} into a container is not allowed",
            resolved.display()
        )));
    }
    if !resolved.is_dir() {
        return Err(Error::Invalid(format!(
            "local Pearl model path must be a directory: {}",
            resolved.display()
        )));
    }
    Ok(resolved)
}

/// Whether `resolved` (canonical) is, is below, or holds one of
/// [`FORBIDDEN_MOUNTS`] or the socket of the Docker daemon the host uses.
fn forbidden_mount(resolved: &Path) -> bool {
    let socket = Docker::default_host()
        .strip_prefix("unix://")
        .map(PathBuf::from);
    FORBIDDEN_MOUNTS
        .iter()
        .map(PathBuf::from)
        .chain(socket)
        .flat_map(|path| {
            // The path as named and as it resolves (`/var/run` is a link).
            let canonical = path.canonicalize().ok();
            [Some(path), canonical]
        })
        .flatten()
        .any(|forbidden| {
            forbidden.starts_with(resolved)
                || (forbidden != Path::new("/") && resolved.starts_with(&forbidden))
        })
}
