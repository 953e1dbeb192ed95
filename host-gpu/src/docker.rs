//! Whether the Docker daemon answers, and its version.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use serde::{Deserialize, Serialize};

use crate::facts::DockerFacts;
use crate::probe_cache::{CacheDir, Identity};

/// How long the whole probe may take: a local daemon answers in milliseconds,
/// and a hung one must not hold up the other facts.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The cached version's file, in the cache directory the caller gives.
pub const VERSION_CACHE_FILE: &str = "docker-version.json";

/// Pings the daemon named by `DOCKER_HOST` (default: the local socket or
/// named pipe), then asks its version. Never fails: an unreachable daemon is
/// `reachable: false` with the first line of the error.
///
/// The daemon's `/version` takes milliseconds (it asks containerd), ten
/// times its ping; with `version_cache`, a local socket's daemon version is
/// kept there and reused while the socket is the same file: a restarted
/// (or upgraded) daemon makes a new socket. The ping is never cached.
pub async fn docker_facts(version_cache: Option<&CacheDir>) -> DockerFacts {
    let socket = version_cache.and_then(|dir| local_socket().map(|socket| (dir, socket)));
    let probe = async {
        let docker = Docker::connect_with_defaults()?;
        docker.ping().await?;
        if let Some(version) = socket
            .as_ref()
            .and_then(|(dir, socket)| cached(dir, socket))
        {
            return Ok(Ok(version));
        }
        // The daemon is up even if this one request fails.
        let version = docker.version().await;
        if let (Ok(version), Some((dir, socket))) = (&version, &socket) {
            store(dir, socket, version.version.as_deref());
        }
        Ok::<_, bollard::errors::Error>(version.map(|v| v.version))
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
            version,
            error: None,
        },
        Err(error) => DockerFacts {
            reachable: Some(reachable),
            version: None,
            error: Some(error.lines().next().unwrap_or_default().to_owned()),
        },
    }
}

/// The unix socket `DOCKER_HOST` names (bollard's default when unset).
fn local_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Err(_) if cfg!(unix) => Some(PathBuf::from("/var/run/docker.sock")),
        Ok(host) => host.strip_prefix("unix://").map(PathBuf::from),
        Err(_) => None,
    }
}

#[derive(Serialize, Deserialize)]
struct CachedVersion {
    socket: Identity,
    version: Option<String>,
}

fn cached(dir: &CacheDir, socket: &Path) -> Option<Option<String>> {
    let text = dir.read(VERSION_CACHE_FILE)?;
    let cached: CachedVersion = serde_json::from_str(&text).ok()?;
    (cached.socket == Identity::of(socket)).then_some(cached.version)
}

fn store(dir: &CacheDir, socket: &Path, version: Option<&str>) {
    let entry = CachedVersion {
        socket: Identity::of(socket),
        version: version.map(str::to_owned),
    };
    // A failed write only costs the next run the request.
    let _ = dir.replace_json(VERSION_CACHE_FILE, &entry);
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

    #[test]
    fn a_cached_version_holds_while_the_socket_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::open_ambient(dir.path()).unwrap();
        let socket = dir.path().join("docker.sock");
        std::fs::write(&socket, "").unwrap();
        assert_eq!(cached(&cache, &socket), None, "nothing cached yet");
        store(&cache, &socket, Some("28.2.2"));
        assert_eq!(cached(&cache, &socket), Some(Some("28.2.2".into())));
        // A restarted daemon makes a new socket: the version is asked again.
        std::fs::remove_file(&socket).unwrap();
        std::fs::write(&socket, "").unwrap();
        assert_eq!(cached(&cache, &socket), None);
        std::fs::write(dir.path().join(VERSION_CACHE_FILE), "{").unwrap();
        assert_eq!(cached(&cache, &socket), None, "a damaged cache is a miss");
    }

    #[test]
    fn the_local_daemon_is_pinged_every_time_and_its_version_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::open_ambient(dir.path()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let first = runtime.block_on(docker_facts(Some(&cache)));
        assert_eq!(first.reachable, Some(true), "{first:?}");
        assert!(first.version.is_some());
        // What the file says is what the next probe reports: it was not asked.
        let file = dir.path().join(VERSION_CACHE_FILE);
        let mut entry: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        entry["version"] = "forged".into();
        std::fs::write(&file, entry.to_string()).unwrap();
        let second = runtime.block_on(docker_facts(Some(&cache)));
        assert_eq!(second.version.as_deref(), Some("forged"));
        // Without a cache directory the daemon is asked.
        let third = runtime.block_on(docker_facts(None));
        assert_eq!(third.version, first.version);
    }
}
