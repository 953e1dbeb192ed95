//! The mining history: a SQLite database at `<home>/telemetry/mining.db`
//! (WAL mode) that `jarvis mine supervise` writes once per tick and
//! `jarvis mine history` and `jarvis mine top` read.
//!
//! One file per responsibility:
//!
//! - this file: opening the database (its directory made through the home,
//!   mode 0700, the file 0600), WAL, and the schema with its migrations by
//!   `PRAGMA user_version`;
//! - `record.rs`: what one tick is ([`Tick`]) and its rows, written in one
//!   transaction, so a crash leaves a tick whole or absent;
//! - `retention.rs`: bounded retention with downsampling ([`Retention`]);
//! - `report.rs`: the queries: shares per hour, energy, joules per accepted
//!   share per day ([`Report`]), and the last minutes for `top` ([`Recent`]).
//!
//! ## Tables
//!
//! `mining_stats` keeps the columns OpenJarvis defined (reference §4.6), with
//! their names and defaults, so an OpenJarvis-style reader of
//! `mining_stats ORDER BY recorded_at DESC` works: the counters are
//! cumulative, as the miner reports them. Ours: `session_id`, `worker`
//! (NULL: the session's totals; 0..: one worker), `shares_rejected`, the
//! advance of each counter since the previous row of the same series
//! (`*_delta`, reset-aware, see `record.rs`), `counter_reset` and
//! `resolution_s` (0: a raw sample; 60 or 3600: a downsampled row).
//!
//! `gpu_samples` holds one row per GPU per tick: the readings of
//! [`host_gpu::GpuTelemetry`] that matter over time, the energy counter and
//! its reset-aware advance (`energy_delta_mj`; `energy_unknown` counts the
//! samples whose advance is unknown: a reading missing now or before).
//!
//! ## Crashes
//!
//! WAL with `synchronous = NORMAL`: a process killed at any instant (SIGKILL
//! included) leaves a consistent database, each tick all there or all
//! absent; only a power loss can lose the last ticks (never corrupt the
//! file). tests/history_cli.rs kills a writer mid-write repeatedly.

mod record;
mod report;
mod retention;

pub use record::{Counts, Tick, WorkerCounts};
pub use report::{
    DayRow, GpuMinute, GpuRecent, HourRow, Recent, Report, TickRows, WorkerMinute, WorkerRecent,
};
pub use retention::{Pruned, Retention};

use crate::home::HomePath;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::time::Duration;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// A gap between two samples of one series longer than this is not
/// measured: neither its shares nor its energy are counted (the supervisor
/// was not running; what happened in between is unknown).
pub const MAX_GAP_SECONDS: f64 = 300.0;

/// How long a command waits for another writer's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the history cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot create the directory {dir}: {source}; check that the home is writable")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the mining history {path}: {source}")]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the mining history {path} is not a regular file; move it away and \
         `jarvis mine supervise` starts a new one"
    )]
    NotAFile { path: PathBuf },
    #[error(
        "cannot open the mining history {path}: {source}; if the file is damaged, \
         move it away and `jarvis mine supervise` starts a new one"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the mining history {path} has schema version {found}, newer than this jarvis \
         knows ({SCHEMA_VERSION}); update jarvis to read it"
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("mining history {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// An open mining history.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

impl History {
    /// Opens the history at `path`, creating it (its directory mode 0700
    /// through the home, the file 0600) and migrating its schema as needed.
    pub fn open(path: &HomePath) -> Result<History, HistoryError> {
        let absolute = path.absolute();
        if let Some(dir) = path.parent() {
            dir.create_dir_all_with_mode(0o700)
                .map_err(|source| HistoryError::CreateDir {
                    dir: dir.absolute(),
                    source,
                })?;
        }
        {
            use cap_std::fs::OpenOptionsExt;
            let mut options = cap_std::fs::OpenOptions::new();
            options.read(true).write(true).create(true).mode(0o600);
            path.open_with(&options)
                .map_err(|source| HistoryError::CreateFile {
                    path: absolute.clone(),
                    source,
                })?;
        }
        Self::open_file(path)
    }

    /// Opens the history at `path` only if it exists: `None` when there is
    /// no history yet (nothing is created).
    pub fn open_existing(path: &HomePath) -> Result<Option<History>, HistoryError> {
        match path.symlink_metadata() {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::open_file(path).map(Some),
        }
    }

    /// SQLite needs a real path: the file must be a regular file under the
    /// home (a symlink planted there is refused, not followed).
    fn open_file(path: &HomePath) -> Result<History, HistoryError> {
        let absolute = path.absolute();
        let regular = path
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_file());
        if !regular {
            return Err(HistoryError::NotAFile { path: absolute });
        }
        let open_error = |source| HistoryError::Open {
            path: absolute.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &absolute,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                // A symlink swapped in after the check is not followed.
                | OpenFlags::from_bits_retain(rusqlite::ffi::SQLITE_OPEN_NOFOLLOW),
        )
        .map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // One plan per statement, whatever is bound: without it, SQLite
        // (built with STAT4) re-prepares the cached look-ups of the previous
        // row at every step, and parsing SQL was a tenth of the supervisor's
        // CPU.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(open_error)?;
        // `journal_mode` answers with the mode in force: a file that is not
        // a database fails here, with SQLite's "file is not a database".
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("mining history {}: journal mode {mode}", absolute.display());
        }
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = OFF;
             PRAGMA journal_size_limit = 8388608;",
        )
        .map_err(open_error)?;
        let mut history = History {
            conn,
            path: absolute,
        };
        history.migrate()?;
        Ok(history)
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Caps SQLite's page cache for this connection at `kib` KiB (its
    /// default is 2 MiB, kept resident once filled).
    pub fn cap_cache(&self, kib: u32) -> Result<(), HistoryError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(|source| HistoryError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound database, else
    /// SQLite's findings.
    pub fn integrity_check(&self) -> Result<Vec<String>, HistoryError> {
        let mut statement = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    fn error(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Brings the schema to [`SCHEMA_VERSION`], in one transaction.
    fn migrate(&mut self) -> Result<(), HistoryError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.error(e))?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::NewerSchema {
                path: self.path.clone(),
                found,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path.clone();
        let error = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        // Another process may have migrated while this one waited.
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(error)?;
        if found < 1 {
            schema_v1(&tx).map_err(error)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(error)?;
        tx.commit().map_err(error)
    }
}

/// OpenJarvis's `mining_stats` (reference §4.6), then our columns. A table
/// OpenJarvis's store created (same columns, none of ours) gets ours added,
/// as OpenJarvis itself migrates (`ALTER TABLE … ADD COLUMN` when absent).
const MINING_STATS: &str = "CREATE TABLE IF NOT EXISTS mining_stats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at REAL NOT NULL,
    provider_id TEXT NOT NULL,
    shares_submitted INTEGER DEFAULT 0,
    shares_accepted INTEGER DEFAULT 0,
    blocks_found INTEGER DEFAULT 0,
    hashrate REAL DEFAULT 0,
    uptime_seconds REAL DEFAULT 0,
    last_share_at REAL,
    last_error TEXT,
    payout_target TEXT DEFAULT 'solo',
    fees_owed INTEGER DEFAULT 0
)";

/// Our columns of `mining_stats`, added when absent.
const MINING_STATS_OURS: [(&str, &str); 10] = [
    ("session_id", "TEXT"),
    ("worker", "INTEGER"),
    ("shares_rejected", "INTEGER DEFAULT 0"),
    ("shares_submitted_delta", "INTEGER"),
    ("shares_accepted_delta", "INTEGER"),
    ("shares_rejected_delta", "INTEGER"),
    ("blocks_found_delta", "INTEGER"),
    ("counter_reset", "INTEGER NOT NULL DEFAULT 0"),
    ("resolution_s", "INTEGER NOT NULL DEFAULT 0"),
    ("samples", "INTEGER NOT NULL DEFAULT 1"),
];

const GPU_SAMPLES: &str = "CREATE TABLE IF NOT EXISTS gpu_samples (
    id INTEGER PRIMARY KEY,
    recorded_at REAL NOT NULL,
    session_id TEXT,
    gpu INTEGER NOT NULL,
    uuid TEXT,
    power_w REAL,
    energy_mj INTEGER,
    energy_delta_mj INTEGER,
    energy_unknown INTEGER NOT NULL DEFAULT 0,
    gpu_temp_c REAL,
    memory_temp_c REAL,
    gpu_util_percent REAL,
    memory_util_percent REAL,
    memory_used_mib INTEGER,
    sm_clock_mhz REAL,
    memory_clock_mhz REAL,
    throttle_reasons TEXT,
    counter_reset INTEGER NOT NULL DEFAULT 0,
    resolution_s INTEGER NOT NULL DEFAULT 0,
    samples INTEGER NOT NULL DEFAULT 1
)";

/// By time (reports, retention); by series, without its long texts (the
/// session id, the GPU's UUID: checked in the row), for the previous row of
/// a series and the sessions' totals (`worker` NULL).
const INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS mining_stats_time ON mining_stats (recorded_at);
    CREATE INDEX IF NOT EXISTS mining_stats_worker ON mining_stats (worker, recorded_at);
    CREATE INDEX IF NOT EXISTS gpu_samples_time ON gpu_samples (recorded_at);
    CREATE INDEX IF NOT EXISTS gpu_samples_gpu ON gpu_samples (gpu, recorded_at);
";

fn schema_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(MINING_STATS)?;
    let present: Vec<String> = {
        let mut statement = conn.prepare("SELECT name FROM pragma_table_info('mining_stats')")?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    for (name, definition) in MINING_STATS_OURS {
        if !present.iter().any(|p| p == name) {
            conn.execute_batch(&format!(
                "ALTER TABLE mining_stats ADD COLUMN {name} {definition}"
            ))?;
        }
    }
    conn.execute_batch(GPU_SAMPLES)?;
    conn.execute_batch(INDEXES)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use host_gpu::GpuTelemetry;

    pub(crate) fn temp_history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("telemetry/mining.db");
        let history = History::open(&path).unwrap();
        (dir, history)
    }

    pub(crate) fn gpu(index: u32, energy_mj: Option<u64>) -> GpuTelemetry {
        GpuTelemetry {
            index,
            uuid: Some(format!("GPU-{index}")),
            power_w: Some(400.0 + f64::from(index)),
            energy_mj,
            gpu_temp_c: Some(60 + index),
            memory_temp_c: Some(70),
            throttle_reasons: Some(vec![]),
            ..GpuTelemetry::default()
        }
    }

    /// A tick of two workers on two GPUs.
    pub(crate) fn tick(at: f64, accepted: [u64; 2], energy_mj: [u64; 2]) -> Tick {
        let worker = |worker: u32, accepted: u64| WorkerCounts {
            worker,
            counts: Counts {
                shares_submitted: accepted + 1,
                shares_accepted: accepted,
                shares_rejected: 1,
                ..Counts::default()
            },
        };
        Tick {
            recorded_at: at,
            session_id: "s1".into(),
            provider_id: "vllm-pearl".into(),
            payout_target: "solo".into(),
            fees_owed: 0,
            totals: Counts {
                shares_submitted: accepted[0] + accepted[1] + 2,
                shares_accepted: accepted[0] + accepted[1],
                shares_rejected: 2,
                ..Counts::default()
            },
            workers: vec![worker(0, accepted[0]), worker(1, accepted[1])],
            gpus: vec![gpu(0, Some(energy_mj[0])), gpu(1, Some(energy_mj[1]))],
        }
    }

    #[test]
    fn the_page_cache_is_capped_for_this_connection() {
        let (_dir, history) = temp_history();
        let cache_size = || -> i64 {
            history
                .conn
                .pragma_query_value(None, "cache_size", |row| row.get(0))
                .unwrap()
        };
        assert_eq!(cache_size(), -2000, "SQLite's default");
        history.cap_cache(512).unwrap();
        assert_eq!(cache_size(), -512);
    }

    #[test]
    fn opens_in_wal_with_private_modes_and_the_current_schema() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, history) = temp_history();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("telemetry")), 0o700);
        assert_eq!(mode(&dir.path().join("telemetry/mining.db")), 0o600);
        let journal: String = history
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let version: i64 = history
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(history.integrity_check().unwrap(), ["ok"]);
        drop(history);
        // Opening again is a no-op migration.
        let again =
            History::open_existing(&crate::home::root(dir.path()).join("telemetry/mining.db"))
                .unwrap()
                .unwrap();
        assert_eq!(again.integrity_check().unwrap(), ["ok"]);
    }

    #[test]
    fn an_openjarvis_table_gets_our_columns_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("telemetry")).unwrap();
        let file = dir.path().join("telemetry/mining.db");
        {
            let conn = Connection::open(&file).unwrap();
            conn.execute_batch(MINING_STATS).unwrap();
            conn.execute(
                "INSERT INTO mining_stats (recorded_at, provider_id, shares_accepted) \
                 VALUES (1.0, 'vllm-pearl', 7)",
                [],
            )
            .unwrap();
        }
        let history =
            History::open(&crate::home::root(dir.path()).join("telemetry/mining.db")).unwrap();
        let (accepted, rejected, resolution): (i64, i64, i64) = history
            .conn
            .query_row(
                "SELECT shares_accepted, shares_rejected, resolution_s FROM mining_stats",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((accepted, rejected, resolution), (7, 0, 0));
    }

    #[test]
    fn missing_newer_and_foreign_files_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::home::root(dir.path());
        let path = root.join("telemetry/mining.db");
        assert!(History::open_existing(&path).unwrap().is_none());
        assert!(!path.exists(), "nothing is created by open_existing");

        std::fs::create_dir(dir.path().join("telemetry")).unwrap();
        std::fs::write(dir.path().join("telemetry/mining.db"), b"not a database, at all: a text file that is long enough to have a header page................................................................................").unwrap();
        let err = History::open_existing(&path).unwrap_err();
        assert!(
            matches!(err, HistoryError::Open { .. })
                && err.to_string().contains("cannot open the mining history"),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("telemetry/mining.db")).unwrap();
        {
            let conn = Connection::open(dir.path().join("telemetry/mining.db")).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = History::open(&path).unwrap_err();
        assert!(
            err.to_string().contains("schema version 99, newer"),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("telemetry/mining.db")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("telemetry/mining.db")).unwrap();
        let err = History::open_existing(&path).unwrap_err();
        assert!(matches!(err, HistoryError::NotAFile { .. }), "{err}");
    }
}
