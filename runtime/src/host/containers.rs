//! The `containers` import: a provider describes a container, the host
//! validates the description, resolves secret references, labels it with the
//! provider's identity and creates it. A provider may act only on containers
//! carrying its own label.

use super::{
    HostContext, LABEL_COMPONENT, LABEL_HOME, LABEL_PROVIDER, LABEL_SECRETS, LABEL_SESSION,
    docker_error,
};
use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::containers::{
    ContainerSpec, ContainerState, EnvValue, GpuRequest, Host, MountSource,
};
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{self, Docker};
use crate::redact::Redactor;
use crate::sandbox::CallState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host paths no container may mount, whatever the spec says.
const FORBIDDEN_MOUNTS: [&str; 6] = [
    "/",
    "/proc",
    "/sys",
    "/dev",
    "/var/run/docker.sock",
    "/run/docker.sock",
];
const MAX_ARGS: usize = 256;
const MAX_TEXT: usize = 4096;
const MAX_SHM_BYTES: u64 = 64 << 30;
/// Log lines read to answer one grep (the newest).
const GREP_WINDOW: usize = 200_000;

impl Host for CallState {
    fn ensure_image(&mut self, image: String) -> Result<(), Error> {
        let host = self.authorize(Capability::Containers, "containers.ensure-image")?;
        check_image(&image)?;
        let docker = host.docker()?;
        let source = host.session.pearl_source_dir.clone();
        docker
            .ensure_image(&image, source.as_deref(), &mut host.session.progress)
            .map(drop)
            .map_err(docker_error)
    }

    fn run(&mut self, spec: ContainerSpec) -> Result<String, Error> {
        let host = self.authorize(Capability::Containers, "containers.run")?;
        let docker = host.docker()?;
        let request = translate(host, spec)?;
        let name = request.name.clone().unwrap_or_default();
        let id = match docker.create(&request) {
            Err(docker::DockerError::NameConflict(_)) => {
                // A finished container of an earlier session of this provider
                // (kept for `jarvis mine logs`) gives way; anything else does not.
                match owned(host, &docker, &name) {
                    Ok(Some(old)) if !old.running => {
                        docker.remove(&old.id).map_err(docker_error)?;
                        docker.create(&request).map_err(docker_error)?
                    }
                    _ => {
                        return Err(Error::Failed(format!(
                            "a container named '{name}' already exists and is not a finished session of this provider: remove it with `docker rm -f {name}`"
                        )));
                    }
                }
            }
            other => other.map_err(docker_error)?,
        };
        if let Err(err) = docker.start(&id) {
            // A created-but-never-started container would be an orphan.
            let _ = docker.remove(&id);
            return Err(docker_error(err));
        }
        Ok(id)
    }

    fn stop(&mut self, id: String, timeout_seconds: u32) -> Result<(), Error> {
        let host = self.authorize(Capability::Containers, "containers.stop")?;
        let docker = host.docker()?;
        if owned(host, &docker, &id)?.is_none() {
            return Ok(());
        }
        docker
            .stop(
                &id,
                Duration::from_secs(u64::from(timeout_seconds.min(600))),
            )
            .map_err(docker_error)
    }

    fn remove(&mut self, id: String) -> Result<(), Error> {
        let host = self.authorize(Capability::Containers, "containers.remove")?;
        let docker = host.docker()?;
        if owned(host, &docker, &id)?.is_none() {
            return Ok(());
        }
        docker.remove(&id).map_err(docker_error)
    }

    fn inspect(&mut self, id: String) -> Result<Option<ContainerState>, Error> {
        let host = self.authorize(Capability::Containers, "containers.inspect")?;
        let docker = host.docker()?;
        Ok(owned(host, &docker, &id)?.map(|state| ContainerState {
            status: state.status,
            running: state.running,
            exit_code: state.exit_code,
            started_at: state.started_at,
            finished_at: state.finished_at,
        }))
    }

    fn grep_logs(
        &mut self,
        id: String,
        patterns: Vec<String>,
        limit: u32,
    ) -> Result<Vec<String>, Error> {
        let host = self.authorize(Capability::Containers, "containers.grep-logs")?;
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
    }
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

/// Validates a provider's spec and builds the Docker request.
fn translate(host: &HostContext, spec: ContainerSpec) -> Result<docker::ContainerSpec, Error> {
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
    let mut secrets = Vec::new();
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in spec.env {
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
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
            EnvValue::Secret(var) => {
                let value = std::env::var(&var).map_err(|_| {
                    Error::Unavailable(format!(
                        "environment variable '{var}' is not set; set it before running `jarvis mine start`"
                    ))
                })?;
                secrets.push(var);
                value
            }
            EnvValue::OptionalSecret(var) => {
                let value = std::env::var(&var).unwrap_or_default();
                secrets.push(var);
                value
            }
        };
        env.push((name, value));
    }
    let mut mounts = Vec::new();
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
                std::fs::create_dir_all(&dir).map_err(|err| {
                    Error::Failed(format!(
                        "cannot create the Hugging Face cache {}: {err}",
                        dir.display()
                    ))
                })?;
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
    let gpus = match spec.gpus {
        GpuRequest::None => docker::GpuRequest::None,
        GpuRequest::All => docker::GpuRequest::All,
        GpuRequest::Count(n) => docker::GpuRequest::Count(n),
        GpuRequest::DeviceIds(ids) => docker::GpuRequest::DeviceIds(ids),
    };
    let labels = BTreeMap::from([
        (LABEL_PROVIDER.to_owned(), host.provider_id.clone()),
        (LABEL_COMPONENT.to_owned(), host.component_sha256.clone()),
        (LABEL_SESSION.to_owned(), host.session.id.clone()),
        (LABEL_SECRETS.to_owned(), secrets.join(",")),
        (
            LABEL_HOME.to_owned(),
            host.session.paths.home().display().to_string(),
        ),
    ]);
    Ok(docker::ContainerSpec {
        name: Some(spec.name),
        image: spec.image,
        args: spec.args,
        env,
        labels,
        gpus,
        mounts,
        shm_size_bytes: spec.shm_size_bytes,
        network_mode,
        restart_policy,
        ports: spec
            .ports
            .into_iter()
            .map(|p| docker::PortBinding {
                container_port: p.container,
                host_port: p.host,
                host_ip: Some("127.0.0.1".into()),
            })
            .collect(),
    })
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
    if FORBIDDEN_MOUNTS
        .iter()
        .any(|f| resolved == Path::new(f) || (*f != "/" && resolved.starts_with(f)))
    {
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
