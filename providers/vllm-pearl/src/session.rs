//! `start`, `stop`, `is-running` through the host's container and sidecar
//! imports. The host serialises sessions (a lock) and reconciles leftovers
//! before these run, so they can stay simple.

use crate::launch;
use mining_provider_sdk::host::{containers, sidecar};
use mining_provider_sdk::types::{Error, MiningConfig};

/// How long `docker stop` waits before killing, as in the reference.
const STOP_TIMEOUT_SECONDS: u32 = 30;

pub fn start(config: &MiningConfig) -> Result<(), Error> {
    let launch = launch::plan(config)?;
    containers::ensure_image(&launch.specs[0].image)?;
    // Every worker or none: the host checks all the specs first.
    let ids = containers::run_all(&launch.specs)?;
    if let Err(err) = sidecar::write(&launch.session_with(&ids)) {
        // No session record means nobody would ever stop these containers.
        remove(&ids);
        return Err(err);
    }
    Ok(())
}

pub fn stop() -> Result<(), Error> {
    if let Some(session) = sidecar::read()? {
        for id in container_ids(&session) {
            containers::stop(&id, STOP_TIMEOUT_SECONDS)?;
            containers::remove(&id)?;
        }
    }
    sidecar::remove()
}

/// Every worker runs.
pub fn is_running() -> bool {
    let Ok(Some(session)) = sidecar::read() else {
        return false;
    };
    container_ids(&session)
        .iter()
        .all(|id| matches!(containers::inspect(id), Ok(Some(state)) if state.running))
}

/// The session's containers: each worker's, or the one container.
pub fn container_ids(session: &sidecar::Session) -> Vec<String> {
    if session.workers.is_empty() {
        vec![session.container_id.clone()]
    } else {
        session
            .workers
            .iter()
            .map(|worker| worker.container_id.clone())
            .collect()
    }
}

fn remove(ids: &[String]) {
    for id in ids {
        let _ = containers::stop(id, STOP_TIMEOUT_SECONDS);
        let _ = containers::remove(id);
    }
}
