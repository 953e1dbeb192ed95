//! The log's files: the current one and its rotated segments
//! `<log>.<n>`, numbered from 1 and never renumbered (oldest lowest), and
//! reading a file's last line without reading the file.

use crate::home::HomePath;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// The log's file `<log><suffix>` (a segment, the checkpoint).
pub fn sibling(log: &HomePath, suffix: &str) -> HomePath {
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    log.with_file_name(name)
}

/// The rotated segment number `n` of the log at `path`.
pub fn rotated(path: &HomePath, n: u64) -> HomePath {
    sibling(path, &format!(".{n}"))
}

/// The rotated segments, oldest first.
pub fn list_rotated(path: &HomePath) -> std::io::Result<Vec<(u64, HomePath)>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let entries = match dir.read_dir() {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut segments: Vec<(u64, HomePath)> = entries
        .into_iter()
        .filter_map(|entry| {
            let n = entry.name.to_str()?.strip_prefix(&prefix)?;
            // Only plain numbers: `.1`, never `.01` or the state file.
            let number: u64 = n.parse().ok().filter(|v: &u64| v.to_string() == n)?;
            Some((number, entry.path))
        })
        .collect();
    segments.sort_by_key(|(number, _)| *number);
    Ok(segments)
}

/// Every file of the log in order: rotated segments oldest first, then the
/// current file when it exists.
pub fn all(path: &HomePath) -> std::io::Result<Vec<HomePath>> {
    let mut files: Vec<HomePath> = list_rotated(path)?.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.clone());
    }
    Ok(files)
}

/// The end of a file: its last complete line and what follows it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// The last line that ends in a newline (without it).
    pub last_line: Option<Vec<u8>>,
    /// Bytes after that line's newline: a line torn by a crash or a full disk.
    pub torn: Vec<u8>,
}

/// Reads the end of the first `size` bytes of `file`, backwards in growing
/// windows, so the cost is one line, not the file.
pub fn tail(file: &File, size: u64) -> std::io::Result<Tail> {
    let mut window: u64 = 8 << 10;
    loop {
        let start = size.saturating_sub(window);
        let mut buf = vec![0; (size - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        let ends = buf.iter().rposition(|&b| b == b'\n');
        let Some(end) = ends else {
            if start == 0 {
                return Ok(Tail {
                    last_line: None,
                    torn: buf,
                });
            }
            window *= 2;
            continue;
        };
        let begin = buf[..end].iter().rposition(|&b| b == b'\n');
        if begin.is_none() && start > 0 {
            window *= 2;
            continue;
        }
        let begin = begin.map_or(0, |b| b + 1);
        return Ok(Tail {
            last_line: Some(buf[begin..end].to_vec()),
            torn: buf[end + 1..].to_vec(),
        });
    }
}

/// The last complete line of the file at `path`, if any.
pub fn last_line_of(path: &HomePath) -> std::io::Result<Option<Vec<u8>>> {
    let file = path.open()?;
    let size = file.metadata()?.len();
    Ok(tail(&file, size)?.last_line)
}

/// The bytes of `file` from `from` to `to`.
pub fn read_range(file: &mut File, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity((to - from) as usize);
    file.by_ref().take(to - from).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_listed_by_number_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::home::root(dir.path()).join("audit.jsonl");
        for name in [
            "audit.jsonl.10",
            "audit.jsonl.2",
            "audit.jsonl.state",
            "audit.jsonl.02",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let numbers: Vec<u64> = list_rotated(&log)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(numbers, [2, 10]);
        assert_eq!(all(&log).unwrap().len(), 2, "no current file yet");
    }

    #[test]
    fn the_tail_is_the_last_whole_line_and_what_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let long = "x".repeat(20_000);
        for (content, last, torn) in [
            ("", None, ""),
            ("a\n", Some("a"), ""),
            ("a\nb\n", Some("b"), ""),
            ("a\nb\n{\"ti", Some("b"), "{\"ti"),
            ("partial", None, "partial"),
            (&format!("a\n{long}\n") as &str, Some(long.as_str()), ""),
        ] {
            std::fs::write(&path, content).unwrap();
            let file = File::open(&path).unwrap();
            let tail = tail(&file, content.len() as u64).unwrap();
            assert_eq!(
                tail.last_line.as_deref(),
                last.map(str::as_bytes),
                "{content:.20}"
            );
            assert_eq!(tail.torn, torn.as_bytes());
        }
    }
}
