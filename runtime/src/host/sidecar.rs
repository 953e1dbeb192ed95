//! The `sidecar` import: the provider describes its session; the host adds
//! who and when, checks the shape OpenJarvis's reader expects, and writes it
//! atomically with mode 0600. A provider sees only its own session.
//!
//! `metrics-url` is not recorded (OpenJarvis's `mine status` would read it as
//! the gateway's metrics): `write` accepts it empty or equal to vLLM's
//! `/metrics` beside `vllm-endpoint`, and `read` always answers that derived
//! URL, also for a record OpenJarvis's `mine attach` wrote.

use super::CallHost;
use super::context::{Sidecar, SidecarView};
use crate::bindings::openjarvis::mining::sidecar::{Host, Session};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::{HostRule, Request};
use crate::session::{SessionRecord, sidecar};
use std::time::{SystemTime, UNIX_EPOCH};

impl Host for CallHost {
    fn write(&mut self, session: Session) -> Result<(), Error> {
        self.privileged::<Sidecar, _>("sidecar.write", |gate| {
            check_sizes(&session)?;
            let quota = gate.sidecar_quota();
            let size = record_size(&session);
            if size as u64 > quota.value {
                return Err(gate.over_quota(&quota, format!("a session record of {size} bytes")));
            }
            gate.decide(&Request::Own { target: RECORD })?;
            // Another provider's session is not this provider's to replace
            // (a record that cannot be read is nobody's, and is replaced).
            // Said without naming the other provider.
            if gate.foreign_session() {
                return Err(gate.refuse(
                    HostRule::Ownership,
                    "another provider's session is recorded here and may not be replaced: stop that session with `jarvis mine stop` first",
                ));
            }
            write(&gate.permit(Request::Own { target: RECORD })?, session)
        })
    }

    fn read(&mut self) -> Result<Option<Session>, Error> {
        self.privileged::<Sidecar, _>("sidecar.read", |gate| {
            let view = gate.permit(Request::Own { target: RECORD })?;
            Ok(own_record(&view)?.map(|record| Session {
                metrics_url: record.vllm_metrics_url(),
                vllm_endpoint: record.vllm_endpoint,
                model: record.model,
                gateway_url: record.gateway_url,
                gateway_metrics_url: record.gateway_metrics_url,
                container_id: record.container_id,
                wallet_address: record.wallet_address,
                image: record.image.unwrap_or_default(),
            }))
        })
    }

    fn remove(&mut self) -> Result<(), Error> {
        self.privileged::<Sidecar, _>("sidecar.remove", |gate| {
            let view = gate.permit(Request::Own { target: RECORD })?;
            if own_record(&view)?.is_none() {
                return Ok(());
            }
            sidecar::remove(&view.path())
                .map_err(|err| Error::Failed(format!("cannot remove the session record: {err}")))
        })
    }
}

/// What audit records name as the target.
const RECORD: &str = "runtime/mining.json";
/// The longest value a session record field may hold.
const MAX_FIELD_BYTES: usize = 2048;

/// The bytes a provider puts in its session record.
fn record_size(session: &Session) -> usize {
    [
        &session.vllm_endpoint,
        &session.model,
        &session.gateway_url,
        &session.gateway_metrics_url,
        &session.metrics_url,
        &session.container_id,
        &session.wallet_address,
        &session.image,
    ]
    .iter()
    .map(|field| field.len())
    .sum()
}

/// Every field is a URL, an id, a name or an address: none is long.
fn check_sizes(session: &Session) -> Result<(), Error> {
    let fields = [
        ("vllm-endpoint", &session.vllm_endpoint),
        ("model", &session.model),
        ("gateway-url", &session.gateway_url),
        ("gateway-metrics-url", &session.gateway_metrics_url),
        ("metrics-url", &session.metrics_url),
        ("container-id", &session.container_id),
        ("wallet-address", &session.wallet_address),
        ("image", &session.image),
    ];
    match fields
        .iter()
        .find(|(_, value)| value.len() > MAX_FIELD_BYTES)
    {
        Some((name, value)) => Err(Error::Invalid(format!(
            "session record rejected: {name} is {} bytes; the limit is {MAX_FIELD_BYTES}",
            value.len()
        ))),
        None => Ok(()),
    }
}

fn write(host: &SidecarView<'_>, session: Session) -> Result<(), Error> {
    let record = SessionRecord {
        provider: host.provider_id().to_owned(),
        vllm_endpoint: session.vllm_endpoint,
        model: session.model,
        gateway_url: session.gateway_url,
        gateway_metrics_url: session.gateway_metrics_url,
        container_id: session.container_id,
        wallet_address: session.wallet_address,
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        session_id: Some(host.session_id().to_owned()),
        image: Some(session.image),
    };
    sidecar::validate(&record)
        .and_then(|()| sidecar::check_vllm_metrics_url(&record, &session.metrics_url))
        .map_err(|err| Error::Invalid(format!("session record rejected: {err}")))?;
    sidecar::write(&host.path(), &record)
        .map_err(|err| Error::Failed(format!("cannot write the session record: {err}")))
}

/// The current record if it is this provider's; another provider's session
/// is invisible (and untouchable) to it.
fn own_record(view: &SidecarView<'_>) -> Result<Option<SessionRecord>, Error> {
    let record = sidecar::read(&view.path())
        .map_err(|err| Error::Failed(format!("cannot read the session record: {err}")))?;
    Ok(record.filter(|r| r.provider == view.provider_id()))
}
