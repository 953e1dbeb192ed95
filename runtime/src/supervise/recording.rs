//! The supervisor's looks, kept: each snapshot becomes one tick of the
//! mining history (`crate::history`, `<home>/telemetry/mining.db`), and the
//! history is pruned to its retention once an hour. A history that cannot be
//! written is a warning, never the end of supervision: mining matters more.

use super::snapshot::{Counts, Snapshot};
use crate::history::{self, History, Tick, WorkerCounts};
use crate::home::HomePath;
use std::time::{Duration, Instant};

const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// SQLite's page cache for the history's writer. A tick appends to the end
/// of each table and index and reads back the last row of each series: a
/// few dozen pages. SQLite's default cache (2 MiB) filled over the first
/// ten minutes and was a tenth of the supervisor's memory.
const CACHE_KIB: u32 = 512;

/// The open history and when it was last pruned.
pub struct Recording {
    history: History,
    pruned: Option<Instant>,
    /// The last failure said, so a broken disk is one line, not one a second.
    failing: Option<String>,
}

impl Recording {
    pub fn open(path: &HomePath) -> Result<Recording, history::HistoryError> {
        let history = History::open(path)?;
        history.cap_cache(CACHE_KIB)?;
        Ok(Recording {
            history,
            pruned: None,
            failing: None,
        })
    }

    /// Records `snapshot` (and prunes when due); `notice` hears of a failure
    /// once, and of the recovery.
    pub fn record(&mut self, snapshot: &Snapshot, notice: &mut dyn FnMut(&str)) {
        let Some(tick) = tick(snapshot) else {
            return;
        };
        let mut result = self.history.record(&tick).map(drop);
        if result.is_ok() && self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            result = self.history.prune(tick.recorded_at).map(drop);
            self.pruned = Some(Instant::now());
        }
        match (result, self.failing.take()) {
            (Ok(()), Some(_)) => notice("the mining history is written again"),
            (Ok(()), None) => {}
            (Err(err), before) => {
                let message = err.to_string();
                if before.as_ref() != Some(&message) {
                    notice(&format!("cannot write the mining history: {message}"));
                }
                self.failing = Some(message);
            }
        }
    }
}

/// The history's tick for `snapshot`; `None` before the session and its
/// counts are known (a row of zeros would read as shares from nowhere once
/// the counts come).
pub fn tick(snapshot: &Snapshot) -> Option<Tick> {
    let session_id = snapshot.session_id.clone()?;
    let stats = snapshot.totals.as_ref()?;
    let counts = |c: &Counts| history::Counts {
        shares_submitted: c.shares_submitted,
        shares_accepted: c.shares_accepted,
        shares_rejected: c.shares_rejected,
        blocks_found: c.blocks_found,
        ..history::Counts::default()
    };
    let totals = history::Counts {
        shares_submitted: stats.shares_submitted,
        shares_accepted: stats.shares_accepted,
        shares_rejected: stats.shares_rejected,
        blocks_found: stats.blocks_found,
        hashrate: stats.hashrate,
        uptime_seconds: stats.uptime_seconds,
        last_share_at: stats.last_share_at,
        last_error: stats.last_error.clone(),
    };
    let workers = if snapshot.workers.len() > 1 {
        snapshot
            .workers
            .iter()
            .filter_map(|w| {
                Some(WorkerCounts {
                    worker: u32::try_from(w.index).ok()?,
                    counts: counts(w.counts.as_ref()?),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(Tick {
        recorded_at: snapshot.taken_at,
        session_id,
        provider_id: snapshot.provider.clone().unwrap_or_default(),
        payout_target: stats.payout_target.clone(),
        fees_owed: stats.fees_owed,
        totals,
        workers,
        gpus: snapshot.gpus.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::WorkerSnapshot;
    use super::*;

    fn snapshot(workers: usize) -> Snapshot {
        Snapshot {
            taken_at: 1_000.0,
            provider: Some("vllm-pearl".into()),
            session_id: Some("s-1".into()),
            workers: (0..workers)
                .map(|index| WorkerSnapshot {
                    index,
                    counts: Some(Counts {
                        shares_submitted: 3,
                        shares_accepted: 2,
                        shares_rejected: 1,
                        blocks_found: 2,
                        ..Counts::default()
                    }),
                    ..WorkerSnapshot::default()
                })
                .collect(),
            totals: Some(stats()),
            ..Snapshot::default()
        }
    }

    fn stats() -> crate::lifecycle::Stats {
        crate::lifecycle::Stats {
            provider_id: "vllm-pearl".into(),
            shares_submitted: 6,
            shares_accepted: 4,
            shares_rejected: 2,
            blocks_found: 4,
            hashrate: 0.0,
            uptime_seconds: 60.0,
            last_share_at: None,
            last_error: None,
            payout_target: "solo".into(),
            fees_owed: 0,
            requests_served: None,
            prompt_tokens: None,
            generation_tokens: None,
            workers: Vec::new(),
        }
    }

    #[test]
    fn a_look_is_a_tick_with_each_worker_of_a_session_of_several() {
        let tick = tick(&snapshot(3)).unwrap();
        assert_eq!(tick.session_id, "s-1");
        assert_eq!(tick.payout_target, "solo");
        assert_eq!(tick.workers.len(), 3);
        assert_eq!(tick.workers[2].worker, 2);
        assert_eq!(tick.workers[2].counts.shares_accepted, 2);
        // One worker: its counts are the session's (no worker rows).
        assert!(super::tick(&snapshot(1)).unwrap().workers.is_empty());
        assert_eq!(tick.totals.shares_accepted, 4);
        // Before the session and its counts are known, nothing to record.
        assert!(super::tick(&Snapshot::default()).is_none());
        let mut unknown = snapshot(2);
        unknown.totals = None;
        assert!(super::tick(&unknown).is_none());
    }

    #[test]
    fn looks_are_recorded_as_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("telemetry/mining.db");
        let mut recording = Recording::open(&path).unwrap();
        let mut heard = Vec::new();
        for at in 0..3 {
            let mut look = snapshot(2);
            look.taken_at = 1_000.0 + f64::from(at);
            recording.record(&look, &mut |line| heard.push(line.to_owned()));
        }
        assert!(heard.is_empty(), "{heard:?}");
        assert_eq!(recording.history.tick_rows(0.0).unwrap().len(), 3);
    }
}
