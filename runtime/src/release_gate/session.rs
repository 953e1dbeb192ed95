//! Step 7 of the runbook (`--start`): `jarvis mine start` through the
//! library, `/v1/models`, one chat completion and share or block evidence
//! (validate-model's own checks, `model_check::validate`), the pearld
//! probe, the runtime artifacts, `jarvis mine stop`, then the cleanup
//! checks: no container labelled for this home and no session record.
//!
//! The gate stops only a session it started: with a session already
//! recorded it refuses to start, and leaves that session alone.

use super::Recorder;
use super::artifacts::{self, Artifacts};
use super::criteria::{CHAT, CLEANUP, Criterion, MODELS, PEARLD, SESSION, SHARES, START, STOP};
use super::smoke::LABEL_SMOKE;
use crate::config::MiningConfig;
use crate::docker::Docker;
use crate::doctor::{self, Outcome};
use crate::host::LABEL_HOME;
use crate::host::metrics::{MAX_BODY_BYTES, SCRAPE_TIMEOUT};
use crate::lifecycle::{Miner, StartOptions};
use crate::model_check::http::{self, Route};
use crate::model_check::validate::{self, Request, Validation};
use crate::paths::Paths;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::session::sidecar::{self, SessionRecord};
use crate::session::state::short_id;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The runbook's prompt (`jarvis ask "Say hello in one sentence."`).
pub const PROMPT: &str = "Say hello in one sentence.";
/// Lines of the miner's log kept (`jarvis mine logs --tail 300`).
pub const LOG_TAIL_LINES: usize = 300;
/// How often share evidence is asked for while waiting.
const SHARE_POLL: Duration = Duration::from_secs(1);

/// What the session steps need.
pub struct SessionContext<'a> {
    pub paths: &'a Paths,
    pub mining: &'a MiningConfig,
    pub sandbox: &'a Sandbox,
    pub registry: &'a Registry,
    pub docker: Arc<Docker>,
    /// The longest one step may wait (a request, the share evidence).
    pub timeout: Duration,
}

impl SessionContext<'_> {
    fn miner(&self) -> Miner<'_> {
        Miner {
            paths: self.paths,
            mining: Some(self.mining),
            config_error: None,
            sandbox: self.sandbox,
            registry: self.registry,
            docker: Ok(self.docker.clone()),
        }
    }
}

/// `jarvis mine status --json`, or the error it ended with.
pub fn status_json(miner: &Miner) -> serde_json::Value {
    match miner.status() {
        Ok(report) => serde_json::to_value(&report)
            .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() })),
        Err(err) => serde_json::json!({ "error": err.to_string() }),
    }
}

/// Every session criterion, skipped for `why`.
pub fn skipped(why: &str) -> Vec<Criterion> {
    SESSION
        .iter()
        .map(|name| Criterion::skip(name, why))
        .collect()
}

/// Runs the session steps, reporting each criterion to `recorder` as it is
/// judged, and writes the runtime artifacts (status after, metrics, log
/// tail, docker inspect) before stopping.
pub fn run(
    context: &SessionContext,
    options: StartOptions,
    artifacts: &mut Artifacts,
    recorder: &mut Recorder<'_>,
) {
    let miner = context.miner();
    // A session already here is not ours to stop.
    if let Ok(Some(existing)) = sidecar::read(&context.paths.sidecar()) {
        let why = format!(
            "a {} session is already recorded in {} (container {}); the gate starts and stops its own: \
             stop that one first with `jarvis mine stop`",
            existing.provider,
            context.paths.sidecar().display(),
            short_id(&existing.container_id)
        );
        recorder.record(Criterion::fail(START, why), artifacts);
        for criterion in
            skipped("not run: the session already running is not the gate's to use or stop")
                .into_iter()
                .skip(1)
        {
            recorder.record(criterion, artifacts);
        }
        return;
    }

    recorder.step("starting the miner (`jarvis mine start`)");
    // The error, and whether the session is the gate's to stop.
    let started = match miner.start(options) {
        Ok(report) if report.already_running => Err((
            "a session was started by another command meanwhile; it is not the gate's to stop"
                .to_owned(),
            false,
        )),
        Ok(report) => report.session.ok_or_else(|| {
            (
                "the provider recorded no container session".to_owned(),
                true,
            )
        }),
        Err(failure) => {
            let mut why = failure.error.to_string();
            for line in failure.cleanup.lines() {
                why.push_str(&format!("; {line}"));
            }
            Err((why, true))
        }
    };
    let session = match started {
        Ok(session) => session,
        Err((why, ours)) => {
            recorder.record(Criterion::fail(START, why), artifacts);
            for name in [MODELS, CHAT, SHARES, PEARLD] {
                recorder.record(
                    Criterion::skip(name, "not run: the miner did not start"),
                    artifacts,
                );
            }
            if ours {
                stop_and_check(context, &miner, false, artifacts, recorder);
            } else {
                recorder.record(
                    Criterion::skip(STOP, "not run: the session is not the gate's"),
                    artifacts,
                );
                recorder.record(
                    Criterion::skip(CLEANUP, "not run: the session is not the gate's"),
                    artifacts,
                );
            }
            return;
        }
    };
    recorder.record(started_criterion(context, &session), artifacts);

    recorder.step("asking the miner (/v1/models, one chat completion)");
    let asked = validate_once(context, Some(PROMPT));
    match &asked {
        Ok(validation) => {
            recorder.record(
                from_validation(validation, validate::MODELS_CHECK, MODELS),
                artifacts,
            );
            recorder.record(
                from_validation(validation, validate::CHAT_CHECK, CHAT),
                artifacts,
            );
        }
        Err(err) => {
            recorder.record(Criterion::fail(MODELS, err.clone()), artifacts);
            recorder.record(Criterion::fail(CHAT, err.clone()), artifacts);
        }
    }

    recorder.step(&format!(
        "waiting up to {} s for an accepted share or block",
        context.timeout.as_secs()
    ));
    recorder.record(share_evidence(context), artifacts);

    recorder.step("probing pearld");
    let node = doctor::probe_node(Some(context.mining), context.paths.config_file());
    recorder.record(
        Criterion::judged(PEARLD, node.outcome() == Outcome::Pass, node.info),
        artifacts,
    );

    recorder.step("recording status, metrics, the log tail and docker inspect");
    artifacts.write_json(artifacts::STATUS_AFTER, &status_json(&miner));
    write_runtime_artifacts(context, &session, artifacts);

    stop_and_check(context, &miner, true, artifacts, recorder);
}

/// `Start`: the session's container runs, labelled for this home, and the
/// sidecar names it.
fn started_criterion(context: &SessionContext, session: &SessionRecord) -> Criterion {
    let id = short_id(&session.container_id);
    let home = context.paths.home_label();
    match context.docker.inspect(&session.container_id) {
        Ok(Some(state)) if state.running && state.labels.get(LABEL_HOME) == Some(&home) => {
            Criterion::pass(
                START,
                format!(
                    "container {id} ({}) runs {}; vLLM answered at {}; session recorded in {}",
                    state.name,
                    state.image,
                    session.vllm_endpoint,
                    context.paths.sidecar().display()
                ),
            )
        }
        Ok(Some(state)) => Criterion::fail(
            START,
            format!(
                "container {id} ({}) is {}, not running for this home",
                state.name, state.status
            ),
        ),
        Ok(None) => Criterion::fail(START, format!("the recorded container {id} does not exist")),
        Err(err) => Criterion::fail(START, err.to_string()),
    }
}

/// validate-model's checks against the running session, with `prompt`.
fn validate_once(context: &SessionContext, prompt: Option<&str>) -> Result<Validation, String> {
    let request = Request {
        model: None,
        vllm_endpoint: None,
        gateway_metrics_url: None,
        allow_planned: false,
        prompt: prompt.map(str::to_owned),
        timeout: context.timeout,
        sidecar_path: context.paths.sidecar(),
    };
    validate::validate(&request, &validate::docker_logs).map_err(|err| err.to_string())
}

/// One of validate-model's checks as a criterion.
fn from_validation(validation: &Validation, check: &str, name: &str) -> Criterion {
    match validation.check(check) {
        Some(found) => Criterion::judged(name, found.ok, found.info.clone()),
        None => Criterion::fail(name, format!("validate-model's `{check}` did not run")),
    }
}

/// `Share evidence`: at least one accepted share or block, from the
/// gateway's metrics or else the container's log (validate-model's
/// sources), within the timeout.
fn share_evidence(context: &SessionContext) -> Criterion {
    let began = Instant::now();
    loop {
        let (counts, info) = match validate_once(context, None) {
            Ok(validation) => {
                let info = validation
                    .check(validate::SHARES_CHECK)
                    .map_or_else(|| "no share evidence".to_owned(), |c| c.info.clone());
                (validation.shares, info)
            }
            Err(err) => (None, err),
        };
        if counts.is_some_and(|c| c.accepted >= 1) {
            return Criterion::pass(
                SHARES,
                format!("{info} (after {:.1} s)", began.elapsed().as_secs_f64()),
            );
        }
        let elapsed = began.elapsed();
        if elapsed >= context.timeout {
            return Criterion::fail(
                SHARES,
                format!(
                    "no accepted share or block within {} s: {info}",
                    context.timeout.as_secs()
                ),
            );
        }
        std::thread::sleep(SHARE_POLL.min(context.timeout - elapsed));
    }
}

/// `metrics.txt` (the gateway's metrics, else vLLM's), `log-tail.txt` and
/// `docker-inspect.json`.
fn write_runtime_artifacts(
    context: &SessionContext,
    session: &SessionRecord,
    artifacts: &mut Artifacts,
) {
    let docker = &context.docker;
    let state = docker.inspect(&session.container_id).ok().flatten();
    if let Some(names) = state
        .as_ref()
        .and_then(|s| s.labels.get(crate::host::LABEL_SECRETS))
    {
        artifacts.add_secret_names(names.split(','));
    }

    artifacts.write_text(artifacts::METRICS, &metrics_snapshot(session));

    match docker.logs(&session.container_id, LOG_TAIL_LINES) {
        Ok(lines) => {
            let redactor = state
                .as_ref()
                .map(|s| crate::host::containers::redactor_for(&s.labels))
                .unwrap_or_default();
            let mut text = String::new();
            for line in lines {
                text.push_str(&redactor.redact(&line));
                text.push('\n');
            }
            artifacts.write_text(artifacts::LOG_TAIL, &text);
        }
        Err(err) => artifacts.not_written(artifacts::LOG_TAIL, err.to_string()),
    }

    match docker.inspect_json(&session.container_id) {
        Ok(Some(inspect)) => artifacts.write_inspect(artifacts::DOCKER_INSPECT, inspect),
        Ok(None) => artifacts.not_written(artifacts::DOCKER_INSPECT, "the container is gone"),
        Err(err) => artifacts.not_written(artifacts::DOCKER_INSPECT, err.to_string()),
    }
}

/// The gateway's Prometheus text, else vLLM's, with a comment naming the
/// source; each source's error when none answers.
fn metrics_snapshot(session: &SessionRecord) -> String {
    let mut sources = Vec::new();
    if !session.gateway_metrics_url.trim().is_empty() {
        sources.push((
            "gateway",
            validate::metrics_url(&session.gateway_metrics_url),
        ));
    }
    let endpoint = session.vllm_endpoint.trim_end_matches('/');
    if !endpoint.is_empty() {
        sources.push(("vLLM", validate::vllm_metrics_url(endpoint)));
    }
    let mut errors = Vec::new();
    for (label, url) in sources {
        match http::get(&url, Route::Miner, SCRAPE_TIMEOUT, None, MAX_BODY_BYTES) {
            Ok(response) if response.status == 200 => {
                return format!(
                    "# jarvis mine validate-host: {label} metrics from {url} at {}\n{}",
                    artifacts::utc_now(),
                    response.body
                );
            }
            Ok(response) => errors.push(format!("{label} {url}: HTTP {}", response.status)),
            Err(err) => errors.push(format!("{label} {url}: {err}")),
        }
    }
    format!(
        "# jarvis mine validate-host: no metrics at {}: {}\n",
        artifacts::utc_now(),
        if errors.is_empty() {
            "no metrics URL recorded".to_owned()
        } else {
            errors.join(" | ")
        }
    )
}

/// `jarvis mine stop`, then the cleanup checks. `running`: the miner ran
/// until now, so `stop` must find it (after a failed start, the host has
/// already torn the session down and `stop` only makes sure).
fn stop_and_check(
    context: &SessionContext,
    miner: &Miner,
    running: bool,
    artifacts: &Artifacts,
    recorder: &mut Recorder<'_>,
) {
    recorder.step("stopping the miner (`jarvis mine stop`)");
    let stopped = match miner.stop() {
        Ok(report) => {
            let mut problems: Vec<String> = report.cleanup.errors.clone();
            if let Some(failure) = &report.provider_failure {
                problems.insert(0, failure.to_string());
            }
            let removed = report.cleanup.lines().join("; ");
            let removed = if removed.is_empty() {
                "nothing was left for the host to remove".to_owned()
            } else {
                format!("the host removed: {removed}")
            };
            if !problems.is_empty() {
                Criterion::fail(STOP, problems.join("; "))
            } else if running && !report.stopped {
                Criterion::fail(
                    STOP,
                    "nothing was running to stop: the session had gone before `stop`",
                )
            } else if running {
                Criterion::pass(STOP, format!("mining stopped; {removed}"))
            } else {
                Criterion::pass(STOP, format!("after the failed start, {removed}"))
            }
        }
        Err(err) => Criterion::fail(STOP, err.to_string()),
    };
    recorder.record(stopped, artifacts);
    recorder.record(cleanup(context), artifacts);
}

/// `Cleanup`: no container labelled for this home (nor a smoke container
/// of the gate's) and no session record.
pub fn cleanup(context: &SessionContext) -> Criterion {
    let home = context.paths.home_label();
    let mut left = Vec::new();
    for label in [LABEL_HOME, LABEL_SMOKE] {
        match context.docker.list_labelled(label, Some(&home)) {
            Ok(containers) => left.extend(
                containers
                    .into_iter()
                    .map(|c| format!("container {} ({}, {})", short_id(&c.id), c.name, c.state)),
            ),
            Err(err) => return Criterion::fail(CLEANUP, err.to_string()),
        }
    }
    let sidecar = context.paths.sidecar();
    if sidecar.exists() {
        left.push(format!("session record {}", sidecar.display()));
    }
    if left.is_empty() {
        Criterion::pass(
            CLEANUP,
            format!(
                "no container labelled for {home}; no session record ({})",
                sidecar.display()
            ),
        )
    } else {
        Criterion::fail(CLEANUP, format!("left behind: {}", left.join(", ")))
    }
}
