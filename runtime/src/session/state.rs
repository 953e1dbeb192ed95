//! Lifecycle states (reference §11.2, designed there but never implemented)
//! and the reconciliation a stale session needs (§11.6.3).
//!
//! Everything here is a pure function of an [`Observation`] the caller
//! gathers: whether `[mining]` exists, what the sidecar says, what Docker
//! says about every container labelled for this home, whether vLLM answers,
//! which command (if any) holds the session lock, and whether a session
//! ever ended here. The intended flow for `status` and `start`:
//!
//! 1. take the [`SessionLock`](super::SessionLock) (`start`/`stop`), or read
//!    its holder (`status`, which only reports);
//! 2. observe; apply [`reconcile`]'s actions **only while holding the lock**
//!    (otherwise a `start` between creating its container and writing the
//!    sidecar would look like an orphan), printing each action's message;
//! 3. observe again and print [`derive()`]'s state.
//!
//! A container is *described* by the sidecar when the sidecar's
//! `container_id` names it (either id may be the 12-character short form)
//! or when the host labelled it with the sidecar's session id. A sidecar
//! whose `container_id` is `external` was written by `mine attach` for a
//! miner this runtime does not own; it is never reconciled against
//! containers.
//!
//! **Invariant**: [`reconcile`] never removes a container that a live
//! record describes (a record that is not stale or corrupt). Every command
//! that writes the record holds the lock that `apply` holds, so the record
//! cannot change between observation and repair.

use std::fmt;

/// How long a running container may go without vLLM answering before it is
/// reported as `running` anyway. The reference design said ~30 s of gateway
/// health; loading even a small model into vLLM takes longer, and past this
/// bound `status` should say the container is up (and show the probe's
/// error) rather than claim it is still starting forever.
pub const STARTING_GRACE_SECS: u64 = 120;

/// The sidecar `container_id` of an attached (externally started) miner.
pub const EXTERNAL_CONTAINER_ID: &str = "external";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// No `[mining]` table and no session.
    NotConfigured,
    /// `[mining]` written, no session has run yet.
    Configured,
    /// A `start` is in progress, or the container is up but vLLM has not
    /// answered yet (for at most [`STARTING_GRACE_SECS`]).
    Starting,
    Running,
    /// A `stop` is in progress, or Docker is removing the container.
    Stopping,
    /// Configured, a session ran before, and nothing is running now (or the
    /// container exited with code 0).
    Stopped,
    /// The container exited non-zero, is dead, paused or restart-looping, or
    /// the session records disagree with what exists (stale sidecar, orphan
    /// container). `last_lines` is the log tail the caller supplied;
    /// `restart_count` is how often Docker restarted the container.
    Failed {
        exit_code: Option<i64>,
        restart_count: i64,
        last_lines: Vec<String>,
    },
    /// A session of several workers where some run and others do not:
    /// `down` says which and why; the others are left alone.
    Degraded {
        down: Vec<WorkerDown>,
    },
}

/// A worker of a degraded session that does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerDown {
    /// Its place in the session record's workers.
    pub index: usize,
    /// Its container's short id.
    pub container: String,
    /// "exited", "dead", "restarting", "paused", "created" or "gone".
    pub state: &'static str,
    pub exit_code: Option<i64>,
}

impl fmt::Display for WorkerDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} ({}) is {}",
            self.index, self.container, self.state
        )?;
        if let Some(code) = self.exit_code {
            write!(f, " (exit code {code})")?;
        }
        Ok(())
    }
}

impl Lifecycle {
    /// The name `status` prints.
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::NotConfigured => "not configured",
            Lifecycle::Configured => "configured",
            Lifecycle::Starting => "starting",
            Lifecycle::Running => "running",
            Lifecycle::Stopping => "stopping",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Failed { .. } => "failed",
            Lifecycle::Degraded { .. } => "degraded",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Docker's `.State.Status` of our container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerState {
    #[default]
    Created,
    Running,
    Paused,
    /// Docker's restart policy is restarting it; `last_exit_code` is
    /// `.State.ExitCode` from the previous run.
    Restarting {
        last_exit_code: Option<i64>,
    },
    Removing,
    Exited {
        code: i64,
    },
    Dead {
        code: Option<i64>,
    },
}

impl ContainerState {
    /// From `docker inspect`'s `.State.Status` and `.State.ExitCode`;
    /// `None` for a status Docker does not document.
    pub fn from_docker(status: &str, exit_code: Option<i64>) -> Option<ContainerState> {
        Some(match status {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting {
                last_exit_code: exit_code,
            },
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited {
                code: exit_code.unwrap_or(-1),
            },
            "dead" => ContainerState::Dead { code: exit_code },
            _ => return None,
        })
    }

    /// Docker's word for it.
    pub fn word(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting { .. } => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited { .. } => "exited",
            ContainerState::Dead { .. } => "dead",
        }
    }

    pub fn exit_code(self) -> Option<i64> {
        match self {
            ContainerState::Restarting { last_exit_code } => last_exit_code,
            ContainerState::Exited { code } => Some(code),
            ContainerState::Dead { code } => code,
            _ => None,
        }
    }

    /// Still holds (or may again hold) a process: what an orphan is.
    fn alive(self) -> bool {
        matches!(
            self,
            ContainerState::Created
                | ContainerState::Running
                | ContainerState::Paused
                | ContainerState::Restarting { .. }
        )
    }
}

/// A container labelled for this home, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedContainer {
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    /// The host's labels: session id, provider id, component sha256.
    pub session: Option<String>,
    pub provider: Option<String>,
    pub component: Option<String>,
    pub state: ContainerState,
    /// `RestartCount` from `docker inspect`.
    pub restart_count: i64,
    /// Unix seconds.
    pub created: i64,
}

/// What the sidecar file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SidecarState {
    #[default]
    Absent,
    Present {
        provider: String,
        container_id: String,
        /// The host's session id (absent in records OpenJarvis wrote).
        session_id: Option<String>,
        started_at: u64,
        /// Every worker's container, worker 0's first, when the session
        /// runs several; empty for one container.
        workers: Vec<String>,
    },
    /// Unreadable or not a session record (see `sidecar::SidecarError`).
    Corrupt { reason: String },
}

impl From<&super::SessionRecord> for SidecarState {
    fn from(record: &super::SessionRecord) -> SidecarState {
        SidecarState::Present {
            provider: record.provider.clone(),
            container_id: record.container_id.clone(),
            session_id: record.session_id.clone(),
            started_at: record.started_at,
            workers: record
                .workers
                .iter()
                .map(|worker| worker.container_id.clone())
                .collect(),
        }
    }
}

/// A command holding the session lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
    Attach,
}

impl Operation {
    /// From the word a lock holder recorded (`SessionLock::acquire_for`).
    pub fn from_word(word: &str) -> Option<Operation> {
        match word {
            "start" => Some(Operation::Start),
            "stop" => Some(Operation::Stop),
            "attach" => Some(Operation::Attach),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Attach => "attach",
        }
    }
}

/// Everything the state is derived from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// `[mining]` exists in the config (or the config cannot be read, and
    /// the caller says so).
    pub configured: bool,
    /// A session ended here before: the host's record of the last session
    /// (`session::history`). Tells `stopped` from `configured`; the lock
    /// file says nothing (any command may create it).
    pub started_before: bool,
    pub sidecar: SidecarState,
    /// Every container labelled for this home.
    pub containers: Vec<ObservedContainer>,
    /// vLLM answered `/v1/models` (`Some(true)`), did not (`Some(false)`),
    /// or was not asked (`None`).
    pub ready: Option<bool>,
    /// The operation of whoever holds the session lock, if anyone.
    pub in_progress: Option<Operation>,
    /// Unix seconds.
    pub now: u64,
    /// The main container's log tail, carried into `Failed` (may be empty).
    pub last_lines: Vec<String>,
}

impl Observation {
    /// The container the state is about: the one the sidecar names, else
    /// the newest that still runs, else the newest.
    pub fn main_container(&self) -> Option<&ObservedContainer> {
        self.linked()
            .or_else(|| {
                self.containers
                    .iter()
                    .filter(|c| c.state.alive())
                    .max_by_key(|c| c.created)
            })
            .or_else(|| self.containers.iter().max_by_key(|c| c.created))
    }

    /// The container the sidecar names.
    fn linked(&self) -> Option<&ObservedContainer> {
        match &self.sidecar {
            SidecarState::Present { container_id, .. } => self
                .containers
                .iter()
                .find(|c| same_id(container_id, &c.id)),
            _ => None,
        }
    }

    fn attached(&self) -> bool {
        matches!(&self.sidecar, SidecarState::Present { container_id, .. } if container_id == EXTERNAL_CONTAINER_ID)
    }

    fn age(&self) -> Option<u64> {
        match self.sidecar {
            SidecarState::Present { started_at, .. } => Some(self.now.saturating_sub(started_at)),
            _ => None,
        }
    }

    /// Why the sidecar is stale, if it is: the container it names is gone
    /// or finished. Attached records are never stale here.
    fn stale(&self) -> Option<Stale> {
        if !matches!(self.sidecar, SidecarState::Present { .. }) || self.attached() {
            return None;
        }
        // A session of workers lives while any of them does.
        let workers = self.workers();
        if workers.len() > 1 && workers.iter().flatten().any(|c| c.state.alive()) {
            return None;
        }
        match self.linked().map(|c| c.state) {
            None => Some(Stale::Gone),
            Some(ContainerState::Exited { code }) => Some(Stale::Exited { code: Some(code) }),
            Some(ContainerState::Dead { code }) => Some(Stale::Exited { code }),
            Some(_) => None,
        }
    }

    /// Each recorded worker's container, where it exists (empty for a
    /// session of one container).
    fn workers(&self) -> Vec<Option<&ObservedContainer>> {
        match &self.sidecar {
            SidecarState::Present { workers, .. } => workers
                .iter()
                .map(|id| self.containers.iter().find(|c| same_id(id, &c.id)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The workers that do not run, when some others do.
    fn workers_down(&self) -> Option<Vec<WorkerDown>> {
        let SidecarState::Present { workers: ids, .. } = &self.sidecar else {
            return None;
        };
        let workers = self.workers();
        let running =
            |c: &Option<&ObservedContainer>| c.is_some_and(|c| c.state == ContainerState::Running);
        if workers.len() < 2 || !workers.iter().any(running) {
            return None;
        }
        let down: Vec<WorkerDown> = workers
            .iter()
            .zip(ids)
            .enumerate()
            .filter(|(_, (c, _))| !running(c))
            .map(|(index, (c, id))| WorkerDown {
                index,
                container: short_id(id).to_owned(),
                state: c.map_or("gone", |c| c.state.word()),
                exit_code: c.and_then(|c| c.state.exit_code()),
            })
            .collect();
        (!down.is_empty()).then_some(down)
    }

    /// Whether a live record (present, not stale) describes `container`:
    /// names it, or carries the session id the host labelled it with.
    pub fn described_by_live_record(&self, container: &ObservedContainer) -> bool {
        let SidecarState::Present {
            container_id,
            session_id,
            ..
        } = &self.sidecar
        else {
            return false;
        };
        if self.stale().is_some() {
            return false;
        }
        same_id(container_id, &container.id)
            || session_id
                .as_deref()
                .is_some_and(|id| container.session.as_deref() == Some(id))
    }

    fn failed(&self, exit_code: Option<i64>) -> Lifecycle {
        Lifecycle::Failed {
            exit_code,
            restart_count: self.main_container().map_or(0, |c| c.restart_count),
            last_lines: self.last_lines.clone(),
        }
    }
}

/// Docker ids: full 64 hex digits or a prefix (usually 12).
pub fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

/// The 12-character form Docker prints.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The lifecycle state of the observed session.
///
/// | observed | state |
/// |---|---|
/// | a `stop` holds the lock, or the container is `removing` | stopping |
/// | linked container running/created, vLLM ready | running |
/// | … not ready, started < [`STARTING_GRACE_SECS`] ago | starting |
/// | … running, not ready, older | running |
/// | … created (never started), older | failed |
/// | a `start` holds the lock and nothing above applies | starting |
/// | container exited 0 | stopped |
/// | container exited non-zero, dead, paused or restarting | failed |
/// | container running/created without a sidecar naming it (orphan) | failed |
/// | sidecar names a container that does not exist (stale), or is corrupt | failed |
/// | attached sidecar (`external`): ready or not asked / not ready | running / failed |
/// | nothing: no config / a session ran before / else | not configured / stopped / configured |
pub fn derive(o: &Observation) -> Lifecycle {
    if o.in_progress == Some(Operation::Stop) {
        return Lifecycle::Stopping;
    }
    let starting = o.in_progress == Some(Operation::Start);
    if !starting && let Some(down) = o.workers_down() {
        return Lifecycle::Degraded { down };
    }
    if let Some(container) = o.main_container() {
        let young = o.age().is_some_and(|age| age < STARTING_GRACE_SECS);
        let linked = o.linked().is_some();
        return match container.state {
            ContainerState::Removing => Lifecycle::Stopping,
            ContainerState::Running | ContainerState::Created if linked => {
                let running = container.state == ContainerState::Running;
                if running && o.ready == Some(true) {
                    Lifecycle::Running
                } else if young || starting {
                    Lifecycle::Starting
                } else if running {
                    Lifecycle::Running
                } else {
                    o.failed(None)
                }
            }
            ContainerState::Running | ContainerState::Created if starting => Lifecycle::Starting,
            ContainerState::Running | ContainerState::Created | ContainerState::Paused => {
                o.failed(None)
            }
            ContainerState::Restarting { last_exit_code } => o.failed(last_exit_code),
            ContainerState::Exited { code: 0 } => Lifecycle::Stopped,
            ContainerState::Exited { code } => o.failed(Some(code)),
            ContainerState::Dead { code } => o.failed(code),
        };
    }
    match &o.sidecar {
        SidecarState::Present { .. } if o.attached() => match o.ready {
            Some(false) => o.failed(None),
            _ => Lifecycle::Running,
        },
        _ if starting => Lifecycle::Starting,
        SidecarState::Present { .. } | SidecarState::Corrupt { .. } => o.failed(None),
        SidecarState::Absent if !o.configured => Lifecycle::NotConfigured,
        SidecarState::Absent if o.started_before => Lifecycle::Stopped,
        SidecarState::Absent => Lifecycle::Configured,
    }
}

/// Why a sidecar is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// The container it names does not exist.
    Gone,
    /// The container it names has exited (it is kept, for `mine logs`).
    Exited { code: Option<i64> },
}

/// A repair [`reconcile`] asks for. `Display` is the message to print once
/// it has been done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciliation {
    /// Remove the sidecar, so OpenJarvis stops routing to a dead endpoint.
    RemoveStaleSidecar {
        provider: String,
        container_id: String,
        why: Stale,
    },
    /// Remove a sidecar that is not a session record.
    RemoveCorruptSidecar { reason: String },
    /// Remove (force) our container, which no live record describes.
    RemoveOrphanContainer(ObservedContainer),
    /// Before a new session: remove a finished session's container, kept
    /// until then for `jarvis mine logs`.
    RemoveFinishedContainer(ObservedContainer),
}

impl Reconciliation {
    /// Whom the audit record names: the provider whose session or
    /// container it was (`host` when nobody's), and its component.
    pub fn subject(&self) -> (&str, &str) {
        match self {
            Reconciliation::RemoveStaleSidecar { provider, .. } => (provider, ""),
            Reconciliation::RemoveCorruptSidecar { .. } => ("host", ""),
            Reconciliation::RemoveOrphanContainer(c)
            | Reconciliation::RemoveFinishedContainer(c) => (
                c.provider.as_deref().unwrap_or("host"),
                c.component.as_deref().unwrap_or_default(),
            ),
        }
    }

    /// The audit record's action.
    pub fn action(&self) -> String {
        match self {
            Reconciliation::RemoveStaleSidecar { container_id, .. } => format!(
                "host.remove-stale-sidecar container={}",
                short_id(container_id)
            ),
            Reconciliation::RemoveCorruptSidecar { .. } => "host.remove-corrupt-sidecar".into(),
            Reconciliation::RemoveOrphanContainer(c) => format!(
                "host.remove-orphan container={} name={}",
                short_id(&c.id),
                c.name
            ),
            Reconciliation::RemoveFinishedContainer(c) => format!(
                "host.remove-finished container={} name={}",
                short_id(&c.id),
                c.name
            ),
        }
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reconciliation::RemoveStaleSidecar {
                container_id,
                why: Stale::Gone,
                ..
            } => write!(
                f,
                "stale sidecar removed: container {} no longer exists",
                short_id(container_id)
            ),
            Reconciliation::RemoveStaleSidecar {
                container_id,
                why: Stale::Exited { code },
                ..
            } => {
                write!(
                    f,
                    "stale sidecar removed: container {} exited",
                    short_id(container_id)
                )?;
                match code {
                    Some(code) => write!(f, " with code {code}"),
                    None => Ok(()),
                }
            }
            Reconciliation::RemoveCorruptSidecar { reason } => {
                write!(f, "corrupt sidecar removed: {reason}")
            }
            Reconciliation::RemoveOrphanContainer(c) => {
                write!(
                    f,
                    "orphan container {} ({}) removed",
                    short_id(&c.id),
                    c.name
                )
            }
            Reconciliation::RemoveFinishedContainer(c) => write!(
                f,
                "finished container {} ({}) of an earlier session removed",
                short_id(&c.id),
                c.name
            ),
        }
    }
}

/// What must be repaired before the observation describes one coherent
/// session (sidecar removals first, then containers). Nothing while another
/// command holds the lock (`in_progress`). Apply only while holding the
/// session lock. Never a container a live record describes (see the
/// module's invariant).
pub fn reconcile(o: &Observation) -> Vec<Reconciliation> {
    if o.in_progress.is_some() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    match &o.sidecar {
        SidecarState::Corrupt { reason } => {
            actions.push(Reconciliation::RemoveCorruptSidecar {
                reason: reason.clone(),
            });
        }
        SidecarState::Present {
            provider,
            container_id,
            ..
        } => {
            if let Some(why) = o.stale() {
                actions.push(Reconciliation::RemoveStaleSidecar {
                    provider: provider.clone(),
                    container_id: container_id.clone(),
                    why,
                });
            }
        }
        SidecarState::Absent => {}
    }
    actions.extend(
        o.containers
            .iter()
            .filter(|c| c.state.alive() && !o.described_by_live_record(c))
            .cloned()
            .map(Reconciliation::RemoveOrphanContainer),
    );
    actions
}

/// Before a new session starts: the finished containers of earlier
/// sessions, kept until now for `jarvis mine logs`.
pub fn finished(o: &Observation) -> Vec<Reconciliation> {
    o.containers
        .iter()
        .filter(|c| {
            matches!(
                c.state,
                ContainerState::Exited { .. } | ContainerState::Dead { .. }
            )
        })
        .cloned()
        .map(Reconciliation::RemoveFinishedContainer)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_760_000_000;
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn configured() -> Observation {
        Observation {
            configured: true,
            now: NOW,
            ..Observation::default()
        }
    }

    fn container(id: &str, state: ContainerState) -> ObservedContainer {
        ObservedContainer {
            id: id.into(),
            name: "openjarvis-pearl-miner".into(),
            session: Some("s-1".into()),
            provider: Some("vllm-pearl".into()),
            state,
            ..ObservedContainer::default()
        }
    }

    fn record(container_id: &str, started_at: u64) -> SidecarState {
        SidecarState::Present {
            provider: "vllm-pearl".into(),
            container_id: container_id.into(),
            session_id: Some("s-1".into()),
            started_at,
            workers: Vec::new(),
        }
    }

    /// A session started `age` seconds ago whose container is in `state`.
    fn session(age: u64, state: ContainerState) -> Observation {
        Observation {
            sidecar: record(&ID[..12], NOW - age),
            containers: vec![container(ID, state)],
            started_before: true,
            ..configured()
        }
    }

    fn failed(exit_code: Option<i64>) -> Lifecycle {
        Lifecycle::Failed {
            exit_code,
            restart_count: 0,
            last_lines: vec![],
        }
    }

    fn orphan_of(o: &Observation, index: usize) -> Reconciliation {
        Reconciliation::RemoveOrphanContainer(o.containers[index].clone())
    }

    /// A session of three workers (containers w0, w1, w2) in these states.
    fn workers(states: [Option<ContainerState>; 3]) -> Observation {
        let ids = ["w0aaaaaaaaaa", "w1aaaaaaaaaa", "w2aaaaaaaaaa"];
        Observation {
            sidecar: SidecarState::Present {
                provider: "vllm-pearl".into(),
                container_id: ids[0].into(),
                session_id: Some("s-1".into()),
                started_at: NOW - 500,
                workers: ids.map(String::from).to_vec(),
            },
            containers: ids
                .iter()
                .zip(states)
                .filter_map(|(id, state)| Some(container(id, state?)))
                .collect(),
            ready: Some(true),
            started_before: true,
            ..configured()
        }
    }

    #[test]
    fn some_workers_down_is_degraded_and_the_others_are_left_alone() {
        use ContainerState::{Exited, Running};
        let all = workers([Some(Running), Some(Running), Some(Running)]);
        assert_eq!(derive(&all), Lifecycle::Running);
        let one = workers([Some(Running), Some(Exited { code: 137 }), Some(Running)]);
        assert_eq!(
            derive(&one),
            Lifecycle::Degraded {
                down: vec![WorkerDown {
                    index: 1,
                    container: "w1aaaaaaaaaa".into(),
                    state: "exited",
                    exit_code: Some(137),
                }]
            }
        );
        assert_eq!(reconcile(&one), []);
        // Worker 0 gone: still degraded; its record is not stale, the
        // others are not orphans.
        let first = workers([None, Some(Running), Some(Running)]);
        let Lifecycle::Degraded { down } = derive(&first) else {
            panic!("{:?}", derive(&first));
        };
        assert_eq!(down[0].to_string(), "worker 0 (w0aaaaaaaaaa) is gone");
        assert_eq!(reconcile(&first), []);
        // None runs: failed, and the record is stale.
        let none = workers([Some(Exited { code: 1 }), None, Some(Exited { code: 1 })]);
        assert_eq!(derive(&none), failed(Some(1)));
        assert!(matches!(
            reconcile(&none)[..],
            [Reconciliation::RemoveStaleSidecar { .. }]
        ));
    }

    #[test]
    fn names() {
        let names: Vec<String> = [
            Lifecycle::NotConfigured,
            Lifecycle::Configured,
            Lifecycle::Starting,
            Lifecycle::Running,
            Lifecycle::Stopping,
            Lifecycle::Stopped,
            failed(Some(1)),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "not configured",
                "configured",
                "starting",
                "running",
                "stopping",
                "stopped",
                "failed"
            ]
        );
    }

    #[test]
    fn nothing_observed() {
        let none = Observation {
            now: NOW,
            ..Observation::default()
        };
        assert_eq!(derive(&none), Lifecycle::NotConfigured);
        assert_eq!(derive(&configured()), Lifecycle::Configured);
        let ran = Observation {
            started_before: true,
            ..configured()
        };
        assert_eq!(derive(&ran), Lifecycle::Stopped);
        assert!(reconcile(&none).is_empty());
        assert!(reconcile(&ran).is_empty());
    }

    #[test]
    fn start_in_progress() {
        // Before the container exists, and between creating it and writing
        // the sidecar: starting, and nothing to reconcile.
        let mut o = Observation {
            in_progress: Some(Operation::Start),
            ..configured()
        };
        assert_eq!(derive(&o), Lifecycle::Starting);
        o.containers = vec![container(ID, ContainerState::Running)];
        assert_eq!(derive(&o), Lifecycle::Starting);
        assert!(reconcile(&o).is_empty());
        // A start re-running over a long-lived session is still starting.
        let mut old = session(STARTING_GRACE_SECS * 10, ContainerState::Running);
        old.in_progress = Some(Operation::Start);
        assert_eq!(derive(&old), Lifecycle::Starting);
    }

    #[test]
    fn starting_then_running() {
        let young = STARTING_GRACE_SECS - 1;
        let mut o = session(young, ContainerState::Created);
        assert_eq!(derive(&o), Lifecycle::Starting);
        o = session(young, ContainerState::Running);
        assert_eq!(derive(&o), Lifecycle::Starting);
        o.ready = Some(false);
        assert_eq!(derive(&o), Lifecycle::Starting);
        o.ready = Some(true);
        assert_eq!(derive(&o), Lifecycle::Running);
        // Past the grace period the container is reported running, ready or not.
        for ready in [None, Some(false), Some(true)] {
            let mut o = session(STARTING_GRACE_SECS, ContainerState::Running);
            o.ready = ready;
            assert_eq!(derive(&o), Lifecycle::Running, "{ready:?}");
            assert!(reconcile(&o).is_empty());
        }
        // A clock that went backwards (started_at in the future) is young.
        let mut future = session(0, ContainerState::Running);
        future.sidecar = record(ID, NOW + 50);
        assert_eq!(derive(&future), Lifecycle::Starting);
    }

    #[test]
    fn created_but_never_started_fails() {
        let o = session(STARTING_GRACE_SECS + 1, ContainerState::Created);
        assert_eq!(derive(&o), failed(None));
        assert!(reconcile(&o).is_empty());
    }

    #[test]
    fn stopping() {
        let mut o = session(500, ContainerState::Running);
        o.in_progress = Some(Operation::Stop);
        assert_eq!(derive(&o), Lifecycle::Stopping);
        assert!(reconcile(&o).is_empty());
        let o = session(500, ContainerState::Removing);
        assert_eq!(derive(&o), Lifecycle::Stopping);
        assert!(reconcile(&o).is_empty());
        let mut gone = configured();
        gone.in_progress = Some(Operation::Stop);
        assert_eq!(derive(&gone), Lifecycle::Stopping);
    }

    #[test]
    fn exits() {
        let o = session(500, ContainerState::Exited { code: 0 });
        assert_eq!(derive(&o), Lifecycle::Stopped);
        assert_eq!(
            reconcile(&o),
            [Reconciliation::RemoveStaleSidecar {
                provider: "vllm-pearl".into(),
                container_id: ID[..12].into(),
                why: Stale::Exited { code: Some(0) }
            }]
        );
        let mut o = session(500, ContainerState::Exited { code: 137 });
        o.last_lines = vec!["CUDA out of memory".into()];
        assert_eq!(
            derive(&o),
            Lifecycle::Failed {
                exit_code: Some(137),
                restart_count: 0,
                last_lines: vec!["CUDA out of memory".into()]
            }
        );
        let actions = reconcile(&o);
        assert_eq!(
            actions[0].to_string(),
            "stale sidecar removed: container 0123456789ab exited with code 137"
        );
        assert_eq!(
            actions.len(),
            1,
            "the exited container is kept for its logs"
        );
        // After the sidecar is removed the container still explains the failure.
        o.sidecar = SidecarState::Absent;
        assert_eq!(derive(&o).name(), "failed");
        assert!(reconcile(&o).is_empty());

        let o = session(500, ContainerState::Dead { code: None });
        assert_eq!(derive(&o), failed(None));
        assert_eq!(
            reconcile(&o)[0].to_string(),
            "stale sidecar removed: container 0123456789ab exited"
        );
    }

    #[test]
    fn restart_loop_and_pause_fail() {
        let mut o = session(
            500,
            ContainerState::Restarting {
                last_exit_code: Some(101),
            },
        );
        o.containers[0].restart_count = 7;
        assert_eq!(
            derive(&o),
            Lifecycle::Failed {
                exit_code: Some(101),
                restart_count: 7,
                last_lines: vec![]
            }
        );
        assert!(
            reconcile(&o).is_empty(),
            "`stop` cleans up a linked container"
        );
        let o = session(500, ContainerState::Paused);
        assert_eq!(derive(&o), failed(None));
        assert!(reconcile(&o).is_empty());
    }

    #[test]
    fn stale_sidecar() {
        let mut o = session(500, ContainerState::Running);
        o.containers.clear();
        assert_eq!(derive(&o), failed(None));
        let actions = reconcile(&o);
        assert_eq!(actions.len(), 1);
        assert_eq!(
            actions[0].to_string(),
            "stale sidecar removed: container 0123456789ab no longer exists"
        );
        // Even when no config remains.
        o.configured = false;
        assert_eq!(derive(&o), failed(None));
        assert_eq!(reconcile(&o), actions);
    }

    #[test]
    fn corrupt_sidecar() {
        let o = Observation {
            sidecar: SidecarState::Corrupt {
                reason: "not JSON".into(),
            },
            ..configured()
        };
        assert_eq!(derive(&o), failed(None));
        assert_eq!(
            reconcile(&o)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["corrupt sidecar removed: not JSON"]
        );
    }

    #[test]
    fn orphan_container() {
        for state in [
            ContainerState::Running,
            ContainerState::Created,
            ContainerState::Paused,
            ContainerState::Restarting {
                last_exit_code: None,
            },
        ] {
            let mut o = session(500, state);
            o.sidecar = SidecarState::Absent;
            assert_eq!(derive(&o).name(), "failed", "{state:?}");
            let actions = reconcile(&o);
            assert_eq!(
                actions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ["orphan container 0123456789ab (openjarvis-pearl-miner) removed"],
                "{state:?}"
            );
            assert_eq!(actions[0].subject(), ("vllm-pearl", ""));
            assert_eq!(
                actions[0].action(),
                "host.remove-orphan container=0123456789ab name=openjarvis-pearl-miner"
            );
        }
        // Exited containers without a sidecar are kept for `mine logs`.
        let mut o = session(500, ContainerState::Exited { code: 0 });
        o.sidecar = SidecarState::Absent;
        assert_eq!(derive(&o), Lifecycle::Stopped);
        assert!(reconcile(&o).is_empty());
    }

    #[test]
    fn sidecar_naming_another_container() {
        let mut o = session(500, ContainerState::Running);
        o.sidecar = SidecarState::Present {
            provider: "vllm-pearl".into(),
            container_id: "fedcba987654".into(),
            session_id: Some("s-0".into()),
            started_at: NOW - 500,
            workers: Vec::new(),
        };
        assert_eq!(derive(&o), failed(None));
        assert_eq!(
            reconcile(&o)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "stale sidecar removed: container fedcba987654 no longer exists",
                "orphan container 0123456789ab (openjarvis-pearl-miner) removed",
            ]
        );
    }

    #[test]
    fn attached_sessions() {
        let mut o = Observation {
            sidecar: SidecarState::Present {
                provider: "vllm-pearl".into(),
                container_id: EXTERNAL_CONTAINER_ID.into(),
                session_id: None,
                started_at: NOW - 5,
                workers: Vec::new(),
            },
            ..configured()
        };
        assert_eq!(derive(&o), Lifecycle::Running);
        o.ready = Some(true);
        assert_eq!(derive(&o), Lifecycle::Running);
        o.ready = Some(false);
        assert_eq!(derive(&o), failed(None));
        assert!(reconcile(&o).is_empty(), "never reconciled");
        // Our own container running beside an attached session is an orphan.
        o.containers = vec![container(ID, ContainerState::Running)];
        assert_eq!(reconcile(&o), [orphan_of(&o, 0)]);
    }

    #[test]
    fn docker_states() {
        assert_eq!(
            ContainerState::from_docker("running", Some(0)),
            Some(ContainerState::Running)
        );
        assert_eq!(
            ContainerState::from_docker("exited", Some(3)),
            Some(ContainerState::Exited { code: 3 })
        );
        assert_eq!(
            ContainerState::from_docker("restarting", Some(1)),
            Some(ContainerState::Restarting {
                last_exit_code: Some(1)
            })
        );
        assert_eq!(ContainerState::from_docker("hibernating", None), None);
        assert_eq!(Operation::from_word("start"), Some(Operation::Start));
        assert_eq!(
            Operation::from_word(Operation::Stop.word()),
            Some(Operation::Stop)
        );
        assert_eq!(Operation::from_word("attach"), Some(Operation::Attach));
        assert_eq!(Operation::from_word("init"), None);
    }

    #[test]
    fn a_second_container_of_the_live_session_is_kept_others_go() {
        let mut o = session(500, ContainerState::Running);
        // The session's helper, labelled with its session id but not named
        // in the record; and a leftover of an earlier session.
        let mut helper = container(&"a".repeat(64), ContainerState::Running);
        helper.name = "helper".into();
        let mut leftover = container(
            &"b".repeat(64),
            ContainerState::Restarting {
                last_exit_code: Some(1),
            },
        );
        leftover.session = Some("s-0".into());
        o.containers.extend([helper, leftover]);
        assert_eq!(derive(&o), Lifecycle::Running);
        assert_eq!(reconcile(&o), [orphan_of(&o, 2)]);
    }

    /// The invariant, over every combination of record and container
    /// states: a container a live record describes is never removed.
    #[test]
    fn no_repair_removes_what_a_live_record_describes() {
        let states = [
            ContainerState::Created,
            ContainerState::Running,
            ContainerState::Paused,
            ContainerState::Restarting {
                last_exit_code: Some(101),
            },
            ContainerState::Removing,
            ContainerState::Exited { code: 0 },
            ContainerState::Exited { code: 3 },
            ContainerState::Dead { code: None },
        ];
        let sidecars = [
            SidecarState::Absent,
            SidecarState::Corrupt { reason: "x".into() },
            record(&ID[..12], NOW - 5),
            record(&"c".repeat(12), NOW - 500),
            record(EXTERNAL_CONTAINER_ID, NOW - 5),
        ];
        let mut checked = 0;
        for sidecar in &sidecars {
            for main in states {
                for sibling in states {
                    for sibling_session in [Some("s-1"), Some("s-0"), None] {
                        let mut other = container(&"d".repeat(64), sibling);
                        other.session = sibling_session.map(Into::into);
                        let o = Observation {
                            sidecar: sidecar.clone(),
                            containers: vec![container(ID, main), other],
                            ..configured()
                        };
                        for action in reconcile(&o) {
                            if let Reconciliation::RemoveOrphanContainer(c) = &action {
                                assert!(!o.described_by_live_record(c), "{o:#?}");
                                assert!(c.state.alive(), "{o:#?}");
                            }
                        }
                        // A live record keeps its own containers, whatever state.
                        if matches!(sidecar, SidecarState::Present { .. })
                            && o.stale().is_none()
                            && !o.attached()
                        {
                            assert!(reconcile(&o).iter().all(|a| !matches!(
                                a,
                                Reconciliation::RemoveOrphanContainer(c) if c.id == ID
                            )));
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, sidecars.len() * states.len() * states.len() * 3);
    }

    #[test]
    fn ids_match_by_prefix_only_when_non_empty() {
        assert!(same_id(&ID[..12], ID));
        assert!(same_id(ID, &ID[..12]));
        assert!(!same_id("", ID));
        assert!(!same_id("fedcba987654", ID));
    }
}
