//! Errors of the Docker facade: plain messages that say what to do, never a
//! request body and never a resolved environment value.

use bollard::errors::Error as BollardError;

use crate::redact::Redactor;

/// What went wrong talking to Docker. `Display` is the message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The daemon cannot be reached, or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// The image is not local, cannot be pulled and was not built.
    #[error("{0}")]
    ImageUnavailable(String),
    /// A container with the requested name already exists.
    #[error("{0}")]
    NameConflict(String),
    /// The container (or image) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The daemon refused or failed the request.
    #[error("{0}")]
    Failed(String),
}

impl DockerError {
    /// The message, whichever the kind.
    pub fn message(&self) -> &str {
        match self {
            DockerError::Unavailable(m)
            | DockerError::ImageUnavailable(m)
            | DockerError::NameConflict(m)
            | DockerError::NotFound(m)
            | DockerError::Failed(m) => m,
        }
    }
}

/// How one bollard error should be read.
pub(crate) enum Cause {
    /// The daemon answered with this HTTP status and message.
    Daemon { status: u16, message: String },
    /// A streamed request (pull, build) reported this error.
    Stream(String),
    /// The daemon could not be reached or the connection broke.
    Transport(String),
    /// Anything else (a response we could not parse, ...).
    Other(String),
}

/// Sorts a bollard error. Messages are the daemon's own text, which may
/// echo a request: callers redact them before use.
pub(crate) fn classify(error: &BollardError) -> Cause {
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Cause::Daemon {
            status: *status_code,
            message: message.trim().to_owned(),
        },
        BollardError::DockerStreamError { error } => Cause::Stream(error.trim().to_owned()),
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_)
        | BollardError::UnsupportedURISchemeError { .. } => Cause::Transport(describe(error)),
        _ => Cause::Other(describe(error)),
    }
}

pub(crate) use host_gpu::docker::describe;

/// The message for `what` failing, redacted, as the right kind: transport
/// problems are `Unavailable`, "No such container/image" (404) is
/// `NotFound`, everything else `Failed`.
pub(crate) fn request_error(
    host: &str,
    what: &str,
    error: &BollardError,
    redactor: &Redactor,
) -> DockerError {
    match classify(error) {
        Cause::Transport(detail) => DockerError::Unavailable(unreachable_message(host, &detail)),
        // 404 also covers what a request refers to (a network, a volume):
        // only a missing container or image is `NotFound`.
        Cause::Daemon {
            status: 404,
            message,
        } if message.to_ascii_lowercase().contains("no such") => {
            DockerError::NotFound(format!("{what}: {}", redactor.redact(&message)))
        }
        Cause::Daemon { message, .. } | Cause::Stream(message) | Cause::Other(message) => {
            DockerError::Failed(format!("{what}: {}", redactor.redact(&message)))
        }
    }
}

/// "cannot reach the Docker daemon at …; is it running?"
pub(crate) fn unreachable_message(host: &str, detail: &str) -> String {
    format!(
        "cannot reach the Docker daemon at {host}: {detail}; is it running? \
         (set DOCKER_HOST to use another daemon, e.g. unix:///run/user/1000/docker.sock)"
    )
}

/// The first line of a daemon message, which is the useful part of a pull error.
pub(crate) fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default().trim()
}
