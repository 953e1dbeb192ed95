//! The `sidecar` import: the provider describes its session; the host adds
//! who and when, checks the shape OpenJarvis's reader expects, and writes it
//! atomically with mode 0600. A provider sees only its own session.

use super::HostContext;
use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::sidecar::{Host, Session};
use crate::bindings::openjarvis::mining::types::Error;
use crate::sandbox::CallState;
use crate::session::{SessionRecord, sidecar};
use std::time::{SystemTime, UNIX_EPOCH};

impl Host for CallState {
    fn write(&mut self, session: Session) -> Result<(), Error> {
        let host = self.authorize(Capability::Sidecar, "sidecar.write")?;
        let record = SessionRecord {
            provider: host.provider_id.clone(),
            vllm_endpoint: session.vllm_endpoint,
            model: session.model,
            gateway_url: session.gateway_url,
            gateway_metrics_url: session.gateway_metrics_url,
            container_id: session.container_id,
            wallet_address: session.wallet_address,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            session_id: Some(host.session.id.clone()),
            metrics_url: Some(session.metrics_url),
            image: Some(session.image),
            gateway_pid: None,
            miner_loop_pid: None,
        };
        sidecar::validate(&record)
            .map_err(|err| Error::Invalid(format!("session record rejected: {err}")))?;
        sidecar::write(&host.session.paths.sidecar(), &record)
            .map_err(|err| Error::Failed(format!("cannot write the session record: {err}")))
    }

    fn read(&mut self) -> Result<Option<Session>, Error> {
        let host = self.authorize(Capability::Sidecar, "sidecar.read")?;
        Ok(own_record(host)?.map(|record| Session {
            vllm_endpoint: record.vllm_endpoint,
            model: record.model,
            gateway_url: record.gateway_url,
            gateway_metrics_url: record.gateway_metrics_url,
            metrics_url: record.metrics_url.unwrap_or_default(),
            container_id: record.container_id,
            wallet_address: record.wallet_address,
            image: record.image.unwrap_or_default(),
        }))
    }

    fn remove(&mut self) -> Result<(), Error> {
        let host = self.authorize(Capability::Sidecar, "sidecar.remove")?;
        if own_record(host)?.is_none() {
            return Ok(());
        }
        sidecar::remove(&host.session.paths.sidecar())
            .map_err(|err| Error::Failed(format!("cannot remove the session record: {err}")))
    }
}

/// The current record if it is this provider's; another provider's session
/// is invisible (and untouchable) to it.
fn own_record(host: &HostContext) -> Result<Option<SessionRecord>, Error> {
    let record = sidecar::read(&host.session.paths.sidecar())
        .map_err(|err| Error::Failed(format!("cannot read the session record: {err}")))?;
    Ok(record.filter(|r| r.provider == host.provider_id))
}
