//! The appending side: chains each record to the line before it, rotates
//! by size, prunes by age, and keeps each provider's daily tally.
//!
//! Every append holds an exclusive lock on the current file around reading
//! where the chain ends and writing, so records from concurrent commands
//! chain in the order they land. Where the chain ends is cached while the
//! file is the one this process last wrote and as long as it was; otherwise
//! the lines written since are read (a checkpoint saves a new process from
//! reading more than that, see `state.rs`).

use super::chain;
use super::record::{Decision, Record, format_time, now_rfc3339};
use super::segments::{self, Tail};
use super::state::{FileId, State, Usage, checkpoint_path};
use crate::home::HomePath;
use cap_std::fs::{OpenOptions, OpenOptionsExt};
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

/// What bounds the log's growth; see docs/security.md, "Audit integrity".
#[derive(Debug, Clone, Copy)]
pub struct AuditLimits {
    /// A file grows to about this size before it is rotated.
    pub rotate_bytes: u64,
    /// Rotated segments are deleted once their newest record is older.
    pub retention: time::Duration,
    /// What one provider's calls may write per UTC day.
    pub daily_records: u64,
    pub daily_bytes: u64,
}

/// 10 MiB segments.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// 90 days.
pub const RETENTION_DAYS: i64 = 90;
/// A `status` every 20 s all day writes about 17 300 records.
pub const DAILY_RECORDS: u64 = 20_000;
pub const DAILY_BYTES: u64 = 8 << 20;

impl Default for AuditLimits {
    fn default() -> Self {
        AuditLimits {
            rotate_bytes: ROTATE_BYTES,
            retention: time::Duration::days(RETENTION_DAYS),
            daily_records: DAILY_RECORDS,
            daily_bytes: DAILY_BYTES,
        }
    }
}

/// The checkpoint is rewritten at least every this many bytes appended, so
/// a process that died without writing it leaves little to re-read.
const CHECKPOINT_EVERY: u64 = 1 << 20;

/// The appending side, shared by every call of one command.
#[derive(Debug)]
pub struct AuditLog {
    path: HomePath,
    limits: AuditLimits,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    file: Option<File>,
    /// Where the chain ends, valid while it names the open file.
    state: Option<State>,
    /// `state.offset` when the checkpoint was last written by this process.
    checkpointed: Option<(FileId, u64)>,
}

/// The current file, exclusively locked until dropped.
struct Locked {
    file: Option<File>,
}

impl Locked {
    fn file(&self) -> &File {
        self.file.as_ref().expect("held until released")
    }

    /// Unlocks and hands the file back, to be reused by the next append.
    fn release(mut self) -> File {
        let file = self.file.take().expect("held until released");
        let _ = file.unlock();
        file
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            let _ = file.unlock();
        }
    }
}

impl AuditLog {
    pub fn new(path: HomePath) -> AuditLog {
        AuditLog::with_limits(path, AuditLimits::default())
    }

    pub fn with_limits(path: HomePath, limits: AuditLimits) -> AuditLog {
        AuditLog {
            path,
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn limits(&self) -> &AuditLimits {
        &self.limits
    }

    /// Records a policy decision made outside a provider call (an install,
    /// a removal, a host repair): `Err` is a denial and its reason. A failed
    /// append is logged; the decision stands either way.
    pub fn decision(
        &self,
        provider: &str,
        component: &str,
        capability: &str,
        action: String,
        outcome: Result<(), String>,
    ) {
        let record = decision_record(provider, component, capability, action, outcome);
        if let Err(err) = self.append(&record) {
            tracing::warn!("{err}");
        }
    }

    /// Records a decision that repeats on every command (a component the
    /// policy refuses to load) once per UTC day per component and outcome.
    /// `identify` names the provider; it runs only when the record is due.
    pub fn daily_decision(
        &self,
        component: &str,
        capability: &str,
        action: String,
        outcome: Result<(), String>,
        identify: impl FnOnce() -> Option<String>,
    ) {
        let mut record = decision_record("", component, capability, action, outcome);
        record.daily = true;
        match self.written_today(&record) {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!("{err}");
                return;
            }
        }
        record.provider = identify().unwrap_or_default();
        if let Err(err) = self.append_all(vec![record]) {
            tracing::warn!("{err}");
        }
    }

    /// Opens the log if needed. Privileged calls check this first: a host
    /// that cannot keep its record refuses the call rather than act unrecorded.
    pub fn ready(&self) -> Result<(), String> {
        self.with_state(|_, _| Ok(()))
    }

    /// What `provider` has written today (UTC), as the log says.
    pub fn usage_today(&self, provider: &str) -> Result<Usage, String> {
        let today = today();
        self.with_state(|state, _| Ok(state.usage(provider, &today)))
    }

    /// Appends one record, chained to the line before it.
    pub fn append(&self, record: &Record) -> Result<(), String> {
        self.append_all(vec![record.clone()])
    }

    /// Appends records in order under one lock; a daily record already
    /// written today is left out.
    pub fn append_all(&self, records: Vec<Record>) -> Result<(), String> {
        self.with_state(|state, locked| {
            for mut record in records {
                if record.daily && state.has_daily(&record, &today()) {
                    continue;
                }
                self.write(state, locked, &mut record, true)?;
            }
            Ok(())
        })
    }

    fn written_today(&self, record: &Record) -> Result<bool, String> {
        let today = today();
        self.with_state(|state, _| Ok(state.has_daily(record, &today)))
    }

    /// Runs `act` on the current file, locked, with the state caught up to
    /// its end; saves the checkpoint when it is due.
    fn with_state<T>(
        &self,
        act: impl FnOnce(&mut State, &mut Locked) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        let mut locked = self.lock_current(inner.file.take())?;
        let outcome = self
            .catch_up(inner.state.take(), &mut locked)
            .and_then(|mut state| {
                let outcome = act(&mut state, &mut locked);
                inner.state = Some(state);
                outcome
            });
        inner.file = Some(locked.release());
        if let Some(state) = &inner.state {
            let due = inner.checkpointed.is_none_or(|(file, offset)| {
                file != state.file || state.offset.saturating_sub(offset) >= CHECKPOINT_EVERY
            });
            if due && self.store_checkpoint(state) {
                inner.checkpointed = Some((state.file, state.offset));
            }
        }
        outcome
    }

    /// Opens (creating) and exclusively locks the current file; reopens when
    /// another command rotated it away meanwhile.
    fn lock_current(&self, mut file: Option<File>) -> Result<Locked, String> {
        loop {
            let open = match file.take() {
                Some(open) => open,
                None => self.open()?,
            };
            open.lock().map_err(|err| self.error("lock", &err))?;
            let locked = Locked { file: Some(open) };
            let current = self.path.metadata().ok().map(|m| FileId::of(&m));
            let held = FileId::of_file(locked.file()).ok();
            if current.is_some() && current == held {
                return Ok(locked);
            }
        }
    }

    fn open(&self) -> Result<File, String> {
        if let Some(dir) = self.path.parent() {
            dir.create_dir_all_with_mode(0o700)
                .map_err(|err| self.error("create the directory of", &err))?;
        }
        // Read too: an append first reads what other commands wrote since.
        self.path
            .open_with(
                OpenOptions::new()
                    .read(true)
                    .create(true)
                    .append(true)
                    .mode(0o600),
            )
            .map_err(|err| self.error("open", &err))
    }

    /// The state at the end of the locked file: from `known` or the
    /// checkpoint plus the lines written since, else rebuilt from the log.
    /// A file shorter than a state said is a cut, and is recorded as one.
    fn catch_up(&self, known: Option<State>, locked: &mut Locked) -> Result<State, String> {
        let file = locked.file();
        let meta =
            cap_std::fs::Metadata::from_file(file).map_err(|err| self.error("read", &err))?;
        let (id, size) = (FileId::of(&meta), meta.len());
        // Listed only when a state does not describe this file (rarely).
        let mut newest: Option<Option<(cap_std::fs::Metadata, HomePath)>> = None;
        let checkpoint = std::iter::once_with(|| State::load(&checkpoint_path(&self.path)));
        let mut shrunk = None;
        let mut found = None;
        for mut state in known.into_iter().chain(checkpoint.flatten()) {
            if state.file == id && state.offset <= size {
                self.absorb(&mut state, file, size)?;
                found = Some(state);
                break;
            }
            if state.file == id {
                shrunk.get_or_insert((state.offset, state.next_seq, state.last_hash.clone()));
                continue;
            }
            if newest.is_none() {
                newest = Some(self.newest_segment()?);
            }
            if let Some(Some((meta, path))) = &newest
                && state.file == FileId::of(meta)
                && state.offset <= meta.len()
            {
                // The file this state knew was rotated: finish it, then this one.
                let mut rotated = path.open().map_err(|err| self.error("read", &err))?;
                let rest = segments::read_range(&mut rotated, state.offset, meta.len())
                    .map_err(|err| self.error("read", &err))?;
                state.absorb(&rest);
                state.file = id;
                state.offset = 0;
                self.absorb(&mut state, file, size)?;
                found = Some(state);
                break;
            }
        }
        let mut state = match found {
            Some(state) => state,
            None => self.rebuild(id, file, size)?,
        };
        self.mend_torn_end(&mut state, file, size)?;
        if let Some((offset, seq, hash)) = shrunk {
            let mut record = Record::new(
                "",
                "",
                "audit",
                format!(
                    "audit.cut {} ended at byte {offset} (next seq {seq}, last line {hash}) and now ends at byte {size}",
                    self.path.display()
                ),
            );
            record.decision = Decision::Deny;
            record.reason = Some("records were removed from the end of the log".into());
            tracing::warn!("{}: {}", self.path.display(), record.action);
            self.write(&mut state, locked, &mut record, false)?;
        }
        Ok(state)
    }

    fn newest_segment(&self) -> Result<Option<(cap_std::fs::Metadata, HomePath)>, String> {
        let newest = segments::list_rotated(&self.path)
            .map_err(|err| self.error("list the segments of", &err))?
            .pop();
        Ok(newest.and_then(|(_, path)| Some((path.metadata().ok()?, path))))
    }

    /// Reads what `state` has not seen of the first `size` bytes of `file`.
    fn absorb(&self, state: &mut State, file: &File, size: u64) -> Result<(), String> {
        if state.offset < size {
            let mut reader = file.try_clone().map_err(|err| self.error("read", &err))?;
            let rest = segments::read_range(&mut reader, state.offset, size)
                .map_err(|err| self.error("read", &err))?;
            state.absorb(&rest);
        }
        Ok(())
    }

    /// The state from the log itself: where the chain ends, and today's
    /// tallies from every segment that holds records of today.
    fn rebuild(&self, id: FileId, file: &File, size: u64) -> Result<State, String> {
        let today = today();
        let mut files = Vec::new();
        for (_, path) in segments::list_rotated(&self.path)
            .map_err(|err| self.error("list the segments of", &err))?
            .into_iter()
            .rev()
        {
            let last = segments::last_line_of(&path).map_err(|err| self.error("read", &err))?;
            let day = last
                .as_deref()
                .and_then(|line| serde_json::from_slice::<Record>(line).ok())
                .map(|r| r.day().to_owned());
            files.push(path);
            if day.is_none_or(|day| day < today) {
                break; // the segment that links to the rest; nothing of today before it
            }
        }
        let mut state = State::genesis(id);
        for path in files.iter().rev() {
            let bytes = path.read().map_err(|err| self.error("read", &err))?;
            state.absorb(&bytes);
        }
        state.file = id;
        state.offset = 0;
        self.absorb(&mut state, file, size)?;
        Ok(state)
    }

    /// A line without its newline at the end (a crash or a full disk cut a
    /// write short): a whole record gets its newline, anything else is
    /// dropped, so the next record starts on a line of its own.
    fn mend_torn_end(&self, state: &mut State, file: &File, size: u64) -> Result<(), String> {
        if state.offset >= size {
            return Ok(());
        }
        let torn = match segments::tail(file, size) {
            Ok(Tail { torn, .. }) => torn,
            Err(err) => return Err(self.error("read", &err)),
        };
        if serde_json::from_slice::<Record>(&torn).is_ok() {
            (&*file)
                .write_all(b"\n")
                .map_err(|err| self.error("write", &err))?;
            state.absorb(&[torn, b"\n".to_vec()].concat());
        } else {
            tracing::warn!(
                "{}: dropped a torn last line of {} bytes (a write cut short)",
                self.path.display(),
                torn.len()
            );
            file.set_len(state.offset)
                .map_err(|err| self.error("repair", &err))?;
        }
        Ok(())
    }

    /// Chains, writes and counts one record; rotates first when the file
    /// is full (unless `may_rotate` is false: the log's own prune records).
    fn write(
        &self,
        state: &mut State,
        locked: &mut Locked,
        record: &mut Record,
        may_rotate: bool,
    ) -> Result<(), String> {
        let chained = |record: &mut Record, state: &State| {
            record.seq = state.next_seq;
            record.prev = state.last_hash.clone();
            let mut line = serde_json::to_vec(&*record).map_err(|err| err.to_string())?;
            line.push(b'\n');
            Ok::<_, String>(line)
        };
        let mut line = chained(record, state)?;
        if may_rotate
            && state.offset > 0
            && state.offset + line.len() as u64 > self.limits.rotate_bytes
        {
            // The rotation may write prune records: chain to what it left.
            self.rotate(state, locked)?;
            line = chained(record, state)?;
        }
        locked
            .file()
            .write_all(&line)
            .map_err(|err| self.error("write", &err))?;
        state.advance(&line, Some(record));
        state.offset += line.len() as u64;
        Ok(())
    }

    /// Moves the current file to the next segment number, continues in a
    /// new file (the chain goes on: its first record links to the last line
    /// of the one rotated), then prunes expired segments.
    fn rotate(&self, state: &mut State, locked: &mut Locked) -> Result<(), String> {
        let number = segments::list_rotated(&self.path)
            .map_err(|err| self.error("list the segments of", &err))?
            .last()
            .map_or(1, |(n, _)| n + 1);
        self.path
            .rename(&segments::rotated(&self.path, number))
            .map_err(|err| self.error("rotate", &err))?;
        // Other commands continue from here once they see the new file.
        self.store_checkpoint(state);
        // Locks are taken oldest file first, so two rotating commands never
        // wait on each other.
        let mut next = self.lock_current(None)?;
        *state = self.catch_up(Some(state.clone()), &mut next)?;
        *locked = next;
        self.prune(state, locked)
    }

    /// Deletes rotated segments whose newest record is older than the
    /// retention, oldest first and never past a kept one. Each deletion is
    /// recorded first with the hash the oldest kept record links to, so the
    /// verifier tells a prune from a cut.
    fn prune(&self, state: &mut State, locked: &mut Locked) -> Result<(), String> {
        let cutoff = format_time(time::OffsetDateTime::now_utc() - self.limits.retention);
        let rotated = segments::list_rotated(&self.path)
            .map_err(|err| self.error("list the segments of", &err))?;
        for (_, path) in rotated {
            let Ok(Some(last)) = segments::last_line_of(&path) else {
                break;
            };
            let Ok(newest) = serde_json::from_slice::<Record>(&last) else {
                break;
            };
            if newest.time.as_str() >= cutoff.as_str() {
                break;
            }
            let first_seq = path
                .read()
                .ok()
                .and_then(|bytes| {
                    let first = bytes.split(|&b| b == b'\n').next()?.to_vec();
                    serde_json::from_slice::<Record>(&first).ok()
                })
                .map_or(newest.seq, |r| r.seq);
            let mut record = Record::new(
                "",
                "",
                "audit",
                format!(
                    "audit.prune {} ({} records, seq {first_seq}-{}, newest {}): older than the {}-day retention",
                    segments_name(&path),
                    newest.seq + 1 - first_seq.min(newest.seq),
                    newest.seq,
                    newest.time,
                    self.limits.retention.whole_days()
                ),
            );
            record.outcome = Some("ok".into());
            record.anchor = Some(chain::link(&last));
            self.write(state, locked, &mut record, false)?;
            path.remove_file()
                .map_err(|err| self.error("prune", &err))?;
        }
        Ok(())
    }

    /// Best effort: without it the next command reads the lines since the
    /// last one.
    fn store_checkpoint(&self, state: &State) -> bool {
        match state.store(&checkpoint_path(&self.path)) {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!("cannot write the audit checkpoint: {err}");
                false
            }
        }
    }

    fn error(&self, what: &str, err: &std::io::Error) -> String {
        format!(
            "cannot {what} the audit log {}: {err}; make its directory writable (privileged calls are refused while they cannot be recorded)",
            self.path.display()
        )
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let checkpointed = inner.checkpointed;
        if let Some(state) = inner.state.take()
            && checkpointed != Some((state.file, state.offset))
        {
            self.store_checkpoint(&state);
        }
    }
}

fn decision_record(
    provider: &str,
    component: &str,
    capability: &str,
    action: String,
    outcome: Result<(), String>,
) -> Record {
    let mut record = Record::new(provider, component, capability, action);
    match outcome {
        Ok(()) => record.outcome = Some("ok".into()),
        Err(reason) => {
            record.decision = Decision::Deny;
            record.reason = Some(reason);
        }
    }
    record.clip();
    record
}

/// The UTC day now, as records name it.
pub(crate) fn today() -> String {
    now_rfc3339()[..10].to_owned()
}

fn segments_name(path: &HomePath) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::{lines, log_in, record};
    use crate::audit::{GENESIS, verify};

    /// About two records per file.
    const TWO_LINES: u64 = 700;

    #[test]
    fn each_record_links_to_the_line_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), ROTATE_BYTES);
        for i in 0..5 {
            log.append(&record("a", &format!("sidecar.read {i}")))
                .unwrap();
        }
        let lines = lines(&path);
        let records: Vec<Record> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records[0].prev, GENESIS);
        for (i, pair) in records.windows(2).enumerate() {
            assert_eq!(pair[1].prev, chain::link(lines[i].as_bytes()));
            assert_eq!(pair[1].seq, i as u64 + 1);
        }
    }

    #[test]
    fn rotation_keeps_the_chain_and_numbers_segments_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), TWO_LINES);
        for i in 0..9 {
            log.append(&record("a", &format!("sidecar.read {i}")))
                .unwrap();
        }
        let rotated = segments::list_rotated(&path).unwrap();
        assert!(rotated.len() >= 3, "{rotated:?}");
        let first_of_current: Record = serde_json::from_str(
            std::fs::read_to_string(path.absolute())
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let newest_rotated = segments::last_line_of(&rotated.last().unwrap().1)
            .unwrap()
            .unwrap();
        assert_eq!(first_of_current.prev, chain::link(&newest_rotated));
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 9);
        let actions: Vec<String> = crate::audit::read(&path, &Default::default(), None)
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions.first().unwrap(), "sidecar.read 0", "oldest first");
        assert_eq!(actions.last().unwrap(), "sidecar.read 8");
    }

    #[test]
    fn retention_deletes_expired_segments_only_and_says_so_in_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), TWO_LINES);
        let old = format_time(time::OffsetDateTime::now_utc() - time::Duration::days(100));
        let recent = format_time(time::OffsetDateTime::now_utc() - time::Duration::days(80));
        for (i, at) in [&old, &old, &old, &old, &recent, &recent, &recent]
            .iter()
            .enumerate()
        {
            let mut record = record("a", &format!("sidecar.read {i}"));
            record.time = (*at).clone();
            log.append(&record).unwrap();
        }
        // Rotations now find the expired segments.
        for i in 0..4 {
            log.append(&record("a", &format!("now {i}"))).unwrap();
        }
        let kept = crate::audit::read(&path, &Default::default(), None).unwrap();
        // Old records remain only in a segment that also holds recent ones.
        assert!(
            kept.iter().filter(|r| r.time == old).count() < 2,
            "{kept:#?}"
        );
        let recent_kept = kept.iter().filter(|r| r.time == recent).count();
        assert_eq!(recent_kept, 3, "records within the retention are all kept");
        let prunes: Vec<&Record> = kept.iter().filter(|r| r.anchor.is_some()).collect();
        assert!(!prunes.is_empty());
        assert!(
            prunes[0]
                .action
                .starts_with("audit.prune mining-audit.jsonl."),
            "{prunes:?}"
        );
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.starts_at, "prune");
    }

    #[test]
    fn concurrent_writers_in_threads_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("logs/mining-audit.jsonl");
        let limits = AuditLimits {
            rotate_bytes: 16 << 10,
            ..AuditLimits::default()
        };
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let path = path.clone();
                // One log per thread, as separate commands have.
                scope.spawn(move || {
                    let log = AuditLog::with_limits(path, limits);
                    for i in 0..100 {
                        log.append(&record("a", &format!("writer {writer} record {i}")))
                            .unwrap();
                    }
                });
            }
        });
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 400);
        assert!(report.files.len() > 1, "rotated while writing");
    }

    /// Two writer processes: this test binary, run again for one test.
    #[test]
    fn concurrent_writers_in_processes_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("logs/mining-audit.jsonl");
        let children: Vec<_> = (0..2)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "audit::appender::tests::writer_process",
                        "--quiet",
                    ])
                    .env("AUDIT_WRITER_LOG", dir.path())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 2 * 300);
    }

    /// A writer when run by the test above; nothing otherwise.
    #[test]
    fn writer_process() {
        let Some(home) = std::env::var_os("AUDIT_WRITER_LOG") else {
            return;
        };
        let limits = AuditLimits {
            rotate_bytes: 32 << 10,
            ..AuditLimits::default()
        };
        let path =
            crate::home::root(std::path::PathBuf::from(home)).join("logs/mining-audit.jsonl");
        let log = AuditLog::with_limits(path, limits);
        for i in 0..300 {
            log.append(&record(
                "a",
                &format!("process {} record {i}", std::process::id()),
            ))
            .unwrap();
        }
    }

    #[test]
    fn a_new_process_continues_the_chain_from_the_checkpoint_or_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (path, first) = log_in(dir.path(), ROTATE_BYTES);
        first.append(&record("a", "one")).unwrap();
        drop(first); // writes the checkpoint
        let (_, second) = log_in(dir.path(), ROTATE_BYTES);
        second.append(&record("a", "two")).unwrap();
        drop(second);
        // Without a checkpoint the next process reads the log itself.
        checkpoint_path(&path).remove_file().unwrap();
        let (_, third) = log_in(dir.path(), ROTATE_BYTES);
        third.append(&record("a", "three")).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 3);
    }

    #[test]
    fn a_torn_last_line_is_dropped_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), ROTATE_BYTES);
        log.append(&record("a", "one")).unwrap();
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path.absolute())
            .unwrap();
        file.write_all(b"{\"time\":\"2026-12-01T10:").unwrap();
        let report = verify(&path).unwrap();
        assert!(report.intact && report.torn.is_some(), "{report:?}");
        let (_, log) = log_in(dir.path(), ROTATE_BYTES);
        log.append(&record("a", "two")).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.intact && report.torn.is_none(), "{report:?}");
        assert_eq!(report.records, 2);
    }

    #[test]
    fn a_log_cut_at_its_end_is_recorded_as_a_cut_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = log_in(dir.path(), ROTATE_BYTES);
        for i in 0..3 {
            log.append(&record("a", &format!("r{i}"))).unwrap();
        }
        let text = std::fs::read_to_string(path.absolute()).unwrap();
        let cut = text
            .lines()
            .take(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        std::fs::write(path.absolute(), cut).unwrap();
        log.append(&record("a", "after")).unwrap();
        let report = verify(&path).unwrap();
        let broken = report.broken.expect("a cut");
        assert_eq!(broken.kind, crate::audit::BreakKind::Cut, "{broken:?}");
        assert!(broken.detail.contains("removed"), "{broken:?}");
    }

    #[test]
    fn an_unwritable_log_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("logs");
        std::fs::write(&blocker, "a file where the directory should be").unwrap();
        let log = AuditLog::new(crate::home::root(dir.path()).join("logs/mining-audit.jsonl"));
        let err = log.ready().unwrap_err();
        assert!(err.contains("privileged calls are refused"), "{err}");
    }

    #[test]
    fn daily_decisions_are_written_once_a_day_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let identified = std::cell::Cell::new(0);
        let identify = || {
            identified.set(identified.get() + 1);
            Some("acme".to_owned())
        };
        for _ in 0..3 {
            let (_, log) = log_in(dir.path(), ROTATE_BYTES);
            log.daily_decision(
                "sha",
                "load",
                "load acme.wasm".into(),
                Err("refused".into()),
                identify,
            );
        }
        let (path, log) = log_in(dir.path(), ROTATE_BYTES);
        log.daily_decision(
            "sha",
            "load",
            "load acme.wasm".into(),
            Err("changed".into()),
            identify,
        );
        let records = crate::audit::read(&path, &Default::default(), None).unwrap();
        assert_eq!(records.len(), 2, "{records:#?}");
        assert_eq!(identified.get(), 2, "identified only when due");
        assert!(records.iter().all(|r| r.provider == "acme" && r.daily));
    }
}
