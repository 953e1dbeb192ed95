//! `jarvis mine supervise`: keeps the session's workers mining (watchdog),
//! serves the Prometheus exporter, until Ctrl-C or SIGTERM (the miners keep
//! running unless `--stop-on-exit`) or until the session is stopped from
//! outside (`jarvis mine stop`), which it obeys and exits 0.

use super::session::{mine_error, open_tolerant};
use super::{CliError, CliResult};
use crate::sandbox::SandboxLimits;
use crate::supervise::exporter::DEFAULT_LISTEN;
use crate::supervise::recording::Recording;
use crate::supervise::resident;
use crate::supervise::snapshot::Snapshot;
use crate::supervise::supervisor::{Ending, Options, Supervisor};
use crate::supervise::systemd;
use crate::supervise::watchdog::Rules;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine supervise                          # watchdog, and metrics on 127.0.0.1:9741
  jarvis mine supervise --listen 0.0.0.0:9741    # let a Prometheus on another host scrape
  jarvis mine supervise --listen none --stop-on-exit
  jarvis mine service install                    # run it under systemd")]
pub struct SuperviseArgs {
    /// Where the Prometheus exporter listens (ADDR:PORT), or `none`.
    #[arg(long, value_name = "ADDR:PORT|none", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: Listen,
    /// Stop the miners when the supervisor ends on Ctrl-C or SIGTERM (they keep running by default).
    #[arg(long)]
    stop_on_exit: bool,
    /// Supervise only a running session: do not start one when none runs.
    #[arg(long)]
    no_start: bool,
    /// How often the workers' containers and the GPUs are looked at.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_span)]
    interval: Duration,
    /// How often share counts (the provider's stats) and each vLLM's health are read.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_span)]
    stats_interval: Duration,
    /// Restarts of one worker per hour (the supervisor's and Docker's) before it is left stopped.
    #[arg(long, value_name = "N", default_value_t = Rules::default().restarts_per_hour,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    restarts_per_hour: u32,
    /// Restart a running worker whose vLLM has not answered for this long.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_span)]
    unhealthy_after: Duration,
    /// Restart a worker that had load and submitted no share for this long, or `off`.
    #[arg(long, value_name = "DURATION|off", default_value = "2h", value_parser = parse_optional_span)]
    stall_after: Stall,
}

#[derive(Clone, Copy, Debug)]
struct Listen(Option<SocketAddr>);

#[derive(Clone, Copy, Debug)]
struct Stall(Option<Duration>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|address| Listen(Some(address)))
        .map_err(|_| format!("'{text}' is not ADDR:PORT (such as 127.0.0.1:9741) or `none`"))
}

/// `10s`, `15m`, `2h`, `1d`: at least 100 ms.
pub(super) fn parse_span(text: &str) -> Result<Duration, String> {
    let span = humantime::parse_duration(text.trim())
        .map_err(|err| format!("'{text}' is not a duration ({err}): use e.g. 10s, 15m or 2h"))?;
    if span < Duration::from_millis(100) {
        return Err(format!("'{text}' is too short: use 100ms or more"));
    }
    Ok(span)
}

fn parse_optional_span(text: &str) -> Result<Stall, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Stall(None));
    }
    parse_span(text).map(|span| Stall(Some(span)))
}

pub fn run(args: &SuperviseArgs, limits: SandboxLimits) -> CliResult {
    resident::one_malloc_arena();
    resident::phase_done("reading the command line");
    let opened = open_tolerant(limits)?;
    resident::phase_done("opening the home");
    let mining = opened.config.mining.as_ref().ok_or_else(|| {
        CliError::invalid_input("no [mining] section in config - run `jarvis mine init`")
    })?;
    let ready_wait = super::start::ready_wait(mining)?;
    let defaults = Rules::default();
    let options = Options {
        interval: args.interval,
        stats_interval: args.stats_interval,
        listen: args.listen.0,
        start: !args.no_start,
        ready_wait,
        rules: Rules {
            restarts_per_hour: args.restarts_per_hour,
            unhealthy_after: args.unhealthy_after,
            stall_after: args.stall_after.0,
            ..defaults
        },
        act: true,
        idle_fill: mining.idle_fill(),
    };
    // Ctrl-C and SIGTERM end the wait between looks at once.
    let (interrupt, interrupted) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(());
    })
    .map_err(|err| CliError::failure(format!("cannot watch for Ctrl-C and SIGTERM: {err}")))?;
    let miner = opened.miner();
    let mut supervisor = Supervisor::new(&miner, options, &mut notice).map_err(mine_error)?;
    let mut recording = match Recording::open(&opened.paths.mining_history()) {
        Ok(recording) => Some(recording),
        Err(err) => {
            notice(&format!("the looks are not recorded: {err}"));
            None
        }
    };
    resident::phase_done("connecting to Docker and the exporter");
    let listening = supervisor.exporter_address().map_or_else(
        || "no exporter".to_owned(),
        |a| format!("metrics on http://{a}/metrics"),
    );
    notice(&format!(
        "supervising session {} ({listening}); Ctrl-C {}",
        supervisor.session_id(),
        if args.stop_on_exit {
            "stops the miners (--stop-on-exit)"
        } else {
            "leaves the miners running"
        }
    ));
    let mut first = true;
    let mut record = |snapshot: &Snapshot| {
        if let Some(recording) = recording.as_mut() {
            recording.record(snapshot, &mut notice);
        }
        resident::look_done();
        if std::mem::take(&mut first) {
            resident::phase_done("the first look");
        }
    };
    let ending = supervisor
        .run(&interrupted, &mut record, &mut notice)
        .map_err(mine_error)?;
    systemd::stopping();
    match ending {
        Ending::SessionEnded(why) => {
            notice(&format!(
                "the session ended: {why}; nothing more to supervise"
            ));
        }
        Ending::Signal if args.stop_on_exit => {
            notice("stopping the miners (--stop-on-exit)");
            drop(supervisor);
            miner.stop().map_err(mine_error)?;
        }
        Ending::Signal => notice("the miners keep running; `jarvis mine stop` stops them"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on stderr, for people (and the journal, under systemd).
fn notice(line: &str) {
    super::output::eprintln!("supervise: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_addresses_read_as_people_write_them() {
        assert_eq!(parse_span("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_span(" 2h "), Ok(Duration::from_secs(7200)));
        assert!(parse_span("10ms").unwrap_err().contains("too short"));
        assert!(
            parse_span("soon")
                .unwrap_err()
                .contains("use e.g. 10s, 15m or 2h")
        );
        assert!(matches!(parse_optional_span("off"), Ok(Stall(None))));
        assert!(matches!(parse_listen("none"), Ok(Listen(None))));
        assert!(matches!(
            parse_listen("127.0.0.1:9741"),
            Ok(Listen(Some(_)))
        ));
        assert!(parse_listen("localhost").unwrap_err().contains("ADDR:PORT"));
    }
}
