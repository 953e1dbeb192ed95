//! Reading the log: every record in order, filtered, and following it as
//! it grows.

use super::record::{Decision, Record};
use super::segments;
use crate::home::HomePath;
use cap_std::fs::MetadataExt;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

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
pub fn read(path: &HomePath, filter: &Filter, last: Option<usize>) -> std::io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for file in segments::all(path)? {
        let file = match file.open() {
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
    path: &HomePath,
    filter: &Filter,
    mut emit: impl FnMut(&Record) -> bool,
) -> std::io::Result<()> {
    const POLL: Duration = Duration::from_millis(200);
    let mut position = path.metadata().map_or(0, |m| m.len());
    let mut inode = path.metadata().map_or(0, |m| m.ino());
    let mut partial = String::new();
    loop {
        match path.metadata() {
            Ok(meta) if meta.ino() != inode => {
                // Rotated: the new file is read from its start.
                inode = meta.ino();
                position = 0;
                partial.clear();
            }
            Ok(meta) if meta.len() < position => {
                // A torn end dropped by the appender: go on from the new end.
                position = meta.len();
                partial.clear();
            }
            _ => {}
        }
        if let Ok(mut file) = path.open() {
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
    use crate::audit::AuditLog;
    use std::os::unix::fs::PermissionsExt;

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
        let path = crate::home::root(dir.path()).join("logs/mining-audit.jsonl");
        let log = AuditLog::new(path.clone());
        log.ready().unwrap();
        log.append(&record("a", Decision::Allow)).unwrap();
        log.append(&record("b", Decision::Deny)).unwrap();
        log.append(&record("a", Decision::Deny)).unwrap();
        let all = read(&path, &Filter::default(), None).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].wit, crate::audit::WIT_VERSION);
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
        let mode = std::fs::metadata(path.absolute())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("audit.jsonl");
        let good = serde_json::to_string(&record("a", Decision::Allow)).unwrap();
        std::fs::write(
            path.absolute(),
            format!("{good}\n{{\"time\":\"2026\n{good}\n"),
        )
        .unwrap();
        assert_eq!(read(&path, &Filter::default(), None).unwrap().len(), 2);
    }
}
