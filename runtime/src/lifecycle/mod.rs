//! Mining sessions: `start`, `stop`, `status` and `attach` around the
//! provider's sandboxed lifecycle calls. The host owns what must outlive a
//! call: the session lock (one command at a time), reconciliation of
//! leftovers (a sidecar whose container is gone, a labelled container no
//! live record describes), the readiness wait after `start`, and teardown:
//! whatever a provider's `start` or `stop` returned, the host removes every
//! container it labelled for the session. A provider can add work, never
//! prevent cleanup.

mod processes;
mod supervision;

pub use supervision::{Acted, WorkerAction};

pub use processes::{ProcessStatus, StoppedProcess, runs_processes};

use crate::audit::{self, AuditLog};
use crate::bindings;
use crate::config::MiningConfig;
use crate::docker::{self, Docker, ImageProgress};
use crate::facts::{self, GpuSelection};
use crate::host::{self, LABEL_COMPONENT, LABEL_HOME, LABEL_PROVIDER, LABEL_SESSION};
use crate::paths::Paths;
use crate::provider::LoadedProvider;
use crate::registry::Registry;
use crate::sandbox::{ProviderError, Sandbox};
use crate::session::history::{self, Ending, LastSession};
use crate::session::state::{
    self, ContainerState, EXTERNAL_CONTAINER_ID, Lifecycle, Observation, ObservedContainer,
    Operation, Reconciliation, SidecarState, short_id,
};
use crate::session::{
    LockError, ProcessSession, SessionLock, SessionRecord, WorkerRecord, sidecar,
};
use crate::telemetry;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `start`/`stop` wait for another command holding the lock (an
/// image build can take most of an hour; a waiting `start` then finds the
/// session running).
const LOCK_WAIT: Duration = Duration::from_secs(3600);
/// `attach` is a quick, interactive command: it waits briefly, then says
/// who holds the lock.
const ATTACH_LOCK_WAIT: Duration = Duration::from_secs(2);
/// Log lines shown with a failed state.
const FAILURE_LINES: usize = 10;
/// How long a readiness probe of vLLM may take.
const READY_PROBE: Duration = Duration::from_millis(500);
/// How often the readiness wait looks at the container and vLLM.
const READY_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error("no [mining] section in config - run `jarvis mine init`")]
    NotConfigured,
    #[error("unknown mining provider '{0}': see `jarvis mine doctor` for the providers available")]
    UnknownProvider(String),
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("Docker unavailable: {0}")]
    Docker(String),
    #[error("{provider} failed: {error}")]
    Provider {
        provider: String,
        error: ProviderError,
    },
    #[error("{provider}: {}{}", if matches!(error, bindings::Error::Denied(_)) { "denied: " } else { "" }, host::describe(error))]
    Refused {
        provider: String,
        error: bindings::Error,
        /// What the host itself refused in the call, if anything: the exit
        /// code is chosen by this, never by the guest's words.
        refusal: Option<Box<host::Refusal>>,
    },
    #[error(
        "{provider}'s start() returned without writing a session record, so nothing would \
         stop what it started; the provider is broken: report it to its author"
    )]
    NoRecord { provider: String },
    /// The provider started, but its miner did not come up.
    #[error("{provider} did not come up: {reason}{}", tail(last_lines))]
    NotReady {
        provider: String,
        reason: String,
        exit_code: Option<i64>,
        restart_count: i64,
        last_lines: Vec<String>,
    },
    /// `attach` while this runtime manages a live session.
    #[error(
        "a mining session started by `jarvis mine start` is running ({provider}, container {container}); \
         stop it first with `jarvis mine stop`"
    )]
    SessionLive { provider: String, container: String },
    /// `start` while an attached miner is this home's session.
    #[error(
        "the miner attached at {endpoint} is this home's session; run `jarvis mine stop` to forget it \
         (it keeps running), then `jarvis mine start`"
    )]
    Attached { endpoint: String },
    #[error("{0}")]
    Session(String),
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nlast log lines:");
    for line in lines {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

impl From<docker::DockerError> for MineError {
    fn from(err: docker::DockerError) -> Self {
        MineError::Docker(err.to_string())
    }
}

impl From<crate::session::SidecarError> for MineError {
    fn from(err: crate::session::SidecarError) -> Self {
        MineError::Session(err.to_string())
    }
}

/// What the host removed when it tore a session down.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    pub removed: Vec<RemovedContainer>,
    /// Host processes stopped.
    pub stopped: Vec<StoppedProcess>,
    pub sidecar_removed: bool,
    /// Removals that failed, with the reason (nothing is hidden).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemovedContainer {
    /// The 12-character id.
    pub id: String,
    pub name: String,
    pub was_running: bool,
}

impl Cleanup {
    /// One line per thing removed or not removable, for printing.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .removed
            .iter()
            .map(|c| format!("removed container {} ({})", c.id, c.name))
            .chain(self.stopped.iter().map(|p| {
                format!(
                    "stopped process {} (pid {}){}",
                    p.name,
                    p.pid,
                    if p.unrecorded {
                        ", which no record described"
                    } else {
                        ""
                    }
                )
            }))
            .collect();
        if self.sidecar_removed {
            lines.push("removed the session record".into());
        }
        lines.extend(self.errors.iter().cloned());
        lines
    }
}

/// A failed `start`: why, and what the host cleaned up after it.
#[derive(Debug)]
pub struct StartFailure {
    pub error: MineError,
    /// Repairs made before the provider ran.
    pub repairs: Vec<String>,
    pub cleanup: Cleanup,
}

/// Boxed: the failure is large, and rare.
impl From<MineError> for Box<StartFailure> {
    fn from(error: MineError) -> Self {
        Box::new(StartFailure {
            error,
            repairs: Vec::new(),
            cleanup: Cleanup::default(),
        })
    }
}

/// How `start` reports and waits.
pub struct StartOptions {
    /// Image pull/build progress.
    pub image_progress: Box<dyn FnMut(ImageProgress) + Send>,
    /// How long to wait for the container to run and vLLM to answer;
    /// `None`: return as soon as the provider's `start` does.
    pub ready_wait: Option<Duration>,
    /// Called while waiting, with the time waited so far.
    pub on_wait: Box<dyn FnMut(&Waiting)>,
}

/// The readiness wait in progress.
pub struct Waiting<'a> {
    pub endpoint: &'a str,
    pub elapsed: Duration,
    pub limit: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub already_running: bool,
    pub session: Option<SessionRecord>,
    /// The record of a session of processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_session: Option<ProcessSession>,
    pub repairs: Vec<String>,
    /// Whether `start` waited for vLLM to answer.
    pub waited: bool,
}

#[derive(Debug)]
pub struct StopReport {
    /// A session or a running container was there to stop.
    pub stopped: bool,
    /// The endpoint of an attached miner whose record `stop` removed (the
    /// miner itself is not ours and keeps running).
    pub forgot_attached: Option<String>,
    pub repairs: Vec<String>,
    /// What the host removed after the provider's `stop`.
    pub cleanup: Cleanup,
    /// The provider's `stop` failed, trapped or was not there to call; the
    /// host cleaned up anyway.
    pub provider_failure: Option<MineError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state: String,
    pub exit_code: Option<i64>,
    /// How often Docker restarted the session's container.
    pub restart_count: Option<i64>,
    pub last_lines: Vec<String>,
    pub provider: Option<String>,
    pub session: Option<SessionRecord>,
    pub container: Option<docker::ContainerState>,
    pub stats: Option<Stats>,
    /// Why the provider's `stats()` gave nothing (its deadline, a trap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_error: Option<String>,
    pub repairs: Vec<String>,
    /// Why the config could not be read (the state then comes from the
    /// session record and the containers alone).
    pub config_warning: Option<String>,
    /// A session of host processes: each process's state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_session: Option<ProcessSession>,
    /// Why the state is `failed`, when one sentence says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The GPUs the running session's containers use (`status` shows
    /// their telemetry); `None`: no GPU, or no session running.
    #[serde(skip)]
    pub session_gpus: Option<telemetry::SessionGpus>,
    /// A session of several workers: each one's container as Docker
    /// reports it (its counts are in `stats.workers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerStatus>,
}

/// One worker of a session, as the host sees it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub index: usize,
    /// Short container id.
    pub container: String,
    /// Docker's state ("running", "exited", ...), or "gone".
    pub state: String,
    pub exit_code: Option<i64>,
    /// Host GPU ids.
    pub gpus: Vec<String>,
    pub vllm_endpoint: String,
}

/// One worker's counts from the provider's `stats()`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerCounts {
    pub index: u32,
    pub gpus: Vec<String>,
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub blocks_found: u64,
    pub hashrate: f64,
    pub last_share_at: Option<f64>,
    pub last_error: Option<String>,
    pub requests_served: Option<u64>,
}

/// `mining-stats`, for printing and JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub provider_id: String,
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    /// Submissions the node or pool refused (0 from a 0.1.0 provider,
    /// whose contract has no such count).
    pub shares_rejected: u64,
    pub blocks_found: u64,
    pub hashrate: f64,
    pub uptime_seconds: f64,
    pub last_share_at: Option<f64>,
    pub last_error: Option<String>,
    pub payout_target: String,
    pub fees_owed: u64,
    pub requests_served: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub generation_tokens: Option<u64>,
    /// Per worker, for a session of several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerCounts>,
}

pub struct Miner<'a> {
    pub paths: &'a Paths,
    pub mining: Option<&'a MiningConfig>,
    /// Why the config could not be read, if it could not: `stop` and
    /// `status` then work from the session record.
    pub config_error: Option<String>,
    pub sandbox: &'a Sandbox,
    pub registry: &'a Registry,
    pub docker: Result<Arc<Docker>, String>,
}

impl Miner<'_> {
    fn config(&self) -> Result<&MiningConfig, MineError> {
        self.mining.ok_or(MineError::NotConfigured)
    }

    fn provider(&self) -> Result<&LoadedProvider, MineError> {
        let id = &self.config()?.provider;
        self.registry
            .get(id)
            .ok_or_else(|| MineError::UnknownProvider(id.clone()))
    }

    /// The provider's `start` in `session`, on the host's GPUs `gpus` (read
    /// once per command: NVML's, or a facts file's for a dry run). They size
    /// the containers quota, and the provider receives them narrowed by
    /// `cuda_visible_devices` and the policy.
    fn call_start(
        &self,
        provider: &LoadedProvider,
        config: &MiningConfig,
        mut session: host::Session,
        gpus: Vec<host_gpu::GpuFacts>,
    ) -> Result<(), MineError> {
        let offered = facts::guest_gpus(&gpus, &self.gpu_selection());
        let config = config.to_guest(provider.visible_gpus(offered));
        session.host_gpus = Some(gpus);
        let refusals = session.refusals.clone();
        let host = provider.host_context(session);
        call_outcome(
            provider,
            &refusals,
            provider.start(self.sandbox, host, &config),
        )
    }

    /// `[mining.extra].cuda_visible_devices`, the user's GPU selection.
    fn gpu_selection(&self) -> GpuSelection {
        GpuSelection::new(
            self.mining
                .and_then(MiningConfig::cuda_visible_devices)
                .as_deref(),
        )
    }

    /// What `start` would create, recorded instead of done: the provider's
    /// `start` against a dry-run host (`host::dry_run`), through the same
    /// gate and checks. Takes no lock and repairs nothing; `facts` plans
    /// for the GPUs of another host.
    pub fn dry_run(
        &self,
        facts: Option<&host_gpu::HardwareFacts>,
    ) -> Result<host::dry_run::Plan, MineError> {
        let config = self.config()?;
        let provider = self.provider()?;
        let recorder = host::dry_run::Recorder::default();
        let mut session = self.host_session(new_session_id(), Box::new(|_| {}));
        session.dry_run = Some(recorder.clone());
        let gpus = match facts {
            Some(facts) => facts.gpus.clone(),
            None => host_gpu::nvml::gpus(None).gpus,
        };
        self.call_start(provider, config, session, gpus)?;
        Ok(recorder.plan())
    }

    fn docker(&self) -> Result<Arc<Docker>, MineError> {
        self.docker.clone().map_err(MineError::Docker)
    }

    fn host_session(
        &self,
        id: String,
        progress: Box<dyn FnMut(ImageProgress) + Send>,
    ) -> host::Session {
        host::Session {
            pearl_source_dir: self
                .mining
                .and_then(|m| {
                    crate::config::extra_string(&m.extra, "pearl_source_dir")
                        .ok()
                        .flatten()
                })
                .map(Into::into),
            wallet_address: self.mining.map(|m| m.wallet_address.clone()),
            gpu_selection: self.gpu_selection(),
            progress,
            ..host::Session::new(id, self.paths.clone(), self.docker.clone())
        }
    }

    /// Starts the configured provider, or reports the session already
    /// running. After the provider's `start` the host waits (bounded) until
    /// the session's container runs and vLLM answers. When anything fails,
    /// every container labelled for the new session is removed, and its
    /// session record.
    pub fn start(&self, options: StartOptions) -> Result<StartReport, Box<StartFailure>> {
        let config = self.config()?;
        let provider = self.provider()?;
        let _lock =
            SessionLock::acquire_for(&self.paths.lock_file(), LOCK_WAIT, Operation::Start.word())
                .map_err(MineError::from)?;
        if runs_processes(provider) {
            return self.start_processes(provider);
        }
        let docker = self.docker()?;
        let mut repairs = self.reconcile(&docker)?;
        if let Some(record) = sidecar::read(&self.paths.sidecar()).map_err(MineError::from)? {
            if record.container_id == EXTERNAL_CONTAINER_ID {
                return Err(MineError::Attached {
                    endpoint: record.vllm_endpoint,
                }
                .into());
            }
            if self.is_running(&docker, &record)? {
                return Ok(StartReport {
                    already_running: true,
                    process_session: None,
                    session: Some(record),
                    repairs,
                    waited: false,
                });
            }
            // Some workers of a live session stopped: start those again.
            if record.workers.len() > 1
                && let Some(restarted) = self.restart_workers(&docker, &record)?
            {
                repairs.extend(restarted);
                let session_id = record.session_id.clone().unwrap_or_default();
                let waited = options.ready_wait.is_some();
                if let Some(limit) = options.ready_wait {
                    let mut on_wait = options.on_wait;
                    self.wait_until_ready(
                        &docker,
                        provider.id(),
                        &session_id,
                        &record,
                        limit,
                        &mut *on_wait,
                    )
                    .map_err(|error| StartFailure {
                        error,
                        repairs: repairs.clone(),
                        cleanup: Cleanup::default(),
                    })?;
                }
                return Ok(StartReport {
                    already_running: false,
                    process_session: None,
                    session: Some(record),
                    repairs,
                    waited,
                });
            }
        }
        repairs.extend(self.remove_finished(&docker)?);
        let session_id = new_session_id();
        let StartOptions {
            image_progress,
            ready_wait,
            mut on_wait,
        } = options;
        let session = self.host_session(session_id.clone(), image_progress);
        let started = self
            .call_start(provider, config, session, host_gpu::nvml::gpus(None).gpus)
            .and_then(|()| self.session_of(provider.id(), &session_id));
        if started.is_ok() {
            self.record_energy_baseline(&docker, &session_id);
        }
        let ready = started.and_then(|record| match ready_wait {
            Some(limit) => self
                .wait_until_ready(
                    &docker,
                    provider.id(),
                    &session_id,
                    &record,
                    limit,
                    &mut *on_wait,
                )
                .map(|()| record),
            None => Ok(record),
        });
        match ready {
            Ok(record) => Ok(StartReport {
                already_running: false,
                process_session: None,
                session: Some(record),
                repairs,
                waited: ready_wait.is_some(),
            }),
            Err(error) => {
                let cleanup = self.teardown(&docker, Scope::Session(&session_id), "start-failed");
                self.remember(provider.id(), Some(session_id), Ending::StartFailed);
                Err(Box::new(StartFailure {
                    error,
                    repairs,
                    cleanup,
                }))
            }
        }
    }

    /// Records the energy baseline of the session's GPUs (see
    /// `telemetry::baseline`), once its containers run: the GPUs Docker
    /// recorded for them, read now. A baseline that cannot be recorded is
    /// a warning (`status` then says the energy is unknown), never a failed
    /// start.
    fn record_energy_baseline(&self, docker: &Docker, session_id: &str) {
        let path = self.paths.energy_baseline();
        let home = self.paths.home_label();
        let requests = docker
            .list_with_labels(&[(LABEL_HOME, home.as_str()), (LABEL_SESSION, session_id)])
            .map_err(|err| err.to_string())
            .and_then(|containers| {
                let mut requests = Vec::new();
                for container in containers {
                    if let Some(state) = docker.inspect(&container.id).map_err(|e| e.to_string())? {
                        requests.extend(state.gpu_requests);
                    }
                }
                Ok(requests)
            });
        let recorded = match requests {
            Ok(requests) => match telemetry::session_gpus(&requests, self.mining) {
                Some(gpus) => telemetry::section::record_baseline(&path, session_id, &gpus)
                    .map_err(|err| err.to_string()),
                None => telemetry::baseline::remove(&path).map_err(|err| err.to_string()),
            },
            Err(err) => Err(err),
        };
        if let Err(err) = recorded {
            tracing::warn!("cannot record the session's energy baseline in {path}: {err}");
        }
    }

    /// The record the provider's `start` wrote for this session.
    fn session_of(&self, provider: &str, session_id: &str) -> Result<SessionRecord, MineError> {
        match sidecar::read(&self.paths.sidecar())? {
            Some(record) if record.session_id.as_deref() == Some(session_id) => Ok(record),
            _ => Err(MineError::NoRecord {
                provider: provider.to_owned(),
            }),
        }
    }

    /// Waits until the record's container (which the host must have created
    /// for this session) runs and vLLM answers `<vllm_endpoint>/models`, for
    /// at most `limit`. A container that exits, restarts or vanishes fails
    /// at once, with its exit code and last log lines.
    fn wait_until_ready(
        &self,
        docker: &Docker,
        provider: &str,
        session_id: &str,
        record: &SessionRecord,
        limit: Duration,
        on_wait: &mut dyn FnMut(&Waiting),
    ) -> Result<(), MineError> {
        let not_ready =
            |reason: String, state: Option<&docker::ContainerState>| MineError::NotReady {
                provider: provider.to_owned(),
                reason,
                exit_code: state.and_then(|s| s.exit_code),
                restart_count: state.map_or(0, |s| s.restart_count),
                last_lines: state
                    .map(|s| self.last_lines(docker, s))
                    .unwrap_or_default(),
            };
        let began = Instant::now();
        for worker in record.worker_list() {
            self.wait_for_worker(docker, session_id, &worker, began, limit, on_wait)
                .map_err(|(reason, state)| not_ready(reason, state.as_deref()))?;
        }
        Ok(())
    }

    /// [`wait_until_ready`](Self::wait_until_ready) for one worker: `Err`
    /// carries why it is not ready and its container's state.
    fn wait_for_worker(
        &self,
        docker: &Docker,
        session_id: &str,
        worker: &WorkerRecord,
        began: Instant,
        limit: Duration,
        on_wait: &mut dyn FnMut(&Waiting),
    ) -> Result<(), (String, Option<Box<docker::ContainerState>>)> {
        let id = short_id(&worker.container_id);
        let endpoint = worker.vllm_endpoint.as_str();
        loop {
            let state = docker
                .inspect(&worker.container_id)
                .map_err(|err| (err.to_string(), None))?;
            let Some(state) = state.filter(|s| self.labelled_for(s, session_id)) else {
                return Err((
                    format!(
                        "the session record names container {id}, which the host did not create \
                         for this session (or which is gone)"
                    ),
                    None,
                ));
            };
            match state.status.as_str() {
                "exited" | "dead" => {
                    return Err((
                        format!(
                            "its container {id} ({}) exited with code {}",
                            state.name,
                            state.exit_code.unwrap_or(-1)
                        ),
                        Some(Box::new(state)),
                    ));
                }
                "restarting" => {
                    return Err((
                        format!(
                            "its container {id} ({}) is crash-looping: exit code {}, restarted {} times",
                            state.name,
                            state.exit_code.unwrap_or(-1),
                            state.restart_count
                        ),
                        Some(Box::new(state)),
                    ));
                }
                _ if state.running && vllm_ready(endpoint) => return Ok(()),
                _ => {}
            }
            let elapsed = began.elapsed();
            if elapsed >= limit {
                return Err((
                    format!(
                        "vLLM at {endpoint} did not answer within {} s; if the model needs longer to \
                         load, wait longer (`jarvis mine start --wait SECONDS`, or [mining.extra].start_wait_seconds)",
                        limit.as_secs()
                    ),
                    Some(Box::new(state)),
                ));
            }
            on_wait(&Waiting {
                endpoint,
                elapsed,
                limit,
            });
            std::thread::sleep(READY_POLL.min(limit - elapsed));
        }
    }

    /// Whether the host labelled `state` for `session_id` of this home.
    fn labelled_for(&self, state: &docker::ContainerState, session_id: &str) -> bool {
        state.labels.get(LABEL_SESSION).map(String::as_str) == Some(session_id)
            && state.labels.get(LABEL_HOME) == Some(&self.paths.home_label())
    }

    /// Stops the session: the provider's `stop` first, then the host
    /// removes every container labelled for this home and the session
    /// record, whatever the provider did or returned.
    pub fn stop(&self) -> Result<StopReport, MineError> {
        let _lock =
            SessionLock::acquire_for(&self.paths.lock_file(), LOCK_WAIT, Operation::Stop.word())?;
        if self.has_processes()? {
            return self.stop_processes();
        }
        let docker = self.docker()?;
        let repairs = self.reconcile(&docker)?;
        let record = sidecar::read(&self.paths.sidecar())?;
        let mut provider_failure = None;
        let mut forgot_attached = None;
        if let Some(record) = &record {
            if record.container_id == EXTERNAL_CONTAINER_ID {
                forgot_attached = Some(record.vllm_endpoint.clone());
            } else {
                provider_failure = self
                    .provider_stop_by(&record.provider, record.session_id.as_deref())
                    .err();
            }
        }
        let cleanup = self.teardown(&docker, Scope::Home, "stop");
        let stopped = record.is_some()
            || cleanup.removed.iter().any(|c| c.was_running)
            || !cleanup.stopped.is_empty();
        if stopped {
            self.remember_stopped(
                record.as_ref().map(|r| r.provider.as_str()),
                record.as_ref().and_then(|r| r.session_id.clone()),
            );
        }
        Ok(StopReport {
            stopped,
            forgot_attached,
            repairs,
            cleanup,
            provider_failure,
        })
    }

    /// The provider's chance to stop its session.
    fn provider_stop_by(&self, provider: &str, session_id: Option<&str>) -> Result<(), MineError> {
        let provider = self
            .registry
            .get(provider)
            .ok_or_else(|| MineError::UnknownProvider(provider.to_owned()))?;
        let session =
            self.host_session(session_id.unwrap_or_default().to_owned(), Box::new(|_| {}));
        let refusals = session.refusals.clone();
        let host = provider.host_context(session);
        call_outcome(provider, &refusals, provider.stop(self.sandbox, host))
    }

    /// Removes every container the host labelled for `scope`, and the
    /// session record if it is in scope. Each removal is audited as a host
    /// decision; failures are reported, never hidden.
    fn teardown(&self, docker: &Docker, scope: Scope<'_>, why: &str) -> Cleanup {
        let mut cleanup = Cleanup::default();
        let home = self.paths.home_label();
        let mut filter = vec![(LABEL_HOME, home.as_str())];
        if let Scope::Session(id) = scope {
            filter.push((LABEL_SESSION, id));
        }
        match docker.list_with_labels(&filter) {
            Ok(containers) => {
                for c in containers {
                    let action = format!(
                        "host.teardown container={} name={} reason={why}",
                        short_id(&c.id),
                        c.name
                    );
                    let result = docker.remove(&c.id).map_err(|e| e.to_string());
                    self.audit_host(
                        label(&c.labels, LABEL_PROVIDER),
                        label(&c.labels, LABEL_COMPONENT),
                        action,
                        &result,
                    );
                    match result {
                        Ok(()) => cleanup.removed.push(RemovedContainer {
                            id: short_id(&c.id).to_owned(),
                            name: c.name,
                            was_running: c.state == "running" || c.state == "restarting",
                        }),
                        Err(err) => cleanup.errors.push(format!(
                            "could not remove container {} ({}): {err}",
                            short_id(&c.id),
                            c.name
                        )),
                    }
                }
            }
            Err(err) => cleanup
                .errors
                .push(format!("could not list this session's containers: {err}")),
        }
        let path = self.paths.sidecar();
        let ours = match (sidecar::read(&path), scope) {
            (Ok(Some(_)), Scope::Home) => true,
            (Ok(Some(record)), Scope::Session(id)) => record.session_id.as_deref() == Some(id),
            (Ok(None), _) => false,
            // Not a record at all: nobody's, and in the way.
            (Err(err), _) => err.is_corrupt(),
        };
        if ours {
            match sidecar::remove(&path) {
                Ok(()) => cleanup.sidecar_removed = true,
                Err(err) => cleanup.errors.push(err.to_string()),
            }
        }
        let baseline = self.paths.energy_baseline();
        let removed = match scope {
            Scope::Home => telemetry::baseline::remove(&baseline),
            Scope::Session(id) => telemetry::baseline::remove_for(&baseline, id),
        };
        if let Err(err) = removed {
            cleanup.errors.push(format!(
                "could not remove the energy baseline {baseline}: {err}"
            ));
        }
        // Host processes of the scope go too: nothing is left running.
        let processes = self.teardown_processes(scope, why);
        cleanup.stopped = processes.stopped;
        cleanup.errors.extend(processes.errors);
        cleanup
    }

    /// Notes that `stop` ended a session (the host's, when no record said
    /// whose).
    fn remember_stopped(&self, provider: Option<&str>, session_id: Option<String>) {
        self.remember(provider.unwrap_or("host"), session_id, Ending::Stopped);
    }

    /// Notes that a session ended here, for `status` (see `session::history`).
    fn remember(&self, provider: &str, session_id: Option<String>, ending: Ending) {
        let last = LastSession {
            provider: provider.to_owned(),
            session_id,
            ending,
            ended_at: unix_now(),
        };
        if let Err(err) = history::record(&self.paths.last_session(), &last) {
            tracing::warn!(
                "cannot record the session's end in {}: {err}",
                self.paths.last_session().display()
            );
        }
    }

    /// Records a host decision (a repair or a teardown) in the audit log.
    fn audit_host(
        &self,
        provider: &str,
        component: &str,
        action: String,
        result: &Result<(), String>,
    ) {
        let Some(log) = self.sandbox.audit_log() else {
            return;
        };
        audit_host(log, provider, component, action, result);
    }

    /// The lifecycle state, with live stats when the session runs. Repairs
    /// leftovers only when no other command holds the lock.
    pub fn status(&self) -> Result<StatusReport, MineError> {
        let in_progress = SessionLock::holder(&self.paths.lock_file())?
            .and_then(|holder| holder.operation.as_deref().and_then(Operation::from_word));
        // A container session recorded here is the container path's; else
        // a session of processes, recorded processes, or a configured
        // provider of processes is this one's (no Docker needed).
        let container_session = matches!(sidecar::read(&self.paths.sidecar()), Ok(Some(_)));
        if !container_session
            && (self.provider().is_ok_and(runs_processes) || self.has_processes()?)
        {
            return self.status_processes(in_progress);
        }
        let docker = match &self.docker {
            Ok(docker) => docker.clone(),
            Err(_) if self.mining.is_none() && self.config_error.is_none() => {
                return Ok(StatusReport::state(Lifecycle::NotConfigured));
            }
            Err(err) => return Err(MineError::Docker(err.clone())),
        };
        let observed = self.observe(&docker, in_progress)?;
        let lifecycle = state::derive(&observed.observation);
        let mut report = StatusReport::state(lifecycle.clone());
        report.config_warning = self.config_error.clone();
        if let Lifecycle::Failed {
            exit_code,
            last_lines,
            ..
        } = &lifecycle
        {
            report.exit_code = *exit_code;
            report.last_lines = last_lines.clone();
        }
        if let Lifecycle::Degraded { down } = &lifecycle {
            let down: Vec<String> = down.iter().map(ToString::to_string).collect();
            report.reason = Some(format!(
                "{}; `jarvis mine start` starts it again, the others are left running",
                down.join("; ")
            ));
        }
        report.restart_count = observed.container.as_ref().map(|c| c.restart_count);
        report.provider = observed
            .record
            .as_ref()
            .map(|r| r.provider.clone())
            .or_else(|| self.mining.map(|m| m.provider.clone()));
        report.container = observed.container.clone();
        if let Some(record) = &observed.record
            && record.workers.len() > 1
        {
            report.workers = worker_statuses(record, &observed.observation);
        }
        if matches!(
            lifecycle,
            Lifecycle::Running | Lifecycle::Starting | Lifecycle::Degraded { .. }
        ) && let Some(record) = &observed.record
        {
            self.add_stats(&mut report, &record.provider, record.session_id.as_deref());
            if observed.container.is_some() {
                report.session_gpus =
                    telemetry::session_gpus(&observed.session_gpu_requests, self.mining);
            }
        }
        report.session = observed.record;
        if in_progress.is_none()
            && let Ok(_lock) = SessionLock::acquire(&self.paths.lock_file(), Duration::ZERO)
        {
            report.repairs = self.apply(&docker, &state::reconcile(&observed.observation))?;
        }
        Ok(report)
    }

    /// The session's live stats, from its provider's `stats()`, into `report`.
    fn add_stats(&self, report: &mut StatusReport, provider: &str, session_id: Option<&str>) {
        let Some(provider) = self.registry.get(provider) else {
            return;
        };
        let host = provider.host_context(
            self.host_session(session_id.unwrap_or_default().to_owned(), Box::new(|_| {})),
        );
        match provider.stats(self.sandbox, host) {
            Ok(stats) => report.stats = Some(Stats::from(stats)),
            Err(err) => report.stats_error = Some(err.to_string()),
        }
    }

    /// Whether every worker's container runs.
    fn is_running(&self, docker: &Docker, record: &SessionRecord) -> Result<bool, MineError> {
        let ids: Vec<String> = record
            .worker_list()
            .into_iter()
            .map(|worker| worker.container_id)
            .collect();
        Ok(docker
            .inspect_all(&ids)?
            .iter()
            .all(|state| state.as_ref().is_some_and(|s| s.running)))
    }

    /// A degraded session's workers whose containers stopped are started
    /// again (the host created them, for this session); the others are
    /// left alone. `None` when a worker's container is gone, which only a
    /// new session can replace.
    fn restart_workers(
        &self,
        docker: &Docker,
        record: &SessionRecord,
    ) -> Result<Option<Vec<String>>, MineError> {
        let session_id = record.session_id.as_deref().unwrap_or_default();
        let mut stopped = Vec::new();
        for (index, worker) in record.worker_list().into_iter().enumerate() {
            match docker.inspect(&worker.container_id)? {
                Some(state) if !self.labelled_for(&state, session_id) => return Ok(None),
                Some(state) if state.running => {}
                Some(state) => stopped.push((index, state)),
                None => return Ok(None),
            }
        }
        let mut restarted = Vec::with_capacity(stopped.len());
        for (index, state) in stopped {
            let result = docker.start(&state.id).map_err(MineError::from);
            self.audit_host(
                &record.provider,
                label(&state.labels, LABEL_COMPONENT),
                format!(
                    "host.restart-worker worker={index} container={} name={}",
                    short_id(&state.id),
                    state.name
                ),
                &result.as_ref().map(drop).map_err(ToString::to_string),
            );
            result?;
            restarted.push(format!(
                "worker {index} ({}) was {} and is started again",
                short_id(&state.id),
                state.status
            ));
        }
        Ok(Some(restarted))
    }

    /// Containers the host created for any provider of this home.
    fn own_containers(&self, docker: &Docker) -> Result<Vec<docker::ContainerSummary>, MineError> {
        Ok(docker.list_labelled(LABEL_HOME, Some(&self.paths.home_label()))?)
    }

    fn reconcile(&self, docker: &Docker) -> Result<Vec<String>, MineError> {
        let observed = self.observe(docker, None)?;
        self.apply(docker, &state::reconcile(&observed.observation))
    }

    /// Before a new session: containers of finished sessions (kept until
    /// now for `jarvis mine logs`) go.
    fn remove_finished(&self, docker: &Docker) -> Result<Vec<String>, MineError> {
        let observed = self.observe(docker, None)?;
        self.apply(docker, &state::finished(&observed.observation))
    }

    /// Carries out repairs (under the lock), auditing each as a host
    /// decision; returns the messages to print, once each.
    fn apply(&self, docker: &Docker, repairs: &[Reconciliation]) -> Result<Vec<String>, MineError> {
        let mut done = Vec::with_capacity(repairs.len());
        for repair in repairs {
            let result = match repair {
                Reconciliation::RemoveStaleSidecar { .. } => {
                    // The session is over: its energy window too.
                    if let Err(err) = telemetry::baseline::remove(&self.paths.energy_baseline()) {
                        tracing::warn!("cannot remove the energy baseline: {err}");
                    }
                    sidecar::remove(&self.paths.sidecar()).map_err(MineError::from)
                }
                Reconciliation::RemoveCorruptSidecar { .. } => {
                    sidecar::remove(&self.paths.sidecar()).map_err(MineError::from)
                }
                Reconciliation::RemoveOrphanContainer(c)
                | Reconciliation::RemoveFinishedContainer(c) => {
                    docker.remove(&c.id).map_err(MineError::from)
                }
            };
            let (provider, component) = repair.subject();
            self.audit_host(
                provider,
                component,
                repair.action(),
                &result.as_ref().map(drop).map_err(ToString::to_string),
            );
            result?;
            if let Reconciliation::RemoveStaleSidecar { provider, .. }
            | Reconciliation::RemoveOrphanContainer(ObservedContainer {
                provider: Some(provider),
                ..
            }) = repair
            {
                self.remember(provider, None, Ending::Repaired);
            }
            done.push(repair.to_string());
        }
        Ok(done)
    }

    fn observe(
        &self,
        docker: &Docker,
        in_progress: Option<Operation>,
    ) -> Result<Observed, MineError> {
        let (sidecar_state, record) = match sidecar::read(&self.paths.sidecar()) {
            Ok(Some(record)) => (SidecarState::from(&record), Some(record)),
            Ok(None) => (SidecarState::Absent, None),
            Err(err) if err.is_corrupt() => (
                SidecarState::Corrupt {
                    reason: err.to_string(),
                },
                None,
            ),
            Err(err) => return Err(MineError::Session(err.to_string())),
        };
        let summaries = self.own_containers(docker)?;
        let ids: Vec<String> = summaries.iter().map(|s| s.id.clone()).collect();
        let states: Vec<(i64, docker::ContainerState)> = summaries
            .iter()
            .zip(docker.inspect_all(&ids)?)
            .filter_map(|(summary, state)| Some((summary.created, state?)))
            .collect();
        let mut observation = Observation {
            configured: self.mining.is_some() || self.config_error.is_some(),
            started_before: history::any(&self.paths.last_session()),
            sidecar: sidecar_state,
            containers: states
                .iter()
                .filter_map(|(created, state)| observed(state, *created))
                .collect(),
            ready: None,
            in_progress,
            now: unix_now(),
            last_lines: Vec::new(),
        };
        let container = observation.main_container().and_then(|main| {
            states
                .iter()
                .find(|(_, s)| s.id == main.id)
                .map(|(_, s)| s.clone())
        });
        let failed = match observation.main_container().map(|c| c.state) {
            Some(ContainerState::Exited { code }) => code != 0,
            Some(ContainerState::Restarting { .. } | ContainerState::Dead { .. }) => true,
            _ => false,
        };
        if failed && let Some(c) = &container {
            observation.last_lines = self.last_lines(docker, c);
        }
        observation.ready = match (&record, &container) {
            (Some(record), Some(c)) if c.running => Some(vllm_ready(&record.vllm_endpoint)),
            // An attached miner has no container here: its endpoint is all there is.
            (Some(record), None) if record.container_id == EXTERNAL_CONTAINER_ID => {
                Some(vllm_ready(&record.vllm_endpoint))
            }
            _ => None,
        };
        // What the main container's session (every container the host
        // labelled with its session id) was created with.
        let session = container
            .as_ref()
            .and_then(|c| c.labels.get(LABEL_SESSION).cloned());
        let session_gpu_requests = states
            .iter()
            .map(|(_, state)| state)
            .filter(|state| {
                session.is_some() && state.labels.get(LABEL_SESSION) == session.as_ref()
            })
            .flat_map(|state| state.gpu_requests.iter().cloned())
            .collect();
        Ok(Observed {
            observation,
            record,
            container,
            session_gpu_requests,
        })
    }

    /// The container's log tail, redacted of the secrets it was given.
    fn last_lines(&self, docker: &Docker, container: &docker::ContainerState) -> Vec<String> {
        let redactor = host::containers::redactor_for(&container.labels);
        docker
            .logs(&container.id, FAILURE_LINES)
            .unwrap_or_default()
            .iter()
            .map(|l| redactor.redact_owned(l))
            .collect()
    }
}

/// Writes an attached miner's record, under the session lock, unless a
/// session this runtime started is live (its container exists and has not
/// finished); a stale or attached record is replaced.
pub fn attach(
    paths: &Paths,
    docker: Result<Arc<Docker>, String>,
    record: &SessionRecord,
) -> Result<(), MineError> {
    let _lock = SessionLock::acquire_for(
        &paths.lock_file(),
        ATTACH_LOCK_WAIT,
        Operation::Attach.word(),
    )?;
    let current = match sidecar::read(&paths.sidecar()) {
        Ok(current) => current,
        Err(err) if err.is_corrupt() => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(current) = current.filter(|c| c.container_id != EXTERNAL_CONTAINER_ID) {
        let docker = docker.map_err(|err| {
            MineError::Docker(format!(
                "{err}; cannot tell whether the session in {} is still running",
                paths.sidecar().display()
            ))
        })?;
        let live = docker
            .inspect(&current.container_id)?
            .is_some_and(|s| !matches!(s.status.as_str(), "exited" | "dead"));
        if live {
            return Err(MineError::SessionLive {
                provider: current.provider,
                container: short_id(&current.container_id).to_owned(),
            });
        }
    }
    Ok(sidecar::write(&paths.sidecar(), record)?)
}

/// A lifecycle call's outcome as the command's: the guest's error with what
/// the host itself refused in the call (which picks the exit code), or the
/// sandbox's failure.
fn call_outcome(
    provider: &LoadedProvider,
    refusals: &host::Refusals,
    outcome: Result<Result<(), bindings::Error>, ProviderError>,
) -> Result<(), MineError> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(MineError::Refused {
            provider: provider.id().to_owned(),
            error,
            refusal: refusals.last().map(Box::new),
        }),
        Err(error) => Err(MineError::Provider {
            provider: provider.id().to_owned(),
            error,
        }),
    }
}

/// Records a host decision: `Ok` as allowed and done, `Err` as an allowed
/// action that failed, with the reason.
fn audit_host(
    log: &AuditLog,
    provider: &str,
    component: &str,
    action: String,
    result: &Result<(), String>,
) {
    match result {
        Ok(()) => log.decision(provider, component, "host", action, Ok(())),
        Err(reason) => {
            let mut record = audit::Record::new(provider, component, "host", action);
            record.outcome = Some("failed".into());
            record.reason = Some(reason.clone());
            if let Err(err) = log.append(&record) {
                tracing::warn!("{err}");
            }
        }
    }
}

fn label<'a>(labels: &'a std::collections::BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

/// Each recorded worker's container as observed.
fn worker_statuses(record: &SessionRecord, observation: &Observation) -> Vec<WorkerStatus> {
    record
        .workers
        .iter()
        .enumerate()
        .map(|(index, worker)| {
            let container = observation
                .containers
                .iter()
                .find(|c| state::same_id(&worker.container_id, &c.id));
            WorkerStatus {
                index,
                container: short_id(&worker.container_id).to_owned(),
                state: container.map_or("gone", |c| c.state.word()).to_owned(),
                exit_code: container.and_then(|c| c.state.exit_code()),
                gpus: worker.gpus.clone(),
                vllm_endpoint: worker.vllm_endpoint.clone(),
            }
        })
        .collect()
}

/// What the state machine needs of a container Docker inspected.
fn observed(state: &docker::ContainerState, created: i64) -> Option<ObservedContainer> {
    Some(ObservedContainer {
        id: state.id.clone(),
        name: state.name.clone(),
        session: state.labels.get(LABEL_SESSION).cloned(),
        provider: state.labels.get(LABEL_PROVIDER).cloned(),
        component: state.labels.get(LABEL_COMPONENT).cloned(),
        state: ContainerState::from_docker(&state.status, state.exit_code)?,
        restart_count: state.restart_count,
        created,
    })
}

/// What a teardown removes.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// One session's containers (a failed `start`).
    Session(&'a str),
    /// Every container of this home (`stop`: nothing is left running).
    Home,
}

struct Observed {
    observation: Observation,
    record: Option<SessionRecord>,
    /// The main container, as Docker inspected it.
    container: Option<docker::ContainerState>,
    /// The GPU requests of the main container's session's containers.
    session_gpu_requests: Vec<docker::GpuRequest>,
}

impl StatusReport {
    fn state(lifecycle: Lifecycle) -> Self {
        StatusReport {
            state: lifecycle.name().to_owned(),
            exit_code: None,
            restart_count: None,
            last_lines: Vec::new(),
            provider: None,
            session: None,
            container: None,
            stats: None,
            stats_error: None,
            repairs: Vec::new(),
            config_warning: None,
            processes: Vec::new(),
            process_session: None,
            reason: None,
            session_gpus: None,
            workers: Vec::new(),
        }
    }
}

impl From<bindings::MiningStats> for Stats {
    fn from(s: bindings::MiningStats) -> Self {
        Stats {
            provider_id: s.provider_id,
            shares_submitted: s.shares_submitted,
            shares_accepted: s.shares_accepted,
            shares_rejected: s.shares_rejected,
            blocks_found: s.blocks_found,
            hashrate: s.hashrate,
            uptime_seconds: s.uptime_seconds,
            last_share_at: s.last_share_at,
            last_error: s.last_error,
            payout_target: s.payout_target,
            fees_owed: s.fees_owed,
            requests_served: s.requests_served,
            prompt_tokens: s.prompt_tokens,
            generation_tokens: s.generation_tokens,
            workers: s
                .workers
                .into_iter()
                .map(|w| WorkerCounts {
                    index: w.index,
                    gpus: w.gpus,
                    shares_submitted: w.shares_submitted,
                    shares_accepted: w.shares_accepted,
                    shares_rejected: w.shares_rejected,
                    blocks_found: w.blocks_found,
                    hashrate: w.hashrate,
                    last_share_at: w.last_share_at,
                    last_error: w.last_error,
                    requests_served: w.requests_served,
                })
                .collect(),
        }
    }
}

/// vLLM answers `/v1/models` once the model is loaded.
fn vllm_ready(endpoint: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(READY_PROBE))
        .max_redirects(0)
        .build()
        .into();
    agent
        .get(&format!("{}/models", endpoint.trim_end_matches('/')))
        .call()
        .is_ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Random enough to tell sessions apart in labels and logs.
fn new_session_id() -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        unix_now(),
        SystemTime::now()
    );
    format!("{:x}", Sha256::digest(seed.as_bytes()))[..16].to_owned()
}
