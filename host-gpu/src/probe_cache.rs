//! What the probe caches (python_cache.rs, the Docker version in
//! docker.rs) share: a file's identity, cheaply (a `stat`), so that an
//! answer is trusted only while what it depends on is unchanged, and the
//! small reads and atomic writes of their files.

use cap_std::fs::Dir;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A cache file is a few KiB; anything larger is not ours.
const MAX_FILE_BYTES: u64 = 1 << 20;

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

/// A regular file's text, at most [`MAX_FILE_BYTES`]; anything else (a
/// FIFO would block the open) is `None`.
pub fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The directory the caches live in, as a handle the caller opened (the
/// runtime opens it under the OpenJarvis home): a cache file is only ever
/// reached by a plain name inside it, never by a path that could leave it.
#[derive(Clone)]
pub struct CacheDir(Arc<Dir>);

impl CacheDir {
    pub fn new(dir: Dir) -> CacheDir {
        CacheDir(Arc::new(dir))
    }

    /// The directory at `path`, created if missing (tests, tools).
    pub fn open_ambient(path: &Path) -> std::io::Result<CacheDir> {
        std::fs::create_dir_all(path)?;
        Ok(CacheDir::new(Dir::open_ambient_dir(
            path,
            cap_std::ambient_authority(),
        )?))
    }

    /// The text of the cache file `name`, if it is a regular file of at
    /// most [`MAX_FILE_BYTES`] (opened without blocking: a FIFO is a miss).
    pub fn read(&self, name: &str) -> Option<String> {
        use cap_std::fs::OpenOptionsExt;
        use std::io::Read;
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = self.0.open_with(name, &options).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut text = String::new();
        file.into_std()
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    /// Replaces the cache file `name` with `value` as JSON, by rename
    /// (readers see the old file or the new one, never part of one).
    pub fn replace_json(&self, name: &str, value: &impl Serialize) -> std::io::Result<()> {
        use std::io::Write;
        let temp = cap_tempfile::TempFile::new(&self.0)?;
        let mut file = temp.as_file().try_clone()?.into_std();
        file.write_all(serde_json::to_string(value)?.as_bytes())?;
        temp.replace(name)
    }
}

impl std::fmt::Debug for CacheDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheDir")
    }
}

/// Two handles are one cache when they are the same handle.
impl PartialEq for CacheDir {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CacheDir {}
