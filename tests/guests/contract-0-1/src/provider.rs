// The contract test provider, one source built twice: against the frozen
// 0.1.0 contract (this crate) and against the current one
// (tests/guests/contract-0-2), each with bindings of its own (not the SDK),
// so the two components make exactly the same calls (tests/contract_versions.rs).
// The crate including this file provides `CONTRACT` (its version) and the
// records whose fields differ between versions: `mining_stats`, `verdict`
// (`capabilities`) and `session` (the sidecar's `session`).
//
// - `detect` is supported on Linux with an NVIDIA GPU and otherwise says what
//   it saw; with the model `all-imports` it calls every import instead.
// - `start` runs the fake miner (`[mining.extra].image`) on the host network
//   at `[mining.extra].port`, with no GPU, and records the session; with
//   `[mining.extra].attack = "all-imports"` it calls every import instead and
//   returns the report as a `failed` error.
// - `stop`, `is-running` and `stats` work from the session record; `stats`
//   counts the fake miner's block submissions in its log (rejections are
//   not counted: 0.1.0 has no place for them).
//
// The report has one line per import of the world, in the WIT's order:
// `<interface>.<function>\t<answer>`, the answer `ok` or `<kind>: <message>`.

use crate::exports::openjarvis::mining::provider::Guest;
use crate::openjarvis::mining::containers::{self, ContainerSpec, GpuRequest, Port};
use crate::openjarvis::mining::types::{
    Capabilities, Capability, EnvValue, Error, ExtraValue, HardwareFacts, MiningConfig,
    MiningStats, ProviderInfo,
};
use crate::openjarvis::mining::{clock, log, metrics, processes, sidecar};

const ID: &str = "contract";
/// Fake miner log lines (tests/fake-miner), as Pearl's gateway prints them.
const SUBMITTED: &str = "Submitting block";
const ACCEPTED: &str = "Block accepted by node";

pub struct Contract;

impl Guest for Contract {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: ID.into(),
            version: crate::CONTRACT.into(),
            description: format!(
                "the contract test provider, built against openjarvis:mining@{}",
                crate::CONTRACT
            ),
            capabilities: vec![
                Capability::Containers,
                Capability::Sidecar,
                Capability::Metrics,
                Capability::Processes,
            ],
        }
    }

    fn detect(facts: HardwareFacts, engine_id: String, model: String) -> Capabilities {
        if model == "all-imports" {
            return unsupported(all_imports(&Params(Vec::new())));
        }
        let nvidia = facts.gpus.iter().filter(|g| g.vendor == "nvidia").count();
        if facts.os.as_deref() == Some("linux") && nvidia > 0 {
            return crate::verdict(true, None);
        }
        unsupported(format!(
            "{ID} needs Linux and an NVIDIA GPU; it was shown {} with {} GPU(s) for {engine_id} {model}",
            facts.os.as_deref().unwrap_or("an unknown OS"),
            facts.gpus.len()
        ))
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        let params = Params(config.extra);
        if params.text("attack").as_deref() == Some("all-imports") {
            return Err(Error::Failed(all_imports(&params)));
        }
        let image = params
            .text("image")
            .ok_or_else(|| Error::Invalid("[mining.extra].image is required".into()))?;
        let port = match params.get("port") {
            Some(ExtraValue::Integer(port)) => u16::try_from(*port).ok(),
            _ => None,
        }
        .ok_or_else(|| Error::Invalid("[mining.extra].port is required".into()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let id = containers::run(&miner(&image, port))?;
        log::log(log::Level::Info, &format!("started the fake miner {id}"));
        sidecar::write(&crate::session(&endpoint, id, config.wallet_address, image))
    }

    fn stop() -> Result<(), Error> {
        let Some(session) = sidecar::read()? else {
            return Ok(());
        };
        containers::stop(&session.container_id, 5)?;
        containers::remove(&session.container_id)?;
        sidecar::remove()
    }

    fn is_running() -> bool {
        let Ok(Some(session)) = sidecar::read() else {
            return false;
        };
        matches!(containers::inspect(&session.container_id), Ok(Some(state)) if state.running)
    }

    fn stats() -> MiningStats {
        let session = match sidecar::read() {
            Ok(Some(session)) => session,
            Ok(None) => return crate::mining_stats(ID, Counts::default(), None),
            Err(err) => return crate::mining_stats(ID, Counts::default(), Some(describe(err))),
        };
        let mut counts = Counts::default();
        let patterns = [SUBMITTED, ACCEPTED].map(String::from);
        let lines = match containers::grep_logs(&session.container_id, &patterns, 1000) {
            Ok(lines) => lines,
            Err(err) => return crate::mining_stats(ID, counts, Some(describe(err))),
        };
        let count = |pattern: &str| lines.iter().filter(|l| l.contains(pattern)).count() as u64;
        counts.submitted = count(SUBMITTED);
        counts.accepted = count(ACCEPTED);
        let last_error = match metrics::scrape(&session.metrics_url) {
            Ok(samples) => {
                counts.requests = samples
                    .iter()
                    .filter(|s| s.name == "vllm:request_success_total")
                    .map(|s| s.value as u64)
                    .sum();
                None
            }
            Err(err) => Some(describe(err)),
        };
        crate::mining_stats(ID, counts, last_error)
    }
}

/// What `stats` counted.
#[derive(Default)]
pub struct Counts {
    pub submitted: u64,
    pub accepted: u64,
    pub requests: u64,
}

fn unsupported(reason: String) -> Capabilities {
    crate::verdict(false, Some(reason))
}

/// The fake miner on the host network at `port`, no GPU.
fn miner(image: &str, port: u16) -> ContainerSpec {
    ContainerSpec {
        name: "contract-miner".into(),
        image: image.into(),
        args: ["contract/model", "--host", "127.0.0.1", "--port"]
            .map(String::from)
            .into_iter()
            .chain([port.to_string()])
            .collect(),
        env: Vec::new(),
        gpus: GpuRequest::None,
        mounts: Vec::new(),
        ports: vec![Port {
            host: port,
            container: port,
        }],
        shm_size_bytes: None,
        network: "host".into(),
        restart: "no".into(),
    }
}

/// `[mining.extra]`.
struct Params(Vec<(String, ExtraValue)>);

impl Params {
    fn get(&self, key: &str) -> Option<&ExtraValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(ExtraValue::Text(text)) => Some(text.clone()),
            _ => None,
        }
    }
}

/// `ok`, or the error as [`describe`] says it.
fn answer<T>(result: Result<T, Error>) -> String {
    result.map_or_else(describe, |_| "ok".into())
}

/// `<kind>: <message>`.
fn describe(error: Error) -> String {
    match error {
        Error::Denied(m) => format!("denied: {m}"),
        Error::Invalid(m) => format!("invalid: {m}"),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::Failed(m) => format!("failed: {m}"),
    }
}

/// Every import of the world once, in the WIT's order, each answer on a
/// line of its own. The requests are valid ones, so that only a denial
/// stops them; `[mining.extra].image` and `.port` name the image and the
/// loopback port they use.
fn all_imports(params: &Params) -> String {
    let image = params
        .text("image")
        .unwrap_or_else(|| "jarvis-test/contract-never-pulled:1".into());
    let port = match params.get("port") {
        Some(ExtraValue::Integer(port)) => u16::try_from(*port).unwrap_or(1),
        _ => 1,
    };
    let container = "contract-miner";
    let url = format!("http://127.0.0.1:{port}/metrics");
    let session = crate::session(
        &format!("http://127.0.0.1:{port}"),
        container.into(),
        "prl1contract".into(),
        image.clone(),
    );
    let process_session = sidecar::ProcessSession {
        gateway_url: "http://127.0.0.1:8337".into(),
        metrics_url: "http://127.0.0.1:8339/metrics".into(),
        wallet_address: "prl1contract".into(),
        gateway_process: "contract-gateway".into(),
        miner_loop_process: "contract-gateway".into(),
    };
    let process = processes::ProcessSpec {
        name: "contract-gateway".into(),
        program: "pearl-gateway".into(),
        args: vec!["start".into()],
        env: vec![("MINER_RPC_TRANSPORT".into(), EnvValue::Text("tcp".into()))],
        ports: vec![8337],
    };
    log::log(log::Level::Info, "contract: calling every import");
    let results = [
        ("log.log", "ok".to_owned()),
        ("clock.now", answer(clock::now())),
        (
            "containers.ensure-image",
            answer(containers::ensure_image(&image)),
        ),
        (
            "containers.run",
            answer(containers::run(&miner(&image, port))),
        ),
        ("containers.stop", answer(containers::stop(container, 1))),
        ("containers.remove", answer(containers::remove(container))),
        ("containers.inspect", answer(containers::inspect(container))),
        (
            "containers.grep-logs",
            answer(containers::grep_logs(container, &[SUBMITTED.into()], 10)),
        ),
        ("sidecar.write", answer(sidecar::write(&session))),
        (
            "sidecar.write-processes",
            answer(sidecar::write_processes(&process_session)),
        ),
        ("sidecar.read-processes", answer(sidecar::read_processes())),
        ("sidecar.read", answer(sidecar::read())),
        ("sidecar.remove", answer(sidecar::remove())),
        ("metrics.scrape", answer(metrics::scrape(&url))),
        ("processes.spawn", answer(processes::spawn(&process))),
        (
            "processes.wait-listening",
            answer(processes::wait_listening("contract-gateway", 8337, 100)),
        ),
        (
            "processes.stop",
            answer(processes::stop("contract-gateway", 100)),
        ),
        (
            "processes.inspect",
            answer(processes::inspect("contract-gateway")),
        ),
        (
            "processes.tail-log",
            answer(processes::tail_log("contract-gateway", 10)),
        ),
    ];
    results
        .iter()
        .map(|(import, result)| format!("{import}\t{result}"))
        .collect::<Vec<_>>()
        .join("\n")
}
