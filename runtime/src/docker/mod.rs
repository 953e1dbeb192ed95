//! The host's only Docker client: a small synchronous facade over bollard.
//!
//! [`Docker`] owns a current-thread tokio runtime and blocks on each call,
//! so the rest of the host (sandbox imports, the CLI) stays synchronous.
//! Every request has a time limit ([`Timeouts`]); streams (pull, build,
//! followed logs) have an idle limit instead, or none for followed logs,
//! which last as long as the container runs.
//!
//! Errors ([`DockerError`]) are messages that say what to do. They never
//! carry a request body or a resolved environment value: the daemon may echo
//! a create request, whose environment holds the RPC password, so its
//! messages are redacted before they are used.
//!
//! Do not call these methods from inside an async runtime: blocking on one
//! runtime from within another panics.
//!
//! One file per responsibility: `container.rs` (create, start, stop, remove,
//! inspect, list), `spec.rs` (the container spec and its create request),
//! `image.rs` (presence, pull, ensure), `build.rs` (BuildKit builds and their
//! progress), `context.rs` (the build context tar), `logs.rs` (tail, follow
//! and search), `info.rs` (`docker info`), `ping.rs` (the API version),
//! `error.rs`.

mod build;
mod container;
mod context;
mod error;
mod image;
mod info;
mod logs;
mod ping;
mod spec;

use std::future::Future;
use std::time::Duration;

use bollard::errors::Error as BollardError;

pub use container::{ContainerState, ContainerSummary};
pub use error::DockerError;
pub use image::{ImageProgress, ImageSource, PEARL_DOCKERFILE};
pub use info::DaemonInfo;
pub use spec::{ContainerSpec, GpuRequest, Mount, PortBinding, RestartPolicy};

use error::{Cause, classify, describe, unreachable_message};

/// The local daemon's socket, used when `DOCKER_HOST` is not set.
#[cfg(unix)]
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// The local daemon's named pipe, used when `DOCKER_HOST` is not set.
#[cfg(windows)]
pub const DEFAULT_HOST: &str = "npipe:////./pipe/docker_engine";

/// Time limits for talking to the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting and negotiating the API version ([`Docker::connect`]).
    pub connect: Duration,
    /// One ordinary request (inspect, create, start, remove, list, logs).
    /// `stop` gets its grace period on top.
    pub request: Duration,
    /// The longest silence of a pull before it is abandoned.
    pub pull_idle: Duration,
    /// The longest silence of a build before it is abandoned (a single
    /// compile step of Pearl's image can print nothing for many minutes).
    pub build_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(30),
            pull_idle: Duration::from_secs(10 * 60),
            build_idle: Duration::from_secs(60 * 60),
        }
    }
}

/// A connection to one Docker daemon.
pub struct Docker {
    client: bollard::Docker,
    runtime: tokio::runtime::Runtime,
    host: String,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker")
            .field("host", &self.host)
            .field("api", &self.client.client_version().to_string())
            .finish()
    }
}

/// A bollard client for `host` speaking `version` (bollard's own when
/// `None`). Time limits are ours (per call, and idle limits for streams);
/// bollard's would cut long pulls and builds short.
fn bollard_client(
    host: &str,
    version: Option<&bollard::ClientVersion>,
) -> Result<bollard::Docker, BollardError> {
    const NO_LIMIT: u64 = 24 * 60 * 60;
    let version = version.unwrap_or(bollard::API_DEFAULT_VERSION);
    if host.starts_with("unix://") {
        bollard::Docker::connect_with_unix(host, NO_LIMIT, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        bollard::Docker::connect_with_http(host, NO_LIMIT, version)
    } else {
        Err(BollardError::UnsupportedURISchemeError {
            uri: host.to_owned(),
        })
    }
}

/// bollard's negotiation (`GET /version`), for a daemon whose `/_ping` did
/// not name its API version.
fn negotiate(
    runtime: &tokio::runtime::Runtime,
    client: bollard::Docker,
    host: &str,
    limit: Duration,
) -> Result<bollard::Docker, DockerError> {
    // The timer must be made inside the runtime, hence the async block.
    match runtime.block_on(async { tokio::time::timeout(limit, client.negotiate_version()).await })
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => {
            let detail = match classify(&error) {
                Cause::Daemon { status, message } => format!("HTTP {status}: {message}"),
                Cause::Transport(detail) | Cause::Stream(detail) | Cause::Other(detail) => detail,
            };
            Err(DockerError::Unavailable(unreachable_message(host, &detail)))
        }
        Err(_) => Err(DockerError::Unavailable(unreachable_message(
            host,
            &format!("no answer within {}", seconds(limit)),
        ))),
    }
}

impl Docker {
    /// Connects to the daemon named by `DOCKER_HOST`, else the local socket,
    /// and negotiates the API version. Fails within [`Timeouts::connect`]
    /// with [`DockerError::Unavailable`] when nothing answers.
    pub fn connect() -> Result<Docker, DockerError> {
        Docker::connect_to(&Docker::default_host())
    }

    /// Where [`connect`](Self::connect) goes: `DOCKER_HOST` when set and not
    /// empty, else the platform's local socket.
    pub fn default_host() -> String {
        std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned())
    }

    /// Connects to `host` (`unix://…`, `tcp://…`, `http://…`), with the
    /// default time limits.
    pub fn connect_to(host: &str) -> Result<Docker, DockerError> {
        Docker::connect_with(host, Timeouts::default())
    }

    /// Connects to `host` with these time limits.
    pub fn connect_with(host: &str, timeouts: Timeouts) -> Result<Docker, DockerError> {
        let host = host.trim().to_owned();
        let tls_requested = host.starts_with("https://")
            || (host.starts_with("tcp://") && std::env::var_os("DOCKER_TLS_VERIFY").is_some());
        if tls_requested {
            return Err(DockerError::Unavailable(format!(
                "cannot reach the Docker daemon at {host}: TLS connections are not supported; \
                 use the local socket or an SSH tunnel to it (unset DOCKER_TLS_VERIFY, \
                 set DOCKER_HOST=unix:///path/to/docker.sock)"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                DockerError::Failed(format!("cannot start the Docker client's runtime: {error}"))
            })?;
        // The daemon's API version, ours if it is older (see ping.rs).
        let server = ping::api_version(&host, timeouts.connect)
            .map_err(|detail| DockerError::Unavailable(unreachable_message(&host, &detail)))?;
        let ours = bollard::API_DEFAULT_VERSION;
        let version = server.map(|server| if server < *ours { server } else { *ours });
        // bollard's transports expect to be made inside the runtime.
        let entered = runtime.enter();
        let client = bollard_client(&host, version.as_ref()).map_err(|error| match error {
            BollardError::UnsupportedURISchemeError { .. } => DockerError::Unavailable(format!(
                "cannot reach the Docker daemon at {host}: unsupported address; \
                 set DOCKER_HOST to unix:///path/to/docker.sock, tcp://host:port or http://host:port"
            )),
            other => DockerError::Unavailable(unreachable_message(&host, &describe(&other))),
        })?;
        drop(entered);
        let client = match version {
            Some(_) => client,
            // A daemon that did not say: bollard asks `/version`.
            None => negotiate(&runtime, client, &host, timeouts.connect)?,
        };
        Ok(Docker {
            client,
            runtime,
            host,
            timeouts,
        })
    }

    /// The daemon address this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The time limits in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The negotiated Engine API version, e.g. "1.41".
    pub fn api_version(&self) -> String {
        self.client.client_version().to_string()
    }

    /// The daemon's version, e.g. "20.10.24+dfsg1".
    pub fn version(&self) -> Result<String, DockerError> {
        let version = self
            .call(
                "asking the Docker daemon its version",
                self.timeouts.request,
                self.client.version(),
            )?
            .map_err(|error| self.error("asking the Docker daemon its version", &error))?;
        Ok(version.version.unwrap_or_else(|| "unknown".to_owned()))
    }

    /// Runs `future` to completion within `limit`; a timeout is `Unavailable`.
    fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        future: impl Future<Output = T>,
    ) -> Result<T, DockerError> {
        self.runtime
            .block_on(async { tokio::time::timeout(limit, future).await })
            .map_err(|_| self.timed_out(what, limit))
    }

    fn timed_out(&self, what: &str, limit: Duration) -> DockerError {
        DockerError::Unavailable(format!(
            "the Docker daemon at {} did not finish {what} within {}; is it overloaded or hung?",
            self.host,
            seconds(limit)
        ))
    }

    /// A bollard error for a request with no secrets in it (patterns-only
    /// redaction still applies).
    fn error(&self, what: &str, error: &BollardError) -> DockerError {
        error::request_error(
            &self.host,
            what,
            error,
            &crate::redact::Redactor::patterns_only(),
        )
    }
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
}
