//! A provider that tries to escape, one attempt per call.
//!
//! `start` performs exactly the attack `[mining.extra].attack` names, with
//! the parameters the other `[mining.extra]` keys give, and returns the host
//! import's answer as its own result, so a test sees the host's error as is.
//! Attacks that make several calls (`all-imports`, `scrape` with a `count`,
//! `loop`) report every answer in one `failed` error, one line each:
//! `<import>\t<answer>` where the answer is `ok` or `<kind>: <message>`;
//! the batch imports (`grep-logs-all`, `scrape-all`) report each request's
//! answer so, as `request#<i>`, or the whole call's error as it is.
//! `gpu-telemetry` reports what `gpu-telemetry.sample` read, in one `failed`
//! error too: `<n> GPUs`, then each reading's `Debug` text on a line.
//!
//! `detect` reports the GPUs it was shown and what a privileged import said
//! (it must be denied: `detect` is pure); its `model` argument picks another
//! attack (`all-imports`, `sleep:<ms>`, `resources:<n>`).
//!
//! Besides the world's imports the guest reaches for WASI directly
//! (`wasi:clocks/monotonic-clock`): pollables that it holds fill the host's
//! resource table, and blocking on one sleeps inside a host call.

use mining_provider_sdk::host::{clock, containers, gpu_telemetry, metrics, processes, sidecar};
use mining_provider_sdk::types::{
    Capabilities, Capability, Error, ExtraValue, HardwareFacts, MiningConfig, ProviderInfo,
};
use mining_provider_sdk::{Provider, export_provider, log};

mod wasi {
    wit_bindgen::generate!({
        world: "wasi-reach",
        path: "wit",
        generate_all,
    });
}

use wasi::wasi::clocks::monotonic_clock;

struct Escape;

impl Provider for Escape {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "escape".into(),
            version: "0.0.1".into(),
            description: "tries one escape per call".into(),
            capabilities: vec![
                Capability::Containers,
                Capability::Sidecar,
                Capability::Metrics,
                Capability::Processes,
                Capability::GpuTelemetry,
            ],
        }
    }

    fn detect(facts: HardwareFacts, _engine_id: String, model: String) -> Capabilities {
        let (mode, arg) = model.split_once(':').unwrap_or((&model, ""));
        let params = Params(Vec::new());
        match mode {
            "all-imports" => Capabilities::unsupported(all_imports(&params)),
            "sleep" => Capabilities::unsupported(sleep(arg.parse().unwrap_or(60_000))),
            "resources" => {
                Capabilities::unsupported(hold_pollables(arg.parse().unwrap_or(100_000)))
            }
            // Well-behaved but curious: what it was shown, and whether the
            // host lets a pure call read the session record.
            _ => {
                let gpus: Vec<String> = facts.gpus.iter().map(|g| g.index.to_string()).collect();
                let read = answer(sidecar::read().map(drop));
                Capabilities::unsupported(format!("gpus=[{}] sidecar.read={read}", gpus.join(",")))
            }
        }
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        let params = Params(config.extra.clone());
        let attack = config.extra_text("attack").unwrap_or_default();
        match attack.as_str() {
            "ensure-image" => containers::ensure_image(&params.image()),
            "run" => containers::run(&params.spec()).map(drop),
            "stop" => containers::stop(&params.container(), 1),
            "remove" => containers::remove(&params.container()),
            "inspect" => containers::inspect(&params.container()).map(drop),
            "grep-logs" => {
                match containers::grep_logs(&params.container(), &params.patterns(), 100) {
                    Ok(lines) if lines.is_empty() => Ok(()),
                    Ok(lines) => Err(Error::Failed(format!("read logs: {lines:?}"))),
                    Err(err) => Err(err),
                }
            }
            // One batch over `containers` (default: `container`), each
            // request's answer (or the whole call's error).
            "grep-logs-all" => {
                let mut ids = params.texts("containers");
                if ids.is_empty() {
                    ids.push(params.container());
                }
                let limit = params.text("limit", "100").parse().unwrap_or(100);
                let requests: Vec<containers::LogGrep> = ids
                    .iter()
                    .map(|id| containers::LogGrep {
                        id: id.clone(),
                        patterns: params.patterns(),
                        limit,
                    })
                    .collect();
                batch_report(containers::grep_logs_all(&requests), |lines| {
                    format!("ok {} lines {lines:?}", lines.len())
                })
            }
            // One batch over `urls`, each answer (or the whole call's error).
            "scrape-all" => batch_report(metrics::scrape_all(&params.texts("urls")), |samples| {
                format!("ok {} samples", samples.len())
            }),
            "sidecar-write" => sidecar::write(&params.session()),
            "sidecar-read" => sidecar::read().map(drop),
            "sidecar-remove" => sidecar::remove(),
            "scrape" => {
                let url = params.text("url", "http://127.0.0.1:1/metrics");
                match params.count(1) {
                    1 => metrics::scrape(&url).map(drop),
                    n => Err(Error::Failed(
                        (0..n)
                            .map(|i| format!("scrape#{i}\t{}", answer(metrics::scrape(&url))))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )),
                }
            }
            "loop" => Err(Error::Failed(tight_loop(
                &params.text("import", "sidecar.read"),
                params.count(0),
            ))),
            "all-imports" => Err(Error::Failed(all_imports(&params))),
            "resources" => Err(Error::Failed(hold_pollables(params.count(100_000)))),
            "resources-cycle" => Err(Error::Failed(cycle_pollables(params.count(5000)))),
            "sleep" => Err(Error::Failed(sleep(params.count(60_000)))),
            // One grep per pattern, reporting how many lines each matched:
            // the counts must not depend on a secret's value.
            "grep-probe" => Err(Error::Failed(
                params
                    .patterns()
                    .iter()
                    .map(|pattern| {
                        let answer = match containers::grep_logs(
                            &params.container(),
                            std::slice::from_ref(pattern),
                            1000,
                        ) {
                            Ok(lines) => lines.len().to_string(),
                            Err(err) => answer::<()>(Err(err)),
                        };
                        format!("{pattern}\t{answer}")
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
            // Every container-reference import on one reference, each answer.
            "probe-reference" => {
                let id = params.container();
                Err(Error::Failed(
                    [
                        ("stop", answer(containers::stop(&id, 1))),
                        (
                            "inspect",
                            match containers::inspect(&id) {
                                Ok(state) => {
                                    format!("ok {}", if state.is_some() { "found" } else { "none" })
                                }
                                Err(err) => answer::<()>(Err(err)),
                            },
                        ),
                        (
                            "grep-logs",
                            match containers::grep_logs(&id, &params.patterns(), 100) {
                                Ok(lines) => format!("ok {} lines", lines.len()),
                                Err(err) => answer::<()>(Err(err)),
                            },
                        ),
                        ("remove", answer(containers::remove(&id))),
                    ]
                    .iter()
                    .map(|(import, answer)| format!("{import}\t{answer}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                ))
            }
            // Writes a session record naming an endpoint, then scrapes it.
            "declare-and-scrape" => {
                let written = answer(sidecar::write(&params.session()));
                let url = params.text("url", "http://127.0.0.1:1/metrics");
                Err(Error::Failed(format!(
                    "sidecar.write\t{written}\nmetrics.scrape\t{}",
                    answer(metrics::scrape(&url))
                )))
            }
            // `count` containers named `<name>-<i>`, each answer.
            "run-many" => {
                let base = params.spec();
                Err(Error::Failed(
                    (0..params.count(2))
                        .map(|i| {
                            let mut spec = base.clone();
                            spec.name = format!("{}-{i}", base.name);
                            format!("run#{i}\t{}", answer(containers::run(&spec)))
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            }
            "spawn" => processes::spawn(&params.process()).map(drop),
            // `count` processes named `<name>-<i>`, each answer.
            "spawn-many" => {
                let base = params.process();
                Err(Error::Failed(
                    (0..params.count(2))
                        .map(|i| {
                            let mut spec = base.clone();
                            spec.name = format!("{}-{i}", base.name);
                            format!("spawn#{i}\t{}", answer(processes::spawn(&spec)))
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            }
            // Every process-handle import on one handle, each answer (`keep`:
            // all but `stop`).
            "probe-process" => {
                let handle = params.text("handle", "escape-no-such-process");
                let port = params.text("port", "1").parse().unwrap_or(1);
                Err(Error::Failed(
                    [
                        (
                            "wait-listening",
                            answer(processes::wait_listening(
                                &handle,
                                port,
                                params.text("wait_ms", "200").parse().unwrap_or(200),
                            )),
                        ),
                        (
                            "inspect",
                            match processes::inspect(&handle) {
                                Ok(state) => {
                                    format!("ok {}", if state.is_some() { "found" } else { "none" })
                                }
                                Err(err) => answer::<()>(Err(err)),
                            },
                        ),
                        (
                            "tail-log",
                            match processes::tail_log(&handle, 100) {
                                Ok(lines) => format!("ok {} lines {lines:?}", lines.len()),
                                Err(err) => answer::<()>(Err(err)),
                            },
                        ),
                        (
                            "stop",
                            if params.flag("keep") {
                                "skipped".to_owned()
                            } else {
                                answer(processes::stop(&handle, 100))
                            },
                        ),
                    ]
                    .iter()
                    .map(|(import, answer)| format!("{import}\t{answer}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                ))
            }
            "sidecar-write-processes" => sidecar::write_processes(&params.process_session()),
            "gpu-telemetry" => {
                let readings = gpu_telemetry::sample()?;
                Err(Error::Failed(
                    std::iter::once(format!("{} GPUs", readings.len()))
                        .chain(readings.iter().map(|reading| format!("{reading:?}")))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            }
            other => Err(Error::Invalid(format!("unknown attack {other:?}"))),
        }
    }
}

export_provider!(Escape);

/// `[mining.extra]`, read leniently with defaults.
struct Params(Vec<(String, ExtraValue)>);

impl Params {
    fn get(&self, key: &str) -> Option<&ExtraValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn text(&self, key: &str, default: &str) -> String {
        match self.get(key) {
            Some(ExtraValue::Text(text)) => text.clone(),
            Some(ExtraValue::Integer(n)) => n.to_string(),
            _ => default.to_owned(),
        }
    }

    fn texts(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(ExtraValue::Texts(items)) => items.clone(),
            Some(ExtraValue::Text(text)) => vec![text.clone()],
            _ => Vec::new(),
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(ExtraValue::Boolean(true)))
    }

    fn count(&self, default: u64) -> u64 {
        match self.get("count") {
            Some(ExtraValue::Integer(n)) if *n >= 0 => *n as u64,
            _ => default,
        }
    }

    fn image(&self) -> String {
        self.text("image", "jarvis-test/escape-absent:1")
    }

    fn container(&self) -> String {
        self.text("container", "escape-no-such-container")
    }

    fn patterns(&self) -> Vec<String> {
        match self.texts("patterns") {
            patterns if patterns.is_empty() => vec![String::new()],
            patterns => patterns,
        }
    }

    /// A container spec: a valid one unless the parameters make it otherwise.
    fn spec(&self) -> containers::ContainerSpec {
        use containers::{EnvValue, GpuRequest, Mount, MountSource, Port};
        let mut env: Vec<(String, EnvValue)> = self
            .texts("env")
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), EnvValue::Text(v.to_owned())))
            .collect();
        if let Some(ExtraValue::Text(var)) = self.get("secret") {
            let name = self.text("secret_as", "MINER_SECRET");
            env.push((name, EnvValue::Secret(var.clone())));
        }
        let gpus = match self.get("gpus") {
            Some(ExtraValue::Texts(ids)) => GpuRequest::DeviceIds(ids.clone()),
            Some(ExtraValue::Text(all)) if all == "all" => GpuRequest::All,
            Some(ExtraValue::Text(id)) => GpuRequest::DeviceIds(vec![id.clone()]),
            Some(ExtraValue::Integer(n)) => GpuRequest::Count(*n as u32),
            _ => GpuRequest::None,
        };
        let mounts = self
            .texts("mount")
            .into_iter()
            .map(|path| Mount {
                source: if path == "hf-cache" {
                    MountSource::HfCache
                } else {
                    MountSource::HostPath(path)
                },
                target: self.text("mount_target", "/data"),
                read_only: self.flag("read_only"),
            })
            .collect();
        let ports = self
            .texts("ports")
            .iter()
            .filter_map(|pair| {
                let (host, container) = pair.split_once(':')?;
                Some(Port {
                    host: host.parse().ok()?,
                    container: container.parse().ok()?,
                })
            })
            .collect();
        containers::ContainerSpec {
            name: self.text("name", "escape-miner"),
            image: self.image(),
            args: self.texts("args"),
            env,
            gpus,
            mounts,
            ports,
            shm_size_bytes: match self.get("shm_bytes") {
                Some(ExtraValue::Integer(n)) => Some(*n as u64),
                _ => None,
            },
            network: self.text("network", "none"),
            restart: self.text("restart", "no"),
        }
    }

    /// A process spec: `pearl-gateway start` unless the parameters say
    /// otherwise (`program`, `args`, `env` as NAME=VALUE, `secret`, `ports`).
    fn process(&self) -> processes::ProcessSpec {
        use processes::EnvValue;
        let mut env: Vec<(String, EnvValue)> = self
            .texts("env")
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), EnvValue::Text(v.to_owned())))
            .collect();
        if let Some(ExtraValue::Text(var)) = self.get("secret") {
            let name = self.text("secret_as", "PEARLD_RPC_PASSWORD");
            env.push((name, EnvValue::Secret(var.clone())));
        }
        let args = match self.texts("args") {
            args if args.is_empty() && !self.flag("no_args") => vec!["start".to_owned()],
            args => args,
        };
        processes::ProcessSpec {
            name: self.text("name", "escape-process"),
            program: self.text("program", "pearl-gateway"),
            args,
            env,
            ports: self
                .texts("ports")
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        }
    }

    fn process_session(&self) -> sidecar::ProcessSession {
        sidecar::ProcessSession {
            gateway_url: self.text("gateway_url", "http://127.0.0.1:8337"),
            metrics_url: self.text("metrics_url", "http://127.0.0.1:8339/metrics"),
            wallet_address: self.text("wallet_address", "prl1escape"),
            gateway_process: self.text("gateway_process", "escape-process"),
            miner_loop_process: self.text("miner_loop_process", "escape-process"),
        }
    }

    /// A valid session record, with the fields the parameters override, and
    /// `huge_field` (if named) grown to `huge_size` bytes.
    fn session(&self) -> sidecar::Session {
        let field = |key: &str, default: &str| {
            if self.text("huge_field", "") == key {
                let size = match self.get("huge_size") {
                    Some(ExtraValue::Integer(n)) => *n as usize,
                    _ => 4096,
                };
                "a".repeat(size)
            } else {
                self.text(key, default)
            }
        };
        sidecar::Session {
            vllm_endpoint: field("vllm_endpoint", "http://127.0.0.1:8000/v1"),
            model: field("model", "escape/model"),
            gateway_url: field("gateway_url", "http://127.0.0.1:8337"),
            gateway_metrics_url: field("gateway_metrics_url", "http://127.0.0.1:8339"),
            metrics_url: field("metrics_url", "http://127.0.0.1:8000/metrics"),
            container_id: field("container_id", "escape-container"),
            wallet_address: field("wallet_address", "prl1escape"),
            image: field("session_image", "jarvis-test/escape:1"),
            workers: Vec::new(),
        }
    }
}

/// A batch import's answers, one `request#<i>\t<answer>` line each, in a
/// `failed` error; the whole call's error as it is.
fn batch_report<T>(
    answers: Result<Vec<Result<T, Error>>, Error>,
    ok: impl Fn(&T) -> String,
) -> Result<(), Error> {
    let lines: Vec<String> = answers?
        .iter()
        .enumerate()
        .map(|(i, answer)| match answer {
            Ok(value) => format!("request#{i}\t{}", ok(value)),
            Err(err) => format!("request#{i}\t{}", self::answer::<()>(Err(err.clone()))),
        })
        .collect();
    Err(Error::Failed(lines.join("\n")))
}

/// `ok`, or `<kind>: <message>`.
fn answer<T>(result: Result<T, Error>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(Error::Denied(m)) => format!("denied: {m}"),
        Err(Error::Invalid(m)) => format!("invalid: {m}"),
        Err(Error::Unavailable(m)) => format!("unavailable: {m}"),
        Err(Error::Failed(m)) => format!("failed: {m}"),
    }
}

/// Every import once, each answer on its own line.
fn all_imports(params: &Params) -> String {
    let container = params.container();
    let results = [
        (
            "containers.ensure-image",
            answer(containers::ensure_image(&params.image())),
        ),
        ("containers.run", answer(containers::run(&params.spec()))),
        (
            "containers.run-all",
            answer(containers::run_all(&[params.spec()])),
        ),
        ("containers.stop", answer(containers::stop(&container, 1))),
        ("containers.remove", answer(containers::remove(&container))),
        (
            "containers.inspect",
            answer(containers::inspect(&container)),
        ),
        (
            "containers.grep-logs",
            answer(containers::grep_logs(&container, &params.patterns(), 100)),
        ),
        (
            "containers.grep-logs-all",
            answer(containers::grep_logs_all(&[containers::LogGrep {
                id: container.clone(),
                patterns: params.patterns(),
                limit: 100,
            }])),
        ),
        ("sidecar.write", answer(sidecar::write(&params.session()))),
        (
            "sidecar.write-processes",
            answer(sidecar::write_processes(&params.process_session())),
        ),
        ("sidecar.read-processes", answer(sidecar::read_processes())),
        ("sidecar.read", answer(sidecar::read())),
        ("sidecar.remove", answer(sidecar::remove())),
        (
            "metrics.scrape",
            answer(metrics::scrape(
                &params.text("url", "http://127.0.0.1:1/metrics"),
            )),
        ),
        (
            "metrics.scrape-all",
            answer(metrics::scrape_all(&[
                params.text("url", "http://127.0.0.1:1/metrics")
            ])),
        ),
        (
            "processes.spawn",
            answer(processes::spawn(&params.process())),
        ),
        (
            "processes.wait-listening",
            answer(processes::wait_listening("escape-process", 8337, 100)),
        ),
        (
            "processes.stop",
            answer(processes::stop("escape-process", 100)),
        ),
        (
            "processes.inspect",
            answer(processes::inspect("escape-process")),
        ),
        (
            "processes.tail-log",
            answer(processes::tail_log("escape-process", 10)),
        ),
        ("gpu-telemetry.sample", answer(gpu_telemetry::sample())),
        ("clock.now", answer(clock::now())),
    ];
    results
        .iter()
        .map(|(import, result)| format!("{import}\t{result}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Calls `import` `count` times (0: until the host stops it) and counts the answers.
fn tight_loop(import: &str, count: u64) -> String {
    let (mut ok, mut denied, mut other) = (0u64, 0u64, 0u64);
    let mut last = String::new();
    let mut n = 0u64;
    while count == 0 || n < count {
        n += 1;
        let result = match import {
            "sidecar.read" => sidecar::read().map(drop),
            "containers.inspect" => containers::inspect("escape-no-such-container").map(drop),
            "clock.now" => clock::now().map(drop),
            "gpu-telemetry.sample" => gpu_telemetry::sample().map(drop),
            "log" => {
                log::info("tight loop");
                Ok(())
            }
            other => return format!("unknown import {other:?}"),
        };
        match result {
            Ok(()) => ok += 1,
            Err(Error::Denied(m)) => {
                denied += 1;
                last = m;
            }
            Err(err) => {
                other += 1;
                last = answer::<()>(Err(err));
            }
        }
    }
    format!("{n} calls: {ok} ok, {denied} denied, {other} other; last: {last}")
}

/// Subscribes `count` pollables and keeps every one of them.
fn hold_pollables(count: u64) -> String {
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(monotonic_clock::subscribe_duration(3_600_000_000_000));
    }
    format!("held {} pollables", held.len())
}

/// Subscribes and drops `count` pollables, one at a time.
fn cycle_pollables(count: u64) -> String {
    for _ in 0..count {
        drop(monotonic_clock::subscribe_duration(3_600_000_000_000));
    }
    format!("cycled {count} pollables")
}

/// Blocks inside the host for `millis` of real time.
fn sleep(millis: u64) -> String {
    monotonic_clock::subscribe_duration(millis.saturating_mul(1_000_000)).block();
    format!("slept {millis} ms inside the host")
}
