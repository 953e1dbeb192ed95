//! `jarvis mine inspect-model` and `jarvis mine validate-model` end to end
//! (reference §5.1, §8.2): the real binary in an isolated home.
//!
//! - inspect-model on local artifact directories (complete, no tokenizer, no
//!   weights, Gemma4 without processor metadata, no config.json) and against
//!   a loopback Hugging Face API (`HF_ENDPOINT`) answering 200, 401 with and
//!   without a token, 404, or never (the timeout). The token is never shown:
//!   not on stdout, stderr (at -vvv), nor in the artifact.
//! - validate-model with nothing running, with bad input, and against the
//!   fake miner (tests/fake-miner) started by `jarvis mine start` on the
//!   machine's Docker engine: with and without `--prompt`, its share counts
//!   from the container's log when the gateway serves no metrics, and from
//!   the gateway when it does. That miner's container name is fixed and it
//!   uses the host network, so those tests run one at a time.

use jarvis_mine_tests::run::{Run, jarvis_mine, output_within, wait_for};
use jarvis_mine_tests::{MinerLock, fake_miner_init, free_port, gateway_metrics_flags, miner_lock};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const TOKEN: &str = "hf_model_check_secret_token_42";
const DEFAULT_MODEL: &str = "pearl-ai/Llama-3.3-70B-Instruct-pearl";
const GEMMA: &str = "pearl-ai/Gemma-4-31B-it-pearl";
const WALLET: &str = "prl1qexampleaddress";
const PASSWORD: &str = "hunter2secret";
/// Far above a normal run, far below a hang.
const DEADLINE: Duration = Duration::from_secs(120);
/// The fake miner submits three blocks and has every third rejected.
const SHARES: &str = "submitted=3 accepted=2";

// ---------------------------------------------------------------------------
// Running the binary.

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `jarvis mine ARGS` with `env` added to the isolated environment
    /// (`-vvv` among ARGS works: the flag is global).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = jarvis_mine(JARVIS, self.path(), args);
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        Run::new(
            format!("jarvis mine {}", args.join(" ")),
            output_within(&mut command, DEADLINE),
        )
    }

    fn artifact_path(&self) -> PathBuf {
        self.path().join("evidence/artifact.json")
    }

    fn artifact(&self) -> Value {
        let text = std::fs::read_to_string(self.artifact_path()).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        assert_keys_sorted(&text);
        serde_json::from_str(&text).unwrap()
    }
}

/// The text is pretty JSON (indent 2) with every object's keys sorted:
/// exactly what serde_json's sorted map writes back.
#[track_caller]
fn assert_keys_sorted(text: &str) {
    let value: Value = serde_json::from_str(text).unwrap();
    let sorted = serde_json::to_string_pretty(&value).unwrap() + "\n";
    assert_eq!(text, sorted);
}

/// The row of check `name`: (info, "OK"/"FAIL").
#[track_caller]
fn row(run: &Run, name: &str) -> (String, String) {
    let prefix = format!("  {name:<22} ");
    let line = run
        .stdout
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row {name:?}: {run}"));
    let rest = line[prefix.len()..].trim_end();
    match rest.rsplit_once(' ') {
        Some((info, status)) if status == "OK" || status == "FAIL" => {
            (info.trim_end().to_owned(), status.to_owned())
        }
        _ => (rest.to_owned(), String::new()),
    }
}

#[track_caller]
fn assert_row(run: &Run, name: &str, info: &str, status: &str) {
    assert_eq!(
        row(run, name),
        (info.to_owned(), status.to_owned()),
        "row {name}: {run}"
    );
}

fn check_names(artifact: &Value) -> Vec<String> {
    artifact["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_no_token(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} shows the token:\n{text}");
}

// ---------------------------------------------------------------------------
// Local artifacts.

/// A model directory with these files; `config` is config.json's content.
fn artifact_dir(home: &Home, config: Option<Value>, files: &[&str]) -> PathBuf {
    let dir = home.path().join("staging/model");
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(config) = config {
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    }
    for file in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    dir
}

fn pearl_config(architecture: &str) -> Value {
    json!({
        "architectures": [architecture],
        "quantization_config": {"quant_method": "pearl", "format": "mixed-precision"},
    })
}

#[test]
fn a_complete_local_artifact_passes_and_writes_its_artifact() {
    let home = Home::new();
    let dir = artifact_dir(
        &home,
        Some(pearl_config("LlamaForCausalLM")),
        &[
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            ".git/objects/pack.bin",
        ],
    );
    let output = home.artifact_path();
    let run = home.run(
        &[
            "inspect-model",
            "--model",
            dir.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &[],
    );
    run.code(0)
        .stdout_has("Pearl Model Inspection")
        .stdout_has("Artifact inspection passed.")
        .stdout_has(&format!(
            "Inspection artifact written to {}",
            output.display()
        ));
    assert_row(
        &run,
        "Model registry",
        "local artifact (not registered)",
        "OK",
    );
    assert_row(&run, "Local artifact", dir.to_str().unwrap(), "OK");
    assert_row(&run, "Pearl quantization", "pearl", "OK");
    // config.json, the tokenizer and two weights; nothing under .git.
    assert_row(&run, "File list", "4 files", "OK");
    assert_row(&run, "config.json", "present", "OK");
    assert_row(&run, "Tokenizer metadata", "tokenizer.json", "OK");
    assert_row(&run, "Weights", "2 weight files", "OK");
    assert!(!run.stdout.contains("Gemma4"), "{run}");

    let artifact = home.artifact();
    assert_eq!(artifact["schema_version"], 1);
    assert_eq!(artifact["status"], "passed");
    assert_eq!(artifact["model"], dir.to_str().unwrap());
    assert_eq!(artifact["allow_planned"], false);
    assert_eq!(artifact["hf_token_env"], "HF_TOKEN");
    assert_eq!(
        check_names(&artifact),
        [
            "Model registry",
            "Local artifact",
            "Pearl quantization",
            "File list",
            "config.json",
            "Tokenizer metadata",
            "Weights",
        ]
    );
    assert_eq!(
        artifact["checks"][3],
        json!({"info": "4 files", "name": "File list", "ok": true})
    );
}

#[test]
fn a_local_artifact_without_a_tokenizer_fails() {
    let home = Home::new();
    let dir = artifact_dir(
        &home,
        Some(pearl_config("LlamaForCausalLM")),
        &["model.safetensors"],
    );
    let output = home.artifact_path();
    let run = home.run(
        &[
            "inspect-model",
            "--model",
            dir.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &[],
    );
    run.code(1)
        .stderr_has("Error: Pearl model artifact inspection failed.");
    assert_row(
        &run,
        "Tokenizer metadata",
        "missing tokenizer.json/tokenizer_config.json",
        "FAIL",
    );
    assert_row(&run, "Weights", "1 weight files", "OK");
    // Written on failure too.
    assert_eq!(home.artifact()["status"], "failed");
}

#[test]
fn a_local_artifact_without_weights_fails() {
    let home = Home::new();
    let dir = artifact_dir(
        &home,
        Some(pearl_config("LlamaForCausalLM")),
        &["tokenizer_config.json", "README.md"],
    );
    let run = home.run(&["inspect-model", "--model", dir.to_str().unwrap()], &[]);
    run.code(1);
    assert_row(
        &run,
        "Weights",
        "missing *.safetensors/*.bin/*.gguf",
        "FAIL",
    );
    assert_row(&run, "Tokenizer metadata", "tokenizer_config.json", "OK");
}

#[test]
fn a_gemma4_artifact_without_processor_metadata_fails() {
    let home = Home::new();
    let dir = artifact_dir(
        &home,
        Some(pearl_config("Gemma4ForConditionalGeneration")),
        &[
            "tokenizer.json",
            "model.safetensors",
            "processor_config.json",
        ],
    );
    let model = dir.to_str().unwrap();
    let run = home.run(&["inspect-model", "--model", model], &[]);
    run.code(1);
    assert_row(
        &run,
        "Gemma4 processor metadata",
        "missing preprocessor_config.json",
        "FAIL",
    );
    std::fs::remove_file(dir.join("processor_config.json")).unwrap();
    let run = home.run(&["inspect-model", "--model", model], &[]);
    assert_row(
        &run,
        "Gemma4 processor metadata",
        "missing processor_config.json, preprocessor_config.json",
        "FAIL",
    );
    // The converter's compat copy makes it complete.
    for name in ["processor_config.json", "preprocessor_config.json"] {
        std::fs::write(dir.join(name), "{}").unwrap();
    }
    let run = home.run(&["inspect-model", "--model", model], &[]);
    run.code(0);
    assert_row(&run, "Gemma4 processor metadata", "present", "OK");
}

#[test]
fn a_directory_without_config_json_stops_at_the_artifact_row() {
    let home = Home::new();
    let dir = artifact_dir(&home, None, &["model.safetensors"]);
    let run = home.run(&["inspect-model", "--model", dir.to_str().unwrap()], &[]);
    run.code(1);
    assert_row(
        &run,
        "Local artifact",
        &format!("missing {}", dir.join("config.json").display()),
        "FAIL",
    );
    assert!(!run.stdout.contains("Pearl quantization"), "{run}");
}

#[test]
fn bad_model_arguments_exit_2_and_say_what_to_give() {
    let home = Home::new();
    let dir = artifact_dir(&home, Some(pearl_config("X")), &[]);
    let file = dir.join("config.json");
    home.run(&["inspect-model", "--model", file.to_str().unwrap()], &[])
        .code(2)
        .stderr_has("is a file, not a model directory");
    let missing = home.path().join("no-such-staging");
    home.run(
        &["inspect-model", "--model", missing.to_str().unwrap()],
        &[],
    )
    .code(2)
    .stderr_has("no directory ");
    home.run(&["inspect-model", "--model", "org/has spaces"], &[])
        .code(2)
        .stderr_has("neither an existing directory nor a Hugging Face model id");
    home.run(
        &[
            "inspect-model",
            "--model",
            dir.to_str().unwrap(),
            "--output",
            home.path().to_str().unwrap(),
        ],
        &[],
    )
    .code(2)
    .stderr_has("is a directory: give a file path");
    home.run(&["inspect-model", "--timeout", "soon"], &[])
        .code(2)
        .stderr_has("is not a duration");
}

#[test]
fn an_unreadable_directory_exits_2() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let dir = artifact_dir(&home, Some(pearl_config("X")), &[]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read_dir(&dir).is_ok();
    let run = home.run(&["inspect-model", "--model", dir.to_str().unwrap()], &[]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if readable {
        // Root reads every directory: nothing to test here.
        return;
    }
    run.code(2)
        .stderr_has("cannot read the model directory")
        .stderr_has("Permission denied");
}

// ---------------------------------------------------------------------------
// A loopback Hugging Face API.

/// What the server saw of one request.
#[derive(Debug)]
struct Seen {
    target: String,
    authorization: Option<String>,
}

#[derive(Clone)]
enum Answer {
    /// 200 with this model payload; its top-level files.
    Model {
        payload: Value,
        files: Vec<String>,
    },
    Status(u16),
    /// Reads the request, reports it, and never answers.
    Never,
}

struct HubServer {
    url: String,
    seen: Receiver<Seen>,
    /// Dropped with the server: lets `Never` connections go.
    _release: Sender<()>,
}

impl HubServer {
    fn start(answer: Answer) -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (report, seen) = channel();
        let (release, released) = channel::<()>();
        let released = std::sync::Arc::new(Mutex::new(released));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let answer = answer.clone();
                let report = report.clone();
                let released = released.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &answer, &report, &released);
                });
            }
        });
        HubServer {
            url,
            seen,
            _release: release,
        }
    }

    /// The next request the server received.
    #[track_caller]
    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(DEADLINE)
            .expect("the server received a request")
    }
}

fn serve(
    stream: TcpStream,
    answer: &Answer,
    report: &Sender<Seen>,
    released: &Mutex<Receiver<()>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let target = first.split_whitespace().nth(1).unwrap_or("").to_owned();
    let _ = report.send(Seen {
        target: target.clone(),
        authorization,
    });
    let (status, body) = match answer {
        Answer::Never => {
            // Hold the connection until the test is over.
            let _ = released.lock().unwrap().recv();
            return Ok(());
        }
        Answer::Status(status) => (*status, json!({"error": "Repository not found"})),
        Answer::Model { payload, files } => {
            if target.ends_with("/tree/main?recursive=false") {
                let entries: Vec<Value> = files
                    .iter()
                    .map(|path| json!({"type": "file", "path": path, "size": 1}))
                    .chain([json!({"type": "directory", "path": "original"})])
                    .collect();
                (200, Value::Array(entries))
            } else {
                (200, payload.clone())
            }
        }
    };
    let body = body.to_string();
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn hub_model(id: &str, architecture: &str, files: &[&str]) -> Answer {
    Answer::Model {
        payload: json!({
            "id": id,
            "gated": false,
            "config": pearl_config(architecture),
        }),
        files: files.iter().map(|f| (*f).to_owned()).collect(),
    }
}

const COMPLETE: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
];

#[test]
fn the_hub_answers_200_and_the_default_model_passes() {
    let home = Home::new();
    let hub = HubServer::start(hub_model(DEFAULT_MODEL, "LlamaForCausalLM", &COMPLETE));
    let output = home.artifact_path();
    let run = home.run(
        &["inspect-model", "--output", output.to_str().unwrap()],
        &[("HF_ENDPOINT", &hub.url), ("HF_TOKEN", TOKEN)],
    );
    run.code(0).stdout_has("Artifact inspection passed.");
    assert_row(
        &run,
        "Model registry",
        &format!("validated: {DEFAULT_MODEL}"),
        "OK",
    );
    assert_row(&run, "HF model", "accessible", "OK");
    assert_row(&run, "Pearl quantization", "pearl", "OK");
    assert_row(&run, "HF file list", "4 files", "OK");
    assert_row(&run, "Weights", "2 weight files", "OK");
    // The id keeps its slash; the token goes in the header, and only there.
    let model = hub.next();
    assert_eq!(
        model.target,
        "/api/models/pearl-ai/Llama-3.3-70B-Instruct-pearl"
    );
    assert_eq!(model.authorization, Some(format!("Bearer {TOKEN}")));
    let tree = hub.next();
    assert_eq!(
        tree.target,
        "/api/models/pearl-ai/Llama-3.3-70B-Instruct-pearl/tree/main?recursive=false"
    );
    assert_eq!(tree.authorization, Some(format!("Bearer {TOKEN}")));
    let text = std::fs::read_to_string(&output).unwrap();
    assert_no_token("the artifact", &text);
    let artifact = home.artifact();
    assert_eq!(artifact["status"], "passed");
    assert_eq!(artifact["model"], DEFAULT_MODEL);
    assert_eq!(
        check_names(&artifact),
        [
            "Model registry",
            "HF model",
            "Pearl quantization",
            "HF file list",
            "config.json",
            "Tokenizer metadata",
            "Weights",
        ]
    );
}

#[test]
fn without_a_token_a_401_says_to_set_one_and_sends_none() {
    let home = Home::new();
    let hub = HubServer::start(Answer::Status(401));
    let run = home.run(&["inspect-model"], &[("HF_ENDPOINT", &hub.url)]);
    run.code(1)
        .stderr_has("Pearl model artifact inspection failed.");
    assert_row(
        &run,
        "HF model",
        "HTTP 401; set $HF_TOKEN for gated/private models",
        "FAIL",
    );
    assert_eq!(hub.next().authorization, None);
    // No payload: nothing more is asked or judged.
    assert!(!run.stdout.contains("Pearl quantization"), "{run}");

    // --hf-token-env names the variable, in the advice too; an empty value
    // is no token.
    let run = home.run(
        &["inspect-model", "--hf-token-env", "MY_HF_TOKEN"],
        &[("HF_ENDPOINT", &hub.url), ("MY_HF_TOKEN", "")],
    );
    assert_row(
        &run,
        "HF model",
        "HTTP 401; set $MY_HF_TOKEN for gated/private models",
        "FAIL",
    );
}

#[test]
fn a_refused_token_is_sent_but_never_shown() {
    let home = Home::new();
    let hub = HubServer::start(Answer::Status(401));
    let output = home.artifact_path();
    let run = home.run(
        &[
            "-vvv",
            "inspect-model",
            "--hf-token-env",
            "MY_HF_TOKEN",
            "--output",
            output.to_str().unwrap(),
        ],
        &[("HF_ENDPOINT", &hub.url), ("MY_HF_TOKEN", TOKEN)],
    );
    run.code(1);
    let (info, status) = row(&run, "HF model");
    assert_eq!(status, "FAIL");
    assert!(
        info.starts_with("HTTP 401; the token in $MY_HF_TOKEN was refused"),
        "{run}"
    );
    assert_eq!(hub.next().authorization, Some(format!("Bearer {TOKEN}")));
    // -vvv shows this tool's requests, never the HTTP stack's byte dumps.
    run.stderr_has("GET ")
        .stderr_has("(token: from $MY_HF_TOKEN)");
    assert!(!run.stderr.contains("ureq_proto"), "{run}");
    assert_no_token("stdout", &run.stdout);
    assert_no_token("stderr", &run.stderr);
    let text = std::fs::read_to_string(&output).unwrap();
    assert_no_token("the artifact", &text);
    assert_eq!(home.artifact()["hf_token_env"], "MY_HF_TOKEN");
}

#[test]
fn a_missing_model_is_http_404() {
    let home = Home::new();
    let hub = HubServer::start(Answer::Status(404));
    let run = home.run(
        &["inspect-model", "--model", GEMMA, "--allow-planned"],
        &[("HF_ENDPOINT", &hub.url), ("HF_TOKEN", TOKEN)],
    );
    run.code(1);
    assert_row(&run, "Model registry", &format!("planned: {GEMMA}"), "OK");
    assert_row(&run, "HF model", "HTTP 404", "FAIL");
}

#[test]
fn a_slow_hub_is_cut_off_at_the_timeout() {
    let home = Home::new();
    let hub = HubServer::start(Answer::Never);
    let endpoint = hub.url.clone();
    let runner = std::thread::spawn(move || {
        home.run(
            &["inspect-model", "--timeout", "0.5"],
            &[("HF_ENDPOINT", &endpoint)],
        )
    });
    // The request arrived; the server will never answer it.
    let seen = hub.next();
    assert!(seen.target.starts_with("/api/models/"), "{seen:?}");
    let run = runner.join().unwrap();
    run.code(1);
    assert_row(&run, "HF model", "timed out after 0.5 s", "FAIL");
}

#[test]
fn a_planned_model_needs_allow_planned() {
    let home = Home::new();
    let mut files = COMPLETE.to_vec();
    files.extend(["processor_config.json", "preprocessor_config.json"]);
    let hub = HubServer::start(hub_model(GEMMA, "Gemma4ForConditionalGeneration", &files));
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    let run = home.run(&["inspect-model", "--model", GEMMA], &env);
    run.code(1)
        .stderr_has("Pearl model artifact inspection failed.");
    assert_row(&run, "Model registry", &format!("planned: {GEMMA}"), "FAIL");
    assert_row(&run, "Gemma4 processor metadata", "present", "OK");
    home.run(
        &["inspect-model", "--model", GEMMA, "--allow-planned"],
        &env,
    )
    .code(0)
    .stdout_has("Artifact inspection passed.");
}

#[test]
fn an_unknown_or_raw_model_exits_5() {
    let home = Home::new();
    let hub = HubServer::start(hub_model("acme/x", "LlamaForCausalLM", &COMPLETE));
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    let run = home.run(&["inspect-model", "--model", "acme/Other-pearl"], &env);
    run.code(5).stderr_has("`jarvis mine models` lists them");
    assert_row(&run, "Model registry", "unknown", "FAIL");
    // The artifact itself was still inspected.
    assert_row(&run, "HF model", "accessible", "OK");
    let run = home.run(
        &[
            "inspect-model",
            "--model",
            "meta-llama/Llama-3.3-70B-Instruct",
        ],
        &env,
    );
    run.code(5)
        .stderr_has(&format!("its Pearl variant is {DEFAULT_MODEL}"));
    assert_row(
        &run,
        "Model registry",
        &format!("raw model; planned Pearl variant {DEFAULT_MODEL}"),
        "FAIL",
    );
}

#[test]
fn a_bad_hf_endpoint_exits_2() {
    let home = Home::new();
    home.run(&["inspect-model"], &[("HF_ENDPOINT", "huggingface.co")])
        .code(2)
        .stderr_has("HF_ENDPOINT: ");
}

// ---------------------------------------------------------------------------
// validate-model without a miner.

#[test]
fn validate_model_with_nothing_running_fails_and_says_what_to_do() {
    let home = Home::new();
    let output = home.artifact_path();
    let run = home.run(
        &["validate-model", "--output", output.to_str().unwrap()],
        &[],
    );
    run.code(1)
        .stdout_has("Pearl Model Validation")
        .stdout_has(&format!("model:              {DEFAULT_MODEL}"))
        .stderr_has("Error: Pearl model validation checks failed.");
    assert_row(
        &run,
        "Model registry",
        &format!("validated: {DEFAULT_MODEL}"),
        "OK",
    );
    assert_row(
        &run,
        "Sidecar",
        "absent - run `jarvis mine start` first",
        "FAIL",
    );
    assert_row(&run, "vLLM endpoint", "missing", "FAIL");
    assert_row(
        &run,
        "Chat completion",
        "skipped (pass --prompt to run)",
        "",
    );
    assert_row(&run, "Gateway metrics", "missing", "FAIL");
    let artifact = home.artifact();
    assert_eq!(artifact["status"], "failed");
    assert_eq!(artifact["prompt_ran"], false);
    assert_eq!(artifact["vllm_endpoint"], Value::Null);
    assert_eq!(artifact["gateway_metrics_url"], Value::Null);
    assert_eq!(artifact["share_source"], Value::Null);
    assert_eq!(
        artifact["sidecar_path"],
        home.path().join("runtime/mining.json").to_str().unwrap()
    );
}

#[test]
fn validate_model_refuses_urls_that_are_not_urls() {
    let home = Home::new();
    home.run(
        &["validate-model", "--vllm-endpoint", "127.0.0.1:8000/v1"],
        &[],
    )
    .code(2)
    .stderr_has("--vllm-endpoint: ");
    home.run(&["validate-model", "--gateway-metrics-url", "ftp://x"], &[])
        .code(2)
        .stderr_has("--gateway-metrics-url: ");
}

// ---------------------------------------------------------------------------
// validate-model against the fake miner.

/// One fixed-name miner at a time: in this process, and on this machine
/// (the other suites that run it take the same [`miner_lock`]).
fn one_miner_at_a_time() -> (MutexGuard<'static, ()>, MinerLock) {
    static MINER: Mutex<()> = Mutex::new(());
    let guard = MINER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (guard, miner_lock())
}

/// A started session of the fake miner, stopped when dropped.
struct Session {
    home: Home,
    vllm_port: u16,
}

impl Session {
    /// `init` + `start`; `gateway_metrics`: the miner also serves the
    /// gateway's metrics. The gateway metrics port is always a free one,
    /// so nothing else on the machine answers for it.
    fn start(gateway_metrics: bool) -> Session {
        let home = Home::new();
        let vllm_port = free_port();
        let mut args = fake_miner_init(WALLET, vllm_port);
        args.extend(gateway_metrics_flags(free_port(), gateway_metrics));
        home.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .code(0);
        home.run(&["start"], &[("PEARLD_RPC_PASSWORD", PASSWORD)])
            .code(0);
        Session { home, vllm_port }
    }

    fn validate(&self, args: &[&str]) -> Run {
        let mut all = vec!["validate-model"];
        all.extend_from_slice(args);
        self.home.run(&all, &[])
    }

    /// Runs validate-model until its share row shows every block.
    #[track_caller]
    fn validate_until_all_shares(&self, args: &[&str]) -> Run {
        let mut last = None;
        wait_for(Duration::from_secs(60), || {
            let run = self.validate(args);
            let done = row(&run, "Gateway metrics").0.contains(SHARES);
            last = Some(run);
            done.then_some(())
        });
        let run = last.unwrap();
        assert!(row(&run, "Gateway metrics").0.contains(SHARES), "{run}");
        run
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self
            .home
            .run(&["stop"], &[("PEARLD_RPC_PASSWORD", PASSWORD)]);
    }
}

#[test]
fn validate_model_against_a_running_miner_with_and_without_a_prompt() {
    let _one = one_miner_at_a_time();
    let session = Session::start(false);
    let sidecar = session.home.path().join("runtime/mining.json");

    // Without --prompt: the chat is a note, not a check; no gateway
    // metrics, so the shares come from the container's log.
    let run = session.validate_until_all_shares(&[]);
    run.code(0).stdout_has("Validation checks passed.");
    assert_row(
        &run,
        "Sidecar",
        &format!("present ({})", sidecar.display()),
        "OK",
    );
    assert_row(&run, "Sidecar model", DEFAULT_MODEL, "OK");
    assert_row(&run, "vLLM /models", DEFAULT_MODEL, "OK");
    assert_row(
        &run,
        "Chat completion",
        "skipped (pass --prompt to run)",
        "",
    );
    assert_row(
        &run,
        "Gateway metrics",
        &format!("container logs {SHARES} rejected=1"),
        "OK",
    );

    // With --prompt, and the artifact.
    let output = session.home.artifact_path();
    let run = session.validate(&[
        "--prompt",
        "Say hello in one sentence.",
        "--output",
        output.to_str().unwrap(),
    ]);
    run.code(0).stdout_has(&format!(
        "Validation artifact written to {}",
        output.display()
    ));
    assert_row(&run, "Chat completion", "choices returned", "OK");
    let artifact = session.home.artifact();
    assert_eq!(artifact["schema_version"], 1);
    assert_eq!(artifact["status"], "passed");
    assert_eq!(artifact["prompt_ran"], true);
    assert_eq!(artifact["share_source"], "container logs");
    assert_eq!(
        artifact["vllm_endpoint"],
        format!("http://127.0.0.1:{}/v1", session.vllm_port)
    );
    assert!(
        artifact["gateway_metrics_url"]
            .as_str()
            .unwrap()
            .ends_with("/metrics"),
        "{artifact:#}"
    );
    assert_eq!(
        check_names(&artifact),
        [
            "Model registry",
            "Sidecar",
            "Sidecar model",
            "vLLM /models",
            "Chat completion",
            "Gateway metrics",
        ]
    );
    assert_no_token("the artifact", &artifact.to_string());
    assert!(!artifact.to_string().contains(PASSWORD), "{artifact:#}");

    // Another model than the session serves: the registry, the sidecar and
    // vLLM all say so.
    let other = "pearl-ai/Llama-3.1-8B-Instruct-pearl";
    let run = session.validate(&["--model", other]);
    run.code(1)
        .stderr_has("Pearl model validation checks failed.");
    assert_row(&run, "Model registry", &format!("planned: {other}"), "FAIL");
    assert_row(&run, "Sidecar model", DEFAULT_MODEL, "FAIL");
    assert_row(
        &run,
        "vLLM /models",
        &format!("1 ids: {DEFAULT_MODEL}"),
        "FAIL",
    );
}

#[test]
fn validate_model_reads_the_gateway_when_it_serves_metrics() {
    let _one = one_miner_at_a_time();
    let session = Session::start(true);
    let output = session.home.artifact_path();
    let run = session.validate_until_all_shares(&["--output", output.to_str().unwrap()]);
    run.code(0);
    assert_row(&run, "Gateway metrics", &format!("gateway {SHARES}"), "OK");
    assert_eq!(session.home.artifact()["share_source"], "gateway");
}
