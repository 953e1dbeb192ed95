//! The GPU section of `jarvis mine status`: per-GPU telemetry of the
//! session's GPUs and the energy per share since the session started (see
//! `crate::telemetry`), as rows and a table, as JSON (`gpu_telemetry`,
//! `energy`) and as fields of `--watch`'s plain lines.

use super::super::escape::one_line;
use super::super::output::{DIM, paint, si_joules};
use super::super::session::Opened;
use super::{duration, row};
use crate::host::LABEL_SESSION;
use crate::lifecycle::StatusReport;
use crate::telemetry::energy::WorkerEnergy;
use crate::telemetry::energy::{Counts, WorkerShares};
use crate::telemetry::{EnergyReport, GpuSection, GpuSource, Sampling, section};
use host_gpu::telemetry::GpuTelemetry;
use serde::Serialize;
use std::io::Write;

/// The GPU section of one status.
pub(super) struct Section {
    pub telemetry: GpuSection,
    pub energy: EnergyReport,
}

/// `status --json`: the report, and the GPU section when the session has
/// GPUs (left out otherwise: a session of processes has none).
#[derive(Serialize)]
pub(super) struct Shown<'a> {
    #[serde(flatten)]
    pub report: &'a StatusReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_telemetry: Option<&'a GpuSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<&'a EnergyReport>,
}

impl<'a> Shown<'a> {
    pub fn new(report: &'a StatusReport, section: Option<&'a Section>) -> Shown<'a> {
        Shown {
            report,
            gpu_telemetry: section.map(|s| &s.telemetry),
            energy: section.map(|s| &s.energy),
        }
    }
}

/// One sample of the running session's GPUs and its energy since the
/// baseline; `None` when the session uses no GPU.
pub(super) fn section(
    opened: &Opened,
    report: &StatusReport,
    sampling: &Sampling,
) -> Option<Section> {
    let gpus = report.session_gpus.as_ref()?;
    let session_id = report
        .container
        .as_ref()
        .and_then(|c| c.labels.get(LABEL_SESSION))
        .map(String::as_str);
    let counts = report.stats.as_ref().map(|stats| Counts {
        shares_accepted: stats.shares_accepted,
        blocks_found: stats.blocks_found,
    });
    // The host's record of each worker's GPUs, the provider's counts.
    let workers: Vec<WorkerShares> = report
        .workers
        .iter()
        .map(|worker| WorkerShares {
            index: worker.index,
            gpus: worker.gpus.clone(),
            counts: report
                .stats
                .as_ref()
                .and_then(|s| s.workers.iter().find(|c| c.index as usize == worker.index))
                .map(|c| Counts {
                    shares_accepted: c.shares_accepted,
                    blocks_found: c.blocks_found,
                }),
        })
        .collect();
    let (telemetry, energy) = section::section(
        gpus,
        session_id,
        &opened.paths.energy_baseline(),
        (counts, &workers),
        opened.config.mining.as_ref(),
        sampling,
    );
    Some(Section { telemetry, energy })
}

/// The section as rows: the GPUs, a table of their readings, the energy.
pub(super) fn write_section(out: &mut impl Write, section: &Section) -> std::io::Result<()> {
    let telemetry = &section.telemetry;
    if let Some(why) = telemetry.none_reason() {
        return writeln!(out, "GPU telemetry: none ({})", one_line(&why));
    }
    row(out, "GPU telemetry", gpus_line(telemetry))?;
    for line in table(&telemetry.gpus) {
        writeln!(out, "  {}", one_line(&line))?;
    }
    for gpu in &telemetry.gpus {
        if let Some(errors) = gpu.ecc_volatile_uncorrected.filter(|n| *n > 0) {
            writeln!(
                out,
                "  GPU {}: {errors} uncorrected ECC error{} since the driver loaded",
                gpu.index,
                if errors == 1 { "" } else { "s" }
            )?;
        }
    }
    if let Some(note) = &telemetry.note {
        writeln!(out, "note: {}", one_line(note))?;
    }
    write_energy(out, &section.energy)
}

/// "2 × NVIDIA H100 80GB HBM3, requested: all".
fn gpus_line(telemetry: &GpuSection) -> String {
    let count = telemetry.gpus.len();
    let first = telemetry.gpus.first().and_then(|g| g.name.as_deref());
    let same = telemetry
        .gpus
        .iter()
        .all(|g| g.name.as_deref() == first && first.is_some());
    let what = match (same, first) {
        (true, Some(name)) => format!("{count} × {name}"),
        _ => format!("{count} GPU{}", if count == 1 { "" } else { "s" }),
    };
    let requested = match &telemetry.requested {
        None => "all".to_owned(),
        Some(ids) => ids.join(", "),
    };
    match telemetry.source {
        GpuSource::Container => format!("{what}, requested: {requested}"),
        GpuSource::Config => format!(
            "{what}, the GPUs a request would name ({requested}): the container has none \
             (gpu_request = \"none\")"
        ),
    }
}

/// The readings as a table, one line per GPU after a header; a reading the
/// GPU did not give is "-". The memory temperature and performance state
/// columns appear when some GPU gives them.
fn table(gpus: &[GpuTelemetry]) -> Vec<String> {
    let dash = || "-".to_owned();
    let unit = |value: Option<u32>, unit: &str| value.map_or_else(dash, |v| format!("{v} {unit}"));
    let memory_temp = gpus.iter().any(|g| g.memory_temp_c.is_some());
    let pstate = gpus.iter().any(|g| g.performance_state.is_some());
    let mut header = vec!["GPU", "POWER", "TEMP"];
    if memory_temp {
        header.push("MEM TEMP");
    }
    header.extend(["UTIL", "MEM UTIL", "MEMORY", "SM CLOCK", "MEM CLOCK"]);
    if pstate {
        header.push("PSTATE");
    }
    header.push("THROTTLE");
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for gpu in gpus {
        let mut cells = vec![
            gpu.index.to_string(),
            gpu.power_w.map_or_else(dash, |w| format!("{w:.1} W")),
            unit(gpu.gpu_temp_c, "°C"),
        ];
        if memory_temp {
            cells.push(unit(gpu.memory_temp_c, "°C"));
        }
        cells.push(unit(gpu.gpu_util_percent, "%"));
        cells.push(unit(gpu.memory_util_percent, "%"));
        cells.push(match (gpu.memory_used_mib, gpu.memory_total_mib) {
            (Some(used), Some(total)) => format!("{used}/{total} MiB"),
            (Some(used), None) => format!("{used} MiB used"),
            (None, Some(total)) => format!("-/{total} MiB"),
            (None, None) => dash(),
        });
        cells.push(unit(gpu.sm_clock_mhz, "MHz"));
        cells.push(unit(gpu.memory_clock_mhz, "MHz"));
        if pstate {
            cells.push(gpu.performance_state.clone().unwrap_or_else(dash));
        }
        cells.push(match &gpu.throttle_reasons {
            None => dash(),
            Some(reasons) if reasons.is_empty() => "none".to_owned(),
            Some(reasons) => reasons.join(","),
        });
        rows.push(cells);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|cells| {
            let mut line = String::new();
            for (c, cell) in cells.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < columns {
                    let pad = widths[c] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

fn write_energy(out: &mut impl Write, energy: &EnergyReport) -> std::io::Result<()> {
    let window = match (energy.window_seconds, energy.since) {
        (Some(seconds), Some(_)) => {
            format!("over the {} since the session started", duration(seconds))
        }
        _ => String::new(),
    };
    let (Some(joules), Some(kwh)) = (energy.energy_j, energy.energy_kwh) else {
        let why = energy.unknown.as_deref().unwrap_or("not measured");
        return row(
            out,
            "energy (estimate)",
            format!("unknown ({})", one_line(why)),
        );
    };
    row(
        out,
        "energy (estimate)",
        format!("{kwh:.4} kWh ({}) {window}", si_joules(joules)),
    )?;
    let none = |what: &str| format!("— ({what})");
    let per_share = match (energy.joules_per_share, energy.shares_accepted) {
        (Some(j), Some(n)) => format!("{} ({n} accepted)", si_joules(j)),
        (_, Some(_)) => none("no accepted share yet"),
        (_, None) => none("no share counts from the provider"),
    };
    row(out, "per accepted share", per_share)?;
    let per_block = match (energy.joules_per_block, energy.blocks_found) {
        (Some(j), Some(n)) => format!("{} ({n} found)", si_joules(j)),
        (_, Some(_)) => none("no block yet"),
        (_, None) => none("no block counts from the provider"),
    };
    row(out, "per block", per_block)?;
    row(
        out,
        "shares per kWh",
        energy
            .shares_per_kwh
            .map_or_else(|| "—".to_owned(), |n| format!("{n:.2}")),
    )?;
    if let (Some(cost), Some(price)) = (energy.cost, energy.electricity_price_per_kwh) {
        row(
            out,
            "cost (estimate)",
            format!("{cost:.4} at {price} per kWh"),
        )?;
    }
    for worker in &energy.workers {
        row(
            out,
            &format!("  worker {}", worker.index),
            worker_energy(worker),
        )?;
    }
    let reset: Vec<String> = energy
        .gpus
        .iter()
        .filter(|g| g.counter_reset)
        .map(|g| g.index.to_string())
        .collect();
    if !reset.is_empty() {
        writeln!(
            out,
            "note: the energy counter of GPU {} went back (a driver reload) in the window: \
             what it counted before that is lost, so the energy is a lower bound",
            reset.join(", ")
        )?;
    }
    writeln!(
        out,
        "{}",
        paint(
            DIM,
            "energy figures are estimates over the window measured: the GPUs' energy counters \
             only (not CPU, fans or the power supply), from `jarvis mine start` to now"
        )
    )
}

/// "0.0123 kWh, 45.6 kJ per accepted share (12), 81.3 shares per kWh".
fn worker_energy(worker: &WorkerEnergy) -> String {
    let Some(kwh) = worker.energy_kwh else {
        return "energy unknown".to_owned();
    };
    let per_share = match (worker.joules_per_share, worker.shares_accepted) {
        (Some(j), Some(n)) => format!("{} per accepted share ({n})", si_joules(j)),
        (_, Some(_)) => "no accepted share yet".to_owned(),
        (_, None) => "no share counts".to_owned(),
    };
    let per_kwh = worker
        .shares_per_kwh
        .map_or_else(String::new, |n| format!(", {n:.2} shares per kWh"));
    format!("{kwh:.4} kWh, {per_share}{per_kwh}")
}

/// ` gpu_power_w=… energy_kwh=… j_per_share=…` for `--watch`'s plain line.
pub(super) fn line_fields(section: &Section) -> String {
    if section.telemetry.gpus.is_empty() {
        return " gpus=none".to_owned();
    }
    let power: Option<f64> = section.telemetry.gpus.iter().map(|g| g.power_w).sum();
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    format!(
        " gpus={} gpu_power_w={} energy_kwh={} j_per_share={}",
        section.telemetry.gpus.len(),
        or_dash(power.map(|w| format!("{w:.1}"))),
        or_dash(section.energy.energy_kwh.map(|k| format!("{k:.6}"))),
        or_dash(section.energy.joules_per_share.map(|j| format!("{j:.1}"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::GpuEnergy;

    fn h100(index: u32) -> GpuTelemetry {
        GpuTelemetry {
            index,
            uuid: Some(format!("GPU-{index}")),
            name: Some("NVIDIA H100 80GB HBM3".into()),
            power_w: Some(412.345),
            energy_mj: Some(1),
            gpu_temp_c: Some(61),
            memory_temp_c: Some(70),
            fan_percent: None,
            gpu_util_percent: Some(97),
            memory_util_percent: Some(55),
            memory_used_mib: Some(70_000),
            memory_total_mib: Some(81_559),
            sm_clock_mhz: Some(1980),
            memory_clock_mhz: Some(2619),
            throttle_reasons: Some(vec![]),
            ecc_volatile_corrected: Some(0),
            ecc_volatile_uncorrected: Some(0),
            performance_state: Some("P0".into()),
        }
    }

    fn energy() -> EnergyReport {
        EnergyReport {
            since: Some(1_000.0),
            window_seconds: Some(300.0),
            energy_j: Some(7_200_000.0),
            energy_kwh: Some(2.0),
            unknown: None,
            counter_reset: false,
            gpus: vec![GpuEnergy {
                index: 0,
                uuid: None,
                energy_j: Some(7_200_000.0),
                counter_reset: false,
            }],
            shares_accepted: Some(2),
            blocks_found: Some(0),
            joules_per_share: Some(3_600_000.0),
            joules_per_block: None,
            shares_per_kwh: Some(1.0),
            electricity_price_per_kwh: Some(0.25),
            cost: Some(0.5),
            workers: vec![],
        }
    }

    fn shown(section: &Section) -> String {
        let mut out = Vec::new();
        write_section(&mut out, section).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn readings_make_a_table_and_absent_ones_a_dash() {
        let mut second = h100(1);
        second.power_w = None;
        second.memory_temp_c = None;
        second.throttle_reasons = Some(vec!["sw_power_cap".into(), "hw_slowdown".into()]);
        second.ecc_volatile_uncorrected = Some(2);
        let section = Section {
            telemetry: GpuSection {
                source: GpuSource::Container,
                requested: Some(vec!["0".into(), "1".into()]),
                sampled_at: 1_300.0,
                gpus: vec![h100(0), second],
                note: None,
            },
            energy: energy(),
        };
        let text = shown(&section);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..6],
            [
                "GPU telemetry:      2 × NVIDIA H100 80GB HBM3, requested: 0, 1",
                "  GPU  POWER    TEMP   MEM TEMP  UTIL  MEM UTIL  MEMORY           SM CLOCK  MEM CLOCK  PSTATE  THROTTLE",
                "  0    412.3 W  61 °C  70 °C     97 %  55 %      70000/81559 MiB  1980 MHz  2619 MHz   P0      none",
                "  1    -        61 °C  -         97 %  55 %      70000/81559 MiB  1980 MHz  2619 MHz   P0      sw_power_cap,hw_slowdown",
                "  GPU 1: 2 uncorrected ECC errors since the driver loaded",
                "energy (estimate):  2.0000 kWh (7.20 MJ) over the 5m 00s since the session started",
            ]
        );
        assert_eq!(lines[6], "per accepted share: 3.60 MJ (2 accepted)");
        assert_eq!(lines[7], "per block:          — (no block yet)");
        assert_eq!(lines[8], "shares per kWh:     1.00");
        assert_eq!(lines[9], "cost (estimate):    0.5000 at 0.25 per kWh");
        assert!(lines[10].starts_with("energy figures are estimates over the window measured"));
        assert_eq!(
            line_fields(&section),
            " gpus=2 gpu_power_w=- energy_kwh=2.000000 j_per_share=3600000.0"
        );
    }

    #[test]
    fn each_worker_gets_an_energy_row() {
        let worker = |index: usize,
                      energy_kwh: Option<f64>,
                      shares_accepted: Option<u64>,
                      joules_per_share| WorkerEnergy {
            index,
            gpus: vec![index.to_string()],
            energy_j: energy_kwh.map(|kwh| kwh * 3.6e6),
            energy_kwh,
            shares_accepted,
            blocks_found: None,
            joules_per_share,
            joules_per_block: None,
            shares_per_kwh: energy_kwh
                .zip(shares_accepted)
                .map(|(kwh, n)| n as f64 / kwh),
            cost: None,
        };
        let mut report = energy();
        report.workers = vec![
            worker(0, Some(1.5), Some(3), Some(1_800_000.0)),
            worker(1, Some(0.5), Some(0), None),
            worker(2, Some(0.25), None, None),
            worker(3, None, Some(4), None),
        ];
        let mut out = Vec::new();
        write_energy(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("  worker")).collect();
        assert_eq!(
            rows,
            [
                "  worker 0:         1.5000 kWh, 1.80 MJ per accepted share (3), 2.00 shares per kWh",
                "  worker 1:         0.5000 kWh, no accepted share yet, 0.00 shares per kWh",
                "  worker 2:         0.2500 kWh, no share counts",
                "  worker 3:         energy unknown",
            ]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["workers"][0]["joules_per_share"], 1_800_000.0);
        assert_eq!(json["workers"][3]["energy_kwh"], serde_json::Value::Null);
    }

    #[test]
    fn columns_nobody_reports_are_left_out() {
        let mut gpu = h100(3);
        gpu.memory_temp_c = None;
        gpu.performance_state = None;
        gpu.name = None;
        let table = table(&[gpu]);
        assert_eq!(
            table[0],
            "GPU  POWER    TEMP   UTIL  MEM UTIL  MEMORY           SM CLOCK  MEM CLOCK  THROTTLE"
        );
    }

    #[test]
    fn no_telemetry_is_one_line_and_unknown_energy_says_why() {
        let section = Section {
            telemetry: GpuSection {
                source: GpuSource::Config,
                requested: None,
                sampled_at: 0.0,
                gpus: vec![],
                note: Some("no telemetry (NVML is missing)".into()),
            },
            energy: energy(),
        };
        assert_eq!(shown(&section), "GPU telemetry: none (NVML is missing)\n");
        assert_eq!(line_fields(&section), " gpus=none");
        let mut unknown = energy();
        unknown.energy_j = None;
        unknown.energy_kwh = None;
        unknown.unknown = Some("GPU 0 gave no energy counter reading".into());
        let mut out = Vec::new();
        write_energy(&mut out, &unknown).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "energy (estimate):  unknown (GPU 0 gave no energy counter reading)\n"
        );
    }
}
