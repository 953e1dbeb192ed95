//! Contract versions side by side: a component built against the frozen
//! `openjarvis:mining@0.1.0` (tests/guests/contract-0-1, bindings of its own)
//! under the host of 0.2.0.
//!
//! - The host decides each component's version from the `provider` it
//!   exports, and names both versions when a component exports neither.
//! - Every 0.1 import is a shim over its 0.2 twin, below which the gate sits:
//!   under each denying policy, every import of the 0.1 world (the list is
//!   read from `wit/0.1.0/types.wit`, so none can be left out) answers
//!   exactly as the same call from the same source built against 0.2.0
//!   (tests/guests/contract-0-2), with the same audit record but for the
//!   contract version (and component) it names.
//! - Through the `jarvis mine` CLI, the 0.1 component is installed,
//!   inspected, detects, starts the fake miner (tests/fake-miner, no GPU),
//!   reports its stats (no rejected shares: 0.1.0 has none) and stops.

use jarvis_mine::audit::{self, AuditLog, Decision, Record};
use jarvis_mine::bindings::{
    Contract, Error, ExtraValue, HardwareFacts, MiningConfig, SoloTarget, SubmitTarget,
};
use jarvis_mine::docker::Docker;
use jarvis_mine::host::{LABEL_HOME, Session};
use jarvis_mine::paths::Paths;
use jarvis_mine::policy::{Policy, PolicyFile};
use jarvis_mine::provider::{LoadedProvider, ProviderSource};
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use jarvis_mine_tests::run::{Run, jarvis_mine, wait_for};
use jarvis_mine_tests::{
    HomeContainers, contract_0_1_component, contract_0_2_component, fake_miner_image, free_port,
    guest_facts, h100_facts, labelled_processes, linux_with_gpus, miner_lock, world_imports,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const ID: &str = "contract";
const WALLET: &str = "prl1qcontractwallet";

/// What the user policy grants the contract provider for a mining session.
fn grant() -> String {
    format!(
        r#"
[providers.contract]
capabilities = ["containers", "sidecar", "metrics", "processes"]
gpus = ["*"]

[providers.contract.containers]
images = ["{}:*"]
network_modes = ["host"]
ports = ["1024-65535"]
"#,
        jarvis_mine_tests::FAKE_MINER_REPOSITORY
    )
}

fn parse(text: &str, path: &Path) -> PolicyFile {
    PolicyFile::parse(text, path).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

/// One OpenJarvis home with both twins loaded, as the same installed file,
/// under one policy.
struct Twins {
    _home: tempfile::TempDir,
    _containers: HomeContainers,
    paths: Paths,
    sandbox: Sandbox,
    /// The 0.1.0 component, then its 0.2.0 twin.
    providers: [LoadedProvider; 2],
}

impl Twins {
    /// `policy`'s system and user files (`None`: no such file).
    fn new(system: Option<&str>, user: Option<&str>) -> Twins {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::with_home(home.path().canonicalize().unwrap());
        let system_path = paths.home().join("system-policy.toml");
        let user_path = paths.user_policy().absolute();
        let policy = Policy::with_files(
            (
                system_path.clone(),
                system.map(|text| parse(text, &system_path)),
            ),
            (user_path.clone(), user.map(|text| parse(text, &user_path))),
        );
        let sandbox = Sandbox::new(SandboxLimits::default(), None)
            .unwrap()
            .with_audit(Arc::new(AuditLog::new(paths.audit_log())));
        let load = |bytes: Vec<u8>| {
            let sha256 = format!("{:x}", Sha256::digest(&bytes));
            let compiled = sandbox.compile(&bytes, &sha256).unwrap();
            LoadedProvider::new(
                &sandbox,
                sandbox.prepare(&compiled).unwrap(),
                ProviderSource::Installed(
                    paths.installed_providers().join("contract.wasm").absolute(),
                ),
                sha256,
                "contract.wasm",
                &policy,
            )
            .expect("info() succeeds")
        };
        let providers = [
            load(contract_0_1_component()),
            load(contract_0_2_component()),
        ];
        Twins {
            _containers: HomeContainers::new(paths.home()),
            _home: home,
            paths,
            sandbox,
            providers,
        }
    }

    fn session(&self) -> Session {
        let docker = Docker::connect()
            .map(Arc::new)
            .map_err(|err| err.to_string());
        Session {
            wallet_address: Some(WALLET.into()),
            ..Session::new("contract-session", self.paths.clone(), docker)
        }
    }

    fn records(&self) -> Vec<Record> {
        audit::read(&self.paths.audit_log(), &audit::Filter::default(), None).unwrap()
    }

    /// `start` of `provider` with `[mining.extra].attack = "all-imports"`:
    /// its report.
    fn all_imports_from_start(&self, provider: &LoadedProvider) -> String {
        let config = MiningConfig {
            provider: ID.into(),
            wallet_address: WALLET.into(),
            submit_target: SubmitTarget::Solo(SoloTarget {
                pearld_rpc_url: "http://127.0.0.1:44107".into(),
            }),
            fee_bps: 0,
            fee_payout_address: None,
            extra: vec![
                ("attack".into(), ExtraValue::Text("all-imports".into())),
                ("image".into(), ExtraValue::Text(fake_miner_image())),
                ("port".into(), ExtraValue::Integer(i64::from(free_port()))),
            ],
            workers: jarvis_mine::bindings::WorkersSetting::Auto,
            gpus: Vec::new(),
        };
        let host = provider.host_context(self.session());
        match provider.start(&self.sandbox, host, &config) {
            Ok(Err(Error::Failed(report))) => report,
            other => panic!("expected the report, got {other:?}"),
        }
    }

    /// `detect` of `provider` with the model `all-imports`: its report.
    fn all_imports_from_detect(&self, provider: &LoadedProvider) -> String {
        let facts: HardwareFacts = guest_facts(&linux_with_gpus(&[]));
        let verdict = provider
            .detect(&self.sandbox, &facts, "vllm", "all-imports")
            .unwrap();
        verdict.reason.expect("the report")
    }
}

/// `all-imports`' report as `(import, answer)` pairs.
fn report(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let (import, answer) = line.split_once('\t').expect("import<TAB>answer");
            (import.to_owned(), answer.to_owned())
        })
        .collect()
}

/// A record as its 0.2.0 twin's should read: the same but for what names
/// the component and its contract, and the times.
fn twin_view(record: &Record) -> Record {
    Record {
        time: String::new(),
        duration_us: 0,
        last: None,
        seq: 0,
        prev: String::new(),
        component: String::new(),
        wit: String::new(),
        ..record.clone()
    }
}

/// Calls every import of the 0.1.0 world from the 0.1 component, then the
/// same from its 0.2 twin, through `call`; each privileged import must be
/// denied with `because` (`clock.now` answers as `clock`) and answer the
/// same from both, each call must leave the same records, and nothing may
/// have happened.
fn every_import_denied_like_its_twin(
    twins: &Twins,
    because: &str,
    clock: &str,
    call: impl Fn(&Twins, &LoadedProvider) -> String,
) {
    let imports = world_imports(include_str!("../wit/0.1.0/types.wit"));
    assert!(imports.len() >= 18, "{imports:?}");
    let mut answers = Vec::new();
    let mut records = Vec::new();
    for (provider, contract) in twins.providers.iter().zip([Contract::V0_1, Contract::V0_2]) {
        assert_eq!(provider.contract(), contract);
        let before = twins.records().len();
        let answered = report(&call(twins, provider));
        assert_eq!(
            answered.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
            imports,
            "{}",
            contract.version()
        );
        let written = twins.records().split_off(before);
        for record in &written {
            assert_eq!(record.wit, contract.package(), "{record:?}");
            assert_eq!(record.component, provider.sha256, "{record:?}");
        }
        answers.push(answered);
        records.push(written);
    }
    let (old, new) = (&answers[0], &answers[1]);
    assert_eq!(old, new, "0.1.0 and 0.2.0 answer alike");
    for (import, answer) in old {
        let expected = match import.as_str() {
            "log.log" => "ok",
            "clock.now" => clock,
            _ => "denied: ",
        };
        assert!(
            answer.starts_with(expected),
            "{import}: expected {expected:?}, got {answer}"
        );
        if expected == "denied: " {
            assert!(answer.contains(because), "{import}: {answer}");
        }
    }
    // One deny record per privileged import, in order, alike but for the
    // version and component they name.
    let privileged: Vec<&String> = imports
        .iter()
        .filter(|i| !i.starts_with("log.") && !i.starts_with("clock."))
        .collect();
    assert_eq!(records[0].len(), privileged.len(), "{:#?}", records[0]);
    for (record, import) in records[0].iter().zip(&privileged) {
        assert_eq!(record.decision, Decision::Deny, "{record:?}");
        assert_eq!(record.provider, ID, "{record:?}");
        assert!(
            record.action == **import || record.action.starts_with(&format!("{import} ")),
            "{import}: {record:?}"
        );
        assert!(record.reason.as_deref().unwrap().contains(because));
    }
    let view = |records: &[Record]| records.iter().map(twin_view).collect::<Vec<_>>();
    assert_eq!(view(&records[0]), view(&records[1]));
    // Nothing happened.
    let docker = Docker::connect().expect("the test machine runs a Docker engine");
    let home = twins.paths.home().display().to_string();
    let containers = docker.list_labelled(LABEL_HOME, Some(&home)).unwrap();
    assert!(containers.is_empty(), "{containers:#?}");
    assert!(!twins.paths.sidecar().absolute().exists());
    assert_eq!(labelled_processes(twins.paths.home()), []);
}

#[test]
fn each_component_is_served_as_the_contract_it_exports() {
    let twins = Twins::new(None, None);
    for (provider, (contract, version)) in twins
        .providers
        .iter()
        .zip([(Contract::V0_1, "0.1.0"), (Contract::V0_2, "0.2.0")])
    {
        assert_eq!(provider.contract(), contract);
        assert_eq!(provider.info.id, ID);
        assert_eq!(provider.info.version, version);
        assert_eq!(
            provider.info.capabilities,
            ["containers", "sidecar", "metrics", "processes"]
        );
    }
    // Neither version's `provider`: the error names both.
    let empty = wat::parse_str("(component)").unwrap();
    let compiled = twins.sandbox.compile(&empty, "empty").unwrap();
    let error = format!("{:#}", twins.sandbox.prepare(&compiled).err().unwrap());
    assert_eq!(
        error,
        "it exports none of openjarvis:mining/provider@0.2.0, openjarvis:mining/provider@0.1.0: \
         this host supports contract versions 0.2.0 and 0.1.0"
    );
}

#[test]
fn detect_sees_the_same_facts_through_either_contract() {
    let twins = Twins::new(None, Some(&grant()));
    let verdicts = |facts: &HardwareFacts| {
        twins
            .providers
            .each_ref()
            .map(|provider| provider.detect(&twins.sandbox, facts, "vllm", "m").unwrap())
    };
    let [old, new] = verdicts(&guest_facts(&linux_with_gpus(&[(
        "NVIDIA H100",
        "9.0",
        81_559,
    )])));
    assert!(old.supported, "{old:?}");
    assert_eq!(old, new);
    let [old, new] = verdicts(&guest_facts(&linux_with_gpus(&[])));
    assert_eq!(
        old.reason.as_deref(),
        Some("contract needs Linux and an NVIDIA GPU; it was shown linux with 0 GPU(s) for vllm m")
    );
    assert_eq!(old, new);
}

#[test]
fn every_0_1_import_is_denied_to_an_installed_provider_no_policy_names_like_its_twin() {
    every_import_denied_like_its_twin(
        &Twins::new(None, None),
        "provider is installed and no policy grants it anything",
        "ok",
        Twins::all_imports_from_start,
    );
}

#[test]
fn every_0_1_import_is_denied_under_a_system_policy_granting_nothing_like_its_twin() {
    every_import_denied_like_its_twin(
        &Twins::new(Some("[default]\ncapabilities = []\n"), Some(&grant())),
        "is not in default.capabilities",
        "ok",
        Twins::all_imports_from_start,
    );
}

#[test]
fn every_0_1_import_is_denied_under_a_user_policy_granting_nothing_like_its_twin() {
    every_import_denied_like_its_twin(
        &Twins::new(None, Some("[providers.contract]\ncapabilities = []\n")),
        "is not in providers.\"contract\".capabilities",
        "ok",
        Twins::all_imports_from_start,
    );
}

#[test]
fn every_0_1_import_is_denied_in_detect_like_its_twin() {
    every_import_denied_like_its_twin(
        &Twins::new(None, Some(&grant())),
        "is not available here: info() and detect() are pure",
        "denied: clock.now is not available here",
        Twins::all_imports_from_detect,
    );
}

// ---------------------------------------------------------------------------
// Through the CLI.

/// `jarvis mine ARGS` in `home`, with the machine's Docker engine and the
/// pearld password `start` asks for.
fn jarvis(home: &Path, args: &[&str]) -> Run {
    let mut command = jarvis_mine(JARVIS, home, args);
    command.env("PEARLD_RPC_PASSWORD", "contract-test-password");
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    Run::of(format!("jarvis mine {}", args.join(" ")), &mut command)
}

#[test]
fn a_0_1_component_is_installed_detected_started_watched_and_stopped_through_the_cli() {
    // Other suites remove every fake miner labelled as a mining container.
    let _miner = miner_lock();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().canonicalize().unwrap();
    let _containers = HomeContainers::new(&home);
    let component = env!("GUEST_CONTRACT_0_1");

    jarvis(&home, &["providers", "install", "--yes", component])
        .code(0)
        .stdout_has("[providers.\"contract\"]");
    std::fs::write(home.join("mining/policy.toml"), grant()).unwrap();
    let inspected = jarvis(&home, &["providers", "inspect", ID, "--json"])
        .code(0)
        .json();
    assert_eq!(inspected["wit"], "openjarvis:mining@0.1.0", "{inspected:#}");
    assert_eq!(inspected["contract"], "0.1.0", "{inspected:#}");
    jarvis(&home, &["providers", "inspect", ID])
        .code(0)
        .stdout_has("openjarvis:mining@0.1.0 (contract 0.1.0, served through shims over 0.2.0)");

    let doctor = jarvis(
        &home,
        &[
            "doctor",
            "--json",
            "--facts",
            h100_facts().to_str().unwrap(),
        ],
    )
    .code(0)
    .json();
    let row = doctor["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == ID)
        .unwrap_or_else(|| panic!("no {ID} row: {doctor:#}"));
    assert_eq!(row["supported"], true, "{row:#}");

    let port = free_port();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[mining]\nprovider = \"{ID}\"\nwallet_address = \"{WALLET}\"\n\n\
             [mining.extra]\nimage = \"{}\"\nport = {port}\n",
            fake_miner_image()
        ),
    )
    .unwrap();
    jarvis(&home, &["start"])
        .code(0)
        .stdout_has(&format!("Started {ID}"));
    // The fake miner logs three block submissions, 200 ms apart.
    let mut last = Value::Null;
    let status = wait_for(Duration::from_secs(20), || {
        last = jarvis(&home, &["status", "--json"]).code(0).json();
        (last["stats"]["shares_submitted"] == 3).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("status never counted three submissions: {last:#}"));
    assert_eq!(status["state"], "running", "{status:#}");
    let stats = &status["stats"];
    assert_eq!(stats["provider_id"], ID, "{stats:#}");
    assert_eq!(stats["shares_accepted"], 2, "{stats:#}");
    // One of the three was rejected, which 0.1.0 cannot say.
    assert_eq!(stats["shares_rejected"], 0, "{stats:#}");
    assert!(stats["requests_served"].is_u64(), "{stats:#}");
    let text = jarvis(&home, &["status"]);
    assert_eq!(text.code(0).row("shares rejected"), Some("0"), "{text}");

    jarvis(&home, &["stop"]).code(0);
    let docker = Docker::connect().expect("the test machine runs a Docker engine");
    let label = home.display().to_string();
    let containers = docker.list_labelled(LABEL_HOME, Some(&label)).unwrap();
    assert!(containers.is_empty(), "{containers:#?}");
    assert!(!home.join("runtime/mining.json").exists());
    let after = jarvis(&home, &["status"]);
    assert_eq!(after.code(0).row("state"), Some("stopped"), "{after}");

    // Every privileged call of the provider is recorded as the contract it
    // was linked as (the host's own records, its install among them, name
    // the host's).
    let records: Vec<Value> = jarvis(&home, &["audit", "--json", "-n", "1000"])
        .code(0)
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|record: &Value| {
            let capability = record["capability"].as_str().unwrap();
            record["provider"] == ID && ["containers", "sidecar", "metrics"].contains(&capability)
        })
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["action"].as_str().unwrap().starts_with("containers.run ")),
        "{records:#?}"
    );
    for record in &records {
        assert_eq!(record["wit"], "openjarvis:mining@0.1.0", "{record:#}");
    }
}
