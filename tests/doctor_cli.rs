//! `jarvis mine doctor` and `models` end to end: the real binary, facts files
//! for well-known machines, and every provider's verdict from the sandbox.

use jarvis_mine_tests::serve_pearld;
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
            Some("vllm-pearl requires NVIDIA Hopper (H100/H200); detected 'apple'".into()),
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
        let cpu_reason = cpu["reason"].as_str().unwrap();
        assert!(
            cpu_reason.starts_with(
                "Pearl Python packages not installed — build them from a Pearl checkout"
            ),
            "{machine}: {cpu}"
        );
        assert!(
            !cpu_reason.contains("uv sync"),
            "our own install hint: {cpu_reason}"
        );

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
        "engine 'ollama' has no Pearl plugin: Pearl mines through vllm (use --engine vllm)"
    );
}

#[test]
fn cuda_visible_devices_narrows_the_gpus_detect_sees() {
    let home = Home::new();
    let mut facts = nvidia(2, "NVIDIA H100 80GB HBM3", "9.0", 81_559);
    facts["gpus"].as_array_mut().unwrap().push(
        json!({"index": 2, "name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "compute_capability": "8.9", "memory_total_mib": 24564}),
    );
    // Unselected, the 4090 is left out of the plan: a note.
    let report = home.doctor_json(&facts, &[]);
    let row = provider(&report, "vllm-pearl");
    assert_eq!(row["supported"], true, "{row}");
    let note = row["notes"][0].as_str().unwrap().to_owned();
    assert!(
        note.starts_with("GPU 2: needs compute_capability 9.0"),
        "{note}"
    );
    assert!(note.contains("left out"), "{note}");

    home.write(
        "config.toml",
        &format!("[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1qexampleaddress\"\n\n[mining.extra]\ncuda_visible_devices = \"0,1\"\npearld_rpc_url = \"http://127.0.0.1:9\"\nmodel = \"{LLAMA_70B}\"\n"),
    );
    let report = home.doctor_json(&facts, &[]);
    assert_eq!(
        provider(&report, "vllm-pearl")["supported"],
        true,
        "{report}"
    );
    assert_eq!(provider(&report, "vllm-pearl")["selected"], true);
}

#[test]
fn strict_exits_1_unless_ready_and_says_why() {
    let home = Home::new();
    let cpu_box = home.write("cpu.json", r#"{"os":"linux","arch":"x86_64"}"#);
    let out = home.jarvis(&["mine", "doctor", "--facts", &cpu_box, "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("doctor --strict: Not ready: no provider can mine on this host"),
        "{stderr}"
    );
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
    // A good host but no config: not ready, and the reason says so.
    let out = home.jarvis(&["mine", "doctor", "--facts", &h100, "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no [mining] config"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Configured, with a node that answers: ready.
    let (url, _) = serve_once(
        "200 OK",
        r#"{"result":{"blocks":5,"headers":5},"error":null}"#,
    );
    home.write("config.toml", &config_with_rpc(&url));
    let out = home.jarvis(&["mine", "doctor", "--facts", &h100, "--strict"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
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
            "  hostile                ERROR (installed, policy hides 1 GPU: see `jarvis mine policy show --provider hostile`)\n                         timed out after 300 ms"
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
        "  VRAM                   79.6 GiB (80 GB class); the model needs 65.2  OK",
        "                         GiB (70 GB)",
        "  Daemon                 unknown (not in the facts file)               UNKNOWN",
        "  Python packages        unknown (not in the facts file)               UNKNOWN",
        "  Model registry         validated: pearl-ai/Llama-3.3-70B-Instruct-   OK",
        "                         pearl",
        "  vllm-pearl             SUPPORTED (what `init` would pick)",
        "  Sidecar                absent (not running)                          OK",
        "Not ready: 1 problem blocks vllm-pearl",
        "     fix: run `jarvis mine init` (it picks a provider for this host and writes [mining])",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
    // Every status word in one column, however long the info.
    let status_column: Vec<usize> = text
        .lines()
        .filter(|l| {
            l.ends_with(" OK")
                || l.ends_with(" FAIL")
                || l.ends_with(" UNKNOWN")
                || l.ends_with(" INFO")
        })
        .map(|l| l.rfind(' ').unwrap())
        .collect();
    assert!(status_column.len() > 8, "{text}");
    assert!(
        status_column.iter().all(|c| *c == 70),
        "{status_column:?}\n{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
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
    let (ok, info) = rpc_row(&home.doctor_json(&facts, &[]));
    assert!(
        !ok && info.starts_with("HTTP 500 from http://127.0.0.1:"),
        "{info}"
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
    // The 4090 is left out of the plan, not a reason to refuse the H100s.
    assert_eq!(verdict("mixed.json", "vllm-pearl"), (true, String::new()));
    assert_eq!(
        verdict("cpu-only.json", "vllm-pearl"),
        (false, "no GPU detected".into())
    );
}

fn config_for(provider: &str, url: &str) -> String {
    format!(
        "[mining]\nprovider = \"{provider}\"\nwallet_address = \"prl1qexampleaddress\"\n\n[mining.extra]\npearld_rpc_url = \"{url}\"\n"
    )
}

#[test]
fn every_documented_machine_gets_a_verdict_and_next_steps() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/facts");
    let pearld = serve_pearld();
    let doctor = |home: &Home, file: &str| {
        let facts: Value =
            serde_json::from_str(&std::fs::read_to_string(docs.join(file)).unwrap()).unwrap();
        home.doctor_json(&facts, &[])
    };
    // (file, the provider judged, verdict without a config, with one for that provider)
    let cases = [
        (
            "h100.json",
            "vllm-pearl",
            "Not ready: 1 problem blocks vllm-pearl",
            "Ready to mine with vllm-pearl on GPU 0 (NVIDIA H100 80GB HBM3) (if the 3 unknown checks pass)",
        ),
        (
            "h200x8.json",
            "vllm-pearl",
            "Not ready: 1 problem blocks vllm-pearl",
            "Ready to mine with vllm-pearl on GPUs 0, 1, 2, 3, 4, 5, 6, 7 (8× NVIDIA H200)",
        ),
        (
            "mac-m4-max.json",
            "apple-mps-pearl",
            "Not ready: 1 problem blocks apple-mps-pearl",
            "Ready to mine with apple-mps-pearl on the Apple GPU (Apple M4 Max, MPS)",
        ),
        (
            "mixed.json",
            "vllm-pearl",
            "Not ready: 1 problem blocks vllm-pearl",
            "Ready to mine with vllm-pearl on GPUs 0, 1 (2× NVIDIA H100 80GB HBM3) (if the 3 unknown checks pass)",
        ),
        (
            "cpu-only.json",
            "cpu-pearl",
            "Not ready: no provider can mine on this host; 2 problems block cpu-pearl, the one it suits",
            "Not ready: 1 problem blocks cpu-pearl",
        ),
    ];
    for (file, judged, unconfigured, configured) in cases {
        let home = Home::new();
        let report = doctor(&home, file);
        assert_eq!(report["selected_provider"], judged, "{file}");
        assert_eq!(
            report["verdict"]["summary"], unconfigured,
            "{file}: {report}"
        );
        let steps = report["next_steps"].as_array().unwrap();
        assert_eq!(
            steps.len(),
            report["verdict"]["problems"].as_array().unwrap().len(),
            "one step per problem: {file}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.as_str().unwrap().contains("jarvis mine init")),
            "{file}: {steps:?}"
        );
        // No false failures: every FAIL row is one the judged provider needs.
        for check in report["checks"].as_array().unwrap() {
            if check["status"] == "fail" {
                assert_eq!(check["needed"], true, "{file}: {check}");
                assert!(
                    check["fix"].is_string(),
                    "a failure says what to do: {check}"
                );
            }
        }

        home.write("config.toml", &config_for(judged, &pearld));
        let report = doctor(&home, file);
        assert_eq!(report["verdict"]["summary"], configured, "{file}: {report}");
        assert_eq!(report["verdict"]["ready"], configured.starts_with("Ready"));
        if configured.starts_with("Ready") {
            assert_eq!(
                report["next_steps"][0],
                "run `jarvis mine start` to begin mining"
            );
        }
    }

    // On the mixed box the 4090 is left out of the plan: information, and
    // the provider's note says so; selecting it is a problem.
    let home = Home::new();
    home.write("config.toml", &config_for("vllm-pearl", &pearld));
    let report = doctor(&home, "mixed.json");
    let row = |report: &Value, name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {report}"))
            .clone()
    };
    let cc = row(&report, "GPU 2 compute cap.");
    assert_eq!(cc["status"], "info", "{cc}");
    assert!(
        cc["fix"].as_str().unwrap().starts_with(
            "left out: `jarvis mine start` runs a worker on each GPU that qualifies (0,1)"
        ),
        "{cc}"
    );
    let notes = &provider(&report, "vllm-pearl")["notes"];
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("GPU 2: needs compute_capability 9.0"),
        "{notes}"
    );
    home.write(
        "config.toml",
        &format!(
            "{}cuda_visible_devices = \"0,1,2\"\n",
            config_for("vllm-pearl", &pearld)
        ),
    );
    let report = doctor(&home, "mixed.json");
    let problem = &report["verdict"]["problems"][0];
    assert_eq!(
        problem["check"], "GPU 2 compute cap., GPU 2 VRAM",
        "{problem}"
    );
    assert!(
        problem["fix"]
            .as_str()
            .unwrap()
            .starts_with("leave GPU 2 out: set [mining.extra].cuda_visible_devices = \"0,1\""),
        "{problem}"
    );
}

#[test]
fn pearl_tools_are_information_for_vllm_and_gpus_for_cpu_pearl() {
    let home = Home::new();
    let status = |report: &Value, name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {report}"))["status"]
            .clone()
    };
    let h100 = json!({"os": "linux", "gpus": nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559)["gpus"],
                      "pearl": {"gateway_on_path": false, "python_packages": []}});
    let report = home.doctor_json(&h100, &[]);
    assert_eq!(status(&report, "Python packages"), "info");
    assert_eq!(status(&report, "pearl-gateway"), "info");

    // A Mac configured for cpu-pearl: no GPU or Docker failure.
    home.write(
        "config.toml",
        &config_for("cpu-pearl", "http://127.0.0.1:9"),
    );
    let mac = json!({"os": "darwin", "arch": "aarch64", "docker": {"reachable": false},
                     "pearl": {"gateway_on_path": true, "python_packages": ["pearl_mining", "pearl_gateway", "miner_base"]}});
    let report = home.doctor_json(&mac, &[]);
    assert_eq!(status(&report, "GPU"), "info");
    assert_eq!(status(&report, "Daemon"), "info");
    assert_eq!(status(&report, "Python packages"), "ok");
    assert_eq!(report["selected_by"], "configured");
}

#[test]
fn an_unknown_configured_provider_is_its_own_failure_naming_the_known_ones() {
    let home = Home::new();
    home.write(
        "config.toml",
        &config_for("vllm-perl", "http://127.0.0.1:9"),
    );
    let report = home.doctor_json(&nvidia(1, "NVIDIA H100 80GB HBM3", "9.0", 81_559), &[]);
    let row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Configured provider")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(row["status"], "fail");
    assert_eq!(
        row["info"],
        "unknown provider 'vllm-perl'; known: vllm-pearl, cpu-pearl, apple-mps-pearl"
    );
    assert_eq!(report["verdict"]["ready"], false);
    assert_eq!(
        report["verdict"]["problems"][0]["check"],
        "Configured provider"
    );
}

#[test]
fn every_config_mistake_is_named_at_its_position_with_its_exit_code() {
    let home = Home::new();
    let head = "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1qexampleaddress\"\n";
    // (the lines after the head, where the error points, exit code, message)
    let cases = [
        (
            "fee_bps = 10001\n",
            "4:11",
            2,
            "[mining].fee_bps must be from 0 to 10000, found 10001",
        ),
        (
            "submit_target = \"pool:\"\n",
            "4:17",
            2,
            "'pool:' with no URL",
        ),
        (
            "fee_bps = \"0\"\n",
            "4:11",
            2,
            "[mining].fee_bps expected an integer, found a string",
        ),
        (
            "[mining.extra]\nvllm_port = 70000\n",
            "5:13",
            2,
            "vllm_port must be from 1 to 65535, found 70000",
        ),
        (
            "[mining.extra]\nvllm_port = \"8000\"\n",
            "5:13",
            2,
            "vllm_port expected an integer, found a string",
        ),
        (
            "[mining.extra]\ngateway_port = 8000\n",
            "5:16",
            2,
            "gateway_port is 8000, the same port as vllm_port (its default)",
        ),
        (
            "[mining.extra]\npearld_rpc_url = \"localhost:1\"\n",
            "5:18",
            2,
            "must be an http:// or https:// URL",
        ),
        (
            "[mining.extra]\nmodel = \"acme/unknown\"\n",
            "5:9",
            5,
            "names unknown model 'acme/unknown'",
        ),
    ];
    for (lines, at, code, message) in cases {
        home.write("config.toml", &format!("{head}{lines}"));
        let out = home.jarvis(&["mine", "doctor"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{lines}: {stderr}");
        assert!(
            stderr.contains(&format!("config.toml:{at}: ")),
            "{lines}: {stderr}"
        );
        assert!(stderr.contains(message), "{lines}: {stderr}");
    }
    // An unknown key is one warning with a guess, and the command goes on.
    home.write(
        "config.toml",
        &format!(
            "{head}[mining.extra]\nvlm_port = 9000\npearld_rpc_url = \"http://127.0.0.1:9\"\n"
        ),
    );
    let out = home.jarvis(&["mine", "doctor", "--facts", &home.write("f.json", "{}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("warning: unknown key [mining.extra].vlm_port: did you mean `vllm_port`?")
            .count(),
        1,
        "{stderr}"
    );
}
