//! `jarvis mine doctor` and `models` end to end: the real binary, facts files
//! for well-known machines, and every provider's verdict from the sandbox.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const LLAMA_70B: &str = "pearl-ai/Llama-3.3-70B-Instruct-pearl";

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Home(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn jarvis(&self, args: &[&str]) -> Output {
        Command::new(JARVIS)
            .args(args)
            .env_clear()
            .env("OPENJARVIS_HOME", self.path())
            .env("PATH", std::env::var_os("PATH").unwrap())
            .output()
            .unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Installs a community provider file.
    fn install(&self, name: &str, bytes: &[u8]) {
        let dir = self.path().join("mining/providers");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn doctor_json(&self, facts: &Value, extra: &[&str]) -> Value {
        let file = self.write("facts.json", &facts.to_string());
        let mut args = vec!["mine", "doctor", "--json", "--facts", &file];
        args.extend_from_slice(extra);
        let out = self.jarvis(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn provider<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no provider {id} in {report}"))
}

fn nvidia(count: usize, name: &str, cc: &str, mib: u64) -> Value {
    let gpus: Vec<Value> = (0..count)
        .map(|index| json!({"index": index, "name": name, "vendor": "nvidia", "compute_capability": cc, "memory_total_mib": mib}))
        .collect();
    json!({"os": "linux", "arch": "x86_64", "gpus": gpus})
}

/// (machine, facts, vllm-pearl reason or None when supported)
fn machines() -> Vec<(&'static str, Value, Option<String>)> {
    vec![
        ("H100", nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559), None),
        ("8xH200", nvidia(8, "NVIDIA H200", "9.0", 143_771), None),
        (
            "RTX 4090",
            nvidia(1, "NVIDIA GeForce RTX 4090", "8.9", 24_564),
            Some("needs compute_capability 9.0 (sm_90a / H100/H200); detected '8.9' (NVIDIA GeForce RTX 4090)".into()),
        ),
        (
            "A100",
            nvidia(1, "NVIDIA A100-SXM4-80GB", "8.0", 81_920),
            Some("needs compute_capability 9.0 (sm_90a / H100/H200); detected '8.0' (NVIDIA A100-SXM4-80GB)".into()),
        ),
        (
            "Mac",
            json!({"os": "darwin", "arch": "aarch64", "gpus": [{"index": 0, "name": "Apple M3 Max", "vendor": "apple", "memory_total_mib": 131072}]}),
            Some("vllm-pearl requires NVIDIA Hopper; detected 'apple'. Apple Silicon support tracked in Spec B.".into()),
        ),
        ("CPU-only", json!({"os": "linux", "arch": "x86_64"}), Some("no GPU detected".into())),
    ]
}

#[test]
fn verdicts_for_well_known_machines() {
    let home = Home::new();
    for (machine, facts, vllm_reason) in machines() {
        let report = home.doctor_json(&facts, &[]);
        let vllm = provider(&report, "vllm-pearl");
        assert_eq!(vllm["source"], "builtin");
        assert_eq!(
            vllm["supported"],
            vllm_reason.is_none(),
            "{machine}: {vllm}"
        );
        assert_eq!(
            vllm["reason"].as_str().map(str::to_owned),
            vllm_reason,
            "{machine}"
        );

        // No Pearl packages in any of these facts files.
        let cpu = provider(&report, "cpu-pearl");
        assert_eq!(cpu["supported"], false, "{machine}");
        assert!(cpu["reason"].as_str().unwrap().starts_with("Pearl Python packages not installed — install with `uv sync --extra mining-pearl-cpu`"), "{machine}: {cpu}");

        let mps = provider(&report, "apple-mps-pearl");
        let expected = if machine == "Mac" {
            "Pearl Python packages not installed"
        } else {
            "apple-mps-pearl requires macOS; this host is 'linux'"
        };
        assert!(
            mps["reason"].as_str().unwrap().starts_with(expected),
            "{machine}: {mps}"
        );
        assert_eq!(report["providers"].as_array().unwrap().len(), 3);
        assert_eq!(
            report["facts"], facts,
            "the report carries the facts it used"
        );
    }
}

#[test]
fn a_mac_with_everything_installed_can_mine_on_mps() {
    let home = Home::new();
    let facts = json!({
        "os": "darwin", "arch": "aarch64",
        "gpus": [{"index": 0, "name": "Apple M4 Max", "vendor": "Apple"}],
        "pearl": {"gateway_on_path": true, "python_packages": ["pearl_mining", "pearl_gateway", "miner_base"],
                  "torch_installed": true, "torch_mps_built": true, "torch_mps_available": true}
    });
    let report = home.doctor_json(&facts, &[]);
    assert_eq!(
        provider(&report, "apple-mps-pearl")["supported"],
        true,
        "{report}"
    );
    assert_eq!(
        provider(&report, "cpu-pearl")["supported"],
        true,
        "{report}"
    );
    assert_eq!(report["selected_provider"], "apple-mps-pearl");
}

#[test]
fn model_and_engine_flags_reach_detect() {
    let home = Home::new();
    let h100 = nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559);
    let report = home.doctor_json(&h100, &["--model", "pearl-ai/Llama-3.1-8B-Instruct-pearl"]);
    assert_eq!(
        provider(&report, "vllm-pearl")["reason"],
        "model 'pearl-ai/Llama-3.1-8B-Instruct-pearl' is planned; it needs Pearl quantization and H100/H200 validation before mining is enabled"
    );
    let report = home.doctor_json(&h100, &["--engine", "ollama"]);
    assert_eq!(
        provider(&report, "vllm-pearl")["reason"],
        "engine 'ollama' has no Pearl plugin in v1; use vllm"
    );
}

#[test]
fn cuda_visible_devices_narrows_the_gpus_detect_sees() {
    let home = Home::new();
    let mut facts = nvidia(2, "NVIDIA H100 80GB HBM3", "9.0", 81_559);
    facts["gpus"].as_array_mut().unwrap().push(
        json!({"index": 2, "name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "compute_capability": "8.9", "memory_total_mib": 24564}),
    );
    let report = home.doctor_json(&facts, &[]);
    let reason = provider(&report, "vllm-pearl")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("GPU 2: needs compute_capability 9.0"),
        "{reason}"
    );
    assert!(
        reason.ends_with(
            "set [mining.extra].cuda_visible_devices = \"0,1\" to mine on the GPUs that qualify"
        ),
        "{reason}"
    );

    home.write(
        "config.toml",
        &format!("[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1qexampleaddress\"\n\n[mining.extra]\ncuda_visible_devices = \"0,1\"\npearld_rpc_url = \"http://127.0.0.1:9\"\nmodel = \"{LLAMA_70B}\"\n"),
    );
    let report = home.doctor_json(&facts, &["--strict"]);
    assert_eq!(
        provider(&report, "vllm-pearl")["supported"],
        true,
        "{report}"
    );
    assert_eq!(provider(&report, "vllm-pearl")["selected"], true);
}

#[test]
fn strict_exits_1_when_the_selected_provider_is_unsupported() {
    let home = Home::new();
    let cpu_box = home.write("cpu.json", r#"{"os":"linux","arch":"x86_64"}"#);
    let out = home.jarvis(&["mine", "doctor", "--facts", &cpu_box, "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    let out = home.jarvis(&["mine", "doctor", "--facts", &cpu_box]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --strict doctor exits 0 like the reference"
    );
    let h100 = home.write(
        "h100.json",
        &nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559).to_string(),
    );
    let out = home.jarvis(&["mine", "doctor", "--facts", &h100, "--strict"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn failing_providers_are_rows_and_never_stop_the_others() {
    let home = Home::new();
    home.install("hostile.wasm", &jarvis_mine_tests::hostile_component());
    home.install("broken.wasm", b"\0asm garbage");
    let facts = nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559);
    for (attack, error) in [
        ("spin", "timed out after 300 ms"),
        ("memory-bomb", "exceeded memory limit 64 MiB"),
        ("recurse", "stack overflow"),
        ("panic", "provider panicked: boom"),
    ] {
        let report = home.doctor_json(&facts, &["--model", attack, "--call-timeout", "300ms"]);
        let hostile = provider(&report, "hostile");
        assert_eq!(hostile["source"], "installed");
        assert!(
            hostile["error"].as_str().unwrap().starts_with(error),
            "{hostile}"
        );
        // Refused from its first bytes, before it is read in full.
        assert!(
            provider(&report, "broken.wasm")["error"]
                .as_str()
                .unwrap()
                .contains("broken.wasm: not a component this host reads")
        );
        assert_eq!(
            provider(&report, "vllm-pearl")["reason"],
            format!("model '{attack}' is not in OpenJarvis' Pearl model registry")
        );
        assert!(provider(&report, "apple-mps-pearl")["reason"].is_string());
    }

    // In the table too, as one row each.
    let file = home.write("facts.json", &facts.to_string());
    let out = home.jarvis(&[
        "mine",
        "doctor",
        "--facts",
        &file,
        "--model",
        "spin",
        "--call-timeout",
        "300ms",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "  hostile                ERROR - timed out after 300 ms (installed, policy hides 1 GPU: see `jarvis mine policy show --provider hostile`)"
        ),
        "{text}"
    );
}

#[test]
fn a_log_flood_reaches_the_log_capped() {
    let home = Home::new();
    home.install("hostile.wasm", &jarvis_mine_tests::hostile_component());
    let file = home.write("facts.json", r#"{"os":"linux"}"#);
    let out = home.jarvis(&[
        "-v",
        "mine",
        "doctor",
        "--facts",
        &file,
        "--model",
        "log-flood:100000",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged = stderr.matches('y').count();
    assert!(
        (60 * 1024..=64 * 1024 + 1024).contains(&logged),
        "{logged} bytes of guest log reached stderr"
    );
    assert!(stderr.contains("dropped"), "the cap is reported");
}

#[test]
fn a_malformed_config_is_exit_2_with_line_and_column_and_nothing_written() {
    let home = Home::new();
    let config = "[mining]\nprovider = \"vllm-pearl\nwallet_address = \"prl1q\"\n";
    home.write("config.toml", config);
    let out = home.jarvis(&["mine", "doctor"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config.toml:2:23:"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(home.path().join("config.toml")).unwrap(),
        config
    );
    let entries: Vec<_> = std::fs::read_dir(home.path()).unwrap().flatten().collect();
    assert_eq!(
        entries.len(),
        1,
        "nothing but the config in the home: {entries:?}"
    );
}

#[test]
fn a_malformed_facts_file_is_exit_2_and_says_where() {
    let home = Home::new();
    let file = home.write("facts.json", "{\n  \"gpu\": []\n}");
    let out = home.jarvis(&["mine", "doctor", "--facts", &file]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("facts.json:2:"), "{stderr}");
    assert!(stderr.contains("unknown field `gpu`"), "{stderr}");
    assert!(stderr.contains("docs/facts.md"), "{stderr}");
}

#[test]
fn the_table_matches_the_reference_rows_without_colour_off_a_terminal() {
    let home = Home::new();
    let file = home.write(
        "facts.json",
        &nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559).to_string(),
    );
    let out = home.jarvis(&["mine", "doctor", "--facts", &file]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    for line in [
        "Pearl Mining Doctor",
        "  GPU vendor             nvidia (NVIDIA H100 80GB HBM3)                OK",
        "  Compute capability     9.0                                           OK",
        "  RPC                    no [mining] config - run `jarvis mine init`   FAIL",
        "  Address format         no [mining] config                            FAIL",
        "  Model registry         validated: pearl-ai/Llama-3.3-70B-Instruct-pearl OK",
        "  vllm-pearl             SUPPORTED (default)",
        "  Sidecar                absent (not running)                          OK",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
}

#[test]
fn the_session_section_reads_the_sidecar() {
    let home = Home::new();
    home.write("runtime/mining.json", r#"{"provider":"vllm-pearl","container_id":"abc123","vllm_endpoint":"http://127.0.0.1:8000/v1","model":"m"}"#);
    let report = home.doctor_json(&json!({}), &[]);
    let container = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Container")
        .unwrap();
    assert_eq!(container["info"], "abc123");
}

#[test]
fn models_table_and_json() {
    let home = Home::new();
    let out = home.jarvis(&["mine", "models", "--json"]);
    assert!(out.status.success());
    let models: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &models[0];
    assert_eq!(first["id"], LLAMA_70B);
    assert_eq!(first["base_model"], "meta-llama/Llama-3.3-70B-Instruct");
    assert_eq!(first["status"], "validated");
    assert_eq!(first["min_vram_gb"], 70.0);
    assert_eq!(first["context"], 8192);
    assert_eq!(models.as_array().unwrap().len(), 3);

    let out = home.jarvis(&["mine", "models"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Pearl Mining Models\nStatus     Model"),
        "{text}"
    );
    assert!(
        text.contains("planned    pearl-ai/Gemma-4-31B-it-pearl"),
        "{text}"
    );
}

#[test]
fn every_command_has_help() {
    let home = Home::new();
    for args in [
        &["--help"][..],
        &["mine", "--help"],
        &["mine", "doctor", "--help"],
        &["mine", "models", "--help"],
    ] {
        let out = home.jarvis(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: jarvis"),
            "{args:?}"
        );
    }
    let out = home.jarvis(&["mine", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A one-request HTTP server on loopback; returns its URL and the request it saw.
fn serve_once(status: &str, body: &str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader.get_mut().write_all(response.as_bytes()).unwrap();
        head + &String::from_utf8(body).unwrap()
    });
    (url, handle)
}

fn rpc_row(report: &Value) -> (bool, String) {
    let row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "RPC")
        .unwrap();
    (
        row["ok"].as_bool().unwrap(),
        row["info"].as_str().unwrap().to_owned(),
    )
}

fn config_with_rpc(url: &str) -> String {
    format!(
        "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1qexampleaddress\"\n\n[mining.extra]\npearld_rpc_url = \"{url}\"\npearld_rpc_user = \"miner\"\npearld_rpc_password_env = \"TEST_PEARLD_PASSWORD\"\n"
    )
}

#[test]
fn the_pearld_probe_speaks_json_rpc_with_basic_auth_and_never_shows_the_password() {
    let home = Home::new();
    let (url, request) = serve_once(
        "200 OK",
        r#"{"result":{"blocks":1200,"headers":1200},"error":null,"id":"ojprobe"}"#,
    );
    home.write("config.toml", &config_with_rpc(&url));
    let facts = home.write("facts.json", "{}");
    let out = Command::new(JARVIS)
        .args(["mine", "doctor", "--json", "--facts", &facts])
        .env("OPENJARVIS_HOME", home.path())
        .env("TEST_PEARLD_PASSWORD", "hunter2-secret")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rpc_row(&report),
        (true, "block height 1200 (synced)".into())
    );
    let request = request.join().unwrap();
    assert!(request.starts_with("POST / HTTP/1.1"), "{request}");
    // base64("miner:hunter2-secret")
    assert!(
        request.contains("Basic bWluZXI6aHVudGVyMi1zZWNyZXQ="),
        "{request}"
    );
    assert!(
        request.ends_with(
            r#"{"jsonrpc":"1.0","id":"ojprobe","method":"getblockchaininfo","params":[]}"#
        )
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains("hunter2"),
            "the password leaked"
        );
    }
}

#[test]
fn the_pearld_probe_explains_auth_failures_and_sync_state() {
    let home = Home::new();
    let facts = json!({});
    let (url, _) = serve_once("401 Unauthorized", "");
    home.write("config.toml", &config_with_rpc(&url));
    assert_eq!(
        rpc_row(&home.doctor_json(&facts, &[])),
        (
            false,
            "authentication failed (HTTP 401): $TEST_PEARLD_PASSWORD is not set".into()
        )
    );
    let (url, _) = serve_once(
        "200 OK",
        r#"{"result":{"blocks":10,"headers":99},"error":null}"#,
    );
    home.write("config.toml", &config_with_rpc(&url));
    assert_eq!(
        rpc_row(&home.doctor_json(&facts, &[])),
        (true, "block height 10 (syncing (10/99))".into())
    );
    let (url, _) = serve_once("500 Internal Server Error", "");
    home.write("config.toml", &config_with_rpc(&url));
    assert_eq!(
        rpc_row(&home.doctor_json(&facts, &[])),
        (false, "HTTP 500".into())
    );
    // Nothing listening: refused quickly, not after the 5 s timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    home.write("config.toml", &config_with_rpc(&format!("http://{closed}")));
    let (ok, info) = rpc_row(&home.doctor_json(&facts, &[]));
    assert!(!ok && info.starts_with("connection refused"), "{info}");
}

#[test]
fn the_documented_example_facts_give_the_documented_verdicts() {
    let home = Home::new();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/facts");
    let verdict = |file: &str, id: &str| {
        let facts: Value =
            serde_json::from_str(&std::fs::read_to_string(docs.join(file)).unwrap()).unwrap();
        let report = home.doctor_json(&facts, &[]);
        let row = provider(&report, id);
        (
            row["supported"].as_bool().unwrap(),
            row["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(verdict("h100.json", "vllm-pearl"), (true, String::new()));
    assert_eq!(verdict("h200x8.json", "vllm-pearl"), (true, String::new()));
    assert_eq!(
        verdict("mac-m4-max.json", "apple-mps-pearl"),
        (true, String::new())
    );
    let (ok, reason) = verdict("mixed.json", "vllm-pearl");
    assert!(
        !ok && reason.contains("cuda_visible_devices = \"0,1\""),
        "{reason}"
    );
    assert_eq!(
        verdict("cpu-only.json", "vllm-pearl"),
        (false, "no GPU detected".into())
    );
}
