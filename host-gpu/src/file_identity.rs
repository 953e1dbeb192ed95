//! What a file or directory is, cheaply (a `stat`): the probe caches
//! (python_cache.rs, the Docker version) are trusted only while what they
//! depend on is unchanged.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a file or directory is, cheaply: changes when it is replaced or its
/// entries change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    path: PathBuf,
    /// `None`: it did not exist.
    stamp: Option<Stamp>,
}

impl Identity {
    pub fn of(path: &Path) -> Identity {
        Identity {
            path: path.to_owned(),
            stamp: std::fs::metadata(path).ok().map(|meta| stamp(&meta)),
        }
    }

    pub fn current(&self) -> bool {
        *self == Identity::of(&self.path)
    }
}

/// Device, inode, size, and the modification and change times in
/// nanoseconds (the change time cannot be set back by `touch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

#[cfg(unix)]
fn stamp(meta: &Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Stamp {
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.size(),
        modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
        changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
    }
}

#[cfg(not(unix))]
fn stamp(meta: &Metadata) -> Stamp {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    Stamp {
        device: 0,
        inode: 0,
        size: meta.len(),
        modified_ns: modified.as_nanos() as i128,
        changed_ns: 0,
    }
}
