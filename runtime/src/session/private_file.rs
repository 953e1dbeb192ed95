//! The one way session files (the sidecar, the last-session record) are
//! written: atomically, mode 0600 from creation.

use std::io::Write;
use std::path::Path;

/// Prefix of the temporary files [`write`] renames into place.
pub const TEMP_PREFIX: &str = ".mining-";

/// Atomically replaces `path` with `bytes`: creates the parent directory,
/// writes a `.mining-*` temporary file (mode 0600 from creation) beside it,
/// fsyncs, renames it over `path` and fsyncs the directory. On any error the
/// temporary file is removed and `path` is untouched.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    // `NamedTempFile` deletes the file when dropped, so every early return
    // below (and a failed `persist`) cleans up.
    let mut temp = builder.tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // Make the rename durable; some filesystems cannot fsync a directory,
    // and the rename has happened either way.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
