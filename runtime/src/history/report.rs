//! The queries: shares and energy per hour, joules per accepted share per
//! day ([`History::report`]), and the last minutes per worker and GPU for
//! `jarvis mine top` ([`History::recent`]).
//!
//! Every figure is a sum of the rows' advances (see `record.rs`), so counter
//! resets and downsampling are already accounted for. Shares come from the
//! sessions' totals rows (`worker` NULL); energy from every GPU sample.
//! Hours and days are UTC; a row counts in the hour of its `recorded_at`.

use super::record::count;
use super::{History, HistoryError};
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const MJ_PER_KWH: f64 = 3.6e9;

/// Shares and energy from `since` on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The start of the window, seconds since the Unix epoch.
    pub since: f64,
    /// The last sample in the window (`None` when there is none).
    pub last_sample_at: Option<f64>,
    /// Hours with samples, oldest first.
    pub hours: Vec<HourRow>,
    /// Days with samples, oldest first.
    pub days: Vec<DayRow>,
}

/// One UTC hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourRow {
    /// "2026-05-01T13:00Z".
    pub hour: String,
    /// Its start, seconds since the Unix epoch.
    pub start: i64,
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub blocks_found: u64,
    /// The GPUs' energy counters' advance, joules; `None` without a reading.
    pub energy_j: Option<f64>,
    pub energy_kwh: Option<f64>,
    /// Some GPU samples had no energy reading: the energy is a lower bound.
    pub energy_partial: bool,
    /// Counter resets seen (a worker restarted, a driver reloaded).
    pub counter_resets: u64,
}

/// One UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayRow {
    /// "2026-05-01".
    pub day: String,
    pub start: i64,
    pub shares_accepted: u64,
    pub energy_j: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub energy_partial: bool,
    /// Energy per accepted share, joules: `None` without an accepted share
    /// or without an energy reading.
    pub joules_per_share: Option<f64>,
}

/// The last minutes per series, for `jarvis mine top`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recent {
    /// Each series of `mining_stats`: the sessions' totals (`worker`
    /// `None`) and each worker.
    pub workers: Vec<WorkerRecent>,
    pub gpus: Vec<GpuRecent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerRecent {
    pub session_id: Option<String>,
    pub worker: Option<u32>,
    /// Minutes with samples, oldest first (a minute without any is absent).
    pub minutes: Vec<WorkerMinute>,
}

/// One minute's advance of a worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerMinute {
    /// Its start, seconds since the Unix epoch.
    pub start: i64,
    pub shares_submitted: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub blocks_found: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuRecent {
    pub gpu: u32,
    pub uuid: Option<String>,
    /// Minutes with samples, oldest first.
    pub minutes: Vec<GpuMinute>,
}

/// One minute of a GPU's samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuMinute {
    pub start: i64,
    /// The mean power draw, W.
    pub power_w: Option<f64>,
    /// The highest GPU and memory temperatures, °C.
    pub gpu_temp_c: Option<f64>,
    pub memory_temp_c: Option<f64>,
    /// The last sample's throttle reasons (empty: none).
    pub throttle_reasons: Option<Vec<String>>,
}

/// How many rows one tick left (a check that ticks are whole).
#[derive(Debug, Clone, PartialEq)]
pub struct TickRows {
    pub recorded_at: f64,
    pub session_id: Option<String>,
    pub mining_stats: u32,
    pub gpu_samples: u32,
}

impl History {
    /// Shares and energy per UTC hour and day from `since` (seconds since
    /// the Unix epoch) on.
    pub fn report(&self, since: f64) -> Result<Report, HistoryError> {
        let mut hours: BTreeMap<i64, HourRow> = BTreeMap::new();
        let mut last_sample_at = None::<f64>;
        let mut later = |at: Option<f64>| {
            if let Some(at) = at {
                last_sample_at = Some(last_sample_at.map_or(at, |last| last.max(at)));
            }
        };
        {
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT CAST(recorded_at / 3600 AS INTEGER) AS hour, \
                         ifnull(sum(shares_submitted_delta), 0), ifnull(sum(shares_accepted_delta), 0), \
                         ifnull(sum(shares_rejected_delta), 0), ifnull(sum(blocks_found_delta), 0), \
                         ifnull(sum(counter_reset), 0), max(recorded_at) \
                     FROM mining_stats WHERE worker IS NULL AND recorded_at >= ?1 \
                     GROUP BY hour",
                )
                .map_err(|e| self.error(e))?;
            let mut rows = statement.query(params![since]).map_err(|e| self.error(e))?;
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                let mut read = || -> rusqlite::Result<()> {
                    let hour = hours.entry(row.get(0)?).or_default();
                    hour.shares_submitted = count(row.get(1)?);
                    hour.shares_accepted = count(row.get(2)?);
                    hour.shares_rejected = count(row.get(3)?);
                    hour.blocks_found = count(row.get(4)?);
                    hour.counter_resets += count(row.get(5)?);
                    later(row.get(6)?);
                    Ok(())
                };
                read().map_err(|e| self.error(e))?;
            }
        }
        {
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT CAST(recorded_at / 3600 AS INTEGER) AS hour, sum(energy_delta_mj), \
                         ifnull(sum(energy_unknown), 0), ifnull(sum(counter_reset), 0), \
                         max(recorded_at) \
                     FROM gpu_samples WHERE recorded_at >= ?1 GROUP BY hour",
                )
                .map_err(|e| self.error(e))?;
            let mut rows = statement.query(params![since]).map_err(|e| self.error(e))?;
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                let mut read = || -> rusqlite::Result<()> {
                    let hour = hours.entry(row.get(0)?).or_default();
                    let energy_mj: Option<i64> = row.get(1)?;
                    hour.energy_j = energy_mj.map(|mj| count(mj) as f64 / 1000.0);
                    hour.energy_kwh = energy_mj.map(|mj| count(mj) as f64 / MJ_PER_KWH);
                    hour.energy_partial = row.get::<_, i64>(2)? > 0;
                    hour.counter_resets += count(row.get(3)?);
                    later(row.get(4)?);
                    Ok(())
                };
                read().map_err(|e| self.error(e))?;
            }
        }
        let hours: Vec<HourRow> = hours
            .into_iter()
            .map(|(index, mut hour)| {
                hour.start = index * HOUR;
                hour.hour = format!("{}Z", utc(hour.start, true));
                hour
            })
            .collect();
        Ok(Report {
            since,
            last_sample_at,
            days: days(&hours),
            hours,
        })
    }

    /// The last `minutes` minutes before `now`, per minute: each series'
    /// shares and each GPU's power and temperatures.
    pub fn recent(&self, now: f64, minutes: u32) -> Result<Recent, HistoryError> {
        let since = now - f64::from(minutes) * 60.0;
        let mut workers: Vec<WorkerRecent> = Vec::new();
        {
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT session_id, worker, CAST(recorded_at / 60 AS INTEGER) AS minute, \
                         ifnull(sum(shares_submitted_delta), 0), ifnull(sum(shares_accepted_delta), 0), \
                         ifnull(sum(shares_rejected_delta), 0), ifnull(sum(blocks_found_delta), 0) \
                     FROM mining_stats WHERE recorded_at >= ?1 AND recorded_at <= ?2 \
                     GROUP BY session_id, worker, minute \
                     ORDER BY session_id, worker IS NOT NULL, worker, minute",
                )
                .map_err(|e| self.error(e))?;
            let mut rows = statement
                .query(params![since, now])
                .map_err(|e| self.error(e))?;
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                let mut read = || -> rusqlite::Result<()> {
                    let session_id: Option<String> = row.get(0)?;
                    let worker: Option<u32> = row.get(1)?;
                    let minute = WorkerMinute {
                        start: row.get::<_, i64>(2)? * 60,
                        shares_submitted: count(row.get(3)?),
                        shares_accepted: count(row.get(4)?),
                        shares_rejected: count(row.get(5)?),
                        blocks_found: count(row.get(6)?),
                    };
                    match workers.last_mut() {
                        Some(last) if last.session_id == session_id && last.worker == worker => {
                            last.minutes.push(minute);
                        }
                        _ => workers.push(WorkerRecent {
                            session_id,
                            worker,
                            minutes: vec![minute],
                        }),
                    }
                    Ok(())
                };
                read().map_err(|e| self.error(e))?;
            }
        }
        let mut gpus: Vec<GpuRecent> = Vec::new();
        {
            let mut statement = self
                .conn
                .prepare_cached(
                    "SELECT gpu, uuid, recorded_at, power_w, gpu_temp_c, memory_temp_c, \
                         throttle_reasons \
                     FROM gpu_samples WHERE recorded_at >= ?1 AND recorded_at <= ?2 \
                     ORDER BY gpu, uuid, recorded_at",
                )
                .map_err(|e| self.error(e))?;
            let mut rows = statement
                .query(params![since, now])
                .map_err(|e| self.error(e))?;
            // Per minute: the power's sum and count for its mean.
            let mut power = (0.0, 0u32);
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                let mut read = || -> rusqlite::Result<()> {
                    let gpu: u32 = row.get(0)?;
                    let uuid: Option<String> = row.get(1)?;
                    let start = (row.get::<_, f64>(2)? / 60.0).floor() as i64 * 60;
                    let power_w: Option<f64> = row.get(3)?;
                    let gpu_temp: Option<f64> = row.get(4)?;
                    let memory_temp: Option<f64> = row.get(5)?;
                    let throttle: Option<String> = row.get(6)?;
                    if !matches!(gpus.last(), Some(last) if last.gpu == gpu && last.uuid == uuid) {
                        gpus.push(GpuRecent {
                            gpu,
                            uuid,
                            minutes: Vec::new(),
                        });
                    }
                    let series = gpus.last_mut().expect("just pushed");
                    if series.minutes.last().is_none_or(|m| m.start != start) {
                        series.minutes.push(GpuMinute {
                            start,
                            ..GpuMinute::default()
                        });
                        power = (0.0, 0);
                    }
                    let minute = series.minutes.last_mut().expect("just pushed");
                    if let Some(watts) = power_w {
                        power = (power.0 + watts, power.1 + 1);
                        minute.power_w = Some(power.0 / f64::from(power.1));
                    }
                    minute.gpu_temp_c = max(minute.gpu_temp_c, gpu_temp);
                    minute.memory_temp_c = max(minute.memory_temp_c, memory_temp);
                    minute.throttle_reasons = throttle.map(|text| {
                        text.split(',')
                            .filter(|name| !name.is_empty())
                            .map(str::to_owned)
                            .collect()
                    });
                    Ok(())
                };
                read().map_err(|e| self.error(e))?;
            }
        }
        Ok(Recent { workers, gpus })
    }

    /// The rows of each tick from `since` on, oldest first: a tick written
    /// whole has one `mining_stats` row per series and one `gpu_samples` row
    /// per GPU (`jarvis mine supervise`'s crash test reads it).
    pub fn tick_rows(&self, since: f64) -> Result<Vec<TickRows>, HistoryError> {
        let mut ticks: BTreeMap<(u64, Option<String>), TickRows> = BTreeMap::new();
        for (table, gpu) in [("mining_stats", false), ("gpu_samples", true)] {
            let mut statement = self
                .conn
                .prepare(&format!(
                    "SELECT recorded_at, session_id, count(*) FROM {table} \
                     WHERE recorded_at >= ?1 GROUP BY recorded_at, session_id"
                ))
                .map_err(|e| self.error(e))?;
            let rows = statement
                .query_map(params![since], |row| {
                    Ok((
                        row.get::<_, f64>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, u32>(2)?,
                    ))
                })
                .map_err(|e| self.error(e))?;
            for row in rows {
                let (recorded_at, session_id, rows) = row.map_err(|e| self.error(e))?;
                let tick = ticks
                    .entry((recorded_at.to_bits(), session_id.clone()))
                    .or_insert(TickRows {
                        recorded_at,
                        session_id,
                        mining_stats: 0,
                        gpu_samples: 0,
                    });
                if gpu {
                    tick.gpu_samples = rows;
                } else {
                    tick.mining_stats = rows;
                }
            }
        }
        let mut ticks: Vec<TickRows> = ticks.into_values().collect();
        ticks.sort_by(|a, b| a.recorded_at.total_cmp(&b.recorded_at));
        Ok(ticks)
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The days of `hours`, with joules per accepted share.
fn days(hours: &[HourRow]) -> Vec<DayRow> {
    let mut days: BTreeMap<i64, DayRow> = BTreeMap::new();
    for hour in hours {
        let start = hour.start.div_euclid(DAY) * DAY;
        let day = days.entry(start).or_insert_with(|| DayRow {
            day: utc(start, false),
            start,
            ..DayRow::default()
        });
        day.shares_accepted += hour.shares_accepted;
        if let Some(joules) = hour.energy_j {
            day.energy_j = Some(day.energy_j.unwrap_or(0.0) + joules);
        }
        day.energy_partial |= hour.energy_partial;
    }
    days.into_values()
        .map(|mut day| {
            day.energy_kwh = day.energy_j.map(|joules| joules / 3.6e6);
            day.joules_per_share = day
                .energy_j
                .filter(|_| day.shares_accepted > 0)
                .map(|joules| joules / day.shares_accepted as f64);
            day
        })
        .collect()
}

/// "2026-05-01T13:00" (with the hour) or "2026-05-01", UTC.
pub(crate) fn utc(seconds: i64, with_hour: bool) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return seconds.to_string();
    };
    let date = format!(
        "{:04}-{:02}-{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    );
    if with_hour {
        format!("{date}T{:02}:{:02}", time.hour(), time.minute())
    } else {
        date
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{temp_history, tick};
    use super::super::{Pruned, Retention};
    use super::*;

    /// 2026-05-01T00:00:00Z.
    const MIDNIGHT: f64 = 1_777_593_600.0;

    #[test]
    fn utc_labels() {
        assert_eq!(utc(MIDNIGHT as i64 + 13 * 3600, true), "2026-05-01T13:00");
        assert_eq!(utc(MIDNIGHT as i64, false), "2026-05-01");
    }

    /// Known numbers: two workers at 1 Hz over two hours, worker 1
    /// restarting (its count resets) and GPU 1's counter resetting.
    fn known_history() -> (tempfile::TempDir, History) {
        let (dir, mut history) = temp_history();
        // Hour 0 (23:00 the day before) to hour 2; one tick every 10 s.
        let start = MIDNIGHT - 3600.0;
        let mut accepted = [0u64, 0];
        let mut energy = [1_000_000u64, 5_000_000];
        for i in 0..=(2 * 360) {
            let at = start + f64::from(i) * 10.0;
            if i > 0 {
                accepted[0] += 1;
                accepted[1] += 2;
                energy[0] += 4_000_000; // 4 kJ per 10 s: 400 W
                energy[1] += 4_000_000;
            }
            if i == 400 {
                accepted[1] = 3; // worker 1 restarted: 3 since
                energy[1] = 2_000_000; // driver reload: 2 kJ since
            }
            history.record(&tick(at, accepted, energy)).unwrap();
        }
        (dir, history)
    }

    #[test]
    fn round_trip_with_resets() {
        let (_dir, history) = known_history();
        let report = history.report(0.0).unwrap();
        let hours: Vec<(&str, u64, u64, u64)> = report
            .hours
            .iter()
            .map(|h| {
                (
                    h.hour.as_str(),
                    h.shares_accepted,
                    h.shares_submitted,
                    h.counter_resets,
                )
            })
            .collect();
        // Hour 1 (23:00): ticks 1..=359 (360 s later is the next hour):
        // 359 × 3 accepted; hour 2 (00:00): ticks 360..=719, with the reset
        // at tick 400 counting 3 (its own advance) instead of 2 for worker 1;
        // hour 3 (01:00): tick 720.
        assert_eq!(
            hours,
            [
                ("2026-04-30T23:00Z", 359 * 3, 359 * 3, 0),
                // (Worker 1's reset tick counts its 4 submitted since.)
                ("2026-05-01T00:00Z", 360 * 3 + 1, 360 * 3 + 2, 2),
                ("2026-05-01T01:00Z", 3, 3, 0),
            ]
        );
        // Energy: 8 kJ per tick, except the reset tick of GPU 1, which
        // counts 2 kJ (what it counted since the reset) instead of 4 kJ.
        let energy: Vec<Option<f64>> = report.hours.iter().map(|h| h.energy_j).collect();
        assert_eq!(
            energy,
            [
                Some(359.0 * 8000.0),
                Some(360.0 * 8000.0 - 2000.0),
                Some(8000.0)
            ]
        );
        assert!((report.hours[0].energy_kwh.unwrap() - 359.0 * 8000.0 / 3.6e6).abs() < 1e-12);
        assert_eq!(report.days.len(), 2);
        let day = &report.days[1];
        assert_eq!(day.day, "2026-05-01");
        assert_eq!(day.shares_accepted, 360 * 3 + 1 + 3);
        let joules = 361.0 * 8000.0 - 2000.0;
        assert_eq!(day.energy_j, Some(joules));
        assert_eq!(day.joules_per_share, Some(joules / 1084.0));
        assert_eq!(report.last_sample_at, Some(MIDNIGHT + 3600.0));
        // The window cuts: from midnight only day 2.
        let from_midnight = history.report(MIDNIGHT).unwrap();
        assert_eq!(from_midnight.days.len(), 1);
        assert_eq!(from_midnight.hours[0].shares_accepted, 360 * 3 + 1);
    }

    #[test]
    fn downsampling_keeps_totals_and_the_next_advance() {
        let (_dir, mut history) = known_history();
        let before = history.report(0.0).unwrap();
        let recent_before = history.recent(MIDNIGHT + 3600.0, 90).unwrap();
        // Everything raw becomes minutes, then everything hours.
        let now = MIDNIGHT + 3600.0 + 1.0;
        let retention = Retention {
            raw_seconds: 0.0,
            minute_seconds: 30.0 * 86_400.0,
            hour_seconds: 400.0 * 86_400.0,
        };
        let pruned = history.prune_with(now, retention).unwrap();
        // 720 ticks × 5 rows (3 mining_stats, 2 GPUs) before 01:00 merged
        // into 120 minutes × 5; tick 720 is in the current minute.
        assert_eq!(pruned.into_minutes, 720 * 5);
        assert_eq!(pruned.into_hours, 0);
        assert_eq!(history.report(0.0).unwrap(), before);
        let recent_after = history.recent(MIDNIGHT + 3600.0, 90).unwrap();
        assert_eq!(recent_after.workers, recent_before.workers);
        // Idempotent.
        assert_eq!(
            history.prune_with(now, retention).unwrap(),
            Pruned::default()
        );
        let hours = Retention {
            minute_seconds: 0.0,
            ..retention
        };
        let pruned = history.prune_with(now + 3600.0, hours).unwrap();
        assert_eq!(pruned.into_hours, 120 * 5 + 5);
        assert_eq!(history.report(0.0).unwrap(), before);
        // Counting continues from the merged rows' last counters.
        // (10 s after the last tick: within the gap the history measures.)
        let mut next = tick(MIDNIGHT + 3610.0, [721, 3 + 2 * 320 + 2], [0, 0]);
        next.gpus.clear();
        history.record(&next).unwrap();
        let after = history.report(MIDNIGHT + 3605.0).unwrap();
        assert_eq!(after.hours[0].shares_accepted, 3, "{after:#?}");
        // Beyond the retention, rows go.
        let gone = history.prune_with(now + 401.0 * 86_400.0, hours).unwrap();
        assert!(gone.deleted > 0);
        assert!(history.report(0.0).unwrap().hours.is_empty());
    }

    #[test]
    fn recent_minutes_per_worker_and_gpu() {
        let (_dir, history) = known_history();
        let recent = history.recent(MIDNIGHT + 3600.0, 2).unwrap();
        let series: Vec<(Option<u32>, usize)> = recent
            .workers
            .iter()
            .map(|w| (w.worker, w.minutes.len()))
            .collect();
        // Totals first, then each worker; minutes 00:58, 00:59 and 01:00.
        assert_eq!(series, [(None, 3), (Some(0), 3), (Some(1), 3)]);
        assert_eq!(recent.workers[1].minutes[1].shares_accepted, 6);
        assert_eq!(recent.workers[2].minutes[1].shares_accepted, 12);
        assert_eq!(recent.gpus.len(), 2);
        let minute = &recent.gpus[1].minutes[1];
        assert_eq!(minute.power_w, Some(401.0));
        assert_eq!(minute.gpu_temp_c, Some(61.0));
        assert_eq!(minute.throttle_reasons, Some(vec![]));
    }

    #[test]
    fn a_gpu_without_energy_is_unknown_not_zero() {
        let (_dir, mut history) = temp_history();
        for i in 0..3u32 {
            let n = u64::from(i);
            let mut t = tick(MIDNIGHT + f64::from(i), [n, n], [1000 * n; 2]);
            t.gpus[1].energy_mj = None;
            history.record(&t).unwrap();
        }
        let report = history.report(0.0).unwrap();
        assert_eq!(report.hours[0].energy_j, Some(2.0));
        assert!(report.hours[0].energy_partial);
        assert!(report.days[0].energy_partial);
        // No GPUs at all: no energy, no joules per share.
        let (_dir, mut history) = temp_history();
        let mut t = tick(MIDNIGHT, [1, 1], [0, 0]);
        t.gpus.clear();
        history.record(&t).unwrap();
        let report = history.report(0.0).unwrap();
        assert_eq!(report.days[0].energy_j, None);
        assert_eq!(report.days[0].joules_per_share, None);
    }

    #[test]
    fn a_single_worker_session_counts_its_totals() {
        let (_dir, mut history) = temp_history();
        for (i, accepted) in [5u64, 7, 2, 4].into_iter().enumerate() {
            let mut t = tick(MIDNIGHT + i as f64, [0, 0], [0, 0]);
            t.workers.clear();
            t.totals.shares_accepted = accepted;
            history.record(&t).unwrap();
        }
        // Baseline 5; +2; reset to 2: +2; +2.
        assert_eq!(history.report(0.0).unwrap().hours[0].shares_accepted, 6);
        let ticks = history.tick_rows(0.0).unwrap();
        assert_eq!(ticks.len(), 4);
        assert!(
            ticks
                .iter()
                .all(|t| t.mining_stats == 1 && t.gpu_samples == 2)
        );
    }
}
