//! Container lifecycle: create, start, stop, remove, inspect, list.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, DeviceRequest};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder,
};
use serde::Serialize;

use super::Docker;
use super::error::{Cause, DockerError, classify, request_error};
use super::spec::{ContainerSpec, GpuRequest, create_request};
use crate::redact::Redactor;

/// What `docker inspect` says about a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    /// created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    pub running: bool,
    /// Set once the container has exited (`status` exited or dead), and
    /// while Docker restarts it (`restarting`: the last run's code).
    pub exit_code: Option<i64>,
    /// RFC 3339; `None` when it never started.
    pub started_at: Option<String>,
    /// RFC 3339; `None` when it never finished.
    pub finished_at: Option<String>,
    /// starting, healthy or unhealthy, when the image has a health check.
    pub health: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The image as the container was created from it (name:tag).
    pub image: String,
    /// How often Docker restarted it under its restart policy.
    pub restart_count: i64,
    pub oom_killed: bool,
    /// Docker's error starting it, if any.
    pub error: Option<String>,
    /// The GPUs it was created with (`HostConfig.DeviceRequests`, as Docker
    /// recorded the host's create request), one entry per device request;
    /// empty: no GPU request. Not part of `status --json`'s `container`.
    #[serde(skip)]
    pub gpu_requests: Vec<GpuRequest>,
}

/// One container of [`Docker::list_labelled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    pub image: String,
    /// created, running, exited, ...
    pub state: String,
    /// Docker's human summary, e.g. "Exited (0) 5 seconds ago".
    pub status: String,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

impl Docker {
    /// Creates (does not start) a container; returns its id. A taken name is
    /// [`DockerError::NameConflict`]; a missing image is
    /// [`DockerError::ImageUnavailable`]. Messages are redacted of every
    /// environment value of `spec`.
    pub fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let (options, body) = create_request(spec)?;
        let redactor = Redactor::new(spec.env_values());
        let name = spec.display_name();
        let what = format!(
            "failed to create container '{name}' from image '{}'",
            spec.image
        );
        let result = self.call(
            &format!("creating container '{name}'"),
            self.timeouts.request,
            self.client.create_container(Some(options), body),
        )?;
        match result {
            Ok(response) => {
                for warning in response.warnings {
                    tracing::warn!(container = name, "Docker: {}", redactor.redact(&warning));
                }
                tracing::info!("created container {name} ({})", response.id);
                Ok(response.id)
            }
            Err(error) => Err(match classify(&error) {
                Cause::Daemon {
                    status: 409,
                    message,
                } => DockerError::NameConflict(format!(
                    "{what}: a container named '{name}' already exists ({}); \
                     stop the session that owns it, or remove it with `docker rm -f {name}`",
                    redactor.redact(&message)
                )),
                Cause::Daemon {
                    status: 404,
                    message,
                } => DockerError::ImageUnavailable(format!(
                    "{what}: the image is not present locally ({}); acquire it first",
                    redactor.redact(&message)
                )),
                _ => request_error(&self.host, &what, &error, &redactor),
            }),
        }
    }

    /// Starts a created or stopped container; already running is `Ok`.
    pub fn start(&self, id: &str) -> Result<(), DockerError> {
        let what = format!("failed to start container '{id}'");
        self.call(
            &format!("starting container '{id}'"),
            self.timeouts.request,
            self.client
                .start_container(id, None::<StartContainerOptions>),
        )?
        .map_err(|error| self.error(&what, &error))
    }

    /// Sends SIGTERM, then SIGKILL after `timeout`; already stopped is `Ok`,
    /// a container that does not exist is [`DockerError::NotFound`].
    pub fn stop(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        let grace = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(grace).build();
        let what = format!("failed to stop container '{id}'");
        self.call(
            &format!("stopping container '{id}'"),
            timeout + self.timeouts.request,
            self.client.stop_container(id, Some(options)),
        )?
        .map_err(|error| self.error(&what, &error))
    }

    /// Removes a container, killing it if it runs, with its anonymous
    /// volumes; already gone (or being removed) is `Ok`.
    pub fn remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let result = self.call(
            &format!("removing container '{id}'"),
            self.timeouts.request,
            self.client.remove_container(id, Some(options)),
        )?;
        match result {
            Ok(()) => {
                tracing::info!("removed container {id}");
                Ok(())
            }
            Err(error) => match classify(&error) {
                Cause::Daemon { status: 404, .. } => Ok(()),
                Cause::Daemon {
                    status: 409,
                    message,
                } if message.contains("already in progress") => Ok(()),
                _ => Err(self.error(&format!("failed to remove container '{id}'"), &error)),
            },
        }
    }

    /// The container's state, or `None` when it does not exist.
    pub fn inspect(&self, id: &str) -> Result<Option<ContainerState>, DockerError> {
        let result = self.call(
            &format!("inspecting container '{id}'"),
            self.timeouts.request,
            self.client
                .inspect_container(id, None::<InspectContainerOptions>),
        )?;
        self.inspected(id, result)
    }

    /// [`inspect`](Self::inspect) of each of `ids`, the requests in flight
    /// together (a session of several workers has a container each).
    pub fn inspect_all(&self, ids: &[String]) -> Result<Vec<Option<ContainerState>>, DockerError> {
        let requests = ids.iter().map(|id| {
            self.client
                .inspect_container(id, None::<InspectContainerOptions>)
        });
        let results = self.call(
            &format!("inspecting {} containers", ids.len()),
            self.timeouts.request,
            futures_util::future::join_all(requests),
        )?;
        ids.iter()
            .zip(results)
            .map(|(id, result)| self.inspected(id, result))
            .collect()
    }

    fn inspected(
        &self,
        id: &str,
        result: Result<ContainerInspectResponse, BollardError>,
    ) -> Result<Option<ContainerState>, DockerError> {
        match result {
            Ok(response) => Ok(Some(container_state(response))),
            Err(error) => match classify(&error) {
                Cause::Daemon { status: 404, .. } => Ok(None),
                _ => Err(self.error(&format!("failed to inspect container '{id}'"), &error)),
            },
        }
    }

    /// Everything `docker inspect` says about a container, as Docker's JSON
    /// (for a record of it), or `None` when it does not exist. Raw: its
    /// `Config.Env` holds resolved secrets, so redact before keeping it.
    pub fn inspect_json(&self, id: &str) -> Result<Option<serde_json::Value>, DockerError> {
        let result = self.call(
            &format!("inspecting container '{id}'"),
            self.timeouts.request,
            self.client
                .inspect_container(id, None::<InspectContainerOptions>),
        )?;
        match result {
            Ok(response) => serde_json::to_value(response).map(Some).map_err(|error| {
                DockerError::Failed(format!(
                    "cannot represent the inspection of container '{id}': {error}"
                ))
            }),
            Err(error) => match classify(&error) {
                Cause::Daemon { status: 404, .. } => Ok(None),
                _ => Err(self.error(&format!("failed to inspect container '{id}'"), &error)),
            },
        }
    }

    /// Every container (running or not) carrying `label`, or `label=value`.
    pub fn list_labelled(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filter = match value {
            Some(value) => format!("{label}={value}"),
            None => label.to_owned(),
        };
        self.list_filtered(vec![filter])
    }

    /// Every container (running or not) carrying all of these `label=value`
    /// pairs.
    pub fn list_with_labels(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        self.list_filtered(
            labels
                .iter()
                .map(|(label, value)| format!("{label}={value}"))
                .collect(),
        )
    }

    /// Docker ANDs label filters.
    fn list_filtered(&self, filters: Vec<String>) -> Result<Vec<ContainerSummary>, DockerError> {
        let shown = filters.join(", ");
        let labels: Vec<&str> = filters.iter().map(String::as_str).collect();
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let what = format!("failed to list containers labelled '{shown}'");
        let containers = self
            .call(
                &format!("listing containers labelled '{shown}'"),
                self.timeouts.request,
                self.client.list_containers(Some(options)),
            )?
            .map_err(|error| self.error(&what, &error))?;
        Ok(containers
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|names| names.into_iter().next())
                    .map(|name| name.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                created: c.created.unwrap_or_default(),
            })
            .collect())
    }
}

/// Docker's zero time ("0001-01-01T00:00:00Z") means "never".
fn timestamp(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty() && !v.starts_with("0001-01-01"))
}

fn container_state(response: ContainerInspectResponse) -> ContainerState {
    let state = response.state.unwrap_or_default();
    let config = response.config.unwrap_or_default();
    let gpu_requests = response
        .host_config
        .and_then(|host| host.device_requests)
        .map(|requests| requests.iter().filter_map(gpu_request).collect())
        .unwrap_or_default();
    let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
    // A running container's ExitCode is 0, not a result.
    let finished = matches!(
        status,
        ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::RESTARTING
    );
    ContainerState {
        id: response.id.unwrap_or_default(),
        name: response
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        status: status.to_string(),
        running: state.running.unwrap_or(false),
        exit_code: if finished { state.exit_code } else { None },
        started_at: timestamp(state.started_at),
        finished_at: timestamp(state.finished_at),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        image: config.image.or(response.image).unwrap_or_default(),
        restart_count: response.restart_count.unwrap_or_default(),
        oom_killed: state.oom_killed.unwrap_or(false),
        error: state.error.filter(|e| !e.is_empty()),
        gpu_requests,
    }
}

/// One device request as the GPUs it asks for: a request for the `gpu`
/// capability (or the `nvidia` driver) with device ids, else a count (`-1`:
/// every GPU, as `docker run --gpus all` sends). Other devices, and a count
/// of 0, are no GPU request.
fn gpu_request(request: &DeviceRequest) -> Option<GpuRequest> {
    let gpu = request.driver.as_deref() == Some("nvidia")
        || request
            .capabilities
            .iter()
            .flatten()
            .any(|set| set.iter().any(|c| c == "gpu"));
    if !gpu {
        return None;
    }
    let ids: Vec<String> = request
        .device_ids
        .iter()
        .flatten()
        .flat_map(|id| id.split(','))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        return Some(GpuRequest::DeviceIds(ids));
    }
    match request.count {
        Some(count) if count < 0 => Some(GpuRequest::All),
        Some(count) if count > 0 => Some(GpuRequest::Count(u32::try_from(count).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(count: Option<i64>, ids: Option<&[&str]>, capability: &str) -> DeviceRequest {
        DeviceRequest {
            driver: None,
            count,
            device_ids: ids.map(|ids| ids.iter().map(|id| (*id).to_owned()).collect()),
            capabilities: Some(vec![vec![capability.to_owned()]]),
            options: None,
        }
    }

    #[test]
    fn device_requests_read_back_as_gpu_requests() {
        assert_eq!(
            gpu_request(&request(Some(-1), None, "gpu")),
            Some(GpuRequest::All)
        );
        assert_eq!(
            gpu_request(&request(Some(2), None, "gpu")),
            Some(GpuRequest::Count(2))
        );
        assert_eq!(
            gpu_request(&request(None, Some(&["1", "GPU-abc"]), "gpu")),
            Some(GpuRequest::DeviceIds(vec!["1".into(), "GPU-abc".into()]))
        );
        // `--gpus '"device=0,2"'` as one id.
        assert_eq!(
            gpu_request(&request(None, Some(&["0,2"]), "gpu")),
            Some(GpuRequest::DeviceIds(vec!["0".into(), "2".into()]))
        );
        assert_eq!(gpu_request(&request(Some(0), None, "gpu")), None);
        assert_eq!(gpu_request(&request(Some(-1), None, "tpu")), None);
        let nvidia = DeviceRequest {
            driver: Some("nvidia".into()),
            capabilities: None,
            ..request(Some(-1), None, "")
        };
        assert_eq!(gpu_request(&nvidia), Some(GpuRequest::All));
    }

    #[test]
    fn what_the_host_sends_is_what_it_reads_back() {
        let spec = |gpus| ContainerSpec {
            image: "i".into(),
            gpus,
            ..ContainerSpec::default()
        };
        for gpus in [
            GpuRequest::All,
            GpuRequest::Count(3),
            GpuRequest::DeviceIds(vec!["0".into(), "GPU-1".into()]),
        ] {
            let (_, body) = create_request(&spec(gpus.clone())).unwrap();
            let sent = body.host_config.unwrap().device_requests.unwrap();
            let read: Vec<GpuRequest> = sent.iter().filter_map(gpu_request).collect();
            assert_eq!(read, [gpus]);
        }
        let (_, body) = create_request(&spec(GpuRequest::None)).unwrap();
        assert!(body.host_config.unwrap().device_requests.is_none());
    }
}
