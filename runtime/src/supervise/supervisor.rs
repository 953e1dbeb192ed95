//! The supervisor's loop. Every `interval` it looks at the session: the
//! record (a `jarvis mine stop` that removed it, or a new session, ends the
//! supervision: it is obeyed, never fought), each worker's container, the
//! GPUs' readings; every `stats_interval` also the provider's `stats()` and
//! each worker's vLLM. The watchdog decides per worker, the lifecycle acts
//! (under the session lock, audited), and the look becomes the snapshot the
//! exporter serves.

use super::containers::ContainerWatch;
use super::exporter::Exporter;
use super::idle_fill::{
    IdleFill, IdleFillHandle, IdleFillMode, IdleFillOptions, WorkerEndpoint, prompt_tokens_for,
};
use super::snapshot::{Counts, IdleFillCounts, Snapshot, WorkerSnapshot};
use super::systemd;
use super::watchdog::{Rules, Seen, Verdict, Watch};
use crate::docker::ContainerState;
use crate::lifecycle::{Acted, MineError, Miner, StartOptions, StatusReport, WorkerAction};
use crate::session::sidecar::{RecordReader, SessionRecord};
use crate::session::{SessionLock, state::Operation};
use crate::telemetry::{self, Sampling};
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a health probe of a worker's vLLM may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `jarvis mine supervise`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often containers and GPUs are looked at.
    pub interval: Duration,
    /// How often the provider's `stats()` and vLLM's health are asked.
    pub stats_interval: Duration,
    /// Where the exporter listens; `None`: no exporter.
    pub listen: Option<SocketAddr>,
    /// Start a session when none runs (else supervising nothing is an error).
    pub start: bool,
    /// How long a start may wait for vLLM to answer.
    pub ready_wait: Option<Duration>,
    pub rules: Rules,
    /// Whether the watchdog acts and idle-fill runs; `false`: look only
    /// (`jarvis mine top`).
    pub act: bool,
    /// `[mining.extra].idle_fill`.
    pub idle_fill: IdleFillMode,
}

/// Why supervision ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Ctrl-C or SIGTERM: the miners keep running (unless the caller stops
    /// them).
    Signal,
    /// The session ended from outside (`jarvis mine stop`, a new session):
    /// what happened, for people.
    SessionEnded(String),
}

/// What one look came to.
enum Look {
    /// A new snapshot.
    Taken,
    /// Nothing looked at (a stop holds the lock).
    Skipped,
    Ended(Ending),
}

/// One supervision of one session.
pub struct Supervisor<'a> {
    miner: &'a Miner<'a>,
    options: Options,
    session_id: String,
    watches: Vec<Watch>,
    latest: Arc<Mutex<Snapshot>>,
    sampling: Sampling,
    /// The latest counts per worker, kept between stats looks.
    counts: Vec<Option<Counts>>,
    health: Vec<Option<bool>>,
    began: Instant,
    last_stats: Option<Instant>,
    exporter: Option<Exporter>,
    /// Each worker's idle-fill driver, while the worker runs.
    fillers: Vec<Option<IdleFillHandle>>,
    /// The session record, parsed again only when its bytes change.
    record: RecordReader,
    /// The workers' containers, inspected only when they change.
    containers: ContainerWatch,
}

impl<'a> Supervisor<'a> {
    /// Finds the session to supervise (starting one when asked and none
    /// runs) and starts the exporter.
    pub fn new(
        miner: &'a Miner<'a>,
        options: Options,
        notice: &mut dyn FnMut(&str),
    ) -> Result<Supervisor<'a>, MineError> {
        let record = match live_record(miner)? {
            Some(record) => record,
            None if options.start => {
                notice("no session runs: starting one");
                let report = miner
                    .start(StartOptions {
                        image_progress: Box::new(|_| {}),
                        ready_wait: options.ready_wait,
                        on_wait: Box::new(|_| {}),
                    })
                    .map_err(|failure| failure.error)?;
                report.session.ok_or(MineError::Session(
                    "the session started but left no record".into(),
                ))?
            }
            None => {
                return Err(MineError::Session(
                    "no mining session runs here: start one with `jarvis mine start` \
                     (or run `jarvis mine supervise` without --no-start)"
                        .into(),
                ));
            }
        };
        let session_id = record.session_id.clone().ok_or_else(|| {
            MineError::Session(
                "the running miner was attached by hand (`jarvis mine attach`): there is no \
                 container of ours to supervise"
                    .into(),
            )
        })?;
        let workers = record.worker_list().len();
        let latest = Arc::new(Mutex::new(Snapshot::default()));
        let exporter = options
            .listen
            .map(|listen| Exporter::start(listen, Arc::clone(&latest)))
            .transpose()
            .map_err(MineError::Session)?;
        Ok(Supervisor {
            miner,
            options,
            session_id,
            watches: vec![Watch::default(); workers],
            latest,
            sampling: Sampling::default(),
            counts: vec![None; workers],
            health: vec![None; workers],
            began: Instant::now(),
            last_stats: None,
            exporter,
            fillers: (0..workers).map(|_| None).collect(),
            record: RecordReader::default(),
            containers: ContainerWatch::default(),
        })
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Where the exporter listens, if it does.
    pub fn exporter_address(&self) -> Option<SocketAddr> {
        self.exporter.as_ref().map(Exporter::address)
    }

    /// The latest snapshot.
    fn latest(&self) -> Snapshot {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One look, without waiting (`jarvis mine top` refreshes with it):
    /// the snapshot, or how the session ended.
    pub fn look_once(&mut self) -> Result<Result<Snapshot, Ending>, MineError> {
        let mut quiet = |_: &str| {};
        Ok(match self.look(&mut quiet)? {
            Look::Ended(ending) => Err(ending),
            Look::Taken | Look::Skipped => Ok(self.latest()),
        })
    }

    /// Looks, decides and acts every interval until `stop` says so or the
    /// session ends; `notice` gets each action, once, as a line.
    pub fn run(
        &mut self,
        stop: &Receiver<()>,
        on_look: &mut dyn FnMut(&Snapshot),
        notice: &mut dyn FnMut(&str),
    ) -> Result<Ending, MineError> {
        let ping = systemd::watchdog_interval();
        let mut last_ping = Instant::now();
        let mut ready = false;
        loop {
            let snapshot = match self.look(notice)? {
                Look::Ended(ending) => return Ok(ending),
                Look::Taken => {
                    let snapshot = self.latest();
                    on_look(&snapshot);
                    snapshot
                }
                // Nothing new: the last snapshot stands (and is not kept twice).
                Look::Skipped => self.latest(),
            };
            let status = format!(
                "session {}: {}, {} of {} workers up",
                self.session_id,
                snapshot.state,
                snapshot.workers.iter().filter(|w| w.up).count(),
                snapshot.workers.len()
            );
            if ready {
                systemd::status(&status);
            } else {
                systemd::ready(&status);
                ready = true;
            }
            if ping.is_some_and(|every| last_ping.elapsed() >= every) {
                systemd::watchdog();
                last_ping = Instant::now();
            }
            let wait = match ping {
                Some(every) => self.options.interval.min(every),
                None => self.options.interval,
            };
            match stop.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(Ending::Signal),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// One look.
    fn look(&mut self, notice: &mut dyn FnMut(&str)) -> Result<Look, MineError> {
        let paths = self.miner.paths;
        // A stop in progress is obeyed: nothing is decided until it is done.
        let holder = SessionLock::holder(&paths.lock_file())?;
        if holder.and_then(|h| h.operation).as_deref() == Some(Operation::Stop.word()) {
            return Ok(Look::Skipped);
        }
        let record = match self.record.read(&paths.sidecar())? {
            Some(record) if record.session_id.as_deref() == Some(self.session_id.as_str()) => {
                record
            }
            Some(_) => {
                return Ok(Look::Ended(Ending::SessionEnded(
                    "another session replaced it".into(),
                )));
            }
            None => {
                return Ok(Look::Ended(Ending::SessionEnded(
                    "it was stopped (`jarvis mine stop`)".into(),
                )));
            }
        };
        let docker = self.miner.docker.clone().map_err(MineError::Docker)?;
        let workers = record.worker_list();
        let ids: Vec<String> = workers.iter().map(|w| w.container_id.clone()).collect();
        let at = self.began.elapsed().as_secs_f64();
        let stats_due = self
            .last_stats
            .is_none_or(|last| last.elapsed() >= self.options.stats_interval);
        let states = self.containers.look(
            &docker,
            &paths.home_label(),
            &self.session_id,
            &ids,
            stats_due,
        )?;
        let report = if stats_due {
            self.last_stats = Some(Instant::now());
            let report = self.miner.status()?;
            self.remember_counts(&report);
            self.health = workers
                .iter()
                .zip(&states)
                .map(|(worker, state)| {
                    state
                        .as_ref()
                        .is_some_and(|s| s.running)
                        .then(|| answers(&worker.vllm_endpoint))
                })
                .collect();
            Some(report)
        } else {
            self.health = vec![None; workers.len()];
            None
        };
        for (index, state) in states.iter().enumerate() {
            if !self.options.act {
                break;
            }
            let counts = self.counts.get(index).copied().flatten();
            let seen = Seen {
                at,
                // Restarting: Docker's restart policy is at work on it.
                running: state
                    .as_ref()
                    .is_some_and(|s| s.running || s.status == "restarting"),
                docker_restarts: state.as_ref().map_or(0, |s| s.restart_count.max(0) as u64),
                healthy: self.health.get(index).copied().flatten(),
                submitted: stats_due
                    .then_some(counts.map(|c| c.shares_submitted))
                    .flatten(),
                served: stats_due
                    .then_some(counts.and_then(|c| c.requests_served))
                    .flatten(),
            };
            let verdict = self.watches[index].observe(&self.options.rules, seen);
            let action = match &verdict {
                Verdict::Restart(problem) => Some((WorkerAction::Restart, problem.word())),
                Verdict::Fail(_) => Some((WorkerAction::Fail, "restart-cap")),
                _ => None,
            };
            let Some((action, reason)) = action else {
                continue;
            };
            let what = match &verdict {
                Verdict::Fail(why) => format!("worker {index}: {why}"),
                _ => format!("worker {index} is {reason}: restarting it"),
            };
            notice(&what);
            match self
                .miner
                .act_on_worker(&self.session_id, index, action, reason)
            {
                Ok(Acted::Done) => {}
                Ok(Acted::SessionGone) => {
                    return Ok(Look::Ended(Ending::SessionEnded(
                        "it was stopped or replaced while a worker was being restarted".into(),
                    )));
                }
                Ok(Acted::ContainerGone) => {
                    notice(&format!(
                        "worker {index}: its container no longer exists; `jarvis mine stop` and \
                         `jarvis mine start` make a new session"
                    ));
                }
                Err(err) => notice(&format!(
                    "worker {index}: the {reason} restart failed: {err}"
                )),
            }
        }
        self.fill_idle_workers(&record, &states, notice);
        let snapshot = self.snapshot(&record, &states, report.as_ref());
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(Look::Taken)
    }

    /// Runs an idle-fill driver for each running worker (when the config
    /// asks for it and the worker's context can hold a mineable prompt),
    /// and stops the driver of a worker that is not running.
    fn fill_idle_workers(
        &mut self,
        record: &SessionRecord,
        states: &[Option<ContainerState>],
        notice: &mut dyn FnMut(&str),
    ) {
        if !self.options.act || self.options.idle_fill == IdleFillMode::Off {
            return;
        }
        let Some(prompt_tokens) = prompt_tokens_for(self.max_model_len()) else {
            return;
        };
        for (index, (worker, state)) in record.worker_list().into_iter().zip(states).enumerate() {
            let running = state.as_ref().is_some_and(|s| s.running);
            let slot = &mut self.fillers[index];
            match (running, slot.is_some()) {
                (false, true) => {
                    if let Some(filler) = slot.take() {
                        filler.stop();
                    }
                }
                (true, false) => {
                    let endpoint = WorkerEndpoint {
                        worker: index.to_string(),
                        base_url: worker.vllm_base_url().to_owned(),
                        model: Some(record.model.clone()),
                    };
                    let options = IdleFillOptions {
                        prompt_tokens,
                        ..IdleFillOptions::default()
                    };
                    match IdleFill::start(endpoint, options) {
                        Ok(filler) => *slot = Some(filler),
                        Err(err) => {
                            notice(&format!("worker {index}: idle-fill cannot start: {err}"))
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The context vLLM runs with: `[mining.extra].max_model_len`, else
    /// the model's default in the Pearl catalog.
    fn max_model_len(&self) -> u64 {
        let mining = self.miner.mining;
        mining
            .and_then(|m| m.extra.get("max_model_len"))
            .and_then(toml::Value::as_integer)
            .and_then(|n| u64::try_from(n).ok())
            .or_else(|| {
                let model = mining.map(|m| m.model())?;
                pearl_catalog::find(&model).map(|spec| u64::from(spec.default_max_model_len))
            })
            .unwrap_or(8192)
    }

    /// Per-worker counts from a status (a session of one container: its
    /// totals are worker 0's).
    fn remember_counts(&mut self, report: &StatusReport) {
        let Some(stats) = &report.stats else {
            return;
        };
        let counts = |submitted, accepted, rejected, blocks, prompt, served| Counts {
            shares_submitted: submitted,
            shares_accepted: accepted,
            shares_rejected: rejected,
            blocks_found: blocks,
            prompt_tokens: prompt,
            requests_served: served,
        };
        if stats.workers.is_empty() {
            if let Some(first) = self.counts.first_mut() {
                *first = Some(counts(
                    stats.shares_submitted,
                    stats.shares_accepted,
                    stats.shares_rejected,
                    stats.blocks_found,
                    stats.prompt_tokens,
                    stats.requests_served,
                ));
            }
            return;
        }
        for worker in &stats.workers {
            if let Some(slot) = self.counts.get_mut(worker.index as usize) {
                *slot = Some(counts(
                    worker.shares_submitted,
                    worker.shares_accepted,
                    worker.shares_rejected,
                    worker.blocks_found,
                    None,
                    worker.requests_served,
                ));
            }
        }
    }

    fn snapshot(
        &self,
        record: &SessionRecord,
        states: &[Option<ContainerState>],
        report: Option<&StatusReport>,
    ) -> Snapshot {
        let previous = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let requests: Vec<_> = states
            .iter()
            .flatten()
            .flat_map(|s| s.gpu_requests.iter().cloned())
            .collect();
        let (gpus, gpus_note) = match telemetry::session_gpus(&requests, self.miner.mining) {
            Some(selection) => {
                let sample = self.sampling.sample(&selection);
                (sample.gpus, sample.note)
            }
            None => (Vec::new(), Some("the session uses no GPU".to_owned())),
        };
        let workers = record
            .worker_list()
            .into_iter()
            .zip(states)
            .enumerate()
            .map(|(index, (worker, state))| WorkerSnapshot {
                index,
                gpus: worker.gpus,
                up: state.as_ref().is_some_and(|s| s.running),
                state: state
                    .as_ref()
                    .map_or_else(|| "gone".to_owned(), |s| s.status.clone()),
                counts: self.counts.get(index).copied().flatten(),
                restarts: self.watches[index].restarts(),
                failed: self.watches[index].failed().map(str::to_owned),
                idle_fill: self
                    .fillers
                    .get(index)
                    .and_then(Option::as_ref)
                    .map(|filler| {
                        let counts = filler.snapshot();
                        IdleFillCounts {
                            requests: counts.requests_sent,
                            prompt_tokens: counts.prompt_tokens_sent,
                            failures: counts.failures,
                            filling: counts.filling,
                        }
                    }),
            })
            .collect();
        Snapshot {
            taken_at: unix_now(),
            provider: Some(record.provider.clone()),
            model: Some(record.model.clone()),
            session_id: Some(self.session_id.clone()),
            state: report.map_or(previous.state, |r| r.state.clone()),
            workers,
            gpus,
            gpus_note,
            // A `stats()` that failed this time leaves the last known totals.
            totals: report.and_then(|r| r.stats.clone()).or(previous.totals),
        }
    }
}

/// The recorded session, if any, once `status` has reconciled leftovers (a
/// record whose containers are all gone is removed then): running, or with
/// workers down, which is the watchdog's business.
fn live_record(miner: &Miner<'_>) -> Result<Option<SessionRecord>, MineError> {
    let report = miner.status()?;
    if report.process_session.is_some() {
        return Err(MineError::Session(
            "this home's session runs host processes (cpu-pearl, apple-mps-pearl), which \
             `jarvis mine supervise` does not watch yet: `jarvis mine status --watch` shows them"
                .into(),
        ));
    }
    Ok(report.session)
}

/// Whether vLLM at `endpoint` (`http://…/v1`) answers `/models`.
fn answers(endpoint: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(PROBE_TIMEOUT))
        .max_redirects(0)
        .build()
        .into();
    agent
        .get(format!("{}/models", endpoint.trim_end_matches('/')))
        .call()
        .is_ok()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
