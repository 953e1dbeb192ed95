//! Shared helpers for the integration tests: the test guests, a sandbox, and
//! hardware facts for well-known machines.

use jarvis_mine::bindings::HardwareFacts;
use jarvis_mine::facts::{GpuSelection, to_guest};
use jarvis_mine::policy::Policy;
use jarvis_mine::provider::{LoadedProvider, ProviderSource};
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use std::path::Path;
pub mod fake_queue;
pub mod openjarvis;
pub mod python;
pub mod run;

/// The hostile provider of the escape suite, which performs the attack its
/// `[mining.extra].attack` names (tests/guests/escape).
pub fn escape_component() -> Vec<u8> {
    read(env!("GUEST_ESCAPE"))
}

/// The guest that misbehaves as its `model` argument asks (tests/guests/hostile).
pub fn hostile_component() -> Vec<u8> {
    read(env!("GUEST_HOSTILE"))
}

/// The guest whose texts try to control the terminal (tests/guests/terminal).
pub fn terminal_component() -> Vec<u8> {
    read(env!("GUEST_TERMINAL"))
}

/// The terminal controls that guest puts in its version, description,
/// reason and log (`PAYLOAD`).
pub mod terminal_payload {
    include!("../guests/terminal/src/payload.rs");
}

/// The WASI guest that tries every impure thing (tests/guests/impure).
pub fn impure_component() -> Vec<u8> {
    read(env!("GUEST_IMPURE"))
}

/// The contract test provider built against the frozen
/// `openjarvis:mining@0.1.0` (tests/guests/contract-0-1).
pub fn contract_0_1_component() -> Vec<u8> {
    read(env!("GUEST_CONTRACT_0_1"))
}

/// Its twin built against the current contract (tests/guests/contract-0-2).
pub fn contract_0_2_component() -> Vec<u8> {
    read(env!("GUEST_CONTRACT_0_2"))
}

/// Every function of every interface the world `mining-provider` imports,
/// as `<interface>.<function>` in the WIT's order, read from the text of a
/// contract's WIT file (`wit/types.wit`, `wit/0.1.0/types.wit`): the tables
/// of imports the suites call, so that none can be left out.
pub fn world_imports(wit: &str) -> Vec<String> {
    let world = wit
        .split("world mining-provider {")
        .nth(1)
        .expect("the world is in the WIT");
    let mut imports = Vec::new();
    for interface in world
        .lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .map(|name| name.trim_end_matches(';').trim())
    {
        let body = wit
            .split(&format!("interface {interface} {{"))
            .nth(1)
            .unwrap_or_else(|| panic!("interface {interface} is in the WIT"));
        // The interface ends at the first line that closes it at column 0.
        let body = body.split("\n}").next().unwrap();
        for line in body.lines() {
            if let Some((name, rest)) = line.trim().split_once(':')
                && rest.trim_start().starts_with("func(")
            {
                imports.push(format!("{interface}.{name}"));
            }
        }
    }
    imports
}

/// The documented provider template (providers/examples/rust-template).
pub fn template_component() -> Vec<u8> {
    read(env!("PROVIDER_TEMPLATE"))
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(path)).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

/// Runs test `name` again in a child process of this test binary, with
/// `env` added to its environment (what cannot be set safely in a
/// multi-threaded test process, such as the NVML library a process loads
/// once). Returns true in the child, which then runs the test's body; in
/// the parent, checks the child passed.
pub fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    const CHILD: &str = "JARVIS_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} failed in its child process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    false
}

/// A sandbox with `limits` and no compiled-component cache.
pub fn sandbox(limits: SandboxLimits) -> Sandbox {
    Sandbox::new(limits, None).expect("sandbox starts")
}

/// Loads component bytes as an installed provider, with no policy files
/// (so it may not use any host capability).
pub fn load(sandbox: &Sandbox, bytes: &[u8]) -> LoadedProvider {
    load_with_policy(sandbox, bytes, &no_policy())
}

/// Loads component bytes as an installed provider under `policy`.
pub fn load_with_policy(sandbox: &Sandbox, bytes: &[u8], policy: &Policy) -> LoadedProvider {
    let component = sandbox.compile(bytes, "test").expect("component compiles");
    let pre = sandbox.prepare(&component).expect("component links");
    LoadedProvider::new(
        sandbox,
        pre,
        ProviderSource::Installed("test.wasm".into()),
        "test".into(),
        "test",
        policy,
    )
    .expect("info() succeeds")
}

/// A user policy file with `text` and no system policy.
pub fn user_policy(text: &str) -> Policy {
    let path = std::path::PathBuf::from("/test/mining/policy.toml");
    let file = jarvis_mine::policy::PolicyFile::parse(text, &path).expect("test policy parses");
    Policy::with_files(
        ("/nonexistent/mining-policy.toml".into(), None),
        (path, Some(file)),
    )
}

/// No system or user policy file.
pub fn no_policy() -> Policy {
    Policy::none(&jarvis_mine::paths::Paths::with_home(
        "/nonexistent-openjarvis-home",
    ))
}

/// Facts for a Linux host with these GPUs `(name, compute capability, MiB)`.
pub fn linux_with_gpus(gpus: &[(&str, &str, u64)]) -> host_gpu::HardwareFacts {
    host_gpu::HardwareFacts {
        os: Some("linux".into()),
        arch: Some("x86_64".into()),
        gpus: gpus
            .iter()
            .enumerate()
            .map(|(index, (name, cc, mib))| host_gpu::GpuFacts {
                index: index as u32,
                uuid: Some(format!("GPU-{index:08}")),
                name: (*name).into(),
                vendor: "nvidia".into(),
                compute_capability: Some((*cc).into()),
                memory_total_mib: Some(*mib),
            })
            .collect(),
        ..Default::default()
    }
}

/// The same facts as a provider receives them (no GPU selection).
pub fn guest_facts(facts: &host_gpu::HardwareFacts) -> HardwareFacts {
    to_guest(facts, &GpuSelection::default())
}

// ---------------------------------------------------------------------------
// Docker: the fake miner image and per-test container cleanup.

use jarvis_mine::docker::Docker;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The label every test container carries, with a value unique to one test
/// (see [`ContainerCleanup`]).
pub const TEST_CASE_LABEL: &str = "jarvis-test.case";

/// The repository of the fake miner images; the tag is the first 12 hex
/// digits of the binary's sha256.
pub const FAKE_MINER_REPOSITORY: &str = "jarvis-test/fake-miner";

/// A local Docker image of `tests/fake-miner` (a static binary `FROM
/// scratch`, `ENTRYPOINT ["/fake-miner"]`), built on first use in this
/// process and named `jarvis-test/fake-miner:<sha256 of the binary, 12 hex>`.
///
/// - The binary is built statically (`+crt-static`, glibc target) in
///   `<workspace>/target/fake-miner`, a target dir of its own so the build
///   never waits on the `cargo test` that runs us.
/// - The image is built through [`Docker::build_image`] (BuildKit over the
///   Engine API; no docker CLI, no registry) and skipped when that tag
///   exists, so it is rebuilt only when the fake miner's code changes.
/// - Test binaries running in parallel serialise on the file lock
///   `<workspace>/target/fake-miner/image.lock`; within a process the result
///   is cached.
///
/// Panics with the build's output when something fails: every caller needs
/// the image.
pub fn fake_miner_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_fake_miner_image().unwrap_or_else(|error| panic!("{error}")))
        .clone()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn build_fake_miner_image() -> Result<String, String> {
    use sha2::{Digest, Sha256};
    use std::process::Command;

    let target_dir = workspace_root().join("target").join("fake-miner");
    std::fs::create_dir_all(&target_dir)
        .map_err(|e| format!("creating {}: {e}", target_dir.display()))?;
    let lock_path = target_dir.join("image.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "fake-miner",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("running cargo to build fake-miner: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building fake-miner failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = target_dir.join(&triple).join("release").join("fake-miner");
    let bytes = std::fs::read(&binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    let digest = Sha256::digest(&bytes);
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let image = format!("{FAKE_MINER_REPOSITORY}:{}", &hash[..12]);

    let docker = Docker::connect().map_err(|e| e.to_string())?;
    if docker.image_present(&image).map_err(|e| e.to_string())? {
        return Ok(image);
    }
    let context = target_dir.join("image-context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context)
        .map_err(|e| format!("creating {}: {e}", context.display()))?;
    std::fs::copy(&binary, context.join("fake-miner"))
        .map_err(|e| format!("copying {}: {e}", binary.display()))?;
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY fake-miner /fake-miner\nLABEL jarvis-test=fake-miner\nENTRYPOINT [\"/fake-miner\"]\n",
    )
    .map_err(|e| format!("writing the Dockerfile: {e}"))?;
    let mut output = Vec::new();
    docker
        .build_image(&context, "Dockerfile", &image, &mut |event| {
            output.push(format!("{event:?}"))
        })
        .map_err(|e| format!("{e}\nbuild output:\n{}", output.join("\n")))?;
    Ok(image)
}

/// Held while a test runs the fake miner as the built-in `vllm-pearl` does:
/// its container name is fixed (`openjarvis-pearl-miner`), so one such
/// session at a time on this machine, across threads *and* test binaries
/// (two `cargo test` runs may share the machine). A file lock
/// (`<workspace>/target/fake-miner/miner.lock`, `flock`: released when
/// dropped, or when the process dies).
pub struct MinerLock {
    _file: std::fs::File,
}

/// Waits for [`MinerLock`].
pub fn miner_lock() -> MinerLock {
    let dir = workspace_root().join("target").join("fake-miner");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join("miner.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    MinerLock { _file: file }
}

/// Removes, when dropped (even after a failed assertion), every container
/// labelled [`TEST_CASE_LABEL`]`=<this guard's value>`. Give each test its
/// own guard and put [`labels`](Self::labels) on everything it creates.
pub struct ContainerCleanup {
    value: String,
}

impl ContainerCleanup {
    /// A guard whose label value starts with `case` and is unique to this
    /// process and moment.
    pub fn new(case: &str) -> ContainerCleanup {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        ContainerCleanup {
            value: format!("{case}-{}-{nanos}", std::process::id()),
        }
    }

    /// The unique label value, also usable as a unique name part.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The labels to put on this test's containers.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_CASE_LABEL.to_owned(), self.value.clone())])
    }
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        // Never panic here: this runs while a failed test unwinds.
        let value = self.value.clone();
        let _ = std::panic::catch_unwind(move || {
            let Ok(docker) = Docker::connect() else {
                return;
            };
            if let Ok(containers) = docker.list_labelled(TEST_CASE_LABEL, Some(&value)) {
                for container in containers {
                    let _ = docker.remove(&container.id);
                }
            }
        });
    }
}

/// Removes, when dropped (even after a failed assertion), every container
/// the host created for the OpenJarvis home `home` (labelled
/// `LABEL_HOME=<home>`).
pub struct HomeContainers(String);

impl HomeContainers {
    pub fn new(home: &Path) -> HomeContainers {
        HomeContainers(home.display().to_string())
    }
}

impl Drop for HomeContainers {
    fn drop(&mut self) {
        let home = self.0.clone();
        let _ = std::panic::catch_unwind(move || {
            let Ok(docker) = Docker::connect() else {
                return;
            };
            if let Ok(containers) = docker.list_labelled(jarvis_mine::host::LABEL_HOME, Some(&home))
            {
                for container in containers {
                    let _ = docker.remove(&container.id);
                }
            }
        });
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0")
}

/// A port `p` with `p..p + count` all free on loopback now (a block for
/// the workers of one session: worker `i` serves `p + i`).
pub fn free_port_block(count: u16) -> u16 {
    run::wait_for(std::time::Duration::from_secs(5), || {
        let base = free_port();
        let free = (0..count).all(|i| {
            base.checked_add(i)
                .is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        free.then_some(base)
    })
    .expect("a block of free ports")
}

/// Raw Engine API access for what the product's facade deliberately cannot
/// do (kill a container from outside) or to check what it really asked for.
pub fn raw_docker<T>(future: impl FnOnce(bollard::Docker) -> T) -> T::Output
where
    T: std::future::Future,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let client = bollard::Docker::connect_with_defaults()
            .expect("Docker client")
            .negotiate_version()
            .await
            .expect("Docker API version");
        future(client).await
    })
}

/// SIGKILL from outside, as the OOM killer or `docker kill` would.
pub fn kill_container(id: &str) {
    raw_docker(|client| async move {
        client
            .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
            .await
            .unwrap();
    });
}

/// The processes on this machine that the host labelled for `home` (an
/// `OPENJARVIS_MINING_HOME` in their environment), as `(pid, name)`.
/// A zombie's environment is empty: it is not listed.
pub fn labelled_processes(home: &std::path::Path) -> Vec<(u32, String)> {
    let home = home
        .canonicalize()
        .unwrap_or_else(|_| home.to_owned())
        .display()
        .to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let get = |name: &str| {
            vars.iter()
                .find_map(|v| v.strip_prefix(&format!("{name}=")).map(str::to_owned))
        };
        if get("OPENJARVIS_MINING_HOME").as_deref() == Some(home.as_str()) {
            found.push((pid, get("OPENJARVIS_MINING_PROCESS").unwrap_or_default()));
        }
    }
    found.sort();
    found
}

/// Sends `signal` (`-KILL`, `-TERM`) to `pid` with kill(1).
pub fn kill(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

/// Builds tests/fake-nvml once and returns a `libnvidia-ml.so.1` link to it
/// beside the build output (no temporary directory to clean up): the NVML
/// the NVML tests load instead of the driver's.
pub fn fake_nvml_library() -> &'static str {
    static LIBRARY: std::sync::OnceLock<String> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let build = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "fake-nvml", "--message-format=json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "cargo build -p fake-nvml failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let built = built_cdylib(&String::from_utf8_lossy(&build.stdout), "fake_nvml");
        let dir = built.parent().unwrap().join("fake-nvml");
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("libnvidia-ml.so.1");
        let target = std::path::Path::new("..").join(built.file_name().unwrap());
        // Another test binary may have made the same link already.
        match std::os::unix::fs::symlink(target, &link) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                panic!("linking {}: {error}", link.display())
            }
            _ => {}
        }
        link.into_os_string().into_string().unwrap()
    })
}

/// The name the fake NVML gives an H100.
pub const H100: &str = "NVIDIA H100 80GB HBM3";

/// `count` H100s with UUIDs `GPU-h100-<index>`, for `FAKE_NVML_GPUS`.
pub fn h100s(count: u32) -> String {
    (0..count)
        .map(|index| format!("{H100},9.0,81559,GPU-h100-{index}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The `.so` that cargo's JSON messages say it built for `target`.
fn built_cdylib(messages: &str, target: &str) -> std::path::PathBuf {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == target)
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(std::path::PathBuf::from))
        .find(|path| path.extension().is_some_and(|ext| ext == "so"))
        .unwrap_or_else(|| panic!("cargo reported no .so for {target}"))
}

/// The one-H100 facts file (docs/facts/h100.json).
pub fn h100_facts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/facts/h100.json")
}

/// `init` arguments (without `mine`) for the fake miner on an H100 (the
/// facts file) without a GPU request, serving vLLM on `vllm_port`: the
/// session every end-to-end suite starts from. Add flags after them.
pub fn fake_miner_init(wallet: &str, vllm_port: u16) -> Vec<String> {
    [
        "init",
        "--provider",
        "vllm-pearl",
        "--wallet",
        wallet,
        "--facts",
        h100_facts().to_str().unwrap(),
        "--image",
        &fake_miner_image(),
        "--gpu-request",
        "none",
        "--vllm-port",
        &vllm_port.to_string(),
        "--yes",
    ]
    .map(String::from)
    .to_vec()
}

/// The gateway metrics port `port` for [`fake_miner_init`]; with `served`,
/// the fake miner is also told to serve its gateway metrics there (current
/// Pearl images serve none).
pub fn gateway_metrics_flags(port: u16, served: bool) -> Vec<String> {
    let mut flags = vec!["--gateway-metrics-port".to_owned(), port.to_string()];
    if served {
        flags.extend([
            "--vllm-arg=--gateway-metrics-port".to_owned(),
            format!("--vllm-arg={port}"),
        ]);
    }
    flags
}

/// A pearld stand-in answering every `getblockchaininfo` as synced; lives as
/// long as the test process.
pub fn serve_pearld() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let reply = r#"{"result":{"blocks":7,"headers":7},"error":null}"#;
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    url
}
