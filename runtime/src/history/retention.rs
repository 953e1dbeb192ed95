//! Bounded retention with downsampling.
//!
//! [`Retention::default`]: raw samples (one per tick, 1 Hz under the
//! supervisor) for 2 hours, then one row per series per minute for 7 days,
//! then one per hour for 400 days; older rows are deleted. With 8 workers
//! and 8 GPUs (17 series: the session's totals, 8 workers, 8 GPUs) that is
//! at most about 122 000 raw, 171 000 minute and 163 000 hour rows; at the
//! size a row takes (docs/benchmarks.md) the file stays under about 100 MB
//! (SQLite reuses freed pages; it does not shrink).
//!
//! A downsampled row stands for the rows it replaced (`samples` of them,
//! `resolution_s` 60 or 3600) and keeps every figure the reports sum exact:
//!
//! - counters (`shares_*`, `blocks_found`, `energy_mj`), `uptime_seconds`,
//!   `last_*`, `throttle_reasons` and `memory_used_mib`: the last row's, so
//!   the next sample's advance is computed as before;
//! - the advances (`*_delta`, `energy_delta_mj`) and `counter_reset`,
//!   `energy_unknown`: summed, so the shares and energy of any hour or day
//!   are what they were;
//! - gauges (hashrate, power, temperatures, utilisation, clocks): the
//!   average over the samples;
//! - `recorded_at`: the last row's, in the same minute or hour.
//!
//! Buckets are whole UTC minutes and hours, and each stage stops at a
//! bucket boundary, so a bucket is merged once.

use super::{History, HistoryError};
use rusqlite::{Transaction, params};

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;

/// How long each resolution is kept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Raw samples are kept this long, then merged into minutes.
    pub raw_seconds: f64,
    /// Minute rows are kept this long, then merged into hours.
    pub minute_seconds: f64,
    /// Nothing is kept longer than this.
    pub hour_seconds: f64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_seconds: 2.0 * HOUR,
            minute_seconds: 7.0 * 24.0 * HOUR,
            hour_seconds: 400.0 * 24.0 * HOUR,
        }
    }
}

/// What a prune did (rows of both tables).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows older than the retention, deleted.
    pub deleted: u64,
    /// Rows merged into minute rows.
    pub into_minutes: u64,
    /// Rows merged into hour rows.
    pub into_hours: u64,
}

impl History {
    /// Applies [`Retention::default`] as of `now` (seconds since the Unix
    /// epoch). The supervisor calls it every few minutes.
    pub fn prune(&mut self, now: f64) -> Result<Pruned, HistoryError> {
        self.prune_with(now, Retention::default())
    }

    /// Applies `retention` as of `now`, in one transaction.
    pub fn prune_with(&mut self, now: f64, retention: Retention) -> Result<Pruned, HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        let pruned = prune(&tx, now, retention).map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(pruned)
    }
}

fn prune(tx: &Transaction<'_>, now: f64, retention: Retention) -> rusqlite::Result<Pruned> {
    let oldest = now - retention.hour_seconds;
    let mut deleted = 0;
    for table in ["mining_stats", "gpu_samples"] {
        deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE recorded_at < ?1"),
            params![oldest],
        )? as u64;
    }
    // Hours first: rows that are already past the minute stage (a history
    // not pruned for days) go to their hour at once.
    let into_hours = merge(tx, HOUR, aligned(now - retention.minute_seconds, HOUR))?;
    let into_minutes = merge(tx, MINUTE, aligned(now - retention.raw_seconds, MINUTE))?;
    Ok(Pruned {
        deleted,
        into_minutes,
        into_hours,
    })
}

/// `t` rounded down to a whole bucket.
fn aligned(t: f64, bucket: f64) -> f64 {
    (t / bucket).floor() * bucket
}

/// Merges the rows of finer resolution than `bucket` recorded before
/// `cutoff` into one row per series and bucket; returns how many rows were
/// merged.
fn merge(tx: &Transaction<'_>, bucket: f64, cutoff: f64) -> rusqlite::Result<u64> {
    let resolution = bucket as i64;
    // SQLite: with exactly one max() in the query, the bare columns are the
    // values of the row holding that max, the last row of the bucket.
    tx.execute(
        "INSERT INTO mining_stats (recorded_at, provider_id, shares_submitted, shares_accepted, \
             blocks_found, hashrate, uptime_seconds, last_share_at, last_error, payout_target, \
             fees_owed, session_id, worker, shares_rejected, shares_submitted_delta, \
             shares_accepted_delta, shares_rejected_delta, blocks_found_delta, counter_reset, \
             resolution_s, samples) \
         SELECT max(recorded_at), provider_id, shares_submitted, shares_accepted, blocks_found, \
             total(hashrate * samples) / sum(samples), uptime_seconds, last_share_at, last_error, \
             payout_target, fees_owed, session_id, worker, shares_rejected, \
             sum(shares_submitted_delta), sum(shares_accepted_delta), sum(shares_rejected_delta), \
             sum(blocks_found_delta), total(counter_reset), ?1, sum(samples) \
         FROM mining_stats WHERE resolution_s < ?1 AND recorded_at < ?2 \
         GROUP BY session_id, worker, provider_id, CAST(recorded_at / ?1 AS INTEGER)",
        params![resolution, cutoff],
    )?;
    let mut merged = tx.execute(
        "DELETE FROM mining_stats WHERE resolution_s < ?1 AND recorded_at < ?2",
        params![resolution, cutoff],
    )? as u64;
    let mean = |column: &str| {
        format!(
            "total({column} * samples) / \
             sum(CASE WHEN {column} IS NULL THEN NULL ELSE samples END)"
        )
    };
    tx.execute(
        &format!(
            "INSERT INTO gpu_samples (recorded_at, session_id, gpu, uuid, power_w, energy_mj, \
                 energy_delta_mj, energy_unknown, gpu_temp_c, memory_temp_c, gpu_util_percent, \
                 memory_util_percent, memory_used_mib, sm_clock_mhz, memory_clock_mhz, \
                 throttle_reasons, counter_reset, resolution_s, samples) \
             SELECT max(recorded_at), session_id, gpu, uuid, {power}, energy_mj, \
                 sum(energy_delta_mj), total(energy_unknown), {gpu_temp}, {memory_temp}, \
                 {gpu_util}, {memory_util}, memory_used_mib, {sm_clock}, {memory_clock}, \
                 throttle_reasons, total(counter_reset), ?1, sum(samples) \
             FROM gpu_samples WHERE resolution_s < ?1 AND recorded_at < ?2 \
             GROUP BY session_id, gpu, uuid, CAST(recorded_at / ?1 AS INTEGER)",
            power = mean("power_w"),
            gpu_temp = mean("gpu_temp_c"),
            memory_temp = mean("memory_temp_c"),
            gpu_util = mean("gpu_util_percent"),
            memory_util = mean("memory_util_percent"),
            sm_clock = mean("sm_clock_mhz"),
            memory_clock = mean("memory_clock_mhz"),
        ),
        params![resolution, cutoff],
    )?;
    merged += tx.execute(
        "DELETE FROM gpu_samples WHERE resolution_s < ?1 AND recorded_at < ?2",
        params![resolution, cutoff],
    )? as u64;
    Ok(merged)
}
