//! The NVIDIA release gate as one command (`jarvis mine validate-host`):
//! the validation runbook of reference §8.3, in its order, on this host.
//!
//! 1. the GPUs, from NVML or a facts file ([`host`]);
//! 2. `docker info`: the daemon answers, an NVIDIA runtime is registered
//!    ([`host`]);
//! 3. a GPU container (`nvidia-smi -L`), only with a CUDA image already
//!    here ([`smoke`]);
//! 4. free space where models are cached ([`host`]);
//! 5. the doctor, and 6. the init check: a `[mining]` table for vllm-pearl
//!    that validates, and its image present ([`setup`]);
//! 7. with `--start`: start, `/v1/models`, a chat, share or block
//!    evidence, the pearld probe, stop, and the cleanup checks
//!    ([`session`]), only when steps 1 to 6 found no failure.
//!
//! Each step is a pass criterion ([`criteria`]); the artifacts
//! ([`artifacts`]: `doctor.json`, `status-before.json`, `status-after.json`,
//! `metrics.txt`, `log-tail.txt`, `docker-inspect.json` and `summary.json`)
//! are written atomically and redacted of every secret.

pub mod artifacts;
pub mod criteria;
pub mod host;
pub mod session;
pub mod setup;
pub mod smoke;

pub use criteria::{Criterion, Scope, Summary, Verdict};

use crate::config::{Config, extra_string};
use crate::docker::Docker;
use crate::doctor::FactsSource;
use crate::facts::GpuSelection;
use crate::lifecycle::{Miner, StartOptions};
use crate::paths::Paths;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use artifacts::Artifacts;
use criteria::FactsOrigin;
use host::Source;
use host_gpu::HardwareFacts;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Everything the gate works from.
pub struct GateInput<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    /// Why the config could not be read (a failed `Mining config`).
    pub config_error: Option<String>,
    /// This host's facts, or the facts file's.
    pub facts: &'a HardwareFacts,
    /// The facts file, when the facts come from one.
    pub facts_file: Option<&'a Path>,
    pub sandbox: &'a Sandbox,
    pub registry: &'a Registry,
    pub policy: &'a Policy,
    pub docker: Result<Arc<Docker>, String>,
    /// The longest one step may wait: a request to the miner, the GPU
    /// container, the wait for share evidence.
    pub timeout: Duration,
    pub output_dir: &'a Path,
}

/// What the gate reports as it goes.
pub trait Progress {
    /// A criterion was judged (its detail already redacted).
    fn criterion(&mut self, criterion: &Criterion);
    /// A step that may take a while begins.
    fn step(&mut self, what: &str);
}

/// The criteria judged so far, each reported as it comes.
pub struct Recorder<'p> {
    criteria: Vec<Criterion>,
    progress: &'p mut dyn Progress,
}

impl Recorder<'_> {
    /// Records `criterion`, its detail redacted of every secret `artifacts`
    /// knows.
    pub fn record(&mut self, mut criterion: Criterion, artifacts: &Artifacts) {
        criterion.detail = artifacts.redact(&criterion.detail);
        self.progress.criterion(&criterion);
        self.criteria.push(criterion);
    }

    pub fn step(&mut self, what: &str) {
        self.progress.step(what);
    }
}

/// What the gate found, and whether `summary.json` could be written.
pub struct Outcome {
    pub summary: Summary,
    /// `summary.json`'s text, as written.
    pub summary_text: String,
    /// Why `summary.json` was not written, if it was not.
    pub summary_error: Option<String>,
}

/// Runs the gate; `start` (the options of `jarvis mine start`) runs step 7.
pub fn run(input: &GateInput, start: Option<StartOptions>, progress: &mut dyn Progress) -> Outcome {
    let started_at = artifacts::utc_now();
    let mining = input.config.mining.as_ref();
    let mut secret_names = Vec::new();
    if let Some(mining) = mining {
        secret_names.push(mining.pearld_password_env());
        if let Ok(Some(hf)) = extra_string(&mining.extra, "hf_token_env") {
            secret_names.push(hf);
        }
    }
    let mut artifacts = Artifacts::new(input.output_dir, secret_names);
    let mut recorder = Recorder {
        criteria: Vec::new(),
        progress,
    };

    let miner = Miner {
        paths: input.paths,
        mining,
        config_error: input.config_error.clone(),
        sandbox: input.sandbox,
        registry: input.registry,
        docker: input.docker.clone(),
    };
    artifacts.write_json(artifacts::STATUS_BEFORE, &session::status_json(&miner));

    // 1. The GPUs.
    let source = match input.facts_file {
        Some(file) => Source::File(file),
        None => Source::Probed,
    };
    let model = mining.map_or_else(
        || pearl_catalog::DEFAULT_PEARL_MODEL.to_owned(),
        |m| m.model(),
    );
    let selection = GpuSelection::new(mining.and_then(|m| m.cuda_visible_devices()).as_deref());
    recorder.record(
        host::gpus(input.facts, source, &selection, &model),
        &artifacts,
    );

    // 2. `docker info`, 3. a GPU container (judged first: a container that
    // ran proves the runtime), then the runtime.
    let (daemon, info) = host::daemon(&input.docker);
    recorder.record(daemon, &artifacts);
    let docker = input.docker.as_ref().ok().filter(|_| info.is_some());
    let gpu_smoke = smoke::run(
        docker.map(Arc::as_ref),
        source,
        &input.paths.home_label(),
        input.timeout,
    );
    recorder.record(
        host::nvidia_runtime(info.as_ref(), source, gpu_smoke.passed),
        &artifacts,
    );
    recorder.record(gpu_smoke, &artifacts);

    // 4. Disk.
    recorder.record(host::disk(input.facts, source), &artifacts);

    // 5. The doctor.
    let facts_source = match source {
        Source::File(_) => FactsSource::File,
        Source::Probed => FactsSource::Probed,
    };
    recorder.step("running the doctor");
    let (doctor, report) = setup::doctor(
        &setup::DoctorContext {
            paths: input.paths,
            config: input.config,
            sandbox: input.sandbox,
            registry: input.registry,
            policy: input.policy,
        },
        input.facts,
        facts_source,
    );
    artifacts.write_json(artifacts::DOCTOR, &report);
    recorder.record(doctor, &artifacts);

    // 6. The init check.
    recorder.record(
        setup::config(input.config, input.config_error.as_deref(), input.paths),
        &artifacts,
    );
    recorder.record(
        setup::image_present(mining, docker.map(Arc::as_ref)),
        &artifacts,
    );

    // 7. The miner.
    let scope = if start.is_some() {
        Scope::Full
    } else {
        Scope::Preflight
    };
    let failed: Vec<String> = criteria::failed_and_skipped(&recorder.criteria).0;
    match (start, mining, docker) {
        (None, _, _) => {}
        (Some(_), _, _) if !failed.is_empty() => {
            for criterion in session::skipped(&format!(
                "not run: the pre-flight failed ({})",
                failed.join(", ")
            )) {
                recorder.record(criterion, &artifacts);
            }
        }
        (Some(options), Some(mining), Some(docker)) => {
            let context = session::SessionContext {
                paths: input.paths,
                mining,
                sandbox: input.sandbox,
                registry: input.registry,
                docker: docker.clone(),
                timeout: input.timeout,
            };
            session::run(&context, options, &mut artifacts, &mut recorder);
        }
        (Some(_), _, _) => {
            for criterion in session::skipped("not run: no vllm-pearl config or no Docker daemon") {
                recorder.record(criterion, &artifacts);
            }
        }
    }

    let no_miner = match scope {
        Scope::Preflight => "no miner ran: pass --start",
        Scope::Full => "no miner ran",
    };
    if !artifacts.was_written(artifacts::STATUS_AFTER) {
        artifacts.write_json(artifacts::STATUS_AFTER, &session::status_json(&miner));
    }
    for name in [
        artifacts::METRICS,
        artifacts::LOG_TAIL,
        artifacts::DOCKER_INSPECT,
    ] {
        if !artifacts.outcomes().contains_key(name) {
            artifacts.not_written(name, no_miner);
        }
    }

    let criteria = recorder.criteria;
    let (failed, skipped) = criteria::failed_and_skipped(&criteria);
    let mut outcomes = artifacts.outcomes().clone();
    outcomes.insert(artifacts::SUMMARY.to_owned(), artifacts::WRITTEN.to_owned());
    let summary = Summary {
        schema_version: criteria::SCHEMA_VERSION,
        verdict: criteria::Verdict::of(&criteria),
        scope,
        failed,
        skipped,
        criteria,
        facts: FactsOrigin {
            source: match source {
                Source::File(_) => "file",
                Source::Probed => "nvml",
            },
            file: input.facts_file.map(|f| f.display().to_string()),
        },
        home: input.paths.home().display().to_string(),
        config_file: input.paths.config_file().display().to_string(),
        output_dir: input.output_dir.display().to_string(),
        artifacts: outcomes,
        started_at,
        finished_at: artifacts::utc_now(),
        jarvis_version: env!("CARGO_PKG_VERSION"),
    };
    let summary_text = artifacts
        .write_json(artifacts::SUMMARY, &summary)
        .unwrap_or_default();
    let summary_error = artifacts
        .outcomes()
        .get(artifacts::SUMMARY)
        .filter(|outcome| outcome.as_str() != artifacts::WRITTEN)
        .cloned();
    Outcome {
        summary,
        summary_text,
        summary_error,
    }
}
