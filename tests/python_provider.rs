//! The Python example provider (providers/examples/python), built with
//! componentize-py: installed like any community provider, judged by its own
//! logic in `doctor`, its lifecycle calls using host imports that answer or
//! refuse as data, and its compiled code cached after the first run.
//!
//! Needs componentize-py (scripts/setup-guest-toolchain); never skipped.

use jarvis_mine::bindings::Error;
use jarvis_mine::host::Session;
use jarvis_mine::paths::Paths;
use jarvis_mine::registry::Registry;
use jarvis_mine::sandbox::{ComponentCache, Sandbox, SandboxLimits};
use jarvis_mine_tests::python::python_example_component;
use jarvis_mine_tests::run::jarvis_mine;
use jarvis_mine_tests::user_policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const ID: &str = "python-example";

/// The user's grant: what `info()` requests, and every GPU (an installed
/// provider that no policy names sees none).
const GRANT: &str = r#"
[providers.python-example]
capabilities = ["sidecar", "metrics"]
gpus = ["*"]
"#;

/// An OpenJarvis home with the Python provider installed and granted.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Home {
        let home = Home(tempfile::tempdir().unwrap());
        let providers = home.path().join("mining/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::copy(
            python_example_component(),
            providers.join("python-example.wasm"),
        )
        .unwrap();
        std::fs::write(home.path().join("mining/policy.toml"), GRANT).unwrap();
        home
    }

    /// A home whose compiled-component cache is already warm (see [`first_run`]).
    fn warm() -> Home {
        let home = Home::new();
        let from = first_run().home.path().join("cache/mining/components");
        let to = home.path().join("cache/mining/components");
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap().path();
            std::fs::copy(&entry, to.join(entry.file_name().unwrap())).unwrap();
        }
        home
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn doctor(&self, facts: &Value) -> Value {
        let file = self.path().join("facts.json");
        std::fs::write(&file, facts.to_string()).unwrap();
        let out = jarvis_mine(
            JARVIS,
            self.path(),
            &["doctor", "--json", "--facts", file.to_str().unwrap()],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The cache entries of the installed component (one per engine).
    fn cache_entries(&self) -> Vec<PathBuf> {
        static SHA256: OnceLock<String> = OnceLock::new();
        let sha256 = SHA256.get_or_init(|| {
            let bytes = std::fs::read(python_example_component()).unwrap();
            format!("{:x}", Sha256::digest(bytes))
        });
        let paths = jarvis_mine::paths::Paths::with_home(self.path());
        ComponentCache::entries(&paths.component_cache(), sha256)
            .unwrap()
            .iter()
            .map(jarvis_mine::home::HomePath::absolute)
            .collect()
    }
}

fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no provider {id} in {report:#}"))
}

/// A Linux host with NVIDIA GPUs of these sizes (MiB) and Docker as given.
fn linux(gpus_mib: &[u64], docker: bool) -> Value {
    let gpus: Vec<Value> = gpus_mib
        .iter()
        .enumerate()
        .map(|(index, mib)| json!({"index": index, "name": "NVIDIA GPU", "vendor": "nvidia", "compute_capability": "9.0", "memory_total_mib": mib}))
        .collect();
    json!({"os": "linux", "arch": "x86_64", "gpus": gpus, "docker": {"reachable": docker}})
}

/// The first `doctor` of this process, in a home with a cold cache: it
/// compiles the component once, and later homes copy its cache.
struct FirstRun {
    home: Home,
    report: Value,
    took: Duration,
}

fn first_run() -> &'static FirstRun {
    static FIRST: OnceLock<FirstRun> = OnceLock::new();
    FIRST.get_or_init(|| {
        let home = Home::new();
        let started = Instant::now();
        let report = home.doctor(&linux(&[81_559], true));
        let took = started.elapsed();
        FirstRun { home, report, took }
    })
}

#[test]
fn doctor_lists_the_python_provider_with_its_own_verdicts() {
    let first = first_run();
    let python = row(&first.report, ID);
    assert_eq!(python["source"], "installed", "{python}");
    assert_eq!(python["supported"], true, "{python}");
    assert_eq!(python["reason"], Value::Null, "{python}");
    assert!(python.get("error").is_none(), "{python}");

    let home = Home::warm();
    let cases = [
        ("exactly 24 GiB", linux(&[24_576], true), None),
        (
            "16 GiB GPU",
            linux(&[16_384], true),
            Some("no NVIDIA GPU with at least 24 GiB (largest: 16384 MiB)"),
        ),
        (
            // An "24 GB" RTX 4090 is 24564 MiB: just short.
            "RTX 4090 and a 16 GiB card",
            linux(&[16_384, 24_564], true),
            Some("no NVIDIA GPU with at least 24 GiB (largest: 24564 MiB)"),
        ),
        (
            "H100 without Docker",
            linux(&[81_559], false),
            Some("Docker is not reachable"),
        ),
        (
            "CPU-only",
            json!({"os": "linux", "arch": "x86_64", "cpu_cores": 16, "docker": {"reachable": true}}),
            Some("no NVIDIA GPU (no GPU detected)"),
        ),
        (
            "Mac",
            json!({"os": "darwin", "arch": "aarch64", "gpus": [{"index": 0, "name": "Apple M4 Max", "vendor": "apple"}]}),
            Some(
                "needs Linux; this host is 'darwin'; no NVIDIA GPU (detected: apple); Docker is not reachable",
            ),
        ),
    ];
    for (machine, facts, reason) in cases {
        let report = home.doctor(&facts);
        let python = row(&report, ID);
        assert_eq!(python["supported"], reason.is_none(), "{machine}: {python}");
        assert_eq!(python["reason"].as_str(), reason, "{machine}: {python}");
        // The built-ins are still judged alongside it.
        assert_eq!(
            report["providers"].as_array().unwrap().len(),
            4,
            "{machine}"
        );
    }

    // Ungranted, an installed provider sees no GPU: its own logic says so.
    std::fs::remove_file(home.path().join("mining/policy.toml")).unwrap();
    let report = home.doctor(&linux(&[81_559], true));
    let python = row(&report, ID);
    assert_eq!(python["supported"], false, "{python}");
    assert_eq!(
        python["reason"], "no NVIDIA GPU (no GPU detected)",
        "{python}"
    );
    assert_eq!(python["hidden_gpus"], 1, "{python}");
}

#[test]
fn the_second_run_loads_the_compiled_component_from_the_cache() {
    let first = first_run();
    let entries = first.home.cache_entries();
    assert_eq!(
        entries.len(),
        1,
        "one cache entry after the first run: {entries:?}"
    );
    let modified = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
    let written: SystemTime = modified(&entries[0]);

    let started = Instant::now();
    let report = first.home.doctor(&linux(&[81_559], true));
    let second = started.elapsed();
    assert_eq!(row(&report, ID)["supported"], true);
    assert_eq!(first.home.cache_entries(), entries, "no new entry");
    assert_eq!(
        modified(&entries[0]),
        written,
        "the entry was reused, not rewritten"
    );
    eprintln!(
        "doctor with the Python provider: first run {:?} (compiles), second run {second:?} (cached)",
        first.took
    );
}

/// The host session for a lifecycle call in `home`, with no Docker.
fn session(home: &Path) -> Session {
    Session::new(
        "python-test-session",
        Paths::with_home(home),
        Err("Docker is not used by this test".into()),
    )
}

/// The registry of `home` under a user policy `grant`, with a cache warm from [`first_run`].
fn registry(home: &Home, grant: &str) -> (Sandbox, Registry) {
    let paths = jarvis_mine::paths::Paths::with_home(home.path());
    let sandbox = Sandbox::new(SandboxLimits::default(), Some(paths.component_cache())).unwrap();
    let registry = Registry::load(
        &sandbox,
        Some(&paths.installed_providers()),
        &user_policy(grant),
    );
    assert!(registry.failures.is_empty(), "{:?}", registry.failures);
    (sandbox, registry)
}

#[test]
fn lifecycle_calls_from_python_use_host_imports_that_answer_as_data() {
    let home = Home::warm();
    let (sandbox, registry) = registry(&home, GRANT);
    let python = registry.get(ID).expect("the Python provider is loaded");
    assert_eq!(python.info.version, "0.1.0");
    assert_eq!(python.info.capabilities, ["sidecar", "metrics"]);
    let host = || python.host_context(session(home.path()));

    // stats: clock.now and sidecar.read answer (no session yet), nothing traps.
    let stats = python.stats(&sandbox, host()).expect("stats returns");
    assert_eq!(stats.provider_id, ID);
    assert_eq!(stats.last_error, None, "{stats:?}");
    assert_eq!(stats.payout_target, "solo");
    assert_eq!(
        (
            stats.shares_submitted,
            stats.blocks_found,
            stats.uptime_seconds
        ),
        (0, 0, 0.0)
    );

    // start refuses with an error value; stop succeeds; nothing was recorded.
    match python
        .start(&sandbox, host(), &mining_config())
        .expect("start returns")
    {
        Err(Error::Unavailable(message)) => assert_eq!(
            message,
            "python-example only demonstrates detect and stats; use vllm-pearl to mine"
        ),
        other => panic!("start: {other:?}"),
    }
    python
        .stop(&sandbox, host())
        .expect("stop returns")
        .expect("stop succeeds");
    assert!(!home.path().join("runtime/mining.json").exists());
}

#[test]
fn host_imports_the_policy_withholds_are_denied_as_data() {
    let home = Home::warm();
    // Requested in info(), not granted: the host refuses sidecar.read, and
    // Python catches the error (a value, never a trap) and reports it.
    let metrics_only = GRANT.replace(r#"["sidecar", "metrics"]"#, r#"["metrics"]"#);
    let (sandbox, registry) = registry(&home, &metrics_only);
    let python = registry.get(ID).unwrap();
    let stats = python
        .stats(&sandbox, python.host_context(session(home.path())))
        .expect("stats returns");
    let error = stats.last_error.expect("the denial is reported");
    assert!(error.starts_with("sidecar.read: denied: "), "{error}");
    assert!(error.contains("sidecar"), "{error}");
    assert_eq!(stats.provider_id, ID);
}

fn mining_config() -> jarvis_mine::bindings::MiningConfig {
    use jarvis_mine::bindings::{MiningConfig, SoloTarget, SubmitTarget};
    MiningConfig {
        provider: ID.into(),
        wallet_address: "prl1qexample".into(),
        submit_target: SubmitTarget::Solo(SoloTarget {
            pearld_rpc_url: "http://127.0.0.1:44107".into(),
        }),
        fee_bps: 0,
        fee_payout_address: None,
        extra: Vec::new(),
        workers: jarvis_mine::bindings::WorkersSetting::Auto,
        gpus: Vec::new(),
    }
}
