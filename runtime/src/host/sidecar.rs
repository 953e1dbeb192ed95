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
use crate::bindings::openjarvis::mining::sidecar::{Host, ProcessSession, Session, WorkerSession};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::{HostRule, Request};
use crate::session::{self, SessionRecord, WorkerRecord, sidecar};
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

    fn write_processes(&mut self, session: ProcessSession) -> Result<(), Error> {
        self.privileged::<Sidecar, _>("sidecar.write-processes", |gate| {
            gate.decide(&Request::Own { target: RECORD })?;
            if gate.foreign_session() {
                return Err(gate.refuse(
                    HostRule::Ownership,
                    "another provider's session is recorded here and may not be replaced: stop that session with `jarvis mine stop` first",
                ));
            }
            let view = gate.permit(Request::Own { target: RECORD })?;
            write_processes(&view, session)
        })
    }

    fn read_processes(&mut self) -> Result<Option<ProcessSession>, Error> {
        self.privileged::<Sidecar, _>("sidecar.read-processes", |gate| {
            let view = gate.permit(Request::Own { target: RECORD })?;
            let record = sidecar::read_processes(&view.path())
                .map_err(|err| Error::Failed(format!("cannot read the session record: {err}")))?;
            let Some(record) = record.filter(|r| {
                r.provider == view.provider_id()
                    && r.session_id.as_deref() == Some(view.session_id())
            }) else {
                return Ok(None);
            };
            let name = |pid| view.process_name(pid).unwrap_or_default();
            Ok(Some(ProcessSession {
                gateway_process: name(record.gateway_pid),
                miner_loop_process: name(record.miner_loop_pid),
                gateway_url: record.gateway_url,
                metrics_url: record.metrics_url,
                wallet_address: record.wallet_address,
            }))
        })
    }

    fn read(&mut self) -> Result<Option<Session>, Error> {
        self.privileged::<Sidecar, _>("sidecar.read", |gate| {
            let view = gate.permit(Request::Own { target: RECORD })?;
            Ok(own_record(&view)?.map(|record| Session {
                metrics_url: record.vllm_metrics_url(),
                workers: record
                    .workers
                    .iter()
                    .map(|worker| WorkerSession {
                        metrics_url: worker.vllm_metrics_url(),
                        container_id: worker.container_id.clone(),
                        gpus: worker.gpus.clone(),
                        vllm_endpoint: worker.vllm_endpoint.clone(),
                    })
                    .collect(),
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
            if own_record(&view)?.is_none() && own_process_session(&view)?.is_none() {
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
    let workers: usize = session
        .workers
        .iter()
        .map(|w| {
            w.container_id.len()
                + w.vllm_endpoint.len()
                + w.metrics_url.len()
                + w.gpus.iter().map(String::len).sum::<usize>()
        })
        .sum();
    let fields: usize = [
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
    .sum();
    fields + workers
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
    let workers = session.workers.iter().flat_map(|w| {
        [
            ("workers.container-id", &w.container_id),
            ("workers.vllm-endpoint", &w.vllm_endpoint),
            ("workers.metrics-url", &w.metrics_url),
        ]
        .into_iter()
        .chain(w.gpus.iter().map(|gpu| ("workers.gpus", gpu)))
    });
    match fields
        .into_iter()
        .chain(workers)
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
        workers: session
            .workers
            .iter()
            .map(|worker| WorkerRecord {
                container_id: worker.container_id.clone(),
                gpus: worker.gpus.clone(),
                vllm_endpoint: worker.vllm_endpoint.clone(),
            })
            .collect(),
    };
    sidecar::validate(&record)
        .and_then(|()| {
            sidecar::check_vllm_metrics_url(&record.vllm_metrics_url(), &session.metrics_url)
        })
        .and_then(|()| {
            record
                .workers
                .iter()
                .zip(&session.workers)
                .try_for_each(|(worker, declared)| {
                    sidecar::check_vllm_metrics_url(
                        &worker.vllm_metrics_url(),
                        &declared.metrics_url,
                    )
                })
        })
        .map_err(|err| Error::Invalid(format!("session record rejected: {err}")))?;
    if let Some(plan) = host.dry_run() {
        plan.session(record);
        return Ok(());
    }
    sidecar::write(&host.path(), &record)
        .map_err(|err| Error::Failed(format!("cannot write the session record: {err}")))
}

/// The record of a session of processes: the PIDs come from the host's
/// process table, and each URL must name a loopback port the named process
/// was declared to serve, so the record can only point at this session.
fn write_processes(view: &SidecarView<'_>, session: ProcessSession) -> Result<(), Error> {
    let process = |name: &str| {
        view.running_process(name).ok_or_else(|| {
            Error::Invalid(format!(
                "session record rejected: no running process '{}' in this session",
                name.chars().take(64).collect::<String>()
            ))
        })
    };
    let gateway = process(&session.gateway_process)?;
    let miner_loop = process(&session.miner_loop_process)?;
    for (field, url) in [
        ("gateway-url", &session.gateway_url),
        ("metrics-url", &session.metrics_url),
    ] {
        let port = sidecar::loopback_port(url).map_err(|reason| {
            Error::Invalid(format!("session record rejected: {field} {reason}"))
        })?;
        if !gateway.ports.contains(&port) {
            return Err(Error::Invalid(format!(
                "session record rejected: {field} names port {port}, which the gateway process was not declared to serve"
            )));
        }
    }
    if let Some(wallet) = view.wallet_address()
        && session.wallet_address != wallet
    {
        return Err(Error::Invalid(
            "session record rejected: wallet-address is not [mining].wallet_address".into(),
        ));
    }
    let record = session::ProcessSession {
        provider: view.provider_id().to_owned(),
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        wallet_address: session.wallet_address,
        gateway_url: session.gateway_url,
        metrics_url: session.metrics_url,
        gateway_pid: gateway.pid,
        miner_loop_pid: miner_loop.pid,
        session_id: Some(view.session_id().to_owned()),
    };
    sidecar::write(&view.path(), &record)
        .map_err(|err| Error::Failed(format!("cannot write the session record: {err}")))
}

/// The recorded session of processes if it is this provider's, of this session.
fn own_process_session(view: &SidecarView<'_>) -> Result<Option<session::ProcessSession>, Error> {
    let record = sidecar::read_processes(&view.path())
        .map_err(|err| Error::Failed(format!("cannot read the session record: {err}")))?;
    Ok(record.filter(|r| {
        r.provider == view.provider_id() && r.session_id.as_deref() == Some(view.session_id())
    }))
}

/// The current record if it is this provider's; another provider's session
/// is invisible (and untouchable) to it.
fn own_record(view: &SidecarView<'_>) -> Result<Option<SessionRecord>, Error> {
    match sidecar::read(&view.path()) {
        Ok(record) => Ok(record.filter(|r| r.provider == view.provider_id())),
        // A session of processes: not a container session.
        Err(
            session::SidecarError::OpenJarvisProcesses { .. }
            | session::SidecarError::Processes { .. },
        ) => Ok(None),
        Err(err) => Err(Error::Failed(format!(
            "cannot read the session record: {err}"
        ))),
    }
}
