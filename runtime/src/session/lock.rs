//! One `start` (or `stop`) at a time: an advisory lock on
//! `<home>/runtime/mining.lock` (reference §1.6 defines the path, §11.2
//! designs the lock, §11.6.3 notes it was never taken).
//!
//! The lock is `flock(2)` through `std::fs::File::lock` (stable since Rust
//! 1.89; on Linux and the BSDs it is exactly `flock(LOCK_EX)`), so no crate is
//! needed. It belongs to the open file description: it is released when the
//! [`SessionLock`] is dropped, and by the kernel when the process dies, even
//! by SIGKILL, so a crashed `start` never leaves a stale lock. Std opens files
//! close-on-exec, so children (the `docker` CLI) never inherit it.
//!
//! The holder writes `<pid>[ <operation>]\n` into the file, after it holds
//! the lock (the file is opened without truncation, so a waiting process never
//! clobbers the holder's line). [`SessionLock::holder`] reads it back for
//! messages such as "held by pid 1234 (start)"; the content means nothing
//! while the file is unlocked.

use crate::home::HomePath;
use cap_std::fs::{OpenOptions, OpenOptionsExt};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Who holds the lock, as its holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockHolder {
    /// `None` when the holder has not (yet) written its line.
    pub pid: Option<u32>,
    /// What the holder is doing (`start`, `stop`), if it said.
    pub operation: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}")?,
            None => f.write_str("an unidentified process")?,
        }
        if let Some(op) = &self.operation {
            write!(f, " ({op})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process held the lock for the whole timeout.
    #[error(
        "another `jarvis mine` command is running ({path} is held by {holder}); gave up after {:.1} s",
        waited.as_secs_f64()
    )]
    Busy {
        path: PathBuf,
        holder: LockHolder,
        waited: Duration,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held session lock; released on drop.
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: PathBuf,
}

impl SessionLock {
    /// Takes the lock, waiting up to `timeout` (polling every 10–100 ms);
    /// `Duration::ZERO` tries exactly once. Creates the parent directory and
    /// the file (mode 0600) if needed.
    pub fn acquire(path: &HomePath, timeout: Duration) -> Result<SessionLock, LockError> {
        Self::acquire_inner(path, timeout, None)
    }

    /// [`acquire`](Self::acquire), recording `operation` (one word, e.g.
    /// `start`) next to the pid for [`holder`](Self::holder).
    pub fn acquire_for(
        path: &HomePath,
        timeout: Duration,
        operation: &str,
    ) -> Result<SessionLock, LockError> {
        Self::acquire_inner(path, timeout, Some(operation))
    }

    fn acquire_inner(
        path: &HomePath,
        timeout: Duration,
        operation: Option<&str>,
    ) -> Result<SessionLock, LockError> {
        let io = |source| LockError::Io {
            path: path.absolute(),
            source,
        };
        if let Some(dir) = path.parent() {
            dir.create_dir_all().map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600);
        let file = path.open_with(&options).map_err(io)?;

        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => return Err(io(source)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(LockError::Busy {
                    path: path.absolute(),
                    holder: read_holder(&file).unwrap_or_default(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(100));
        }

        let mut lock = SessionLock {
            file,
            path: path.absolute(),
        };
        lock.write_holder(operation).map_err(io)?;
        Ok(lock)
    }

    fn write_holder(&mut self, operation: Option<&str>) -> std::io::Result<()> {
        let mut line = std::process::id().to_string();
        if let Some(op) = operation {
            let word: String = op
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .take(32)
                .collect();
            if !word.is_empty() {
                line.push(' ');
                line.push_str(&word);
            }
        }
        line.push('\n');
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }

    /// Who holds the lock at `path` now: `None` if nobody does (or the file
    /// does not exist). The holder may have died between the check and the
    /// answer; the answer is for messages, not decisions.
    pub fn holder(path: &HomePath) -> Result<Option<LockHolder>, LockError> {
        // Without blocking: a FIFO planted at the path is no hang.
        let mut options = OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = match path.open_with(&options) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.absolute(),
                    source,
                });
            }
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            // Locked, though perhaps the holder has not written its line yet.
            Err(TryLockError::WouldBlock) => Ok(Some(read_holder(&file).unwrap_or_default())),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                path: path.absolute(),
                source,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Clear the holder line while still holding the lock; closing the
        // file then releases it.
        let _ = self.file.set_len(0);
    }
}

/// Parses `<pid>[ <operation>]` from the start of the file.
fn read_holder(file: &File) -> Option<LockHolder> {
    let mut text = String::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).ok()?;
    reader.take(128).read_to_string(&mut text).ok()?;
    let mut words = text.lines().next()?.split_whitespace();
    let pid = Some(words.next()?.parse().ok()?);
    let operation = words.next().map(str::to_owned);
    Some(LockHolder { pid, operation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_records_the_holder_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/mining.lock");
        assert_eq!(SessionLock::holder(&path).unwrap(), None);
        let lock = SessionLock::acquire_for(&path, Duration::ZERO, "start").unwrap();
        let me = LockHolder {
            pid: Some(std::process::id()),
            operation: Some("start".into()),
        };
        assert_eq!(SessionLock::holder(&path).unwrap(), Some(me.clone()));

        // A second open file description contends even within one process.
        let err = SessionLock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        match &err {
            LockError::Busy { holder, waited, .. } => {
                assert_eq!(holder, &me);
                assert!(*waited >= Duration::from_millis(50));
            }
            other => panic!("{other}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("held by pid {} (start)", std::process::id())),
            "{err}"
        );
        // The waiter did not clobber the holder's line.
        assert_eq!(SessionLock::holder(&path).unwrap(), Some(me));

        drop(lock);
        assert_eq!(SessionLock::holder(&path).unwrap(), None);
        let again = SessionLock::acquire(&path, Duration::ZERO).unwrap();
        assert_eq!(SessionLock::holder(&path).unwrap().unwrap().operation, None);
        drop(again);
    }

    #[cfg(unix)]
    #[test]
    fn lock_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.lock");
        let _lock = SessionLock::acquire(&path, Duration::ZERO).unwrap();
        let mode = std::fs::metadata(path.absolute())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
