//! Sessions of host processes (cpu-pearl, apple-mps-pearl): the same
//! lifecycle as containers, around the host's process table. The host owns
//! the lock, reconciliation (a recorded process that exited, a PID reused
//! by another process, a labelled process no record describes because a
//! `jarvis` was killed mid-start), teardown after a failed `start` and on
//! `stop` whatever the provider did, and the states `status` reports.

use super::{
    Cleanup, Ending, MineError, Miner, Scope, StartFailure, StartReport, StatusReport, StopReport,
    new_session_id, unix_now,
};
use crate::bindings::Capability;
use crate::process::identity::{self, Observed};
use crate::process::{self, Liveness, ProcessRecord, Program, signal, table};
use crate::provider::LoadedProvider;
use crate::session::state::{Lifecycle, Operation};
use crate::session::{ProcessSession, SessionLock, sidecar};
use serde::Serialize;
use std::time::Duration;

/// Grace before SIGKILL, per program (reference §9.1): the miner loop
/// first, then the gateway.
fn grace(program: &str) -> Duration {
    match Program::parse(program) {
        Some(Program::Gateway) => Duration::from_secs(5),
        _ => Duration::from_secs(2),
    }
}

/// One process of the session, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessStatus {
    pub name: String,
    pub program: String,
    pub pid: u32,
    /// `running`, `exited`, or `pid reused` (it exited and another process
    /// now has its PID).
    pub state: &'static str,
    pub uptime_seconds: Option<u64>,
    /// Its log, `<home>/logs/mining/<name>.log`.
    pub log: String,
}

/// A process the host stopped during a teardown.
#[derive(Debug, Clone, Serialize)]
pub struct StoppedProcess {
    pub name: String,
    pub pid: u32,
    /// Found by its labels only: no record described it.
    pub unrecorded: bool,
}

/// Whether the provider runs host processes rather than containers (it
/// needs no Docker).
pub fn runs_processes(provider: &LoadedProvider) -> bool {
    let asks = |c| provider.requested().contains(&c);
    asks(Capability::Processes) && !asks(Capability::Containers)
}

impl Miner<'_> {
    /// `start` for a provider of processes; the caller holds the lock.
    pub(super) fn start_processes(
        &self,
        provider: &LoadedProvider,
    ) -> Result<StartReport, Box<StartFailure>> {
        let config = self.config()?;
        // A container session recorded here is another provider's to stop.
        if let Ok(Some(record)) = sidecar::read(&self.paths.sidecar()) {
            return Err(MineError::SessionLive {
                provider: record.provider,
                container: crate::session::state::short_id(&record.container_id).to_owned(),
            }
            .into());
        }
        let mut repairs = self.reconcile_processes();
        if let Some(session) = self.own_process_session()? {
            let records = self.session_processes(&session);
            if !records.is_empty()
                && records
                    .iter()
                    .all(|r| process::liveness(r) == Liveness::Alive)
            {
                return Ok(StartReport {
                    already_running: true,
                    session: None,
                    process_session: Some(session),
                    repairs,
                    waited: false,
                });
            }
            // Part of it died: the host ends the rest before a new session.
            let cleanup = self.teardown_processes(Scope::Home, "restart");
            repairs.extend(cleanup.lines());
        }
        let session_id = new_session_id();
        let session = self.host_session(session_id.clone(), Box::new(|_| {}));
        let started = self
            .call_start(provider, config, session, host_gpu::nvml::gpus(None).gpus)
            .and_then(|()| match sidecar::read_processes(&self.paths.sidecar()) {
                Ok(Some(record)) if record.session_id.as_deref() == Some(session_id.as_str()) => {
                    Ok(record)
                }
                _ => Err(MineError::NoRecord {
                    provider: provider.id().to_owned(),
                }),
            });
        match started {
            Ok(record) => Ok(StartReport {
                already_running: false,
                session: None,
                process_session: Some(record),
                repairs,
                waited: true,
            }),
            Err(error) => {
                let cleanup = self.teardown_processes(Scope::Session(&session_id), "start-failed");
                self.remember(provider.id(), Some(session_id), Ending::StartFailed);
                Err(Box::new(StartFailure {
                    error,
                    repairs,
                    cleanup,
                }))
            }
        }
    }

    /// Whether this home has a session of processes, or recorded
    /// processes, for `stop` and `status` to act on.
    pub(super) fn has_processes(&self) -> Result<bool, MineError> {
        Ok(self.own_process_session()?.is_some()
            || !table::read(&self.paths.process_table())
                .unwrap_or_default()
                .is_empty())
    }

    /// `stop` for a session of processes; the caller holds the lock. The
    /// provider's `stop` first, then the host stops whatever is left.
    pub(super) fn stop_processes(&self) -> Result<StopReport, MineError> {
        let repairs = Vec::new();
        let session = self.own_process_session()?;
        let provider_failure = session.as_ref().and_then(|s| {
            self.provider_stop_by(&s.provider, s.session_id.as_deref())
                .err()
        });
        let cleanup = self.teardown_processes(Scope::Home, "stop");
        let stopped = session.is_some() || !cleanup.stopped.is_empty();
        if stopped {
            self.remember_stopped(
                session.as_ref().map(|s| s.provider.as_str()),
                session.as_ref().and_then(|s| s.session_id.clone()),
            );
        }
        Ok(StopReport {
            stopped,
            forgot_attached: None,
            repairs,
            cleanup,
            provider_failure,
        })
    }

    /// `status` of a session of processes.
    pub(super) fn status_processes(
        &self,
        in_progress: Option<Operation>,
    ) -> Result<StatusReport, MineError> {
        let session = self.own_process_session()?;
        let records = session
            .as_ref()
            .map(|s| self.session_processes(s))
            .unwrap_or_default();
        let processes: Vec<ProcessStatus> = records.iter().map(status_of).collect();
        let dead: Vec<&ProcessStatus> = processes.iter().filter(|p| p.state != "running").collect();
        let lifecycle = match (in_progress, &session) {
            (Some(Operation::Start), _) => Lifecycle::Starting,
            (Some(Operation::Stop), _) => Lifecycle::Stopping,
            (_, None) => self.idle_state(),
            (_, Some(_)) if dead.is_empty() && !processes.is_empty() => Lifecycle::Running,
            (_, Some(_)) => Lifecycle::Failed {
                exit_code: None,
                restart_count: 0,
                last_lines: Vec::new(),
            },
        };
        let mut report = StatusReport::state(lifecycle.clone());
        report.config_warning = self.config_error.clone();
        report.provider = session
            .as_ref()
            .map(|s| s.provider.clone())
            .or_else(|| self.mining.map(|m| m.provider.clone()));
        if !dead.is_empty() {
            let names: Vec<String> = dead
                .iter()
                .map(|p| format!("{} (pid {}) {}", p.name, p.pid, p.state))
                .collect();
            report.reason = Some(format!(
                "{}; run `jarvis mine start` to start the session again, or `jarvis mine logs`",
                names.join(", ")
            ));
            // The first process that ended (statuses are in record order).
            if let Some(first) = records
                .iter()
                .zip(&processes)
                .find_map(|(record, status)| (status.state != "running").then_some(record))
            {
                report.last_lines = process::logs::tail(
                    &process::logs::path(self.paths, &first.log),
                    super::FAILURE_LINES,
                    &crate::redact::Redactor::for_variables(
                        first.secrets.iter().map(String::as_str),
                    ),
                )
                .unwrap_or_default();
            }
        }
        if lifecycle == Lifecycle::Running
            && let Some(session) = &session
        {
            self.add_stats(
                &mut report,
                &session.provider,
                session.session_id.as_deref(),
            );
        }
        report.processes = processes;
        report.process_session = session;
        if in_progress.is_none()
            && let Ok(_lock) = SessionLock::acquire(&self.paths.lock_file(), Duration::ZERO)
        {
            report.repairs = self.reconcile_processes();
        }
        Ok(report)
    }

    /// `configured` or `stopped`: no session now.
    fn idle_state(&self) -> Lifecycle {
        if self.mining.is_none() && self.config_error.is_none() {
            Lifecycle::NotConfigured
        } else if crate::session::history::any(&self.paths.last_session()) {
            Lifecycle::Stopped
        } else {
            Lifecycle::Configured
        }
    }

    /// The session record of processes this runtime wrote (with its
    /// session id); OpenJarvis's own cpu record is an error that says whose
    /// processes they are.
    fn own_process_session(&self) -> Result<Option<ProcessSession>, MineError> {
        match sidecar::read_processes(&self.paths.sidecar())? {
            Some(session) if session.session_id.is_none() => Err(MineError::Session(format!(
                "the session record {} describes processes OpenJarvis started ({}: gateway pid {}, \
                 miner loop pid {}); stop them with OpenJarvis's `jarvis mine stop` first",
                self.paths.sidecar(),
                session.provider,
                session.gateway_pid,
                session.miner_loop_pid
            ))),
            other => Ok(other),
        }
    }

    /// The recorded processes of the session `session` describes.
    fn session_processes(&self, session: &ProcessSession) -> Vec<ProcessRecord> {
        table::read(&self.paths.process_table())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| Some(r.session.as_str()) == session.session_id.as_deref())
            .collect()
    }

    /// Repairs, under the lock: records of processes that exited (or whose
    /// PID another process has now) go; processes of no live session, and
    /// labelled processes no record describes, are stopped; a session
    /// record whose processes all ended goes.
    pub(super) fn reconcile_processes(&self) -> Vec<String> {
        let mut repairs = Vec::new();
        let session = match self.own_process_session() {
            Ok(session) => session,
            // OpenJarvis's processes are not ours to touch.
            Err(_) => return repairs,
        };
        let live = session.as_ref().and_then(|s| s.session_id.clone());
        let path = self.paths.process_table();
        let Ok(records) = table::read(&path) else {
            return repairs;
        };
        let mut kept = Vec::new();
        for record in records {
            let liveness = process::liveness(&record);
            let of_live_session = live.as_deref() == Some(record.session.as_str());
            match liveness {
                Liveness::Alive if of_live_session => kept.push(record),
                Liveness::Alive => {
                    let result = signal::stop(&record, grace(&record.program));
                    self.audit_process(&record, "orphan", &result);
                    repairs.push(format!(
                        "stopped process {} (pid {}), left over from an earlier session",
                        record.name, record.pid
                    ));
                }
                // Kept while its session is live: `status` says it died.
                _ if of_live_session => kept.push(record),
                Liveness::Exited | Liveness::Reused => repairs.push(format!(
                    "forgot process {} (pid {}), which {}",
                    record.name,
                    record.pid,
                    if liveness == Liveness::Exited {
                        "had exited"
                    } else {
                        "had exited; its PID belongs to another process now"
                    }
                )),
            }
        }
        for orphan in self.unrecorded(&kept, None) {
            let record = record_of(&orphan);
            let result = signal::stop(&record, grace(&record.program));
            self.audit_process(&record, "unrecorded", &result);
            repairs.push(format!(
                "stopped process {} (pid {}), which no record described (a `jarvis` stopped mid-start?)",
                record.name, record.pid
            ));
        }
        if let Err(err) = table::write(&path, &kept) {
            repairs.push(format!("cannot update {path}: {err}"));
        }
        if live.is_some() && kept.is_empty() {
            let provider = session.map(|s| s.provider).unwrap_or_default();
            if sidecar::remove(&self.paths.sidecar()).is_ok() {
                self.remember(&provider, None, Ending::Repaired);
                repairs.push("removed the session record, whose processes were all gone".into());
            }
        }
        repairs
    }

    /// Labelled processes of this home (of `session`, when given) that no
    /// record in `records` describes.
    fn unrecorded(&self, records: &[ProcessRecord], session: Option<&str>) -> Vec<Observed> {
        identity::labelled(&self.paths.home_label())
            .into_iter()
            .filter(|p| session.is_none_or(|s| p.label(process::LABEL_SESSION) == Some(s)))
            .filter(|p| !records.iter().any(|r| identity::is(p, r)))
            .collect()
    }

    /// Stops every process the host started in `scope` (the miner loops
    /// before the gateways), forgets them, and removes the session record
    /// when it is in scope. Each stop is audited as a host decision.
    pub(super) fn teardown_processes(&self, scope: Scope<'_>, why: &str) -> Cleanup {
        let mut cleanup = Cleanup::default();
        let session = match scope {
            Scope::Session(id) => Some(id),
            Scope::Home => None,
        };
        let path = self.paths.process_table();
        let records = table::read(&path).unwrap_or_else(|err| {
            cleanup.errors.push(err);
            Vec::new()
        });
        let (mut ending, kept): (Vec<ProcessRecord>, Vec<ProcessRecord>) = records
            .into_iter()
            .partition(|r| session.is_none_or(|s| r.session == s));
        let unrecorded: Vec<ProcessRecord> = self
            .unrecorded(&ending, session)
            .iter()
            .map(record_of)
            .collect();
        ending.sort_by_key(|r| Program::parse(&r.program) == Some(Program::Gateway));
        for (record, known) in ending
            .iter()
            .map(|r| (r, true))
            .chain(unrecorded.iter().map(|r| (r, false)))
        {
            let result = signal::stop(record, grace(&record.program));
            self.audit_process(record, why, &result);
            match result {
                Ok(signal::Stopped::NotRunning) => {}
                Ok(_) => cleanup.stopped.push(StoppedProcess {
                    name: record.name.clone(),
                    pid: record.pid,
                    unrecorded: !known,
                }),
                Err(err) => cleanup.errors.push(format!(
                    "could not stop process {} (pid {}): {err}",
                    record.name, record.pid
                )),
            }
        }
        if let Err(err) = table::write(&path, &kept) {
            cleanup.errors.push(format!("cannot update {path}: {err}"));
        }
        let ours = match sidecar::read_processes(&self.paths.sidecar()) {
            Ok(Some(record)) => match (record.session_id.as_deref(), session) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(id), Some(scope)) => id == scope,
            },
            _ => false,
        };
        if ours {
            match sidecar::remove(&self.paths.sidecar()) {
                Ok(()) => cleanup.sidecar_removed = true,
                Err(err) => cleanup.errors.push(err.to_string()),
            }
        }
        cleanup
    }

    fn audit_process(
        &self,
        record: &ProcessRecord,
        why: &str,
        result: &std::io::Result<signal::Stopped>,
    ) {
        let action = format!(
            "host.teardown process={} pid={} program={} reason={why}",
            record.name, record.pid, record.program
        );
        let result = match result {
            Ok(stopped) => Ok(stopped),
            Err(err) => Err(err.to_string()),
        };
        self.audit_host(
            &record.provider,
            &record.component,
            action,
            &result.map(drop),
        );
    }
}

/// A labelled process without a record, as a record (to stop it with the
/// same checks).
fn record_of(observed: &Observed) -> ProcessRecord {
    let label = |name| observed.label(name).unwrap_or_default().to_owned();
    ProcessRecord {
        provider: label(process::LABEL_PROVIDER),
        component: String::new(),
        session: label(process::LABEL_SESSION),
        name: label(process::LABEL_NAME),
        program: String::new(),
        pid: observed.pid,
        start_time: observed.start_time,
        ports: Vec::new(),
        secrets: Vec::new(),
        log: String::new(),
    }
}

fn status_of(record: &ProcessRecord) -> ProcessStatus {
    let liveness = process::liveness(record);
    ProcessStatus {
        name: record.name.clone(),
        program: record.program.clone(),
        pid: record.pid,
        state: match liveness {
            Liveness::Alive => "running",
            Liveness::Exited => "exited",
            Liveness::Reused => "pid reused",
        },
        uptime_seconds: (liveness == Liveness::Alive)
            .then(|| unix_now().saturating_sub(record.start_time)),
        log: record.log.clone(),
    }
}
