//! The one way the host replaces a file: atomically. A temporary file beside
//! the target (with the mode it must have from creation), written, fsynced,
//! renamed over the target, and the directory fsynced. A reader sees the old
//! file or the new one, never half of either; on any error the temporary
//! file is removed and the target is untouched.

use std::io::Write;
use std::path::Path;

/// The mode the new file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// This mode, set on the temporary file before a byte is written.
    Fixed(u32),
    /// The replaced file's mode exactly (a user's config), else `0o600`.
    KeepExisting,
}

/// Atomically replaces `path` with the bytes `write` produces, through a
/// temporary file named `<prefix>*.tmp` in the same directory (created if
/// missing). The prefix keeps temporary files out of what readers scan
/// (the registry loads only `*.wasm`).
pub fn replace(
    path: &Path,
    prefix: &str,
    mode: Mode,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let permissions = match mode {
        Mode::Fixed(mode) => std::fs::Permissions::from_mode(mode),
        Mode::KeepExisting => match std::fs::metadata(path) {
            Ok(meta) => meta.permissions(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::Permissions::from_mode(0o600)
            }
            Err(e) => return Err(e),
        },
    };
    // Created 0600, then given its mode exactly: a mode given at creation
    // is cut by the umask. `NamedTempFile` deletes the file when dropped,
    // so every early return below (and a failed `persist`) cleans up.
    let mut temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    temp.as_file().set_permissions(permissions)?;
    write(temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // Make the rename durable; some filesystems cannot fsync a directory,
    // and the rename has happened either way.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// [`replace`] with `bytes`.
pub fn write(path: &Path, prefix: &str, mode: Mode, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, prefix, mode, |file| file.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_files_with_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file");
        write(&path, ".t-", Mode::Fixed(0o600), b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, ".t-", Mode::KeepExisting, b"two").unwrap();
        assert_eq!(
            (std::fs::read(&path).unwrap(), mode(&path)),
            (b"two".to_vec(), 0o640)
        );
        write(&path, ".t-", Mode::Fixed(0o644), b"three").unwrap();
        assert_eq!(mode(&path), 0o644);
        // A failed write leaves the old file and no temporary one.
        let failed = replace(&path, ".t-", Mode::KeepExisting, |_| {
            Err(std::io::Error::other("boom"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
    }
}
