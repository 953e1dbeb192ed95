//! The session's energy since its baseline, and what it cost per share.
//!
//! Every figure is an estimate over the measured window, from the baseline
//! (taken when `start` ran the session's containers) to this sample:
//!
//! - energy: the sum over the session's GPUs of the energy counter's advance
//!   (`host_gpu::energy_since`: a counter that went down was reset by a
//!   driver reload, and counts from the reset, a lower bound). A GPU without
//!   a counter, at the start or now, makes the energy unknown: it is never
//!   guessed from the power draw;
//! - joules per accepted share and per block: that energy divided by the
//!   session's counts (the miner counts from its start, as the window does);
//!   none yet is no figure (`null`), not infinity;
//! - shares per kWh, and the cost at `[mining.extra].electricity_price_per_kwh`;
//! - the same for each worker of a session of several, over its own GPUs
//!   and its own counts (a worker the host restarted counts from its
//!   container's first start, as the window does).
//!
//! What the GPUs drew before the window and what the rest of the machine
//! draws (CPU, fans, power supply losses) are not in it.

use super::baseline::Baseline;
use host_gpu::telemetry::{GpuTelemetry, Telemetry};
use host_gpu::{EnergyDelta, energy_since};
use serde::Serialize;

/// Millijoules in a kilowatt-hour.
const MJ_PER_KWH: f64 = 3.6e9;

/// The `energy` object of `status --json`. A figure that cannot be known is
/// `null`, with the reason in `unknown` when it is the energy itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyReport {
    /// When the window began (the baseline), Unix seconds.
    pub since: Option<f64>,
    /// The window's length, seconds.
    pub window_seconds: Option<f64>,
    /// Energy the session's GPUs used in the window.
    pub energy_j: Option<f64>,
    pub energy_kwh: Option<f64>,
    /// Why `energy_j` is unknown.
    pub unknown: Option<String>,
    /// A GPU's counter went down (a driver reload) in the window: what it
    /// used before the reset is lost, so the energy is a lower bound.
    pub counter_reset: bool,
    /// Each session GPU's share.
    pub gpus: Vec<GpuEnergy>,
    pub shares_accepted: Option<u64>,
    pub blocks_found: Option<u64>,
    pub joules_per_share: Option<f64>,
    pub joules_per_block: Option<f64>,
    pub shares_per_kwh: Option<f64>,
    /// `[mining.extra].electricity_price_per_kwh`, in the user's currency.
    pub electricity_price_per_kwh: Option<f64>,
    /// `energy_kwh` × the price.
    pub cost: Option<f64>,
    /// Each worker's share, for a session of several workers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerEnergy>,
}

/// One worker's energy and what it cost per share, over its GPUs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerEnergy {
    pub index: usize,
    /// Host GPU ids (NVML indexes or UUIDs), as the session records them.
    pub gpus: Vec<String>,
    /// `None`: one of its GPUs gave no energy (the session's `unknown`
    /// says why), or none of them was read.
    pub energy_j: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub shares_accepted: Option<u64>,
    pub blocks_found: Option<u64>,
    pub joules_per_share: Option<f64>,
    pub joules_per_block: Option<f64>,
    pub shares_per_kwh: Option<f64>,
    pub cost: Option<f64>,
}

/// A worker of the session, and its counts (`None`: the provider gave
/// none for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerShares {
    pub index: usize,
    pub gpus: Vec<String>,
    pub counts: Option<Counts>,
}

/// One GPU's energy in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuEnergy {
    pub index: u32,
    pub uuid: Option<String>,
    /// `None`: no energy counter at the start or now.
    pub energy_j: Option<f64>,
    pub counter_reset: bool,
}

/// The session's counts the energy is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub shares_accepted: u64,
    pub blocks_found: u64,
}

/// The energy report for `sample`, against the session's `baseline` (or why
/// there is none), with the session's `counts` (`None`: the provider gave
/// no stats) and the user's `price` per kWh.
pub fn report(
    baseline: Result<&Baseline, String>,
    sample: &Telemetry,
    counts: Option<Counts>,
    price: Option<f64>,
) -> EnergyReport {
    let mut report = EnergyReport {
        since: None,
        window_seconds: None,
        energy_j: None,
        energy_kwh: None,
        unknown: None,
        counter_reset: false,
        gpus: Vec::new(),
        shares_accepted: counts.map(|c| c.shares_accepted),
        blocks_found: counts.map(|c| c.blocks_found),
        joules_per_share: None,
        joules_per_block: None,
        shares_per_kwh: None,
        electricity_price_per_kwh: price,
        cost: None,
        workers: Vec::new(),
    };
    let baseline = match baseline {
        Ok(baseline) => baseline,
        Err(why) => {
            report.unknown = Some(why);
            return report;
        }
    };
    report.since = Some(baseline.taken_at);
    report.window_seconds = Some((sample.sampled_at - baseline.taken_at).max(0.0));
    let mut unknown: Vec<String> = Vec::new();
    let mut total_mj: u128 = 0;
    for gpu in &sample.gpus {
        let delta = used(baseline, gpu);
        if let Some(delta) = delta {
            total_mj += u128::from(delta.used_mj);
            report.counter_reset |= delta.reset;
        } else {
            unknown.push(gpu.index.to_string());
        }
        report.gpus.push(GpuEnergy {
            index: gpu.index,
            uuid: gpu.uuid.clone(),
            energy_j: delta.map(|d| d.joules()),
            counter_reset: delta.is_some_and(|d| d.reset),
        });
    }
    if sample.gpus.is_empty() {
        report.unknown = Some("no GPU was read now".to_owned());
        return report;
    }
    if baseline.gpus.is_empty() {
        report.unknown = Some(match &baseline.note {
            Some(note) => format!("no GPU was read when the session started: {note}"),
            None => "no GPU was read when the session started".to_owned(),
        });
        return report;
    }
    if !unknown.is_empty() {
        report.unknown = Some(format!(
            "GPU {} gave no energy counter reading at the start or now (not supported on the GPU, \
             or not read); the energy is not estimated from the power draw",
            unknown.join(", ")
        ));
        return report;
    }
    let energy_j = total_mj as f64 / 1000.0;
    let energy_kwh = total_mj as f64 / MJ_PER_KWH;
    report.energy_j = Some(energy_j);
    report.energy_kwh = Some(energy_kwh);
    report.cost = price.map(|price| energy_kwh * price);
    if let Some(counts) = counts {
        report.joules_per_share = per(energy_j, counts.shares_accepted);
        report.joules_per_block = per(energy_j, counts.blocks_found);
        report.shares_per_kwh =
            (energy_kwh > 0.0).then(|| counts.shares_accepted as f64 / energy_kwh);
    }
    report
}

/// Each worker's energy from the GPUs' shares in `report` (matched by
/// NVML index or UUID), divided by its own counts, at `price` per kWh.
pub fn per_worker(report: &EnergyReport, workers: &[WorkerShares]) -> Vec<WorkerEnergy> {
    workers
        .iter()
        .map(|worker| {
            let gpus: Vec<Option<f64>> = worker
                .gpus
                .iter()
                .map(|id| {
                    report
                        .gpus
                        .iter()
                        .find(|gpu| is_gpu(gpu, id))
                        .and_then(|gpu| gpu.energy_j)
                })
                .collect();
            // Every GPU's share known, or no figure: never a partial sum.
            let energy_j = (!gpus.is_empty() && report.energy_j.is_some())
                .then(|| gpus.iter().copied().sum::<Option<f64>>())
                .flatten();
            let energy_kwh = energy_j.map(|j| j * 1000.0 / MJ_PER_KWH);
            let counts = worker.counts;
            WorkerEnergy {
                index: worker.index,
                gpus: worker.gpus.clone(),
                energy_j,
                energy_kwh,
                shares_accepted: counts.map(|c| c.shares_accepted),
                blocks_found: counts.map(|c| c.blocks_found),
                joules_per_share: energy_j
                    .zip(counts)
                    .and_then(|(j, c)| per(j, c.shares_accepted)),
                joules_per_block: energy_j
                    .zip(counts)
                    .and_then(|(j, c)| per(j, c.blocks_found)),
                shares_per_kwh: energy_kwh
                    .zip(counts)
                    .filter(|(kwh, _)| *kwh > 0.0)
                    .map(|(kwh, c)| c.shares_accepted as f64 / kwh),
                cost: energy_kwh
                    .zip(report.electricity_price_per_kwh)
                    .map(|(kwh, price)| kwh * price),
            }
        })
        .collect()
}

/// Whether the session's GPU id `id` (an NVML index or a UUID) is `gpu`.
fn is_gpu(gpu: &GpuEnergy, id: &str) -> bool {
    match id.parse::<u32>() {
        Ok(index) => gpu.index == index,
        Err(_) => gpu
            .uuid
            .as_deref()
            .is_some_and(|uuid| uuid.eq_ignore_ascii_case(id)),
    }
}

/// `total / count`; none for a count of 0.
fn per(total: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| total / count as f64)
}

/// The energy `gpu` used since the baseline: matched by UUID when both
/// readings have one, else by index.
fn used(baseline: &Baseline, gpu: &GpuTelemetry) -> Option<EnergyDelta> {
    let start = baseline
        .gpus
        .iter()
        .find(|start| match (&start.uuid, &gpu.uuid) {
            (Some(then), Some(now)) => then.eq_ignore_ascii_case(now),
            _ => start.index == gpu.index,
        })?;
    Some(energy_since(start.energy_mj?, gpu.energy_mj?))
}

#[cfg(test)]
mod tests {
    use super::super::baseline::BaselineGpu;
    use super::*;

    fn start(readings: &[(u32, Option<u64>)]) -> Baseline {
        Baseline {
            session_id: "s".into(),
            taken_at: 1_000.0,
            gpus: readings
                .iter()
                .map(|(index, energy_mj)| BaselineGpu {
                    index: *index,
                    uuid: Some(format!("GPU-{index}")),
                    energy_mj: *energy_mj,
                })
                .collect(),
            note: None,
        }
    }

    fn now(readings: &[(u32, Option<u64>)]) -> Telemetry {
        Telemetry {
            sampled_at: 1_300.0,
            gpus: readings
                .iter()
                .map(|(index, energy_mj)| GpuTelemetry {
                    index: *index,
                    uuid: Some(format!("GPU-{index}")),
                    energy_mj: *energy_mj,
                    ..GpuTelemetry::default()
                })
                .collect(),
            note: None,
        }
    }

    const COUNTS: Counts = Counts {
        shares_accepted: 4,
        blocks_found: 2,
    };

    #[test]
    fn energy_per_share_per_block_per_kwh_and_cost() {
        // Two GPUs use 1 kWh each (3.6e9 mJ) in five minutes.
        let report = report(
            Ok(&start(&[(0, Some(1_000)), (1, Some(50))])),
            &now(&[(0, Some(3_600_001_000)), (1, Some(3_600_000_050))]),
            Some(COUNTS),
            Some(0.25),
        );
        assert_eq!(report.since, Some(1_000.0));
        assert_eq!(report.window_seconds, Some(300.0));
        assert_eq!(report.energy_j, Some(7_200_000.0));
        assert_eq!(report.energy_kwh, Some(2.0));
        assert_eq!(report.joules_per_share, Some(1_800_000.0));
        assert_eq!(report.joules_per_block, Some(3_600_000.0));
        assert_eq!(report.shares_per_kwh, Some(2.0));
        assert_eq!(report.cost, Some(0.5));
        assert_eq!(report.unknown, None);
        assert!(!report.counter_reset);
        assert_eq!(
            report.gpus[1],
            GpuEnergy {
                index: 1,
                uuid: Some("GPU-1".into()),
                energy_j: Some(3_600_000.0),
                counter_reset: false
            }
        );
    }

    #[test]
    fn no_shares_is_no_figure_not_infinity() {
        let report = report(
            Ok(&start(&[(0, Some(0))])),
            &now(&[(0, Some(900_000))]),
            Some(Counts {
                shares_accepted: 0,
                blocks_found: 0,
            }),
            None,
        );
        assert_eq!(report.energy_j, Some(900.0));
        assert_eq!(report.energy_kwh, Some(0.00025));
        assert_eq!(report.joules_per_share, None);
        assert_eq!(report.joules_per_block, None);
        assert_eq!(report.shares_per_kwh, Some(0.0));
        assert_eq!(report.cost, None);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["joules_per_share"], serde_json::Value::Null);
        // No stats at all: energy, but nothing per share.
        let report = super::report(
            Ok(&start(&[(0, Some(0))])),
            &now(&[(0, Some(0))]),
            None,
            Some(1.0),
        );
        assert_eq!(report.energy_kwh, Some(0.0));
        assert_eq!(report.shares_accepted, None);
        assert_eq!(report.shares_per_kwh, None);
        assert_eq!(report.cost, Some(0.0));
    }

    #[test]
    fn a_counter_reset_counts_from_the_reset_and_says_so() {
        let report = report(
            Ok(&start(&[(0, Some(9_000_000)), (1, Some(1_000))])),
            &now(&[(0, Some(2_000_000)), (1, Some(3_000))]),
            Some(COUNTS),
            None,
        );
        assert!(report.counter_reset);
        assert!(report.gpus[0].counter_reset);
        assert!(!report.gpus[1].counter_reset);
        assert_eq!(report.energy_j, Some(2_002.0));
        assert_eq!(report.joules_per_share, Some(500.5));
    }

    #[test]
    fn a_gpu_without_a_counter_makes_the_energy_unknown() {
        for (then, later) in [(None, Some(5)), (Some(5), None)] {
            let report = report(
                Ok(&start(&[(0, Some(1)), (1, then)])),
                &now(&[(0, Some(2)), (1, later)]),
                Some(COUNTS),
                Some(0.3),
            );
            assert_eq!(report.energy_j, None);
            assert_eq!(report.energy_kwh, None);
            assert_eq!(report.joules_per_share, None);
            assert_eq!(report.cost, None);
            assert!(
                report
                    .unknown
                    .as_deref()
                    .unwrap()
                    .starts_with("GPU 1 gave no energy"),
                "{report:?}"
            );
            assert_eq!(report.gpus[0].energy_j, Some(0.001));
            assert_eq!(report.gpus[1].energy_j, None);
        }
        // A GPU the baseline does not have.
        let report = report(
            Ok(&start(&[(0, Some(1))])),
            &now(&[(0, Some(2)), (3, Some(4))]),
            None,
            None,
        );
        assert!(report.unknown.unwrap().starts_with("GPU 3 gave"));
    }

    #[test]
    fn gpus_are_matched_by_uuid_then_index() {
        // NVML renumbered the GPUs (one was lost): the UUID decides.
        let baseline = start(&[(0, Some(100)), (1, Some(1_000))]);
        let mut sample = now(&[(0, Some(1_500))]);
        sample.gpus[0].uuid = Some("gpu-1".into());
        let report = report(Ok(&baseline), &sample, None, None);
        assert_eq!(report.energy_j, Some(0.5));
        // Without UUIDs the index decides.
        let mut baseline = baseline;
        baseline.gpus.iter_mut().for_each(|gpu| gpu.uuid = None);
        let report = super::report(Ok(&baseline), &sample, None, None);
        assert_eq!(report.energy_j, Some(1.4));
    }

    fn worker(index: usize, gpus: &[&str], accepted: Option<u64>) -> WorkerShares {
        WorkerShares {
            index,
            gpus: gpus.iter().map(|id| (*id).to_owned()).collect(),
            counts: accepted.map(|shares_accepted| Counts {
                shares_accepted,
                blocks_found: shares_accepted / 2,
            }),
        }
    }

    #[test]
    fn each_worker_has_its_own_gpus_energy_and_counts() {
        // Three GPUs: 1, 2 and 3 kWh. Worker 0 mines on GPU 0 (by index),
        // worker 1 on GPUs 1 and 2 (one by UUID, one by index).
        let kwh = 3_600_000_000u64;
        let report = report(
            Ok(&start(&[(0, Some(0)), (1, Some(0)), (2, Some(0))])),
            &now(&[(0, Some(kwh)), (1, Some(2 * kwh)), (2, Some(3 * kwh))]),
            Some(COUNTS),
            Some(0.5),
        );
        let workers = per_worker(
            &report,
            &[
                worker(0, &["0"], Some(4)),
                worker(1, &["gpu-1", "2"], Some(10)),
                worker(2, &["1"], None),
            ],
        );
        assert_eq!(workers[0].energy_kwh, Some(1.0));
        assert_eq!(workers[0].joules_per_share, Some(900_000.0));
        assert_eq!(workers[0].joules_per_block, Some(1_800_000.0));
        assert_eq!(workers[0].shares_per_kwh, Some(4.0));
        assert_eq!(workers[0].cost, Some(0.5));
        assert_eq!(workers[1].gpus, ["gpu-1", "2"]);
        assert_eq!(workers[1].energy_kwh, Some(5.0));
        assert_eq!(workers[1].joules_per_share, Some(1_800_000.0));
        assert_eq!(workers[1].shares_per_kwh, Some(2.0));
        // No counts from the provider for worker 2: energy, nothing per share.
        assert_eq!(workers[2].energy_kwh, Some(2.0));
        assert_eq!(workers[2].shares_accepted, None);
        assert_eq!(
            (workers[2].joules_per_share, workers[2].shares_per_kwh),
            (None, None)
        );
    }

    #[test]
    fn a_worker_with_an_unknown_or_unread_gpu_has_no_figure() {
        let report = report(
            Ok(&start(&[(0, Some(0)), (1, None)])),
            &now(&[(0, Some(5_000)), (1, Some(9_000))]),
            Some(COUNTS),
            None,
        );
        let workers = per_worker(
            &report,
            &[
                worker(0, &["0"], Some(1)),
                worker(1, &["0", "1"], Some(1)),
                worker(2, &["7"], Some(1)),
                worker(3, &[], Some(1)),
            ],
        );
        // The session's energy is unknown (GPU 1 had no counter), so no
        // worker gets a figure, not even the one whose GPU was read.
        assert!(report.energy_j.is_none());
        for worker in &workers {
            assert_eq!(
                (worker.energy_j, worker.joules_per_share),
                (None, None),
                "{worker:?}"
            );
        }
        let report = super::report(
            Ok(&start(&[(0, Some(0))])),
            &now(&[(0, Some(5_000))]),
            None,
            None,
        );
        let workers = per_worker(
            &report,
            &[worker(0, &["0"], None), worker(1, &["GPU-9"], None)],
        );
        assert_eq!(workers[0].energy_j, Some(5.0));
        assert_eq!(workers[1].energy_j, None);
    }

    #[test]
    fn no_baseline_or_no_readings_is_unknown_with_the_reason() {
        let report = report(
            Err("no energy baseline".into()),
            &now(&[(0, Some(2))]),
            Some(COUNTS),
            Some(0.3),
        );
        assert_eq!(report.unknown.as_deref(), Some("no energy baseline"));
        assert_eq!(
            (report.since, report.energy_j, report.cost),
            (None, None, None)
        );
        assert_eq!(report.shares_accepted, Some(4));
        let mut empty = start(&[]);
        empty.note = Some("no telemetry (NVML missing)".into());
        let report = super::report(Ok(&empty), &now(&[(0, Some(2))]), None, None);
        assert_eq!(
            report.unknown.as_deref(),
            Some("no GPU was read when the session started: no telemetry (NVML missing)")
        );
        let report = super::report(Ok(&start(&[(0, Some(1))])), &now(&[]), None, None);
        assert_eq!(report.unknown.as_deref(), Some("no GPU was read now"));
    }
}
