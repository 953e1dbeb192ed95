//! What the appender knows about the log: where the chain ends and the
//! current UTC day's tally per provider (records, bytes, daily events).
//!
//! It is a function of the log alone: any process rebuilds it by reading
//! the lines it has not seen. A checkpoint (`<log>.state`, written by the
//! host, never by a provider) saves a new process that reading; it is
//! trusted only while it describes the file as it is (same file, not
//! longer than it), and the lines written after it are read on top.

use super::chain::{self, GENESIS};
use super::record::Record;
use crate::home::HomePath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Records and bytes a provider wrote on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub records: u64,
    pub bytes: u64,
}

/// A file's identity on this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &cap_std::fs::Metadata) -> FileId {
        use cap_std::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity of an open file.
    pub fn of_file(file: &std::fs::File) -> std::io::Result<FileId> {
        Ok(FileId::of(&cap_std::fs::Metadata::from_file(file)?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The file whose first `offset` bytes these figures cover.
    pub file: FileId,
    pub offset: u64,
    /// The next record's place in the chain.
    pub next_seq: u64,
    pub last_hash: String,
    /// The UTC day of the tallies below.
    pub day: String,
    pub usage: BTreeMap<String, Usage>,
    /// Keys of the daily records written that day.
    pub daily: BTreeSet<String>,
}

impl State {
    /// The state of an empty log.
    pub fn genesis(file: FileId) -> State {
        State {
            file,
            offset: 0,
            next_seq: 0,
            last_hash: GENESIS.to_owned(),
            day: String::new(),
            usage: BTreeMap::new(),
            daily: BTreeSet::new(),
        }
    }

    /// Takes in whole lines (a torn end is left out of `offset`); returns
    /// how many bytes were taken.
    pub fn absorb(&mut self, bytes: &[u8]) -> u64 {
        let mut taken = 0;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            let record = serde_json::from_slice::<Record>(&line[..line.len() - 1]).ok();
            self.advance(line, record.as_ref());
            taken += line.len() as u64;
        }
        self.offset += taken;
        taken
    }

    /// Takes in one line just written (or read), with its record when it is one.
    pub fn advance(&mut self, line: &[u8], record: Option<&Record>) {
        self.last_hash = chain::link(line);
        self.next_seq = record.map_or(self.next_seq + 1, |r| r.seq + 1);
        if let Some(record) = record {
            self.tally(record, line.len() as u64);
        }
    }

    /// Counts a record for its provider on its day; records of a day before
    /// the tally's (a call that spanned midnight) count for nothing.
    fn tally(&mut self, record: &Record, bytes: u64) {
        let day = record.day();
        if day > self.day.as_str() {
            self.day = day.to_owned();
            self.usage.clear();
            self.daily.clear();
        } else if day < self.day.as_str() {
            return;
        }
        let usage = self.usage.entry(record.provider.clone()).or_default();
        usage.records += 1;
        usage.bytes += bytes;
        if record.daily {
            self.daily.insert(daily_key(record));
        }
    }

    /// What `provider` wrote on `day`.
    pub fn usage(&self, provider: &str, day: &str) -> Usage {
        if self.day != day {
            return Usage::default();
        }
        self.usage.get(provider).copied().unwrap_or_default()
    }

    /// Whether a daily record of this event was written on `day`.
    pub fn has_daily(&self, record: &Record, day: &str) -> bool {
        self.day == day && self.daily.contains(&daily_key(record))
    }

    pub fn load(path: &HomePath) -> Option<State> {
        serde_json::from_slice(&path.read().ok()?).ok()
    }

    /// Writes the checkpoint atomically, 0600. Not fsynced: a checkpoint
    /// lost in a crash only costs the next command a re-read of the log.
    pub fn store(&self, path: &HomePath) -> std::io::Result<()> {
        // Serialized first: written straight to the file, serde_json makes
        // a system call per token.
        let bytes = serde_json::to_vec(self)?;
        path.replace_unsynced(crate::atomic_file::Mode::Fixed(0o600), |file| {
            std::io::Write::write_all(file, &bytes)
        })
    }
}

/// Where the checkpoint of the log at `log` lives.
pub fn checkpoint_path(log: &HomePath) -> HomePath {
    super::segments::sibling(log, ".state")
}

/// What makes two daily records the same event: everything but the
/// provider (a function of the component) and times.
fn daily_key(record: &Record) -> String {
    let event = (
        &record.component,
        &record.capability,
        &record.action,
        record.decision,
        &record.reason,
        &record.outcome,
    );
    let json = serde_json::to_vec(&event).expect("plain data serializes");
    format!("{:x}", Sha256::digest(json))[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &Record) -> Vec<u8> {
        let mut line = serde_json::to_vec(record).unwrap();
        line.push(b'\n');
        line
    }

    fn at(day: &str, provider: &str) -> Record {
        let mut record = Record::new(provider, "c", "sidecar", "sidecar.read".into());
        record.time = format!("{day}T12:00:00.000Z");
        record
    }

    #[test]
    fn tallies_reset_with_the_day_and_ignore_earlier_days() {
        let mut state = State::genesis(FileId::default());
        let bytes = [
            line(&at("2026-01-01", "a")),
            line(&at("2026-01-02", "a")),
            line(&at("2026-01-02", "b")),
            line(&at("2026-01-01", "a")),
        ]
        .concat();
        assert_eq!(state.absorb(&bytes), bytes.len() as u64);
        assert_eq!(state.usage("a", "2026-01-02").records, 1);
        assert_eq!(state.usage("b", "2026-01-02").records, 1);
        assert_eq!(state.usage("a", "2026-01-03"), Usage::default());
        assert_eq!(state.next_seq, 1, "the last record's seq + 1");
        assert_eq!(state.last_hash, chain::link(&line(&at("2026-01-01", "a"))));
    }

    #[test]
    fn a_torn_end_is_not_taken_in() {
        let mut state = State::genesis(FileId::default());
        let whole = line(&at("2026-01-01", "a"));
        let bytes = [whole.clone(), b"{\"time\":".to_vec()].concat();
        assert_eq!(state.absorb(&bytes), whole.len() as u64);
        assert_eq!(state.offset, whole.len() as u64);
    }

    #[test]
    fn daily_events_are_remembered_for_their_day() {
        let mut state = State::genesis(FileId::default());
        let mut record = at("2026-01-01", "a");
        record.daily = true;
        state.absorb(&line(&record));
        assert!(state.has_daily(&record, "2026-01-01"));
        assert!(!state.has_daily(&record, "2026-01-02"));
        let mut other = record.clone();
        other.reason = Some("changed".into());
        assert!(!state.has_daily(&other, "2026-01-01"));
    }

    #[test]
    fn the_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(&crate::home::root(dir.path()).join("log.jsonl"));
        let mut state = State::genesis(FileId { dev: 1, ino: 2 });
        state.absorb(&line(&at("2026-01-01", "a")));
        state.store(&path).unwrap();
        assert_eq!(State::load(&path), Some(state));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path.absolute())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
