//! The verifier: walks every segment oldest first and checks that each
//! record links to the line before it, the first to the genesis value or to
//! a hash a retention prune recorded, and the end to what the appender last
//! wrote (its checkpoint). The first break is classified by what the links
//! and sequence numbers say happened there.

use super::chain::{self, GENESIS};
use super::record::Record;
use super::segments;
use super::state::{State, checkpoint_path};
use crate::home::HomePath;
use serde::Serialize;
use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;

/// What `jarvis mine audit --verify` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub intact: bool,
    /// Records checked (lines up to the break, or all).
    pub records: u64,
    pub files: Vec<PathBuf>,
    /// Times of the first and last record.
    pub first: Option<String>,
    pub last: Option<String>,
    /// `genesis` (the first record ever written) or `prune` (the oldest kept
    /// record after a retention prune).
    pub starts_at: &'static str,
    /// A last line a crash cut short: not tampering, and not a record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn: Option<Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<Break>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    #[serde(flatten)]
    pub place: Place,
    pub kind: BreakKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakKind {
    /// A line's bytes are not those the next record linked to.
    Edit,
    /// Records are missing (from the middle, the head, or the end).
    Cut,
    /// Records are out of the order they were written in.
    Reorder,
    /// A line that was never part of the chain.
    Insertion,
}

impl BreakKind {
    pub fn name(self) -> &'static str {
        match self {
            BreakKind::Edit => "an edit",
            BreakKind::Cut => "a cut",
            BreakKind::Reorder => "a reordering",
            BreakKind::Insertion => "an insertion",
        }
    }
}

/// One line as the walk needs it.
struct Line {
    file: usize,
    number: usize,
    hash: String,
    record: Option<Record>,
    /// The file's last bytes, without a newline.
    unterminated: bool,
}

/// Verifies the log at `path` and its rotated segments.
pub fn verify(path: &HomePath) -> std::io::Result<Verification> {
    let segments = segments::all(path)?;
    let mut lines = Vec::new();
    for (index, file) in segments.iter().enumerate() {
        let mut reader = std::io::BufReader::new(file.open()?);
        let mut number = 0;
        loop {
            let mut bytes = Vec::new();
            if reader.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
            number += 1;
            let unterminated = !bytes.ends_with(b"\n");
            let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            lines.push(Line {
                file: index,
                number,
                hash: chain::link(text),
                record: serde_json::from_slice(text).ok(),
                unterminated,
            });
        }
    }
    let checkpoint = State::load(&checkpoint_path(path));
    let files: Vec<PathBuf> = segments.iter().map(HomePath::absolute).collect();
    Ok(Walk {
        log: path,
        files: &files,
        lines: &lines,
    }
    .run(checkpoint.as_ref()))
}

struct Walk<'a> {
    log: &'a HomePath,
    files: &'a [PathBuf],
    lines: &'a [Line],
}

impl Walk<'_> {
    fn run(&self, checkpoint: Option<&State>) -> Verification {
        let lines = self.lines;
        let anchors: HashSet<&str> = lines
            .iter()
            .filter_map(|l| l.record.as_ref()?.anchor.as_deref())
            .collect();
        let mut report = Verification {
            intact: true,
            records: 0,
            files: self.files.to_vec(),
            first: None,
            last: None,
            starts_at: "genesis",
            torn: None,
            broken: None,
        };
        for (i, line) in lines.iter().enumerate() {
            let Some(record) = &line.record else {
                if i + 1 == lines.len() && line.unterminated {
                    report.torn = Some(self.place(i));
                    break;
                }
                let kind = if self.links_past(i) {
                    BreakKind::Insertion
                } else {
                    BreakKind::Edit
                };
                return self.broken(report, i, kind, "this line is not a record".into());
            };
            let linked = if i == 0 {
                if record.prev != GENESIS && anchors.contains(record.prev.as_str()) {
                    report.starts_at = "prune";
                }
                record.prev == GENESIS || anchors.contains(record.prev.as_str())
            } else {
                record.prev == lines[i - 1].hash
            };
            if !linked {
                let (at, kind, detail) = self.classify(i);
                return self.broken(report, at, kind, detail);
            }
            if record.capability == "audit" && record.action.starts_with("audit.cut") {
                let detail = format!("the host found records removed: {}", record.action);
                return self.broken(report, i, BreakKind::Cut, detail);
            }
            report.records += 1;
            report.first.get_or_insert_with(|| record.time.clone());
            report.last = Some(record.time.clone());
        }
        if let Some(state) = checkpoint
            && !lines.iter().any(|l| l.hash == state.last_hash)
            && state.last_hash != GENESIS
        {
            let last = lines.iter().rposition(|l| l.record.is_some());
            let last_seq = last.and_then(|i| lines[i].record.as_ref()).map(|r| r.seq);
            let kind = match last_seq {
                Some(seq) if seq + 1 >= state.next_seq => BreakKind::Edit,
                _ => BreakKind::Cut,
            };
            let detail = format!(
                "the log ends before the last record the host wrote (seq {}, per {}): its end was {}",
                state.next_seq.saturating_sub(1),
                checkpoint_path(self.log).display(),
                if kind == BreakKind::Cut {
                    "removed"
                } else {
                    "edited"
                }
            );
            return self.broken(report, last.unwrap_or(0), kind, detail);
        }
        report
    }

    /// Why record `i` does not link to the line before it.
    fn classify(&self, i: usize) -> (usize, BreakKind, String) {
        let lines = self.lines;
        let record = lines[i].record.as_ref().expect("classified records parse");
        let linked_to = lines.iter().position(|l| l.hash == record.prev);
        let seq = |j: usize| lines[j].record.as_ref().map(|r| r.seq);
        match linked_to {
            Some(j) if j + 1 < i => (
                j + 1,
                BreakKind::Insertion,
                format!(
                    "{} line(s) here are not in the chain: the record after them links to the line before them",
                    i - j - 1
                ),
            ),
            Some(j) if j >= i => (
                i,
                BreakKind::Reorder,
                format!(
                    "this record links to {} line {}, which comes after it",
                    self.name(j),
                    lines[j].number
                ),
            ),
            _ if i == 0 => (
                0,
                BreakKind::Cut,
                format!(
                    "the first record (seq {}) links to a record that is gone, and no retention prune names it: the head of the log was removed",
                    record.seq
                ),
            ),
            _ => match seq(i - 1) {
                Some(before) if record.seq > before + 1 => (
                    i,
                    BreakKind::Cut,
                    format!(
                        "{} record(s) (seq {}-{}) are missing before this line",
                        record.seq - before - 1,
                        before + 1,
                        record.seq - 1
                    ),
                ),
                Some(before) if record.seq == before + 1 => (
                    i - 1,
                    BreakKind::Edit,
                    "this line was changed: the next record links to different bytes".into(),
                ),
                _ if self.links_past(i) => (
                    i,
                    BreakKind::Insertion,
                    "this line is not in the chain: the next record links to the line before it"
                        .into(),
                ),
                _ => (
                    i,
                    BreakKind::Edit,
                    "this line was changed: it does not link to the line before it".into(),
                ),
            },
        }
    }

    /// Whether the record after line `i` links to the line before it.
    fn links_past(&self, i: usize) -> bool {
        let Some(next) = self.lines.get(i + 1).and_then(|l| l.record.as_ref()) else {
            return false;
        };
        match i.checked_sub(1) {
            Some(before) => next.prev == self.lines[before].hash,
            None => next.prev == GENESIS,
        }
    }

    /// Line `i`, or the log itself when it has no lines left.
    fn place(&self, i: usize) -> Place {
        match self.lines.get(i) {
            Some(line) => Place {
                file: self.files[line.file].clone(),
                line: line.number,
            },
            None => Place {
                file: self.log.absolute(),
                line: 0,
            },
        }
    }

    fn name(&self, j: usize) -> String {
        self.files[self.lines[j].file].display().to_string()
    }

    fn broken(
        &self,
        mut report: Verification,
        at: usize,
        kind: BreakKind,
        detail: String,
    ) -> Verification {
        report.intact = false;
        // Lines before the break only: an edit is found at the line after it.
        report.records = report.records.min(at as u64);
        report.broken = Some(Break {
            place: self.place(at),
            kind,
            detail,
        });
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::{log_in, record};
    use std::path::Path;

    /// A log of `n` records over several files; returns its path.
    fn log(dir: &Path, n: usize) -> HomePath {
        let (path, log) = log_in(dir, 1400);
        for i in 0..n {
            log.append(&record("a", &format!("sidecar.read {i}")))
                .unwrap();
        }
        path
    }

    fn edit_lines(file: &HomePath, edit: impl FnOnce(&mut Vec<String>)) {
        let text = file.read_to_string().unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        edit(&mut lines);
        let mut out = lines.join("\n");
        if !lines.is_empty() {
            out.push('\n');
        }
        std::fs::write(file.absolute(), out).unwrap();
    }

    #[track_caller]
    fn broken(path: &HomePath) -> Break {
        let report = verify(path).unwrap();
        assert!(!report.intact, "{report:?}");
        report.broken.unwrap()
    }

    fn oldest(path: &HomePath) -> HomePath {
        segments::list_rotated(path).unwrap()[0].1.clone()
    }

    #[test]
    fn an_intact_log_reports_its_count_and_span() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 12);
        assert!(report.files.len() > 2);
        assert!(report.first.is_some() && report.last.is_some());
        assert_eq!(report.starts_at, "genesis");
        let empty = verify(&crate::home::root(dir.path()).join("none.jsonl")).unwrap();
        assert!(empty.intact && empty.records == 0);
    }

    #[test]
    fn an_edited_line_is_an_edit_at_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        let file = oldest(&path);
        edit_lines(&file, |lines| {
            lines[1] = lines[1]
                .replace("deny", "allow")
                .replace("sidecar.read 1", "sidecar.read 9")
        });
        let found = broken(&path);
        assert_eq!(
            (found.kind, found.place.line),
            (BreakKind::Edit, 2),
            "{found:?}"
        );
        assert_eq!(found.place.file, file.absolute());
    }

    #[test]
    fn a_removed_middle_line_is_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&oldest(&path), |lines| {
            lines.remove(1);
        });
        let found = broken(&path);
        assert_eq!(found.kind, BreakKind::Cut, "{found:?}");
        assert!(found.detail.contains("1 record(s)"), "{found:?}");
    }

    #[test]
    fn a_removed_segment_is_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 24);
        let rotated = segments::list_rotated(&path).unwrap();
        assert!(rotated.len() >= 3, "{rotated:?}");
        rotated[1].1.remove_file().unwrap();
        let found = broken(&path);
        assert_eq!(found.kind, BreakKind::Cut, "{found:?}");
        assert_eq!(
            (found.place.file.clone(), found.place.line),
            (rotated[2].1.absolute(), 1)
        );
        // The oldest segment too: the head is gone.
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        oldest(&path).remove_file().unwrap();
        let found = broken(&path);
        assert_eq!(found.kind, BreakKind::Cut, "{found:?}");
        assert!(found.detail.contains("head"), "{found:?}");
    }

    #[test]
    fn a_truncated_head_is_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&oldest(&path), |lines| {
            lines.remove(0);
        });
        let found = broken(&path);
        assert_eq!(
            (found.kind, found.place.line),
            (BreakKind::Cut, 1),
            "{found:?}"
        );
    }

    #[test]
    fn a_cut_at_the_end_is_found_through_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&path, |lines| {
            lines.pop();
        });
        assert_eq!(broken(&path).kind, BreakKind::Cut);
    }

    #[test]
    fn swapped_lines_are_a_reordering() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&oldest(&path), |lines| lines.swap(0, 1));
        let found = broken(&path);
        assert_eq!(found.kind, BreakKind::Reorder, "{found:?}");
        assert_eq!(found.place.line, 1);
    }

    #[test]
    fn a_forged_line_is_an_insertion() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&oldest(&path), |lines| {
            // Linked correctly to the line before it, as a forger would.
            let mut forged: Record = serde_json::from_str(&lines[0]).unwrap();
            forged.action = "containers.run image=innocent".into();
            forged.seq += 1;
            forged.prev = chain::link(lines[0].as_bytes());
            lines.insert(1, serde_json::to_string(&forged).unwrap());
        });
        let found = broken(&path);
        assert_eq!(
            (found.kind, found.place.line),
            (BreakKind::Insertion, 2),
            "{found:?}"
        );
        // Junk between records is an insertion too.
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 12);
        edit_lines(&oldest(&path), |lines| {
            lines.insert(1, "not a record".into())
        });
        assert_eq!(broken(&path).kind, BreakKind::Insertion);
    }

    #[test]
    fn a_torn_last_line_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(dir.path(), 3);
        let mut text = path.read().unwrap();
        text.extend_from_slice(b"{\"time\":\"20");
        std::fs::write(path.absolute(), text).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.torn.unwrap().file, path.absolute());
        // In the middle, the same bytes are no crash.
        edit_lines(&path, |lines| lines.push("{}".into()));
        assert!(!verify(&path).unwrap().intact);
    }
}
