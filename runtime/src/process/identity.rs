//! Recognising the host's own processes. A PID alone is not an identity:
//! once a process exits its PID is reused. A process is this host's when
//! its PID, its start time (read by `sysinfo` on Linux and macOS) and the
//! labels in its environment all match what the host recorded.

use super::table::ProcessRecord;
use super::{LABEL_HOME, LABEL_NAME, LABEL_PROVIDER, LABEL_SESSION};
use std::collections::BTreeMap;
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// A live process as the host sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub start_time: u64,
    /// Its `OPENJARVIS_MINING_*` variables (empty when its environment
    /// cannot be read).
    pub labels: BTreeMap<String, String>,
}

impl Observed {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// What became of a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// No process has the PID any more (or only a zombie does).
    Exited,
    /// The PID belongs to another process now (another start time, or
    /// other labels).
    Reused,
}

/// Processes only: sysinfo lists a process's threads as processes of their
/// own unless told not to, and a thread inherits the labels of its process.
fn refresh_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .without_tasks()
        .with_environ(UpdateKind::Always)
}

fn observed(process: &sysinfo::Process) -> Option<Observed> {
    if matches!(
        process.status(),
        ProcessStatus::Zombie | ProcessStatus::Dead
    ) || process.thread_kind().is_some()
    {
        return None;
    }
    let labels = process
        .environ()
        .iter()
        .filter_map(|entry| entry.to_str()?.split_once('='))
        .filter(|(name, _)| name.starts_with(super::LABEL_PREFIX))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Some(Observed {
        pid: process.pid().as_u32(),
        start_time: process.start_time(),
        labels,
    })
}

/// The process with `pid`, if one runs (or if the process table cannot be
/// read at all: then nothing is anyone's, and nothing is signalled).
pub fn observe(pid: u32) -> Option<Observed> {
    let mut system = System::new().ok()?;
    let pid = Pid::from_u32(pid);
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, refresh_kind());
    observed(system.process(pid)?)
}

/// Every live process labelled for `home`.
pub fn labelled(home: &str) -> Vec<Observed> {
    let Ok(mut system) = System::new() else {
        return Vec::new();
    };
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh_kind());
    system
        .processes()
        .values()
        .filter_map(observed)
        .filter(|p| p.label(LABEL_HOME) == Some(home))
        .collect()
}

/// Whether the process a record names still runs and is that process.
pub fn liveness(record: &ProcessRecord) -> Liveness {
    match observe(record.pid) {
        None => Liveness::Exited,
        Some(now) if is(&now, record) => Liveness::Alive,
        Some(_) => Liveness::Reused,
    }
}

/// Whether `now` is the process `record` describes: the same PID and start
/// time, and, where its environment can be read (not in the instant
/// between fork and exec, nor while an exec replaces it), the same labels.
pub fn is(now: &Observed, record: &ProcessRecord) -> bool {
    let labels_agree = now.labels.is_empty()
        || (now.label(LABEL_SESSION) == Some(record.session.as_str())
            && now.label(LABEL_PROVIDER) == Some(record.provider.as_str())
            && now.label(LABEL_NAME) == Some(record.name.as_str()));
    now.pid == record.pid && now.start_time == record.start_time && labels_agree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_observed_with_a_start_time() {
        let me = observe(std::process::id()).expect("this process runs");
        assert_eq!(me.pid, std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(me.start_time > 0 && me.start_time <= now);
    }

    #[test]
    fn a_record_with_another_start_time_is_a_reused_pid() {
        let me = observe(std::process::id()).unwrap();
        let record = ProcessRecord {
            pid: me.pid,
            start_time: me.start_time - 1,
            ..ProcessRecord::example()
        };
        // This test process has no labels and another start time.
        assert_eq!(liveness(&record), Liveness::Reused);
    }

    #[test]
    fn labels_must_agree_where_they_can_be_read() {
        let record = ProcessRecord::example();
        let mut now = Observed {
            pid: record.pid,
            start_time: record.start_time,
            labels: BTreeMap::new(),
        };
        assert!(
            is(&now, &record),
            "no labels readable: PID and start time decide"
        );
        for (name, value) in [
            (LABEL_SESSION, "s1"),
            (LABEL_PROVIDER, "cpu-pearl"),
            (LABEL_NAME, "gateway"),
        ] {
            now.labels.insert(name.into(), value.into());
        }
        assert!(is(&now, &record));
        now.labels
            .insert(LABEL_SESSION.into(), "another-session".into());
        assert!(
            !is(&now, &record),
            "another session's process is not this one"
        );
        now.labels.insert(LABEL_SESSION.into(), "s1".into());
        now.start_time += 1;
        assert!(!is(&now, &record), "another start time is another process");
    }

    #[test]
    fn threads_are_not_processes() {
        // A thread of this process, with its labels: never listed apart.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid takes no arguments and cannot fail.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        assert_ne!(tid, std::process::id());
        assert_eq!(observe(tid), None, "a thread is not a process");
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn a_pid_nobody_holds_has_exited() {
        // PIDs are below 2^22 on Linux (pid_max) and 99999 on macOS.
        let record = ProcessRecord {
            pid: u32::MAX - 7,
            ..ProcessRecord::example()
        };
        assert_eq!(liveness(&record), Liveness::Exited);
    }
}
