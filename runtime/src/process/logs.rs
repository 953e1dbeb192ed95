//! Process logs, `<home>/logs/mining/<name>.log`: the process appends to
//! it (stdout and stderr); the host rotates it whenever it looks at it and
//! redacts every line it reads back. Rotation copies the log to `.1` and
//! truncates it in place (logrotate's `copytruncate`): the running process
//! holds the file open with `O_APPEND`, so its next write lands at the new
//! end and nothing it writes later is lost.

use crate::home::HomePath;
use crate::paths::Paths;
use crate::redact::Redactor;
use std::io::{Read, Seek, SeekFrom};

/// A log larger than this is rotated.
pub const MAX_LOG_BYTES: u64 = 16 << 20;
/// How much of a log's end a tail reads.
const TAIL_WINDOW: u64 = 1 << 20;

/// The log file `name` (a file name the host chose).
pub fn path(paths: &Paths, name: &str) -> HomePath {
    paths.mining_logs().join(name)
}

/// Opens the log for a new process to append to (created 0600).
pub fn open_for_append(log: &HomePath) -> std::io::Result<std::fs::File> {
    if let Some(dir) = log.parent() {
        dir.create_dir_all_with_mode(0o700)?;
    }
    rotate_if_large(log)?;
    let mut options = cap_std::fs::OpenOptions::new();
    options.append(true).create(true);
    cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
    log.open_with(&options)
}

/// Copies a log past [`MAX_LOG_BYTES`] to `<name>.1` and truncates it.
pub fn rotate_if_large(log: &HomePath) -> std::io::Result<()> {
    let Ok(meta) = log.symlink_metadata() else {
        return Ok(());
    };
    if !meta.is_file() || meta.len() <= MAX_LOG_BYTES {
        return Ok(());
    }
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(".1");
    let rotated = log.with_file_name(name);
    let mut source = log.open()?;
    rotated.replace(crate::atomic_file::Mode::Fixed(0o600), |target| {
        std::io::copy(&mut source, target).map(drop)
    })?;
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true);
    log.open_with(&options)?.set_len(0)
}

/// The newest `limit` lines of the log, each redacted; none when there is
/// no log yet.
pub fn tail(log: &HomePath, limit: usize, redactor: &Redactor) -> std::io::Result<Vec<String>> {
    rotate_if_large(log)?;
    let mut file = match crate::bounded_read::open_home_regular(log) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(TAIL_WINDOW).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(limit);
    Ok(lines[skip..]
        .iter()
        .map(|line| redactor.redact_owned(line))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tails_are_redacted_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::home::root(dir.path()).join("logs/mining/g.log");
        let mut file = open_for_append(&log).unwrap();
        for i in 0..10 {
            writeln!(file, "line {i} password hunter2-secret").unwrap();
        }
        let lines = tail(&log, 3, &Redactor::new(["hunter2-secret"])).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "line 9 password [REDACTED]");
    }

    #[test]
    fn a_large_log_is_copied_and_truncated_while_the_writer_keeps_appending() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::home::root(dir.path()).join("g.log");
        let mut writer = open_for_append(&log).unwrap();
        writer
            .write_all(&vec![b'x'; MAX_LOG_BYTES as usize + 1])
            .unwrap();
        rotate_if_large(&log).unwrap();
        assert_eq!(log.metadata().unwrap().len(), 0);
        let rotated = log.with_file_name("g.log.1");
        assert_eq!(rotated.metadata().unwrap().len(), MAX_LOG_BYTES + 1);
        writeln!(writer, "after").unwrap();
        assert_eq!(tail(&log, 10, &Redactor::default()).unwrap(), ["after"]);
    }

    #[test]
    fn a_missing_log_has_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::home::root(dir.path()).join("none.log");
        assert!(tail(&log, 5, &Redactor::default()).unwrap().is_empty());
    }
}
