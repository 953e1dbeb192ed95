//! The OpenJarvis home as a capability. Every file the host reads, writes
//! or removes under the home goes through one `cap_std::fs::Dir` opened on
//! the canonical home, so a path that would climb out of it (`..`, an
//! absolute symlink, a symlink to `/etc` planted in `runtime/`) is an error
//! instead of the rest of the machine. A location under the home is a
//! [`HomePath`]: the home's directory handle and a relative path, shown in
//! messages as the absolute path.

use cap_std::fs::{Dir, DirBuilder, OpenOptions};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A file or directory under the home.
#[derive(Clone)]
pub struct HomePath {
    home: Arc<HomeDir>,
    relative: PathBuf,
}

/// The home's directory handle, opened on first use (a home that does not
/// exist yet is not an error until something is read or written in it).
struct HomeDir {
    path: PathBuf,
    dir: OnceLock<Dir>,
}

/// A directory entry under the home.
pub struct HomeEntry {
    pub name: std::ffi::OsString,
    pub path: HomePath,
    pub file_type: cap_std::fs::FileType,
}

/// The home's root: `HomePath::root(home).join("runtime/mining.json")`.
pub fn root(home: impl Into<PathBuf>) -> HomePath {
    HomePath {
        home: Arc::new(HomeDir {
            path: home.into(),
            dir: OnceLock::new(),
        }),
        relative: PathBuf::new(),
    }
}

impl HomePath {
    /// `relative` below this path. Only plain names: a `..`, `/` or root
    /// component is a host bug, refused here rather than left to the
    /// directory handle.
    pub fn join(&self, relative: impl AsRef<Path>) -> HomePath {
        let relative = relative.as_ref();
        assert!(
            relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "not a plain relative path under the home: {}",
            relative.display()
        );
        HomePath {
            home: self.home.clone(),
            relative: self.relative.join(relative),
        }
    }

    /// The directory holding this path (the home's root has none).
    pub fn parent(&self) -> Option<HomePath> {
        let parent = self.relative.parent()?;
        Some(HomePath {
            home: self.home.clone(),
            relative: parent.to_owned(),
        })
    }

    /// A sibling named `name`.
    pub fn with_file_name(&self, name: impl AsRef<OsStr>) -> HomePath {
        HomePath {
            home: self.home.clone(),
            relative: self.relative.with_file_name(name),
        }
    }

    pub fn file_name(&self) -> Option<&OsStr> {
        self.relative.file_name()
    }

    /// The path relative to the home.
    pub fn relative(&self) -> &Path {
        &self.relative
    }

    /// The absolute path, for messages and for handing to other programs.
    pub fn absolute(&self) -> PathBuf {
        self.home.path.join(&self.relative)
    }

    /// Shown as the absolute path.
    pub fn display(&self) -> &Self {
        self
    }

    fn dir(&self) -> io::Result<&Dir> {
        if let Some(dir) = self.home.dir.get() {
            return Ok(dir);
        }
        let dir = Dir::open_ambient_dir(&self.home.path, cap_std::ambient_authority())?;
        Ok(self.home.dir.get_or_init(|| dir))
    }

    /// `.` for the root, else the relative path.
    fn target(&self) -> &Path {
        if self.relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.relative
        }
    }

    /// Opens the file with `options`.
    pub fn open_with(&self, options: &OpenOptions) -> io::Result<std::fs::File> {
        Ok(self.dir()?.open_with(self.target(), options)?.into_std())
    }

    /// Opens the file for reading.
    pub fn open(&self) -> io::Result<std::fs::File> {
        self.open_with(OpenOptions::new().read(true))
    }

    /// This directory as a handle of its own (still confined to the home).
    pub fn open_dir(&self) -> io::Result<Dir> {
        self.dir()?.open_dir(self.target())
    }

    pub fn read(&self) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut file = self.open()?;
        // cap-std's `File` gives `read_to_end` no size hint: without one it
        // grows the buffer step by step, copying a compiled component
        // several times over (most of a `doctor`'s user time).
        let size = file.metadata().map_or(0, |m| m.len());
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    pub fn read_to_string(&self) -> io::Result<String> {
        String::from_utf8(self.read()?)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }

    /// Metadata, following symlinks that stay inside the home.
    pub fn metadata(&self) -> io::Result<cap_std::fs::Metadata> {
        self.dir()?.metadata(self.target())
    }

    /// Metadata of the path itself (a symlink is not followed).
    pub fn symlink_metadata(&self) -> io::Result<cap_std::fs::Metadata> {
        self.dir()?.symlink_metadata(self.target())
    }

    pub fn exists(&self) -> bool {
        self.metadata().is_ok()
    }

    /// Creates this directory and its parents (mode 0777 less the umask).
    pub fn create_dir_all(&self) -> io::Result<()> {
        self.dir()?.create_dir_all(self.target())
    }

    /// Creates this directory and its parents with `mode`.
    pub fn create_dir_all_with_mode(&self, mode: u32) -> io::Result<()> {
        use cap_std::fs::DirBuilderExt;
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(mode);
        self.dir()?.create_dir_with(self.target(), &builder)
    }

    /// The entries of this directory, in no particular order.
    pub fn read_dir(&self) -> io::Result<Vec<HomeEntry>> {
        self.dir()?
            .read_dir(self.target())?
            .map(|entry| {
                let entry = entry?;
                let name = entry.file_name();
                Ok(HomeEntry {
                    path: self.join(&name),
                    file_type: entry.file_type()?,
                    name,
                })
            })
            .collect()
    }

    pub fn remove_file(&self) -> io::Result<()> {
        self.dir()?.remove_file(self.target())
    }

    /// Removes the file; one that is not there is not an error.
    pub fn remove_file_if_present(&self) -> io::Result<()> {
        match self.remove_file() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Renames this file to `to` (in the same home).
    pub fn rename(&self, to: &HomePath) -> io::Result<()> {
        let dir = self.dir()?;
        dir.rename(self.target(), to.dir()?, to.target())
    }

    /// Atomically replaces the file with what `write` produces (see
    /// [`crate::atomic_file`]), creating its directory if missing.
    pub fn replace(
        &self,
        mode: crate::atomic_file::Mode,
        write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> io::Result<()> {
        self.replace_with(mode, crate::atomic_file::Durability::Synced, write)
    }

    /// [`replace`](Self::replace) without fsync: for caches and
    /// checkpoints that a crash may lose at no cost but recomputation.
    pub fn replace_unsynced(
        &self,
        mode: crate::atomic_file::Mode,
        write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> io::Result<()> {
        self.replace_with(mode, crate::atomic_file::Durability::Unsynced, write)
    }

    fn replace_with(
        &self,
        mode: crate::atomic_file::Mode,
        durability: crate::atomic_file::Durability,
        write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> io::Result<()> {
        let (parent, name) = match (self.parent(), self.file_name()) {
            (Some(parent), Some(name)) => (parent, name),
            _ => return Err(io::Error::other("the home itself is not a file")),
        };
        parent.create_dir_all()?;
        crate::atomic_file::replace(&parent.open_dir()?, name, mode, durability, write)
    }

    /// [`replace`](Self::replace) with `bytes`.
    pub fn write_atomically(&self, mode: crate::atomic_file::Mode, bytes: &[u8]) -> io::Result<()> {
        self.replace(mode, |file| io::Write::write_all(file, bytes))
    }
}

impl fmt::Display for HomePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.absolute().display().fmt(f)
    }
}

impl fmt::Debug for HomePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.absolute(), f)
    }
}

impl PartialEq for HomePath {
    fn eq(&self, other: &Self) -> bool {
        self.home.path == other.home.path && self.relative == other.relative
    }
}

impl Eq for HomePath {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_reached_through_the_home_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "host secret").unwrap();
        let root = root(&home);

        let file = root.join("runtime/mining.json");
        file.write_atomically(crate::atomic_file::Mode::Fixed(0o600), b"{}")
            .unwrap();
        assert_eq!(file.read().unwrap(), b"{}");
        assert_eq!(file.absolute(), home.join("runtime/mining.json"));
        assert_eq!(
            file.to_string(),
            home.join("runtime/mining.json").display().to_string()
        );

        // Symlinks planted in the home that point out of it lead nowhere:
        // absolute, relative, and a directory link on the way.
        std::os::unix::fs::symlink(&outside, home.join("runtime/absolute")).unwrap();
        std::os::unix::fs::symlink("../../outside", home.join("runtime/relative")).unwrap();
        std::os::unix::fs::symlink(dir.path(), home.join("escape")).unwrap();
        for planted in ["runtime/absolute", "runtime/relative", "escape/outside"] {
            let path = root.join(planted);
            assert!(path.read().is_err(), "{planted} was read");
            assert!(path.metadata().is_err(), "{planted} was inspected");
            assert!(
                path.open_with(cap_std::fs::OpenOptions::new().append(true))
                    .is_err()
            );
            // A replacement never follows the link: it fails, or replaces
            // the link itself.
            let _ = path.write_atomically(crate::atomic_file::Mode::Fixed(0o600), b"x");
            assert_eq!(
                std::fs::read(&outside).unwrap(),
                b"host secret",
                "{planted}"
            );
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"host secret");
    }

    #[test]
    #[should_panic(expected = "not a plain relative path")]
    fn climbing_out_is_a_host_bug() {
        root("/nonexistent").join("../etc/passwd");
    }

    #[test]
    fn entries_renames_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path());
        let logs = root.join("logs");
        logs.create_dir_all_with_mode(0o700).unwrap();
        logs.join("a")
            .write_atomically(crate::atomic_file::Mode::Fixed(0o600), b"1")
            .unwrap();
        logs.join("a").rename(&logs.join("b")).unwrap();
        let names: Vec<_> = logs
            .read_dir()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["b"]);
        logs.join("b").remove_file().unwrap();
        logs.join("b").remove_file_if_present().unwrap();
        assert!(logs.read_dir().unwrap().is_empty());
    }
}
