//! The one way the host replaces a file: atomically. A temporary file in the
//! target's directory (invisible until it is complete: `O_TMPFILE` where the
//! file system has it), given the mode it must have before a byte is
//! written, fsynced, renamed over the target, and the directory fsynced. A
//! reader sees the old file or the new one, never half of either; on any
//! error the temporary file is removed and the target is untouched.
//!
//! It works in a directory handle: one under the home comes from
//! [`crate::home::HomePath`], the user's own config file from the directory
//! the user named.

use cap_std::fs::Dir;
use std::ffi::OsStr;
use std::io::Write;

/// The mode the new file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// This mode, set on the temporary file before a byte is written.
    Fixed(u32),
    /// The replaced file's mode exactly (a user's config), else `0o600`.
    KeepExisting,
}

/// Whether the new file must survive a crash once `replace` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fsync the file and the directory (config, sessions, components).
    Synced,
    /// Still atomic, but not fsynced: a cache or checkpoint that a crash
    /// may lose at no cost but a recomputation.
    Unsynced,
}

/// Atomically replaces `dir/name` with the bytes `write` produces.
pub fn replace(
    dir: &Dir,
    name: &OsStr,
    mode: Mode,
    durability: Durability,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use cap_std::fs::PermissionsExt;
    let mode = match mode {
        Mode::Fixed(mode) => mode,
        Mode::KeepExisting => match dir.metadata(name) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o600,
            Err(e) => return Err(e),
        },
    };
    // Dropping `temp` removes it, so every early return cleans up.
    let temp = cap_tempfile::TempFile::new(dir)?;
    // Set exactly (a mode given at creation is cut by the umask).
    temp.as_file()
        .set_permissions(cap_std::fs::Permissions::from_mode(mode))?;
    let mut file = temp.as_file().try_clone()?.into_std();
    write(&mut file)?;
    if durability == Durability::Synced {
        file.sync_all()?;
    }
    temp.replace(name)?;
    // Make the rename durable; some filesystems cannot fsync a directory,
    // and the rename has happened either way.
    if durability == Durability::Synced
        && let Ok(dir) = dir.try_clone()
    {
        let _ = dir.into_std_file().sync_all();
    }
    Ok(())
}

/// [`replace`] with `bytes`, synced.
pub fn write(dir: &Dir, name: &OsStr, mode: Mode, bytes: &[u8]) -> std::io::Result<()> {
    replace(dir, name, mode, Durability::Synced, |file| {
        file.write_all(bytes)
    })
}

/// [`write`] to a file the user named by its path (the config, an output
/// file), through a handle on its directory (created if missing).
pub fn write_path(path: &std::path::Path, mode: Mode, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => return Err(std::io::Error::other("not a file path")),
    };
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    std::fs::create_dir_all(dir)?;
    let dir = Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
    write(&dir, name, mode, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn replaces_whole_files_with_the_mode_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let name = OsStr::new("file");
        let path = tmp.path().join("file");
        write(&dir, name, Mode::Fixed(0o600), b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&dir, name, Mode::KeepExisting, b"two").unwrap();
        assert_eq!(
            (std::fs::read(&path).unwrap(), mode(&path)),
            (b"two".to_vec(), 0o640)
        );
        write(&dir, name, Mode::Fixed(0o644), b"three").unwrap();
        assert_eq!(mode(&path), 0o644);
        // A failed write leaves the old file and no temporary one.
        let failed = replace(&dir, name, Mode::KeepExisting, Durability::Synced, |_| {
            Err(std::io::Error::other("boom"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
    }
}
