//! The audit log: one JSON line per privileged call and per policy decision,
//! appended to `<home>/logs/mining-audit.jsonl` and rotated by size.
//!
//! Appends are one `write` of one line on an `O_APPEND` descriptor, so lines
//! from concurrent commands never interleave. Rotation renames under an
//! exclusive lock on the log, and a writer whose file was rotated away
//! reopens the new one. Records hold names, never values: an action summary
//! lists env variable and secret names, not what they hold.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The WIT package every record names (the API version a provider was linked against).
pub const WIT_VERSION: &str = "openjarvis:mining@0.1.0";
/// A log grows to this size before it is rotated.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated logs kept (`.1` newest to `.3` oldest).
pub const KEEP_ROTATED: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub time: String,
    pub provider: String,
    /// sha256 of the provider's component.
    pub component: String,
    pub wit: String,
    /// The capability the call needed (`containers`, ...), or `load`/`install`/`remove`.
    pub capability: String,
    /// The import or operation and what it asked for (names only).
    pub action: String,
    pub decision: Decision,
    /// Why it was denied, or how an allowed call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ok`, or the error kind of an allowed call that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub duration_us: u64,
}

impl Record {
    pub fn new(provider: &str, component: &str, capability: &str, action: String) -> Record {
        Record {
            time: now_rfc3339(),
            provider: provider.to_owned(),
            component: component.to_owned(),
            wit: WIT_VERSION.to_owned(),
            capability: capability.to_owned(),
            action,
            decision: Decision::Allow,
            reason: None,
            outcome: None,
            duration_us: 0,
        }
    }
}

/// RFC 3339 in UTC with milliseconds, always the same width (so records of
/// the same content have the same length, which rotation tests rely on).
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// The appending side, shared by every call of one command.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    rotate_bytes: u64,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog::with_rotation(path, ROTATE_BYTES)
    }

    pub fn with_rotation(path: PathBuf, rotate_bytes: u64) -> AuditLog {
        AuditLog {
            path,
            rotate_bytes,
            file: Mutex::new(None),
        }
    }

    /// Records a policy decision made outside a provider call (a provider
    /// refused at load, an install, a removal): `Err` is a denial and its
    /// reason. A failed append is logged; the decision stands either way.
    pub fn decision(
        &self,
        provider: &str,
        component: &str,
        capability: &str,
        action: String,
        outcome: Result<(), String>,
    ) {
        let mut record = Record::new(provider, component, capability, action);
        match outcome {
            Ok(()) => record.outcome = Some("ok".into()),
            Err(reason) => {
                record.decision = Decision::Deny;
                record.reason = Some(reason);
            }
        }
        if let Err(err) = self.append(&record) {
            tracing::warn!("{err}");
        }
    }

    /// Opens the log if needed. Privileged calls check this first: a host
    /// that cannot keep its record refuses the call rather than act unrecorded.
    pub fn ready(&self) -> Result<(), String> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        self.open_current(&mut file).map(drop)
    }

    /// Appends one record.
    pub fn append(&self, record: &Record) -> Result<(), String> {
        let mut line = serde_json::to_vec(record).map_err(|err| err.to_string())?;
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.open_current(&mut guard)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + line.len() as u64 > self.rotate_bytes {
            self.rotate(file)?;
            *guard = None;
        }
        let file = self.open_current(&mut guard)?;
        file.write_all(&line)
            .map_err(|err| self.error("write", &err))
    }

    /// The open file, reopened when another command rotated it away.
    fn open_current<'a>(&self, slot: &'a mut Option<File>) -> Result<&'a mut File, String> {
        let stale = match (slot.as_ref(), std::fs::metadata(&self.path)) {
            (Some(file), Ok(on_disk)) => file.metadata().map_or(true, |open| {
                open.ino() != on_disk.ino() || open.dev() != on_disk.dev()
            }),
            (Some(_), Err(_)) | (None, _) => true,
        };
        if stale {
            if let Some(dir) = self.path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|err| self.error("create the directory of", &err))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(|err| self.error("open", &err))?;
            *slot = Some(file);
        }
        Ok(slot.as_mut().expect("opened above"))
    }

    /// Shifts `.1`.. `.N` up and moves the current log to `.1`, under an
    /// exclusive lock so two commands never rotate the same file twice.
    fn rotate(&self, current: &File) -> Result<(), String> {
        current.lock().map_err(|err| self.error("lock", &err))?;
        let still_current = std::fs::metadata(&self.path)
            .ok()
            .zip(current.metadata().ok())
            .is_some_and(|(disk, open)| disk.ino() == open.ino());
        if still_current {
            for n in (1..KEEP_ROTATED).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))
                .map_err(|err| self.error("rotate", &err))?;
        }
        let _ = current.unlock();
        Ok(())
    }

    fn error(&self, what: &str, err: &std::io::Error) -> String {
        format!(
            "cannot {what} the audit log {}: {err}; make its directory writable (privileged calls are refused while they cannot be recorded)",
            self.path.display()
        )
    }
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Which records a reader wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub provider: Option<String>,
    pub denied_only: bool,
}

impl Filter {
    pub fn accepts(&self, record: &Record) -> bool {
        self.provider.as_ref().is_none_or(|p| *p == record.provider)
            && (!self.denied_only || record.decision == Decision::Deny)
    }
}

/// Every record of the log and its rotations, oldest first, that `filter`
/// accepts; the newest `last` when given. Lines that are not records (a
/// torn write after a crash) are skipped.
pub fn read(path: &Path, filter: &Filter, last: Option<usize>) -> std::io::Result<Vec<Record>> {
    let mut records = Vec::new();
    let files = (1..=KEEP_ROTATED)
        .rev()
        .map(|n| rotated(path, n))
        .chain([path.to_owned()]);
    for file in files {
        let file = match File::open(&file) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for line in BufReader::new(file).lines() {
            if let Ok(record) = serde_json::from_str::<Record>(&line?)
                && filter.accepts(&record)
            {
                records.push(record);
            }
        }
    }
    if let Some(last) = last {
        records.drain(..records.len().saturating_sub(last));
    }
    Ok(records)
}

/// Follows the log like `tail -f`, calling `emit` for each new accepted
/// record, across rotations, until `emit` returns false.
pub fn follow(
    path: &Path,
    filter: &Filter,
    mut emit: impl FnMut(&Record) -> bool,
) -> std::io::Result<()> {
    const POLL: Duration = Duration::from_millis(200);
    let mut position = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut inode = std::fs::metadata(path).map_or(0, |m| m.ino());
    let mut partial = String::new();
    loop {
        match std::fs::metadata(path) {
            Ok(meta) if meta.ino() != inode || meta.len() < position => {
                // Rotated (or truncated): the new file is read from its start.
                inode = meta.ino();
                position = 0;
                partial.clear();
            }
            _ => {}
        }
        if let Ok(mut file) = File::open(path) {
            file.seek(SeekFrom::Start(position))?;
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                position += line.len() as u64;
                if !line.ends_with('\n') {
                    partial.push_str(&line);
                    line.clear();
                    continue;
                }
                let whole = std::mem::take(&mut partial) + &line;
                line.clear();
                if let Ok(record) = serde_json::from_str::<Record>(&whole)
                    && filter.accepts(&record)
                    && !emit(&record)
                {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(provider: &str, decision: Decision) -> Record {
        Record {
            decision,
            ..Record::new(
                provider,
                "abc",
                "containers",
                "containers.run image=x".into(),
            )
        }
    }

    #[test]
    fn appends_lines_and_reads_them_back_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/mining-audit.jsonl");
        let log = AuditLog::new(path.clone());
        log.ready().unwrap();
        log.append(&record("a", Decision::Allow)).unwrap();
        log.append(&record("b", Decision::Deny)).unwrap();
        log.append(&record("a", Decision::Deny)).unwrap();
        let all = read(&path, &Filter::default(), None).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].wit, WIT_VERSION);
        assert!(all[0].time.ends_with('Z'), "{}", all[0].time);
        let denied = Filter {
            denied_only: true,
            ..Filter::default()
        };
        assert_eq!(read(&path, &denied, None).unwrap().len(), 2);
        let a = Filter {
            provider: Some("a".into()),
            ..Filter::default()
        };
        let last = read(&path, &a, Some(1)).unwrap();
        assert_eq!((last.len(), last[0].decision), (1, Decision::Deny));
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// The size of two records (all test records have the same length).
    fn two_lines() -> u64 {
        2 * (serde_json::to_vec(&record("a", Decision::Allow))
            .unwrap()
            .len() as u64
            + 1)
    }

    #[test]
    fn rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::with_rotation(path.clone(), two_lines());
        for _ in 0..20 {
            log.append(&record("a", Decision::Allow)).unwrap();
        }
        assert!(rotated(&path, 3).exists());
        assert!(!rotated(&path, 4).exists());
        let kept = read(&path, &Filter::default(), None).unwrap();
        assert_eq!(kept.len(), 8, "current + 3 rotations of 2 lines");
    }

    #[test]
    fn a_second_writer_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let first = AuditLog::with_rotation(path.clone(), two_lines());
        let second = AuditLog::with_rotation(path.clone(), two_lines());
        first.append(&record("a", Decision::Allow)).unwrap();
        second.append(&record("b", Decision::Allow)).unwrap();
        first.append(&record("a", Decision::Allow)).unwrap(); // rotates
        second.append(&record("b", Decision::Allow)).unwrap(); // must land in the new file
        let current = std::fs::read_to_string(&path).unwrap();
        assert_eq!(current.lines().count(), 2, "{current}");
        assert_eq!(read(&path, &Filter::default(), None).unwrap().len(), 4);
    }

    #[test]
    fn an_unwritable_log_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("logs");
        std::fs::write(&blocker, "a file where the directory should be").unwrap();
        let log = AuditLog::new(blocker.join("mining-audit.jsonl"));
        let err = log.ready().unwrap_err();
        assert!(err.contains("privileged calls are refused"), "{err}");
    }

    #[test]
    fn torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let good = serde_json::to_string(&record("a", Decision::Allow)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"time\":\"2026\n{good}\n")).unwrap();
        assert_eq!(read(&path, &Filter::default(), None).unwrap().len(), 2);
    }
}
