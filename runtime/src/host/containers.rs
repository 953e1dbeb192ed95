//! The `containers` import: a provider describes a container; the host
//! validates the description as text, asks the policy, resolves on the host
//! only what the grant covers and asks again, then resolves secret
//! references, names the container in the provider's namespace, labels it
//! with the provider's identity and creates it. A provider acts only on
//! containers the host created for it, and a reference to anything else
//! reads exactly as a reference to nothing.

use super::context::{Containers, ContainersView};
use super::env::{Env, valid_name};
use super::gate::Gate;
use super::{CallHost, IMPORT_ENSURE_IMAGE, LABEL_SECRETS, docker_error};
use crate::bindings::openjarvis::mining::containers::{
    ContainerSpec, ContainerState, GpuRequest, Host, LogGrep, MountSource,
};
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{self, Docker};
use crate::policy::{GpuAsk, HostRule, Request, RunRequest, lexically_normal};
use crate::redact::Redactor;
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
/// Containers one `run-all` may create: more than any host's GPUs.
const MAX_RUN_ALL: usize = 16;
const MAX_TEXT: usize = 4096;
const MAX_SHM_BYTES: u64 = 64 << 30;
/// Log lines read to answer one grep (the newest).
const GREP_WINDOW: usize = 200_000;
/// Patterns one grep may ask for, and their length: the search is host
/// time the guest's deadline does not see.
const MAX_PATTERNS: usize = 64;
const MAX_PATTERN_BYTES: usize = 1024;

impl Host for CallHost {
    fn ensure_image(&mut self, image: String) -> Result<(), Error> {
        self.privileged::<Containers, _>(IMPORT_ENSURE_IMAGE, |gate| {
            check_image(&image)?;
            let mut view = gate.permit(Request::EnsureImage { image: &image })?;
            if let Some(plan) = view.dry_run() {
                plan.image(&image);
                return Ok(());
            }
            let docker = view.docker()?;
            let (source, progress) = view.image_source();
            docker
                .ensure_image(&image, source, progress)
                .map(drop)
                .map_err(docker_error)
        })
    }

    fn run(&mut self, spec: ContainerSpec) -> Result<String, Error> {
        self.privileged::<Containers, _>("containers.run", |gate| {
            run_all(gate, vec![spec]).map(|mut ids| ids.remove(0))
        })
    }

    fn run_all(&mut self, specs: Vec<ContainerSpec>) -> Result<Vec<String>, Error> {
        self.privileged::<Containers, _>("containers.run-all", |gate| run_all(gate, specs))
    }

    fn stop(&mut self, id: String, timeout_seconds: u32) -> Result<(), Error> {
        self.privileged::<Containers, _>("containers.stop", |gate| {
            let timeout =
                Duration::from_secs(u64::from(timeout_seconds.min(600))).min(gate.time_left());
            check_id(&id)?;
            let view = gate.permit(Request::Own { target: &id })?;
            match view.find(&id)? {
                Some(state) => view
                    .docker()?
                    .stop(&state.id, timeout)
                    .map_err(docker_error),
                None => Ok(()),
            }
        })
    }

    fn remove(&mut self, id: String) -> Result<(), Error> {
        self.privileged::<Containers, _>("containers.remove", |gate| {
            check_id(&id)?;
            let view = gate.permit(Request::Own { target: &id })?;
            match view.find(&id)? {
                Some(state) => view.docker()?.remove(&state.id).map_err(docker_error),
                None => Ok(()),
            }
        })
    }

    fn inspect(&mut self, id: String) -> Result<Option<ContainerState>, Error> {
        self.privileged::<Containers, _>("containers.inspect", |gate| {
            check_id(&id)?;
            let view = gate.permit(Request::Own { target: &id })?;
            Ok(view.find(&id)?.map(|state| ContainerState {
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
        self.privileged::<Containers, _>("containers.grep-logs", |gate| {
            let request = LogGrep {
                id,
                patterns,
                limit,
            };
            check_grep(&request)?;
            let view = gate.permit(Request::Own {
                target: &request.id,
            })?;
            let mut answers = grep(&view, std::slice::from_ref(&request))?;
            answers.pop().expect("one answer per request")
        })
    }

    fn grep_logs_all(
        &mut self,
        requests: Vec<LogGrep>,
    ) -> Result<Vec<Result<Vec<String>, Error>>, Error> {
        self.privileged_batch::<Containers, _>("containers.grep-logs-all", requests.len(), |gate| {
            super::check_batch("grep-logs-all", "requests", requests.len())?;
            for (index, request) in requests.iter().enumerate() {
                check_grep(request).map_err(|err| super::in_request(index, err))?;
            }
            let targets: Vec<Request> = requests
                .iter()
                .map(|r| Request::Own { target: &r.id })
                .collect();
            let view = gate.permit_all(&targets)?;
            grep(&view, &requests)
        })
    }
}

/// A grep's patterns, bounded: the search is host time the guest's
/// deadline does not see.
fn check_grep(request: &LogGrep) -> Result<(), Error> {
    check_id(&request.id)?;
    if request.patterns.len() > MAX_PATTERNS
        || request.patterns.iter().any(|p| p.len() > MAX_PATTERN_BYTES)
    {
        return Err(invalid(format!(
            "grep-logs takes at most {MAX_PATTERNS} patterns of {MAX_PATTERN_BYTES} bytes each"
        )));
    }
    Ok(())
}

/// Each request's matching lines, the logs of the containers read
/// together. A reference to no container of this provider's reads as an
/// empty log, exactly like a container that printed nothing that matches.
fn grep(
    view: &ContainersView<'_>,
    requests: &[LogGrep],
) -> Result<Vec<Result<Vec<String>, Error>>, Error> {
    let references: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    let found = view.find_listed(&references)?;
    // (request index, container) of the requests that name one.
    let present: Vec<(usize, &docker::ContainerSummary)> = found
        .iter()
        .enumerate()
        .filter_map(|(index, container)| Some((index, container.as_ref()?)))
        .collect();
    let mut answers: Vec<Result<Vec<String>, Error>> = vec![Ok(Vec::new()); requests.len()];
    if present.is_empty() {
        return Ok(answers);
    }
    let redactors: Vec<Redactor> = present
        .iter()
        .map(|(_, container)| redactor_for(&container.labels))
        .collect();
    let searches: Vec<(&str, usize)> = present
        .iter()
        .map(|(index, container)| (container.id.as_str(), requests[*index].limit as usize))
        .collect();
    // Patterns meet the redacted text only: what matches, and how often,
    // must not depend on a secret's value.
    let keep = |search: usize, line: String| {
        let line = redactors[search].redact_owned(&line);
        let patterns = &requests[present[search].0].patterns;
        patterns
            .iter()
            .any(|p| line.contains(p.as_str()))
            .then_some(line)
    };
    let results = view
        .docker()?
        .grep_logs_all(&searches, GREP_WINDOW, &keep)
        .map_err(docker_error)?;
    for ((index, _), result) in present.iter().zip(results) {
        answers[*index] = result.map_err(docker_error);
    }
    Ok(answers)
}

/// `containers.run`: decide on the request as described, resolve what the
/// grant covers, decide again, then create.
/// Every container or none: each spec passes every check (its name and
/// host ports distinct from the others', the quota counting them all, its
/// ports free, its secrets set) before the first is created, and those
/// created are removed when a later one cannot be.
fn run_all(
    gate: &mut Gate<'_, Containers>,
    specs: Vec<ContainerSpec>,
) -> Result<Vec<String>, Error> {
    if specs.is_empty() || specs.len() > MAX_RUN_ALL {
        return Err(invalid(format!(
            "run-all takes 1 to {MAX_RUN_ALL} container specs, got {}",
            specs.len()
        )));
    }
    let mut plans: Vec<Plan> = Vec::with_capacity(specs.len());
    let mut summaries = Vec::with_capacity(specs.len());
    for spec in specs {
        let plan = check(gate, spec)?;
        if let Some(twin) = plans
            .iter()
            .find(|p| p.requested_name == plan.requested_name)
        {
            return Err(invalid(format!(
                "two container specs are named {:?}",
                twin.requested_name
            )));
        }
        if let Some(port) = plan
            .policy
            .host_ports
            .iter()
            .find(|port| plans.iter().any(|p| p.policy.host_ports.contains(port)))
        {
            return Err(invalid(format!(
                "host port {port} is declared by two container specs"
            )));
        }
        summaries.push(gate.summary().to_owned());
        plans.push(plan);
    }
    let names: Vec<&str> = plans.iter().map(|p| p.policy.name.as_str()).collect();
    let held = gate.containers_held(&names)?;
    let quota = gate.containers_quota();
    if (held + plans.len()) as u64 > quota.value {
        return Err(gate.over_quota(
            &quota,
            format!(
                "provider holds {held} containers and may not create {} more",
                plans.len()
            ),
        ));
    }
    let mut requests = Vec::with_capacity(plans.len());
    for plan in plans {
        let view = gate.permit(Request::RunContainer(&plan.policy))?;
        let policy = plan.policy.clone();
        requests.push((policy, plan.finish(&view)?));
    }
    let ids = match gate.dry_run() {
        Some(plan) => requests
            .iter()
            .map(|(policy, request)| plan.container(request, &policy.host_ports))
            .collect(),
        None => create_all(gate, &requests)?,
    };
    gate.describe(summaries.join("; "));
    Ok(ids)
}

/// Creates every container, then starts them: a container Docker refuses
/// to create stops the call before any runs. On a failure every container
/// created is removed (every container or none).
fn create_all(
    gate: &mut Gate<'_, Containers>,
    requests: &[(RunRequest, docker::ContainerSpec)],
) -> Result<Vec<String>, Error> {
    let mut ids = Vec::with_capacity(requests.len());
    let created = create_then_start(gate, requests, &mut ids);
    if let Err(error) = created {
        let view = gate.permit(Request::RunContainer(&requests[0].0));
        if let Ok(docker) = view.and_then(|view| view.docker()) {
            for id in &ids {
                let _ = docker.remove(id);
            }
        }
        return Err(error);
    }
    Ok(ids)
}

/// [`create_all`]'s work; `ids` holds what was created, also on failure.
fn create_then_start(
    gate: &mut Gate<'_, Containers>,
    requests: &[(RunRequest, docker::ContainerSpec)],
    ids: &mut Vec<String>,
) -> Result<(), Error> {
    for (policy, request) in requests {
        let view = gate.permit(Request::RunContainer(policy))?;
        ids.push(create(&view, request)?);
    }
    let docker = gate
        .permit(Request::RunContainer(&requests[0].0))?
        .docker()?;
    for id in ids.iter() {
        docker.start(id).map_err(docker_error)?;
    }
    Ok(())
}

/// One spec through everything but the quota: its text, the payout rule,
/// the policy on the request as written, the forbidden mounts, then the
/// policy again on what the host resolved.
fn check(gate: &mut Gate<'_, Containers>, spec: ContainerSpec) -> Result<Plan, Error> {
    let mut plan = plan(spec)?;
    plan.policy.name = gate.docker_name(&plan.requested_name);
    // Rewards go to the user: every Pearl address the miner is given is
    // the configured wallet.
    let texts = plan
        .env
        .vars
        .iter()
        .map(|(_, value)| value.as_str())
        .chain(plan.request.args.iter().map(String::as_str));
    if let Err(foreign) =
        crate::rewards::check_payout_addresses(texts, gate.wallet_address().unwrap_or_default())
    {
        return Err(gate.refuse(HostRule::PayoutAddress, foreign));
    }
    if gate.pins_digests() {
        // The image by name first: a digest is looked up only for an image
        // the policy grants, so a denial says nothing about other images.
        gate.decide(&Request::EnsureImage {
            image: &plan.policy.image,
        })?;
        plan.policy.image_digests = Some(gate.image_digests(&plan.policy.image)?);
    }
    gate.decide(&Request::RunContainer(&plan.policy))?;
    if let Some(path) = plan
        .policy
        .mounts
        .iter()
        .map(|(p, _)| p)
        .find(|p| forbidden_mount(p))
    {
        return Err(gate.refuse(
            HostRule::ForbiddenMounts,
            format!(
                "mounting {} into a container is not allowed",
                path.display()
            ),
        ));
    }
    // Only now, for paths the grant covers, does the host look at its disk.
    let dry_run = gate.dry_run().is_some();
    plan.resolve_mounts(dry_run)
        .map_err(|refusal| match refusal {
            MountRefusal::Forbidden(path) => gate.refuse(
                HostRule::ForbiddenMounts,
                format!(
                    "mounting {} into a container is not allowed",
                    path.display()
                ),
            ),
            MountRefusal::Invalid(error) => error,
        })?;
    gate.decide(&Request::RunContainer(&plan.policy))?;
    Ok(plan)
}

/// Creates the container. A name held by a finished container of this
/// provider (kept for `jarvis mine logs`) is taken over; one held by
/// anything else is an error.
fn create(view: &ContainersView<'_>, request: &docker::ContainerSpec) -> Result<String, Error> {
    let docker = view.docker()?;
    let name = request.name.clone().unwrap_or_default();
    let id = match docker.create(request) {
        Err(docker::DockerError::NameConflict(_)) => match view.finished_holder(&name)? {
            Some(old) => {
                docker.remove(&old).map_err(docker_error)?;
                docker.create(request).map_err(docker_error)?
            }
            None => {
                return Err(Error::Failed(format!(
                    "a container named '{name}' already exists and is not a finished session of this provider: remove it with `docker rm -f {name}`"
                )));
            }
        },
        other => other.map_err(docker_error)?,
    };
    Ok(id)
}

/// Redacts the values of the secrets a container was created with.
pub fn redactor_for(labels: &BTreeMap<String, String>) -> Redactor {
    let names = labels
        .get(LABEL_SECRETS)
        .map(String::as_str)
        .unwrap_or_default();
    Redactor::for_variables(names.split(','))
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// A container id or name as Docker spells them.
fn check_id(id: &str) -> Result<(), Error> {
    if plain_name(id) {
        Ok(())
    } else {
        let shown: String = id.chars().take(64).collect();
        Err(invalid(format!(
            "container id or name {shown:?}{} is not valid",
            if shown.len() < id.len() { "..." } else { "" }
        )))
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// An image reference as Docker parses it.
fn check_image(image: &str) -> Result<(), Error> {
    crate::image_reference::ImageRef::parse(image)
        .map(drop)
        .map_err(|err| invalid(format!("image reference {image:?} is not valid: {err}")))
}

/// A validated spec: what the policy is asked about, and the Docker request
/// still missing what needs the policy's permit first (secret values, the
/// resolved host paths, the name in the provider's namespace, the labels).
struct Plan {
    policy: RunRequest,
    requested_name: String,
    /// Its `env` is empty until [`Plan::finish`] resolves `env`'s secrets.
    request: docker::ContainerSpec,
    env: Env,
    /// The mount whose source is the Hugging Face cache (created if missing).
    hf_cache: Option<usize>,
}

/// Validates a provider's spec as text, touching nothing on the host.
fn plan(spec: ContainerSpec) -> Result<Plan, Error> {
    check_image(&spec.image)?;
    // The provider's own name, before the namespace prefix (at most 100
    // characters, so the prefixed name stays within Docker's limits).
    if !plain_name(&spec.name) || spec.name.len() > 100 {
        return Err(invalid(format!(
            "container name {:?} is not valid: use 1-100 of a-z, A-Z, 0-9, '_', '.', '-', starting with a letter or digit",
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
    let env = Env::parse(spec.env, MAX_TEXT, |name| {
        if valid_name(name) {
            Ok(())
        } else {
            Err(invalid(format!(
                "environment variable name {name:?} is not valid"
            )))
        }
    })?;
    let mut mounts = Vec::new();
    let mut hf_cache = None;
    for mount in spec.mounts {
        if !mount.target.starts_with('/') || mount.target == "/" || mount.target.len() > MAX_TEXT {
            return Err(invalid(format!(
                "mount target {:?} must be an absolute path below /",
                mount.target
            )));
        }
        let host_path = match mount.source {
            MountSource::HfCache => {
                hf_cache = Some(mounts.len());
                host_gpu::disk::hf_home().ok_or_else(|| {
                    Error::Unavailable("cannot locate the Hugging Face cache: set HF_HOME".into())
                })?
            }
            MountSource::HostPath(path) => requested_path(&path)?,
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
    let mut host_ports: Vec<u16> = spec.ports.iter().map(|p| p.host).collect();
    host_ports.sort_unstable();
    if host_ports.windows(2).any(|w| w[0] == w[1]) || host_ports.contains(&0) {
        return Err(invalid("host ports must be distinct and not 0".into()));
    }
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
        name: String::new(),
        image: spec.image.clone(),
        image_digests: None,
        gpus: ask,
        mounts: mounts
            .iter()
            .map(|m| (m.host_path.clone(), m.read_only))
            .collect(),
        network: network_mode.clone(),
        host_ports,
        env_names: env.names(),
        secrets: env.secrets(),
        shm_bytes: spec.shm_size_bytes,
    };
    Ok(Plan {
        policy,
        requested_name: spec.name,
        request: docker::ContainerSpec {
            name: None,
            image: spec.image,
            args: spec.args,
            env: Vec::new(),
            labels: BTreeMap::new(),
            gpus,
            mounts,
            shm_size_bytes: spec.shm_size_bytes,
            network_mode,
            restart_policy,
            ports,
            memory_bytes: None,
        },
        env,
        hf_cache,
    })
}

/// Why a granted mount could not be resolved.
enum MountRefusal {
    /// It resolves to (or holds) a path no container may mount.
    Forbidden(PathBuf),
    Invalid(Error),
}

impl Plan {
    /// Resolves the granted mounts on the host (links, `..` through links)
    /// and puts the canonical paths in the request, for the re-check.
    /// A dry run creates nothing: a missing Hugging Face cache stays as
    /// configured.
    fn resolve_mounts(&mut self, dry_run: bool) -> Result<(), MountRefusal> {
        for (index, mount) in self.request.mounts.iter_mut().enumerate() {
            if self.hf_cache == Some(index) && dry_run && !mount.host_path.exists() {
                continue;
            }
            if self.hf_cache == Some(index) {
                std::fs::create_dir_all(&mount.host_path).map_err(|err| {
                    MountRefusal::Invalid(Error::Failed(format!(
                        "cannot create the Hugging Face cache {}: {err}",
                        mount.host_path.display()
                    )))
                })?;
            }
            let resolved = mount.host_path.canonicalize().map_err(|_| {
                MountRefusal::Invalid(Error::Invalid(format!(
                    "mount source does not exist: {}",
                    mount.host_path.display()
                )))
            })?;
            if forbidden_mount(&resolved) {
                return Err(MountRefusal::Forbidden(resolved));
            }
            if !resolved.is_dir() {
                return Err(MountRefusal::Invalid(Error::Invalid(format!(
                    "mount source must be a directory: {}",
                    mount.host_path.display()
                ))));
            }
            self.policy.mounts[index].0 = resolved.clone();
            mount.host_path = resolved;
        }
        Ok(())
    }

    /// Completes the request once the policy has permitted it: reads the
    /// granted secrets, names and labels the container.
    fn finish(mut self, view: &ContainersView<'_>) -> Result<docker::ContainerSpec, Error> {
        let secrets = self.env.secrets();
        self.request.env = self.env.resolve(|var| view.missing_secret(var))?;
        ensure_ports_free(&self.policy.host_ports)?;
        let names: Vec<&str> = secrets.iter().map(String::as_str).collect();
        self.request.labels = view.labels(&self.requested_name, &names, &self.policy.host_ports);
        self.request.name = Some(self.policy.name.clone());
        self.request.memory_bytes = view.memory_limit();
        Ok(self.request)
    }
}

/// The host ports a container will serve must be free on loopback before
/// it starts, so that a session's endpoint is the container's and never a
/// service that was already listening there.
fn ensure_ports_free(ports: &[u16]) -> Result<(), Error> {
    for port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            return Err(Error::Failed(format!(
                "host port {port} is already in use; free it or choose another port in [mining.extra]"
            )));
        }
    }
    Ok(())
}

/// A configured host path (`~` expanded), lexically normalised: the policy
/// decides on this form before the host looks at its disk.
fn requested_path(path: &str) -> Result<PathBuf, Error> {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::home_dir().unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    };
    if path.len() > MAX_TEXT {
        return Err(invalid("mount source is longer than 4096 bytes".into()));
    }
    lexically_normal(&expanded).ok_or_else(|| {
        invalid(format!(
            "mount source {path:?} must be an absolute path or start with \"~/\""
        ))
    })
}

/// Whether `path` is, is below, or holds one of [`FORBIDDEN_MOUNTS`] or the
/// socket of the Docker daemon the host uses (each as named and as it
/// resolves: `/var/run` is a link).
fn forbidden_mount(path: &Path) -> bool {
    let socket = Docker::default_host()
        .strip_prefix("unix://")
        .map(PathBuf::from);
    FORBIDDEN_MOUNTS
        .iter()
        .map(PathBuf::from)
        .chain(socket)
        .flat_map(|path| {
            let canonical = path.canonicalize().ok();
            [Some(path), canonical]
        })
        .flatten()
        .any(|forbidden| {
            forbidden.starts_with(path)
                || (forbidden != Path::new("/") && path.starts_with(&forbidden))
        })
}
