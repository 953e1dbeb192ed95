//! Whether the Docker daemon answers, and its version.

use std::error::Error;
use std::time::Duration;

use bollard::Docker;

use crate::facts::DockerFacts;

/// How long the whole probe may take: a local daemon answers in milliseconds,
/// and a hung one must not hold up the other facts.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the daemon named by `DOCKER_HOST` (default: the local socket or
/// named pipe), then asks its version. Never fails: an unreachable daemon is
/// `reachable: false` with the first line of the error.
pub async fn docker_facts() -> DockerFacts {
    let probe = async {
        let docker = Docker::connect_with_defaults()?;
        docker.ping().await?;
        // The daemon is up even if this one request fails.
        Ok::<_, bollard::errors::Error>(docker.version().await)
    };
    let (reachable, version) = match tokio::time::timeout(TIMEOUT, probe).await {
        Ok(Ok(version)) => (true, version.map_err(|error| describe(&error))),
        Ok(Err(error)) => (false, Err(describe(&error))),
        Err(_) => (
            false,
            Err(format!(
                "no answer from the Docker daemon within {} s",
                TIMEOUT.as_secs()
            )),
        ),
    };
    match version {
        Ok(version) => DockerFacts {
            reachable: Some(reachable),
            version: version.version,
            error: None,
        },
        Err(error) => DockerFacts {
            reachable: Some(reachable),
            version: None,
            error: Some(error.lines().next().unwrap_or_default().to_owned()),
        },
    }
}

/// The error with its causes, which hyper keeps out of its own message
/// ("client error (Connect)" alone does not say "Connection refused").
pub fn describe(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message = format!("{message}: {cause_text}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_says_so() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime
            .block_on(async {
                let docker = Docker::connect_with_host("tcp://127.0.0.1:1")?;
                docker.ping().await
            })
            .unwrap_err();
        let message = describe(&error);
        assert!(message.contains("refused"), "{message}");
    }
}
