//! Stopping a process group: SIGTERM, a grace period, then SIGKILL. Every
//! signal is sent only after the process was checked to still be the one
//! recorded, so a reused PID is never signalled.

use super::identity::{Liveness, liveness};
use super::table::ProcessRecord;
use std::time::{Duration, Instant};

/// How often the grace period looks whether the process is gone.
const POLL: Duration = Duration::from_millis(50);

/// What stopping found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It ended within the grace period.
    Terminated,
    /// It was killed after the grace period.
    Killed,
    /// It was not running (or its PID is someone else's now).
    NotRunning,
}

/// Stops `record`'s process group. The host started it as the leader of
/// its own session, so its process group id is its PID.
pub fn stop(record: &ProcessRecord, grace: Duration) -> std::io::Result<Stopped> {
    if liveness(record) != Liveness::Alive {
        return Ok(Stopped::NotRunning);
    }
    send(record.pid, libc::SIGTERM)?;
    let began = Instant::now();
    while began.elapsed() < grace {
        if liveness(record) != Liveness::Alive {
            return Ok(Stopped::Terminated);
        }
        std::thread::sleep(POLL.min(grace.saturating_sub(began.elapsed())));
    }
    if liveness(record) != Liveness::Alive {
        return Ok(Stopped::Terminated);
    }
    send(record.pid, libc::SIGKILL)?;
    Ok(Stopped::Killed)
}

/// Sends `signal` to the process group `pid` leads; a group that is gone
/// is not an error.
fn send(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let group = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) with a negative pid signals a process group; it
    // takes no pointers.
    if unsafe { libc::kill(-group, signal) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}
