//! Host implementations of the world's imports, one file per interface, and
//! the one place that decides whether a call may use a capability.

pub mod clock;
pub mod containers;
pub mod log;
pub mod metrics;
pub mod sidecar;

use crate::audit;
use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{Docker, ImageProgress};
use crate::paths::Paths;
use crate::policy::{ProviderPolicy, Request};
use crate::sandbox::CallState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// What the policy grants this provider.
    pub policy: Arc<ProviderPolicy>,
    pub session: Session,
}

impl HostContext {
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
            record.vllm_endpoint.as_str(),
            record.gateway_url.as_str(),
            record.gateway_metrics_url.as_str(),
        ]
        .into_iter()
        .filter_map(|url| url.parse::<ureq::http::Uri>().ok()?.port_u16())
        .collect()
    }
}

/// Privileged calls one provider call may make; a guest calling imports in a
/// loop is denied (and recorded once) past this, then runs out of time.
pub const MAX_PRIVILEGED_CALLS: u32 = 1000;

/// The policy's view of one privileged call in progress: the host context
/// is reachable only through [`Gate::permit`], so no import can act on the
/// host without the policy's say.
pub struct Gate<'a> {
    host: &'a mut HostContext,
    capability: Capability,
    /// What the call asked for, for the audit record.
    summary: String,
    denial: Option<String>,
    time_left: Duration,
}

impl Gate<'_> {
    /// Asks the policy about this request; on a grant, returns the host
    /// context the import may act through.
    pub fn permit(&mut self, request: Request<'_>) -> Result<&mut HostContext, Error> {
        self.summary = summarize(&request);
        if let Err(denial) = self.host.policy.check(self.capability, &request) {
            self.denial = Some(denial.clone());
            return Err(Error::Denied(denial));
        }
        Ok(self.host)
    }

    /// Wall time host work in this call may still take.
    pub fn time_left(&self) -> Duration {
        self.time_left
    }

    /// Loopback ports of the provider's session, to tell its own endpoints.
    pub fn session_ports(&self) -> Vec<u16> {
        self.host.session_ports()
    }

    /// Whether the policy pins image digests (see [`Gate::image_digests`]).
    pub fn pins_digests(&self) -> bool {
        self.host.policy.pins_digests()
    }

    /// The local image's id and repo digests, for a digest-pinning policy:
    /// a read, before the permit, of what the permit is about.
    pub fn image_digests(&self, image: &str) -> Result<Vec<String>, Error> {
        let docker = self.host.docker()?;
        Ok(docker
            .image_digests(image)
            .map_err(docker_error)?
            .unwrap_or_default())
    }
}

/// Names only: env values and secrets never reach a record.
fn summarize(request: &Request<'_>) -> String {
    match request {
        Request::Own { target } => target.to_string(),
        Request::EnsureImage { image } => format!("image={image}"),
        Request::RunContainer(run) => {
            let mut parts = vec![
                format!("image={}", run.image),
                format!("gpus={:?}", run.gpus),
                format!("network={}", run.network),
            ];
            let list = |items: Vec<String>| items.join(",");
            let mounts = run
                .mounts
                .iter()
                .map(|(p, ro)| format!("{}:{}", p.display(), if *ro { "ro" } else { "rw" }));
            for (key, value) in [
                ("mounts", list(mounts.collect())),
                (
                    "ports",
                    list(run.host_ports.iter().map(u16::to_string).collect()),
                ),
                ("env", run.env_names.join(",")),
                ("secrets", run.secrets.join(",")),
            ] {
                if !value.is_empty() {
                    parts.push(format!("{key}={value}"));
                }
            }
            parts.join(" ")
        }
        Request::Scrape(scrape) => format!("url=http://{}:{}", scrape.host, scrape.port),
    }
}

impl CallState {
    /// The single gate every privileged import passes through, before any
    /// side effect: the call must be a lifecycle call, the capability
    /// declared in `info()`, the audit log writable, the call within its
    /// budgets, and `act` must get the policy's permit for the specifics.
    /// Each call leaves one audit record, whatever happens.
    pub(crate) fn privileged<T>(
        &mut self,
        capability: Capability,
        import: &str,
        act: impl FnOnce(&mut Gate<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        self.privileged_calls += 1;
        let mut record = audit::Record::new(
            &self.caller.provider,
            &self.caller.component,
            capability_name(capability),
            import.to_owned(),
        );
        let admission = self.admit(capability, import);
        let admitted = admission.is_ok();
        let (result, denial) = match admission {
            Err(denial) => (Err(Error::Denied(denial.clone())), Some(denial)),
            Ok(()) => {
                let host = self.host.as_mut().expect("admit checked the host context");
                let mut gate = Gate {
                    host,
                    capability,
                    summary: String::new(),
                    denial: None,
                    time_left: self.host_time_left,
                };
                let result = act(&mut gate);
                if !gate.summary.is_empty() {
                    record.action = format!("{import} {}", gate.summary);
                }
                (result, gate.denial)
            }
        };
        let elapsed = started.elapsed();
        if admitted {
            // Host work is not the guest's time: it is charged to the
            // host-time budget instead, except image acquisition, which has
            // its own progress and can take most of an hour. A denied call
            // costs the guest, so a loop of them runs out of guest time.
            self.privileged_time += elapsed;
            if import != IMPORT_ENSURE_IMAGE {
                self.host_time_left = self.host_time_left.saturating_sub(elapsed);
            }
        }
        record.duration_us = elapsed.as_micros() as u64;
        clip(&mut record.action);
        match (&denial, &result) {
            (Some(denial), _) | (None, Err(Error::Denied(denial))) => {
                // The policy's denial, or a host invariant's (a forbidden
                // mount, a container the provider does not own).
                record.decision = audit::Decision::Deny;
                record.reason = Some(clipped(denial));
            }
            (None, Ok(_)) => record.outcome = Some("ok".into()),
            (None, Err(err)) => {
                record.outcome = Some(error_kind(err).into());
                record.reason = Some(clipped(describe(err)));
            }
        }
        self.audit(&record);
        result
    }

    /// The checks before the policy's specifics.
    fn admit(&mut self, capability: Capability, import: &str) -> Result<(), String> {
        if self.privileged_calls > MAX_PRIVILEGED_CALLS {
            return Err(format!(
                "{import}: more than {MAX_PRIVILEGED_CALLS} privileged calls in one provider call"
            ));
        }
        let Some(host) = self.host.as_ref() else {
            return Err(format!(
                "{import} is not available here: info() and detect() are pure and may not use host capabilities"
            ));
        };
        if !host.requested.contains(&capability) {
            return Err(format!(
                "{import} needs the '{}' capability, which provider '{}' did not request in info()",
                capability_name(capability),
                host.provider_id
            ));
        }
        // The capability itself, before the import looks at its arguments
        // (or asks Docker about an image for a digest-pinning policy).
        if let Some(withheld) = host.policy.withheld(capability) {
            return Err(withheld);
        }
        if self.host_time_left.is_zero() {
            return Err(format!(
                "{import}: this call has used its host-time budget; raise limits.host_time_ms in the policy if the provider needs more"
            ));
        }
        if let Some(log) = &self.audit_log {
            log.ready()?;
        }
        Ok(())
    }

    /// Appends a record; past the call budget only the first excess call is
    /// recorded, so a guest looping on imports cannot flood the log.
    fn audit(&self, record: &audit::Record) {
        let Some(log) = &self.audit_log else { return };
        if self.privileged_calls > MAX_PRIVILEGED_CALLS + 1 {
            return;
        }
        if let Err(err) = log.append(record) {
            tracing::warn!("{err}");
        }
    }
}

/// The longest action or reason an audit record keeps: what a guest sends
/// (an id, a URL) must not let it flood the log or rotate it away.
const MAX_RECORD_TEXT: usize = 1024;

fn clip(text: &mut String) {
    if text.len() > MAX_RECORD_TEXT {
        let mut end = MAX_RECORD_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
}

fn clipped(text: &str) -> String {
    let mut text = text.to_owned();
    clip(&mut text);
    text
}

/// The import whose time is not charged to the host-time budget.
pub const IMPORT_ENSURE_IMAGE: &str = "containers.ensure-image";

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Denied(_) => "denied",
        Error::Invalid(_) => "invalid",
        Error::Unavailable(_) => "unavailable",
        Error::Failed(_) => "failed",
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
