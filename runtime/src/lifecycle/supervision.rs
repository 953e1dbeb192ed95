//! What `jarvis mine supervise` asks of the lifecycle: one worker of a
//! running session started again, or stopped and left failed. Each is done
//! under the session lock and audited as a host decision, like a manual
//! command's repairs, and only while that session is still the one
//! recorded: a `jarvis mine stop` (or a new session) that got the lock
//! first wins, and the supervisor is told so instead of fighting it.

use super::{LABEL_COMPONENT, LOCK_WAIT, MineError, Miner, label};
use crate::session::state::{Operation, short_id};
use crate::session::{SessionLock, sidecar};
use std::time::Duration;

/// How long a worker's container gets to stop before Docker kills it.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the supervisor decided for one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerAction {
    /// Start its container again (stopping it first if it still runs).
    Restart,
    /// Stop its container and leave it stopped (it crash-looped or was
    /// restarted too often).
    Fail,
}

impl WorkerAction {
    fn verb(self) -> &'static str {
        match self {
            WorkerAction::Restart => "restart",
            WorkerAction::Fail => "fail",
        }
    }
}

/// What came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Done,
    /// The session is no longer the one recorded (stopped, or replaced):
    /// nothing was touched.
    SessionGone,
    /// The session is recorded but the worker's container no longer
    /// exists: nothing a restart can bring back.
    ContainerGone,
}

impl Miner<'_> {
    /// `action` on worker `worker` of session `session_id`, for `reason` (a
    /// short word: `exited`, `unhealthy`, `stalled`, `crash-loop`, ...).
    pub fn act_on_worker(
        &self,
        session_id: &str,
        worker: usize,
        action: WorkerAction,
        reason: &str,
    ) -> Result<Acted, MineError> {
        let docker = self.docker()?;
        let _lock =
            SessionLock::acquire_for(&self.paths.lock_file(), LOCK_WAIT, Operation::Start.word())?;
        let record = match sidecar::read(&self.paths.sidecar())? {
            Some(record) if record.session_id.as_deref() == Some(session_id) => record,
            _ => return Ok(Acted::SessionGone),
        };
        let Some(recorded) = record.worker_list().into_iter().nth(worker) else {
            return Ok(Acted::SessionGone);
        };
        let state = match docker.inspect(&recorded.container_id)? {
            Some(state) if self.labelled_for(&state, session_id) => state,
            Some(_) => return Ok(Acted::SessionGone),
            None => return Ok(Acted::ContainerGone),
        };
        let result = match action {
            WorkerAction::Restart if state.running => docker
                .stop(&state.id, STOP_GRACE)
                .and_then(|()| docker.start(&state.id)),
            WorkerAction::Restart => docker.start(&state.id),
            WorkerAction::Fail => docker.stop(&state.id, STOP_GRACE),
        }
        .map_err(MineError::from);
        self.audit_host(
            &record.provider,
            label(&state.labels, LABEL_COMPONENT),
            format!(
                "host.{}-worker worker={worker} container={} name={} reason={reason}",
                action.verb(),
                short_id(&state.id),
                state.name
            ),
            &result.as_ref().map(drop).map_err(ToString::to_string),
        );
        result.map(|()| Acted::Done)
    }
}
