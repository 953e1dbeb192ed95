//! `jarvis mine top`'s view: per worker its state, counts, shares per minute
//! with a sparkline, restarts and idle-fill; per GPU its power (with a
//! sparkline), temperature, utilisation, clock and throttle reasons. Drawn
//! with ratatui from [`Top`], which keeps the series between looks; the
//! looks come from [`source`].

pub mod source;

use crate::history::Recent;
use crate::supervise::snapshot::Snapshot;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use std::collections::{BTreeMap, VecDeque};

/// Points a sparkline shows.
const SPARK_POINTS: usize = 30;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Where the looks come from, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The running supervisor's exporter.
    Supervisor,
    /// Top's own looks (no supervisor answers).
    Own,
}

/// The view's state between looks.
#[derive(Debug, Default)]
pub struct Top {
    latest: Option<(Snapshot, Origin)>,
    /// Why there is nothing to show, when there is not.
    note: Option<String>,
    /// Per worker: accepted shares at the end of each minute seen (Unix
    /// minute -> count), and minutes' advances the history gave.
    accepted: BTreeMap<usize, BTreeMap<i64, u64>>,
    seeded: BTreeMap<usize, BTreeMap<i64, u64>>,
    /// Per GPU: the last power readings.
    power: BTreeMap<u32, VecDeque<f64>>,
}

impl Top {
    /// A new look.
    pub fn look(&mut self, snapshot: Snapshot, origin: Origin) {
        let minute = (snapshot.taken_at / 60.0).floor() as i64;
        for worker in &snapshot.workers {
            if let Some(counts) = &worker.counts {
                let series = self.accepted.entry(worker.index).or_default();
                series.insert(minute, counts.shares_accepted);
                while series.len() > SPARK_POINTS + 1 {
                    series.pop_first();
                }
            }
        }
        for gpu in &snapshot.gpus {
            if let Some(power) = gpu.power_w {
                let series = self.power.entry(gpu.index).or_default();
                series.push_back(power);
                while series.len() > SPARK_POINTS {
                    series.pop_front();
                }
            }
        }
        self.note = None;
        self.latest = Some((snapshot, origin));
    }

    /// Nothing to show, and why.
    pub fn nothing(&mut self, why: String) {
        self.latest = None;
        self.note = Some(why);
    }

    /// The minutes before this view began, from the mining history.
    pub fn seed(&mut self, recent: &Recent) {
        for series in &recent.workers {
            let Some(worker) = series.worker else {
                continue;
            };
            self.seeded.insert(
                worker as usize,
                series
                    .minutes
                    .iter()
                    .map(|m| (m.start.div_euclid(60), m.shares_accepted))
                    .collect(),
            );
        }
    }

    /// Shares accepted per minute, oldest first: the history's minutes,
    /// then the advances seen since.
    pub fn shares_per_minute(&self, worker: usize) -> Vec<u64> {
        let mut minutes: BTreeMap<i64, u64> = self.seeded.get(&worker).cloned().unwrap_or_default();
        if let Some(series) = self.accepted.get(&worker) {
            let counts: Vec<(&i64, &u64)> = series.iter().collect();
            for pair in counts.windows(2) {
                let ((_, before), (minute, now)) = (pair[0], pair[1]);
                // A count that went down is a restarted miner: it counts from 0.
                let advance = if now >= before { now - before } else { *now };
                minutes.insert(*minute, advance);
            }
        }
        let values: Vec<u64> = minutes.into_values().collect();
        values[values.len().saturating_sub(SPARK_POINTS)..].to_vec()
    }

    /// Draws the view.
    pub fn draw(&self, frame: &mut Frame) {
        let [header, workers, gpus, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(4),
            Constraint::Min(4),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(
            Paragraph::new(Line::from("q quits").style(Style::new().add_modifier(Modifier::DIM))),
            footer,
        );
        let Some((snapshot, origin)) = &self.latest else {
            let why = self.note.as_deref().unwrap_or("no look yet");
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from("jarvis mine top").style(Style::new().add_modifier(Modifier::BOLD)),
                    Line::from(why.to_owned()),
                ]),
                header,
            );
            return;
        };
        let from = match origin {
            Origin::Supervisor => "from the supervisor",
            Origin::Own => "own looks (no supervisor answers)",
        };
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(format!(
                    "jarvis mine top · session {} · {} · {}",
                    snapshot.session_id.as_deref().unwrap_or("-"),
                    snapshot.provider.as_deref().unwrap_or("-"),
                    snapshot.state
                ))
                .style(Style::new().add_modifier(Modifier::BOLD)),
                Line::from(format!(
                    "{} · {from}",
                    snapshot.model.as_deref().unwrap_or("-")
                )),
            ]),
            header,
        );
        frame.render_widget(self.workers_table(snapshot), workers);
        frame.render_widget(self.gpus_table(snapshot), gpus);
    }

    fn workers_table(&self, snapshot: &Snapshot) -> Table<'static> {
        let rows = snapshot.workers.iter().map(|worker| {
            let (state, color) = match (&worker.failed, worker.up) {
                (Some(_), _) => ("failed".to_owned(), Color::Red),
                (None, true) => ("running".to_owned(), Color::Green),
                (None, false) => (worker.state.clone(), Color::Red),
            };
            let counts = worker.counts.unwrap_or_default();
            let per_minute = self.shares_per_minute(worker.index);
            let fill = match worker.idle_fill {
                Some(fill) if fill.filling => format!("filling ({})", fill.requests),
                Some(fill) => format!("idle ({})", fill.requests),
                None => "-".to_owned(),
            };
            Row::new(vec![
                worker.index.to_string(),
                state,
                worker.gpus.join(","),
                counts.shares_accepted.to_string(),
                counts.shares_submitted.to_string(),
                counts.shares_rejected.to_string(),
                per_minute
                    .last()
                    .map_or_else(|| "-".to_owned(), u64::to_string),
                sparkline(&per_minute.iter().map(|&v| v as f64).collect::<Vec<_>>()),
                worker.restarts.to_string(),
                fill,
            ])
            .style(Style::new().fg(color))
        });
        Table::new(
            rows,
            [
                Constraint::Length(3),
                Constraint::Length(9),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(SPARK_POINTS as u16),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new([
                "W",
                "STATE",
                "GPUS",
                "ACCEPTED",
                "SUBMITTED",
                "REJECTED",
                "SHARES/M",
                "",
                "RESTARTS",
                "IDLE-FILL",
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::bordered().title("workers"))
    }

    fn gpus_table(&self, snapshot: &Snapshot) -> Table<'static> {
        let dash = || "-".to_owned();
        let rows = snapshot.gpus.iter().map(|gpu| {
            let throttled = gpu.throttle_reasons.as_ref().is_some_and(|r| !r.is_empty());
            let power: Vec<f64> = self
                .power
                .get(&gpu.index)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            Row::new(vec![
                gpu.index.to_string(),
                gpu.power_w.map_or_else(dash, |w| format!("{w:.0} W")),
                sparkline(&power),
                gpu.gpu_temp_c.map_or_else(dash, |t| format!("{t} °C")),
                gpu.gpu_util_percent.map_or_else(dash, |u| format!("{u} %")),
                gpu.sm_clock_mhz.map_or_else(dash, |c| format!("{c} MHz")),
                match &gpu.throttle_reasons {
                    None => dash(),
                    Some(reasons) if reasons.is_empty() => "none".to_owned(),
                    Some(reasons) => reasons.join(","),
                },
            ])
            .style(if throttled {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            })
        });
        let title = match &snapshot.gpus_note {
            Some(note) if snapshot.gpus.is_empty() => format!("GPUs: none ({note})"),
            _ => "GPUs".to_owned(),
        };
        Table::new(
            rows,
            [
                Constraint::Length(4),
                Constraint::Length(8),
                Constraint::Length(SPARK_POINTS as u16),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Length(9),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(["GPU", "POWER", "", "TEMP", "UTIL", "SM CLOCK", "THROTTLE"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::bordered().title(title))
    }
}

/// `values` as bars scaled to their own maximum; empty for none.
pub fn sparkline(values: &[f64]) -> String {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    values
        .iter()
        .map(|&value| {
            if max <= 0.0 {
                BARS[0]
            } else {
                let level = (value / max * (BARS.len() - 1) as f64).round() as usize;
                BARS[level.min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::snapshot::{Counts, WorkerSnapshot};
    use host_gpu::telemetry::GpuTelemetry;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn look(at: f64, accepted: [u64; 2], power: f64) -> Snapshot {
        Snapshot {
            taken_at: at,
            provider: Some("vllm-pearl".into()),
            model: Some("pearl-ai/Llama-3.3-70B-Instruct-pearl".into()),
            session_id: Some("s-1".into()),
            state: "degraded".into(),
            workers: (0..2)
                .map(|index| WorkerSnapshot {
                    index,
                    gpus: vec![index.to_string()],
                    up: index == 0,
                    state: if index == 0 { "running" } else { "exited" }.into(),
                    counts: Some(Counts {
                        shares_accepted: accepted[index],
                        shares_submitted: accepted[index] + 1,
                        ..Counts::default()
                    }),
                    restarts: index as u64,
                    ..WorkerSnapshot::default()
                })
                .collect(),
            gpus: vec![GpuTelemetry {
                index: 0,
                power_w: Some(power),
                gpu_temp_c: Some(61),
                gpu_util_percent: Some(97),
                sm_clock_mhz: Some(1980),
                throttle_reasons: Some(vec!["sw_power_cap".into()]),
                ..GpuTelemetry::default()
            }],
            ..Snapshot::default()
        }
    }

    fn screen(top: &Top) -> String {
        let mut terminal = Terminal::new(TestBackend::new(110, 16)).unwrap();
        terminal.draw(|frame| top.draw(frame)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn workers_and_gpus_are_drawn_with_their_rates_and_sparklines() {
        let mut top = Top::default();
        top.look(look(60.0, [0, 0], 300.0), Origin::Supervisor);
        top.look(look(120.0, [4, 1], 400.0), Origin::Supervisor);
        top.look(look(180.0, [6, 1], 410.0), Origin::Supervisor);
        assert_eq!(top.shares_per_minute(0), [4, 2]);
        let text = screen(&top);
        assert!(
            text.contains("session s-1 · vllm-pearl · degraded"),
            "{text}"
        );
        assert!(text.contains("from the supervisor"), "{text}");
        let row = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?}:\n{text}"))
        };
        let worker0 = row("│0   running");
        assert!(
            worker0.contains(" 6 ") && worker0.contains("█▅"),
            "{worker0}"
        );
        assert!(row("│1   exited").contains("█▁"), "{text}");
        let gpu = row("│0    410 W");
        assert!(
            gpu.contains("61 °C") && gpu.contains("sw_power_cap"),
            "{gpu}"
        );
    }

    #[test]
    fn a_restarted_miner_counts_from_zero_and_history_seeds_the_minutes() {
        let mut top = Top::default();
        top.seed(&Recent {
            workers: vec![crate::history::WorkerRecent {
                session_id: Some("s-1".into()),
                worker: Some(0),
                minutes: vec![crate::history::WorkerMinute {
                    start: 0,
                    shares_accepted: 9,
                    ..Default::default()
                }],
            }],
            gpus: vec![],
        });
        top.look(look(60.0, [5, 0], 1.0), Origin::Own);
        top.look(look(120.0, [2, 0], 1.0), Origin::Own);
        assert_eq!(top.shares_per_minute(0), [9, 2]);
        assert!(screen(&top).contains("own looks"));
    }

    #[test]
    fn nothing_to_show_says_why() {
        let mut top = Top::default();
        top.nothing("no mining session runs here".into());
        assert!(screen(&top).contains("no mining session runs here"));
        assert_eq!(sparkline(&[0.0, 0.0]), "▁▁");
        assert_eq!(sparkline(&[1.0, 2.0, 4.0]), "▃▅█");
        assert_eq!(sparkline(&[]), "");
    }
}
