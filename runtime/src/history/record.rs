//! One tick's rows: the session's totals, each worker's counts and each
//! GPU's readings, written in one transaction.
//!
//! The counters are stored as the miner reports them (cumulative since the
//! miner started), with their advance since the previous row of the same
//! series beside them (`*_delta`), so that reports are sums and
//! downsampling keeps them exact. The advance follows the rule of NVML's
//! energy counter ([`host_gpu::energy_since`]): a counter that went down was
//! reset (the worker restarted), and the advance is what it counted since
//! the reset. A worker whose uptime went down (by more than a second) was
//! restarted too, even when its counters have already climbed past their
//! old values. The first sample of a series, and one that follows a gap
//! longer than [`MAX_GAP_SECONDS`](super::MAX_GAP_SECONDS), is a baseline:
//! its advance is 0.
//!
//! A session of several workers gets its totals' advance from its workers'
//! (their sum): one worker's restart lowers the session's total without the
//! other workers' shares being counted again.

use super::{History, HistoryError, MAX_GAP_SECONDS};
use host_gpu::GpuTelemetry;
use rusqlite::{OptionalExtension, Transaction, params};

/// One tick of `jarvis mine supervise`: what it saw at `recorded_at`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tick {
    /// Seconds since the Unix epoch.
    pub recorded_at: f64,
    pub session_id: String,
    /// The provider's id (`vllm-pearl`): OpenJarvis's `provider_id`.
    pub provider_id: String,
    /// `solo` or `pool:<url>`: OpenJarvis's `payout_target`.
    pub payout_target: String,
    /// OpenJarvis's `fees_owed`.
    pub fees_owed: u64,
    /// The session's totals (the row with `worker` NULL).
    pub totals: Counts,
    /// Each worker of a session of several (none for a single worker).
    pub workers: Vec<WorkerCounts>,
    /// Each GPU of the session, as NVML read it this tick.
    pub gpus: Vec<GpuTelemetry>,
}

/// Counters and gauges as a miner reports them; counters are cumulative
/// since the miner started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub blocks_found: u64,
    /// 0 when the miner reports none (OpenJarvis's default).
    pub hashrate: f64,
    /// 0 when unknown.
    pub uptime_seconds: f64,
    pub last_share_at: Option<f64>,
    pub last_error: Option<String>,
}

/// One worker's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerCounts {
    /// The worker's index in the session (0..).
    pub worker: u32,
    pub counts: Counts,
}

/// The advance of the four counters since the previous row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Advance {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub blocks: u64,
    pub reset: bool,
}

impl Advance {
    fn add(mut self, other: Advance) -> Advance {
        self.submitted += other.submitted;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.blocks += other.blocks;
        self.reset |= other.reset;
        self
    }
}

/// The previous row of a series, as far as the advance needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Previous {
    pub recorded_at: f64,
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub blocks: u64,
    pub uptime_seconds: f64,
}

/// Whether a sample at `now` continues a series whose last sample was at
/// `previous` (later, and within the gap the history measures).
pub(super) fn continues(previous: f64, now: f64) -> bool {
    now > previous && now - previous <= MAX_GAP_SECONDS
}

/// The advance of `now` over `previous` (see the module's rule).
pub(super) fn advance(previous: Option<&Previous>, now: &Counts, at: f64) -> Advance {
    let Some(previous) = previous.filter(|p| continues(p.recorded_at, at)) else {
        return Advance::default();
    };
    let restarted = now.uptime_seconds > 0.0 && now.uptime_seconds + 1.0 < previous.uptime_seconds;
    let reset = restarted
        || now.shares_submitted < previous.submitted
        || now.shares_accepted < previous.accepted
        || now.shares_rejected < previous.rejected
        || now.blocks_found < previous.blocks;
    if reset {
        return Advance {
            submitted: now.shares_submitted,
            accepted: now.shares_accepted,
            rejected: now.shares_rejected,
            blocks: now.blocks_found,
            reset: true,
        };
    }
    Advance {
        submitted: now.shares_submitted - previous.submitted,
        accepted: now.shares_accepted - previous.accepted,
        rejected: now.shares_rejected - previous.rejected,
        blocks: now.blocks_found - previous.blocks,
        reset: false,
    }
}

/// An energy counter's advance: `None` when either reading is missing,
/// 0 for a baseline (see the module's rule).
fn energy_advance(
    previous: Option<(f64, Option<u64>)>,
    now: Option<u64>,
    at: f64,
) -> (Option<u64>, bool) {
    let Some(now) = now else {
        return (None, false);
    };
    match previous {
        Some((when, Some(before))) if continues(when, at) => {
            let delta = host_gpu::energy_since(before, now);
            (Some(delta.used_mj), delta.reset)
        }
        Some((when, None)) if continues(when, at) => (None, false),
        _ => (Some(0), false),
    }
}

/// SQLite stores signed integers: a count past `i64::MAX` is capped.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored count (never negative in rows this module writes).
pub(super) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl History {
    /// Records one tick: a `mining_stats` row for the session's totals, one
    /// per worker, and a `gpu_samples` row per GPU, all in one transaction.
    pub fn record(&mut self, tick: &Tick) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        write_tick(&tx, tick).map_err(error)?;
        tx.commit().map_err(error)
    }
}

fn write_tick(tx: &Transaction<'_>, tick: &Tick) -> rusqlite::Result<()> {
    let mut workers_advance = None::<Advance>;
    for worker in &tick.workers {
        let worker_index = Some(i64::from(worker.worker));
        let previous = previous(tx, &tick.session_id, worker_index, tick.recorded_at)?;
        let advance = advance(previous.as_ref(), &worker.counts, tick.recorded_at);
        insert_stats(tx, tick, worker_index, &worker.counts, advance)?;
        workers_advance = Some(workers_advance.unwrap_or_default().add(advance));
    }
    let totals_advance = match workers_advance {
        Some(advance) => advance,
        None => {
            let previous = previous(tx, &tick.session_id, None, tick.recorded_at)?;
            advance(previous.as_ref(), &tick.totals, tick.recorded_at)
        }
    };
    insert_stats(tx, tick, None, &tick.totals, totals_advance)?;
    for gpu in &tick.gpus {
        insert_gpu(tx, tick, gpu)?;
    }
    Ok(())
}

/// A series' previous row: these look-ups run for every row a tick writes.
const PREVIOUS_STATS: &str = "SELECT recorded_at, shares_submitted, shares_accepted, \
         shares_rejected, blocks_found, uptime_seconds \
     FROM mining_stats WHERE worker IS ?2 AND recorded_at < ?3 AND session_id = ?1 \
     ORDER BY recorded_at DESC LIMIT 1";
const PREVIOUS_GPU_SAMPLE: &str = "SELECT recorded_at, energy_mj FROM gpu_samples \
     WHERE gpu = ?1 AND uuid IS ?2 AND recorded_at < ?3 \
     ORDER BY recorded_at DESC LIMIT 1";

fn previous(
    tx: &Transaction<'_>,
    session_id: &str,
    worker: Option<i64>,
    before: f64,
) -> rusqlite::Result<Option<Previous>> {
    tx.prepare_cached(PREVIOUS_STATS)?
        .query_row(params![session_id, worker, before], |row| {
            Ok(Previous {
                recorded_at: row.get(0)?,
                submitted: count(row.get::<_, Option<i64>>(1)?.unwrap_or(0)),
                accepted: count(row.get::<_, Option<i64>>(2)?.unwrap_or(0)),
                rejected: count(row.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                blocks: count(row.get::<_, Option<i64>>(4)?.unwrap_or(0)),
                uptime_seconds: row.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
            })
        })
        .optional()
}

fn insert_stats(
    tx: &Transaction<'_>,
    tick: &Tick,
    worker: Option<i64>,
    counts: &Counts,
    advance: Advance,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO mining_stats (recorded_at, provider_id, shares_submitted, shares_accepted, \
             blocks_found, hashrate, uptime_seconds, last_share_at, last_error, payout_target, \
             fees_owed, session_id, worker, shares_rejected, shares_submitted_delta, \
             shares_accepted_delta, shares_rejected_delta, blocks_found_delta, counter_reset) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        tick.recorded_at,
        tick.provider_id,
        int(counts.shares_submitted),
        int(counts.shares_accepted),
        int(counts.blocks_found),
        counts.hashrate,
        counts.uptime_seconds,
        counts.last_share_at,
        counts.last_error,
        tick.payout_target,
        int(tick.fees_owed),
        tick.session_id,
        worker,
        int(counts.shares_rejected),
        int(advance.submitted),
        int(advance.accepted),
        int(advance.rejected),
        int(advance.blocks),
        advance.reset,
    ])?;
    Ok(())
}

fn insert_gpu(tx: &Transaction<'_>, tick: &Tick, gpu: &GpuTelemetry) -> rusqlite::Result<()> {
    let index = i64::from(gpu.index);
    let previous: Option<(f64, Option<i64>)> = tx
        .prepare_cached(PREVIOUS_GPU_SAMPLE)?
        .query_row(params![index, gpu.uuid, tick.recorded_at], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let previous = previous.map(|(when, energy)| (when, energy.map(count)));
    let (energy_delta, reset) = energy_advance(previous, gpu.energy_mj, tick.recorded_at);
    let throttle = gpu.throttle_reasons.as_ref().map(|names| names.join(","));
    tx.prepare_cached(
        "INSERT INTO gpu_samples (recorded_at, session_id, gpu, uuid, power_w, energy_mj, \
             energy_delta_mj, energy_unknown, gpu_temp_c, memory_temp_c, gpu_util_percent, \
             memory_util_percent, memory_used_mib, sm_clock_mhz, memory_clock_mhz, \
             throttle_reasons, counter_reset) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        tick.recorded_at,
        tick.session_id,
        index,
        gpu.uuid,
        gpu.power_w,
        gpu.energy_mj.map(int),
        energy_delta.map(int),
        energy_delta.is_none(),
        gpu.gpu_temp_c,
        gpu.memory_temp_c,
        gpu.gpu_util_percent,
        gpu.memory_util_percent,
        gpu.memory_used_mib.map(int),
        gpu.sm_clock_mhz,
        gpu.memory_clock_mhz,
        throttle,
        reset,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    fn counts(submitted: u64, accepted: u64, rejected: u64, blocks: u64, uptime: f64) -> Counts {
        Counts {
            shares_submitted: submitted,
            shares_accepted: accepted,
            shares_rejected: rejected,
            blocks_found: blocks,
            uptime_seconds: uptime,
            ..Counts::default()
        }
    }

    fn previous(at: f64, c: &Counts) -> Previous {
        Previous {
            recorded_at: at,
            submitted: c.shares_submitted,
            accepted: c.shares_accepted,
            rejected: c.shares_rejected,
            blocks: c.blocks_found,
            uptime_seconds: c.uptime_seconds,
        }
    }

    #[test]
    fn advances_resets_gaps_and_baselines() {
        let before = counts(10, 8, 2, 1, 100.0);
        let p = previous(1000.0, &before);
        // A plain advance.
        assert_eq!(
            advance(Some(&p), &counts(13, 10, 3, 1, 101.0), 1001.0),
            Advance {
                submitted: 3,
                accepted: 2,
                rejected: 1,
                blocks: 0,
                reset: false
            }
        );
        // A counter that went down: counted from the reset.
        assert_eq!(
            advance(Some(&p), &counts(2, 1, 0, 0, 1.0), 1001.0),
            Advance {
                submitted: 2,
                accepted: 1,
                rejected: 0,
                blocks: 0,
                reset: true
            }
        );
        // Uptime went down while the counters climbed past the old values.
        let after = advance(Some(&p), &counts(12, 9, 2, 1, 3.0), 1001.0);
        assert!(after.reset && after.accepted == 9, "{after:?}");
        // Unknown uptime (0) is no restart.
        assert!(!advance(Some(&p), &counts(12, 9, 2, 1, 0.0), 1001.0).reset);
        // No previous row, a gap, time going backwards: a baseline.
        for (prev, at) in [
            (None, 1001.0),
            (Some(&p), 1000.0 + MAX_GAP_SECONDS + 1.0),
            (Some(&p), 999.0),
        ] {
            assert_eq!(
                advance(prev, &counts(20, 20, 0, 2, 200.0), at),
                Advance::default()
            );
        }
    }

    #[test]
    fn the_previous_row_look_ups_are_prepared_once() {
        let (_dir, mut history) = super::super::tests::temp_history();
        for second in 0..5u32 {
            let tick =
                super::super::tests::tick(1000.0 + f64::from(second), [second.into(); 2], [1; 2]);
            history.record(&tick).unwrap();
        }
        for sql in [PREVIOUS_STATS, PREVIOUS_GPU_SAMPLE] {
            let statement = history.conn.prepare_cached(sql).unwrap();
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{sql}");
            // The cached statement is the one the ticks ran.
            assert!(statement.get_status(StatementStatus::Run) >= 8, "{sql}");
        }
    }

    #[test]
    fn energy_counter_advance() {
        assert_eq!(
            energy_advance(Some((1.0, Some(1000))), Some(1500), 2.0),
            (Some(500), false)
        );
        // A reset (driver reload): counted from zero.
        assert_eq!(
            energy_advance(Some((1.0, Some(1000))), Some(300), 2.0),
            (Some(300), true)
        );
        // Unknown before or now: unknown.
        assert_eq!(
            energy_advance(Some((1.0, None)), Some(300), 2.0),
            (None, false)
        );
        assert_eq!(
            energy_advance(Some((1.0, Some(1))), None, 2.0),
            (None, false)
        );
        // First sample or after a gap: a baseline.
        assert_eq!(energy_advance(None, Some(300), 2.0), (Some(0), false));
        assert_eq!(
            energy_advance(Some((1.0, Some(1))), Some(300), 1000.0),
            (Some(0), false)
        );
    }
}
