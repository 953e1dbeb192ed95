//! Mining sessions: `start`, `stop` and `status` around the provider's
//! sandboxed lifecycle calls. The host owns what must outlive a call: the
//! session lock (one `start` at a time), reconciliation of leftovers (a
//! sidecar whose container is gone, a labelled container with no sidecar),
//! and the lifecycle state derived from config, sidecar and container.

use crate::bindings;
use crate::config::MiningConfig;
use crate::docker::{self, Docker, ImageProgress};
use crate::host::{self, LABEL_HOME};
use crate::paths::Paths;
use crate::provider::LoadedProvider;
use crate::registry::Registry;
use crate::sandbox::{ProviderError, Sandbox};
use crate::session::state::{
    self, ContainerState, Lifecycle, Observation, ObservedContainer, Operation, Reconciliation,
    SidecarState,
};
use crate::session::{LockError, SessionLock, SessionRecord, sidecar};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long `start`/`stop` wait for another command holding the lock (an
/// image build can take most of an hour; a waiting `start` then finds the
/// session running).
const LOCK_WAIT: Duration = Duration::from_secs(3600);
/// Log lines shown with a failed state.
const FAILURE_LINES: usize = 10;
/// How long a readiness probe of vLLM may take during `status`.
const READY_PROBE: Duration = Duration::from_millis(500);

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
    },
    #[error("{0}")]
    Session(String),
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

#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub already_running: bool,
    pub session: Option<SessionRecord>,
    pub repairs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    pub stopped: bool,
    pub repairs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state: String,
    pub exit_code: Option<i64>,
    pub last_lines: Vec<String>,
    pub provider: Option<String>,
    pub session: Option<SessionRecord>,
    pub container: Option<docker::ContainerState>,
    pub stats: Option<Stats>,
    pub repairs: Vec<String>,
}

/// `mining-stats`, for printing and JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub provider_id: String,
    pub shares_submitted: u64,
    pub shares_accepted: u64,
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
}

pub struct Miner<'a> {
    pub paths: &'a Paths,
    pub mining: Option<&'a MiningConfig>,
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

    fn docker(&self) -> Result<Arc<Docker>, MineError> {
        self.docker.clone().map_err(MineError::Docker)
    }

    fn host_session(
        &self,
        id: String,
        progress: Box<dyn FnMut(ImageProgress) + Send>,
    ) -> host::Session {
        host::Session {
            id,
            paths: self.paths.clone(),
            docker: self.docker.clone(),
            pearl_source_dir: self
                .mining
                .and_then(|m| {
                    crate::config::extra_string(&m.extra, "pearl_source_dir")
                        .ok()
                        .flatten()
                })
                .map(Into::into),
            wallet_address: self.mining.map(|m| m.wallet_address.clone()),
            progress,
        }
    }

    /// Starts the configured provider, or reports the session already running.
    pub fn start(
        &self,
        progress: Box<dyn FnMut(ImageProgress) + Send>,
    ) -> Result<StartReport, MineError> {
        let config = self.config()?;
        let provider = self.provider()?;
        let _lock =
            SessionLock::acquire_for(&self.paths.lock_file(), LOCK_WAIT, Operation::Start.word())?;
        let docker = self.docker()?;
        let repairs = self.reconcile(&docker)?;
        if let Some(record) = self.running_session(&docker)? {
            return Ok(StartReport {
                already_running: true,
                session: Some(record),
                repairs,
            });
        }
        let session_id = new_session_id();
        let host = provider.host_context(self.host_session(session_id, progress));
        let outcome = provider.start(self.sandbox, host, &config.to_guest());
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(MineError::Refused {
                provider: provider.id().to_owned(),
                error,
            }),
            Err(error) => Some(MineError::Provider {
                provider: provider.id().to_owned(),
                error,
            }),
        };
        if let Some(failure) = failure {
            // Nothing half-done: no container without a session record.
            let _ = self.reconcile(&docker);
            return Err(failure);
        }
        let session = sidecar::read(&self.paths.sidecar()).map_err(MineError::from)?;
        Ok(StartReport {
            already_running: false,
            session,
            repairs,
        })
    }

    /// Stops the session (container and sidecar gone) and removes leftovers.
    pub fn stop(&self) -> Result<StopReport, MineError> {
        let _lock =
            SessionLock::acquire_for(&self.paths.lock_file(), LOCK_WAIT, Operation::Stop.word())?;
        let docker = self.docker()?;
        let repairs = self.reconcile(&docker)?;
        let record = sidecar::read(&self.paths.sidecar()).map_err(MineError::from)?;
        let mut stopped = false;
        if let Some(record) = record {
            let provider = self
                .registry
                .get(&record.provider)
                .ok_or_else(|| MineError::UnknownProvider(record.provider.clone()))?;
            let host = provider.host_context(self.host_session(
                record.session_id.clone().unwrap_or_default(),
                Box::new(|_| {}),
            ));
            match provider.stop(self.sandbox, host) {
                Ok(Ok(())) => stopped = true,
                Ok(Err(error)) => {
                    return Err(MineError::Refused {
                        provider: provider.id().to_owned(),
                        error,
                    });
                }
                Err(error) => {
                    return Err(MineError::Provider {
                        provider: provider.id().to_owned(),
                        error,
                    });
                }
            }
        }
        for leftover in self.own_containers(&docker)? {
            docker.remove(&leftover.id).map_err(MineError::from)?;
            stopped = true;
        }
        Ok(StopReport { stopped, repairs })
    }

    /// The lifecycle state, with live stats when the session runs. Repairs
    /// leftovers only when no other command holds the lock.
    pub fn status(&self) -> Result<StatusReport, MineError> {
        let in_progress = SessionLock::holder(&self.paths.lock_file())?
            .and_then(|holder| holder.operation.as_deref().and_then(Operation::from_word));
        let docker = match &self.docker {
            Ok(docker) => docker.clone(),
            Err(_) if self.mining.is_none() => {
                return Ok(StatusReport::state(Lifecycle::NotConfigured));
            }
            Err(err) => return Err(MineError::Docker(err.clone())),
        };
        let observed = self.observe(&docker, in_progress)?;
        let lifecycle = state::derive(&observed.observation);
        let mut report = StatusReport::state(lifecycle.clone());
        if let Lifecycle::Failed {
            exit_code,
            last_lines,
        } = &lifecycle
        {
            report.exit_code = *exit_code;
            report.last_lines = last_lines.clone();
        }
        report.provider = observed
            .record
            .as_ref()
            .map(|r| r.provider.clone())
            .or_else(|| self.mining.map(|m| m.provider.clone()));
        report.container = observed.container.clone();
        if matches!(lifecycle, Lifecycle::Running | Lifecycle::Starting)
            && let Some(record) = &observed.record
            && let Some(provider) = self.registry.get(&record.provider)
        {
            let host = provider.host_context(self.host_session(
                record.session_id.clone().unwrap_or_default(),
                Box::new(|_| {}),
            ));
            report.stats = provider.stats(self.sandbox, host).ok().map(Stats::from);
        }
        report.session = observed.record;
        if in_progress.is_none()
            && let Ok(_lock) = SessionLock::acquire(&self.paths.lock_file(), Duration::ZERO)
        {
            report.repairs = self.apply(&docker, &state::reconcile(&observed.observation))?;
        }
        Ok(report)
    }

    /// The session, if its container is running.
    fn running_session(&self, docker: &Docker) -> Result<Option<SessionRecord>, MineError> {
        let Some(record) = sidecar::read(&self.paths.sidecar()).map_err(MineError::from)? else {
            return Ok(None);
        };
        let state = docker
            .inspect(&record.container_id)
            .map_err(MineError::from)?;
        Ok(state.filter(|s| s.running).map(|_| record))
    }

    /// Containers the host created for any provider of this home.
    fn own_containers(&self, docker: &Docker) -> Result<Vec<docker::ContainerSummary>, MineError> {
        docker
            .list_labelled(LABEL_HOME, Some(&self.paths.home().display().to_string()))
            .map_err(MineError::from)
    }

    fn reconcile(&self, docker: &Docker) -> Result<Vec<String>, MineError> {
        let observed = self.observe(docker, None)?;
        self.apply(docker, &state::reconcile(&observed.observation))
    }

    fn apply(&self, docker: &Docker, repairs: &[Reconciliation]) -> Result<Vec<String>, MineError> {
        for repair in repairs {
            match repair {
                Reconciliation::RemoveStaleSidecar { .. }
                | Reconciliation::RemoveCorruptSidecar { .. } => {
                    sidecar::remove(&self.paths.sidecar()).map_err(MineError::from)?;
                }
                Reconciliation::RemoveOrphanContainer { id } => {
                    docker.remove(id).map_err(MineError::from)?;
                }
            }
            tracing::warn!("{repair}");
        }
        Ok(repairs.iter().map(ToString::to_string).collect())
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
        let containers = self.own_containers(docker)?;
        // The session's container, else the newest live one, else the newest.
        let chosen = record
            .as_ref()
            .and_then(|r| {
                containers.iter().find(|c| {
                    c.id.starts_with(&r.container_id) || r.container_id.starts_with(&c.id)
                })
            })
            .or_else(|| {
                containers
                    .iter()
                    .filter(|c| c.state == "running" || c.state == "created")
                    .max_by_key(|c| c.created)
            })
            .or_else(|| containers.iter().max_by_key(|c| c.created));
        let container = match chosen {
            Some(summary) => docker.inspect(&summary.id).map_err(MineError::from)?,
            None => None,
        };
        let observed_container = container.as_ref().and_then(|c| {
            ContainerState::from_docker(&c.status, c.exit_code).map(|state| ObservedContainer {
                id: c.id.clone(),
                state,
            })
        });
        let failed = matches!(
            observed_container.as_ref().map(|c| c.state),
            Some(ContainerState::Exited { code }) if code != 0
        ) || matches!(
            observed_container.as_ref().map(|c| c.state),
            Some(ContainerState::Restarting { .. } | ContainerState::Dead { .. })
        );
        let last_lines = match (&container, failed) {
            (Some(c), true) => {
                let redactor = host::containers::redactor_for(&c.labels);
                docker
                    .logs(&c.id, FAILURE_LINES)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| redactor.redact_owned(l))
                    .collect()
            }
            _ => Vec::new(),
        };
        let ready = match (&record, &container) {
            (Some(record), Some(c)) if c.running => Some(vllm_ready(&record.vllm_endpoint)),
            // An attached miner has no container here: its endpoint is all there is.
            (Some(record), None) if record.container_id == state::EXTERNAL_CONTAINER_ID => {
                Some(vllm_ready(&record.vllm_endpoint))
            }
            _ => None,
        };
        Ok(Observed {
            observation: Observation {
                configured: self.mining.is_some(),
                // The lock file exists once any start or stop has run here.
                started_before: record.is_some()
                    || !containers.is_empty()
                    || self.paths.lock_file().exists(),
                sidecar: sidecar_state,
                container: observed_container,
                ready,
                in_progress,
                now: unix_now(),
                last_lines,
            },
            record,
            container,
        })
    }
}

struct Observed {
    observation: Observation,
    record: Option<SessionRecord>,
    container: Option<docker::ContainerState>,
}

impl StatusReport {
    fn state(lifecycle: Lifecycle) -> Self {
        StatusReport {
            state: lifecycle.name().to_owned(),
            exit_code: None,
            last_lines: Vec::new(),
            provider: None,
            session: None,
            container: None,
            stats: None,
            repairs: Vec::new(),
        }
    }
}

impl From<bindings::MiningStats> for Stats {
    fn from(s: bindings::MiningStats) -> Self {
        Stats {
            provider_id: s.provider_id,
            shares_submitted: s.shares_submitted,
            shares_accepted: s.shares_accepted,
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
