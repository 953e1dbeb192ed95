//! Host implementations of the world's imports, one file per interface, and
//! the one gate (`gate.rs`) every privileged call passes. The imports of the
//! frozen 0.1.0 contract are shims over these (`v0_1.rs`): they convert and
//! call the current import, so the gate sits below every version.
//!
//! The host part of a call's store is a [`CallHost`]. Its lifecycle context
//! ([`HostContext`], `context.rs`) keeps its fields private: an import
//! reaches Docker, the session record or the network only through the view
//! of its own interface, and only [`Gate::permit`] hands a view out, after
//! the policy's decision on plain data.

pub mod clock;
pub mod containers;
mod context;
pub mod dry_run;
mod env;
mod gate;
pub mod gpu_telemetry;
pub mod log;
pub mod metrics;
pub mod processes;
pub mod sidecar;
mod v0_1;

pub use context::{HostContext, Refusal, Refusals, Session};
pub use gate::{CallHost, Gate, IMPORT_ENSURE_IMAGE};

use crate::bindings;
use crate::bindings::openjarvis::mining::types::Error;
use wasmtime::component::{HasData, Linker};

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
/// Host ports the host published (or, on the host network, reserved) for
/// the container, comma-separated: a session's endpoints come from here,
/// never from what a provider wrote in its session record.
pub const LABEL_PORTS: &str = "org.openjarvis.mining.ports";
/// The name the provider asked for, before the host's namespace prefix.
pub const LABEL_NAME: &str = "org.openjarvis.mining.name";

/// Privileged calls one provider call may make by default (the policy's
/// `quotas.privileged_calls`); past it a guest calling imports in a loop is
/// denied (and recorded once), then runs out of time.
pub const MAX_PRIVILEGED_CALLS: u32 = crate::policy::quotas::DEFAULT_PRIVILEGED_CALLS as u32;

/// Requests one batched import (`grep-logs-all`, `scrape-all`) may make:
/// a session's workers (at most 16) and more.
pub const MAX_BATCH: usize = 32;

/// A batch of `count` requests is refused past [`MAX_BATCH`].
fn check_batch(import: &str, what: &str, count: usize) -> Result<(), Error> {
    if count > MAX_BATCH {
        return Err(Error::Invalid(format!(
            "{import} takes at most {MAX_BATCH} {what}, not {count}"
        )));
    }
    Ok(())
}

/// A batch's error that is one request's: it says which.
fn in_request(index: usize, error: Error) -> Error {
    let name = |m: String| format!("request {index}: {m}");
    match error {
        Error::Denied(m) => Error::Denied(name(m)),
        Error::Invalid(m) => Error::Invalid(name(m)),
        Error::Unavailable(m) => Error::Unavailable(name(m)),
        Error::Failed(m) => Error::Failed(name(m)),
    }
}

/// How the linker reaches the host part of a store.
struct Imports;

impl HasData for Imports {
    type Data<'a> = &'a mut CallHost;
}

/// Adds every import of every contract version to `linker`, over the
/// store's [`CallHost`]: the current world's, and 0.1.0's shims over them.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    host: fn(&mut T) -> &mut CallHost,
) -> wasmtime::Result<()> {
    bindings::v0_2::MiningProvider::add_to_linker::<T, Imports>(linker, host)?;
    bindings::v0_1::MiningProvider::add_to_linker::<T, Imports>(linker, host)
}

impl crate::bindings::openjarvis::mining::types::Host for CallHost {}

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Denied(_) => "denied",
        Error::Invalid(_) => "invalid",
        Error::Unavailable(_) => "unavailable",
        Error::Failed(_) => "failed",
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
