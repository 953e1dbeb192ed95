//! `jarvis mine top`: a live view of the session's workers and GPUs in the
//! terminal (`crate::top`), refreshed every `--interval`; `q`, Esc or
//! Ctrl-C ends it. It reads the running supervisor's exporter, else looks
//! itself, and seeds its sparklines from the mining history.

use super::session::{mine_error, open_tolerant};
use super::{CliError, CliResult};
use crate::history::History;
use crate::sandbox::SandboxLimits;
use crate::supervise::exporter::DEFAULT_LISTEN;
use crate::supervise::supervisor::{Options, Supervisor};
use crate::supervise::watchdog::Rules;
use crate::top::{Origin, Top, source};
use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine top
  jarvis mine top --interval 5s
  jarvis mine top --from http://10.0.0.5:9741/metrics")]
pub struct TopArgs {
    /// How often the view is refreshed.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = super::supervise::parse_span)]
    interval: Duration,
    /// The supervisor's exporter to read (else this tool looks itself).
    #[arg(long, value_name = "URL", default_value_t = format!("http://{DEFAULT_LISTEN}/metrics"))]
    from: String,
}

pub fn run(args: &TopArgs, limits: SandboxLimits) -> CliResult {
    if !std::io::stdout().is_terminal() {
        return Err(CliError::invalid_input(
            "jarvis mine top draws on a terminal: for a pipe, use `jarvis mine status --watch`",
        ));
    }
    let opened = open_tolerant(limits)?;
    let miner = opened.miner();
    let mut top = Top::default();
    if let Ok(Some(history)) = History::open_existing(&opened.paths.mining_history())
        && let Ok(recent) = history.recent(unix_now(), 30)
    {
        top.seed(&recent);
    }
    let options = Options {
        interval: args.interval,
        stats_interval: args.interval.max(Duration::from_secs(5)),
        listen: None,
        start: false,
        ready_wait: None,
        rules: Rules::default(),
        act: false,
        idle_fill: crate::supervise::idle_fill::IdleFillMode::Off,
    };
    let mut own: Option<Supervisor> = None;
    let mut terminal = ratatui::init();
    let outcome = (|| -> Result<(), CliError> {
        loop {
            match source::scrape(&args.from) {
                Some(snapshot) => top.look(snapshot, Origin::Supervisor),
                None => {
                    if own.is_none() {
                        match Supervisor::new(&miner, options.clone(), &mut |_| {}) {
                            Ok(supervisor) => own = Some(supervisor),
                            Err(err) => top.nothing(err.to_string()),
                        }
                    }
                    if let Some(supervisor) = own.as_mut() {
                        match supervisor.look_once().map_err(mine_error)? {
                            Ok(snapshot) => top.look(snapshot, Origin::Own),
                            Err(ending) => {
                                own = None;
                                top.nothing(format!("the session ended: {ending:?}"));
                            }
                        }
                    }
                }
            }
            terminal
                .draw(|frame| top.draw(frame))
                .map_err(|err| CliError::failure(format!("cannot draw: {err}")))?;
            if quit_within(args.interval)? {
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Waits up to `limit` for a key; whether it asks to quit.
fn quit_within(limit: Duration) -> Result<bool, CliError> {
    let began = Instant::now();
    while let Some(left) = limit.checked_sub(began.elapsed()) {
        let ready = event::poll(left)
            .map_err(|err| CliError::failure(format!("cannot read the terminal: {err}")))?;
        if !ready {
            break;
        }
        let read = event::read()
            .map_err(|err| CliError::failure(format!("cannot read the terminal: {err}")))?;
        if let Event::Key(key) = read
            && key.kind == KeyEventKind::Press
        {
            let ctrl_c =
                key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
