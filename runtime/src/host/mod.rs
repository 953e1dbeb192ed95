//! Host implementations of the world's imports, one file per interface, and
//! the one place that decides whether a call may use a capability.

pub mod clock;
pub mod containers;
pub mod log;
pub mod metrics;
pub mod sidecar;

use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{Docker, ImageProgress};
use crate::paths::Paths;
use crate::sandbox::CallState;
use std::path::PathBuf;
use std::sync::Arc;

/// Labels the host puts on every container it creates for a provider.
pub const LABEL_PROVIDER: &str = "org.openjarvis.mining.provider";
pub const LABEL_COMPONENT: &str = "org.openjarvis.mining.component";
pub const LABEL_SESSION: &str = "org.openjarvis.mining.session";
/// The OpenJarvis home whose session the container belongs to: two homes on
/// one host (two users, or tests) never touch each other's containers.
pub const LABEL_HOME: &str = "org.openjarvis.mining.home";
/// Names (never values) of the environment variables resolved as secrets,
/// so later log reads know what to redact.
pub const LABEL_SECRETS: &str = "org.openjarvis.mining.secrets";

/// The session a lifecycle call acts on, as the host knows it.
pub struct Session {
    pub id: String,
    pub paths: Paths,
    /// The daemon, or why it cannot be used.
    pub docker: Result<Arc<Docker>, String>,
    /// `[mining.extra].pearl_source_dir`: a Pearl checkout to build the image from.
    pub pearl_source_dir: Option<PathBuf>,
    /// Where image pull/build progress goes (the CLI's progress bar).
    pub progress: Box<dyn FnMut(ImageProgress) + Send>,
}

/// What a lifecycle call may touch on the host. Absent during `info` and
/// `detect`, which are pure: every privileged import is then denied.
pub struct HostContext {
    pub provider_id: String,
    pub component_sha256: String,
    /// Capabilities the provider requested in `info()`.
    pub requested: Vec<Capability>,
    pub session: Session,
}

impl HostContext {
    pub fn new(
        provider_id: &str,
        component_sha256: &str,
        requested: Vec<Capability>,
        session: Session,
    ) -> Self {
        HostContext {
            provider_id: provider_id.to_owned(),
            component_sha256: component_sha256.to_owned(),
            requested,
            session,
        }
    }

    pub fn docker(&self) -> Result<Arc<Docker>, Error> {
        self.session.docker.clone().map_err(Error::Unavailable)
    }

    /// Loopback ports of the provider's current session record.
    pub fn session_ports(&self) -> Vec<u16> {
        let Ok(Some(record)) = crate::session::sidecar::read(&self.session.paths.sidecar()) else {
            return Vec::new();
        };
        if record.provider != self.provider_id {
            return Vec::new();
        }
        [
            Some(record.vllm_endpoint.as_str()),
            Some(record.gateway_url.as_str()),
            Some(record.gateway_metrics_url.as_str()),
            record.metrics_url.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|url| url.parse::<ureq::http::Uri>().ok()?.port_u16())
        .collect()
    }
}

impl CallState {
    /// The single gate every privileged import passes before any side effect.
    pub(crate) fn authorize(
        &mut self,
        capability: Capability,
        import: &str,
    ) -> Result<&mut HostContext, Error> {
        let Some(host) = self.host.as_mut() else {
            return Err(Error::Denied(format!(
                "{import} is not available here: info() and detect() are pure and may not use host capabilities"
            )));
        };
        if !host.requested.contains(&capability) {
            return Err(Error::Denied(format!(
                "{import} needs the '{}' capability, which provider '{}' did not request in info()",
                capability_name(capability),
                host.provider_id
            )));
        }
        Ok(host)
    }
}

pub fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::Containers => "containers",
        Capability::Sidecar => "sidecar",
        Capability::Metrics => "metrics",
        Capability::GpuTelemetry => "gpu-telemetry",
        Capability::Processes => "processes",
    }
}

/// An import error as a user reads it: the message, which says what to change.
pub fn describe(error: &Error) -> &str {
    match error {
        Error::Denied(m) | Error::Invalid(m) | Error::Unavailable(m) | Error::Failed(m) => m,
    }
}

/// A Docker failure as the error a guest sees.
pub fn docker_error(err: crate::docker::DockerError) -> Error {
    use crate::docker::DockerError as D;
    match err {
        D::Unavailable(m) | D::ImageUnavailable(m) => Error::Unavailable(m),
        D::NotFound(m) => Error::Invalid(m),
        D::NameConflict(m) | D::Failed(m) => Error::Failed(m),
    }
}
