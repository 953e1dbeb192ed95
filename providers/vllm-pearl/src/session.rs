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
    containers::ensure_image(&launch.spec.image)?;
    let id = containers::run(&launch.spec)?;
    let session = sidecar::Session {
        container_id: id.clone(),
        ..launch.session
    };
    if let Err(err) = sidecar::write(&session) {
        // No session record means nobody would ever stop this container.
        let _ = containers::stop(&id, STOP_TIMEOUT_SECONDS);
        let _ = containers::remove(&id);
        return Err(err);
    }
    Ok(())
}

pub fn stop() -> Result<(), Error> {
    if let Some(session) = sidecar::read()? {
        containers::stop(&session.container_id, STOP_TIMEOUT_SECONDS)?;
        containers::remove(&session.container_id)?;
    }
    sidecar::remove()
}

pub fn is_running() -> bool {
    let Ok(Some(session)) = sidecar::read() else {
        return false;
    };
    matches!(containers::inspect(&session.container_id), Ok(Some(state)) if state.running)
}
