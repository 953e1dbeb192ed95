//! The escape suite: a hostile provider (tests/guests/escape) tries one
//! escape per call through the host imports, and each attempt must be
//! contained with nothing lost and an audit record written.
//!
//! Each test loads the guest as an installed provider under a policy of its
//! own, in a temporary OpenJarvis home, with the machine's Docker engine and
//! the locally built fake-miner image (no registry). For every attempt it
//! checks (1) the error's kind and that its message names the policy key or
//! the host invariant, (2) that nothing happened (no container, the victim
//! still running, the session record unchanged byte for byte, the secret's
//! value nowhere), and (3) the audit record: provider id, component sha256,
//! WIT version, capability and decision.
//!
//! The table-driven test at the end calls every privileged import under
//! each denying policy, and from `detect`, and proves each one denied before
//! any side effect with exactly one deny record.

use host_gpu::NVML_LIBRARY_ENV;
use jarvis_mine::audit::{self, AuditLog, Decision, Record};
use jarvis_mine::bindings::{
    Error, ExtraValue, HardwareFacts, MiningConfig, SoloTarget, SubmitTarget, WorkersSetting,
};
use jarvis_mine::docker::{self, ContainerSummary, Docker};
use jarvis_mine::facts::{GpuSelection, to_guest};
use jarvis_mine::host::gpu_telemetry::NO_NVML;
use jarvis_mine::host::{
    LABEL_COMPONENT, LABEL_HOME, LABEL_PROVIDER, MAX_PRIVILEGED_CALLS, Session,
};
use jarvis_mine::paths::Paths;
use jarvis_mine::policy::{Policy, PolicyFile, SYSTEM_POLICY_ENV};
use jarvis_mine::provider::{LoadedProvider, ProviderSource, Verdict};
use jarvis_mine::sandbox::{ProviderError, Sandbox, SandboxLimits};
use jarvis_mine_tests::run::wait_for;
use jarvis_mine_tests::{
    ContainerCleanup, FAKE_MINER_REPOSITORY, HomeContainers, escape_component, fake_miner_image,
    fake_nvml_library, free_port, guest_facts, h100s, in_child, kill, labelled_processes,
    linux_with_gpus, raw_docker, world_imports,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const ESCAPE: &str = "escape";
/// `[mining].wallet_address` of the harness's sessions.
const USER_WALLET: &str = "prl1qescapeuserswallet000000000000000";

// ---------------------------------------------------------------------------
// The guest, its policy, its home.

fn component() -> &'static (Vec<u8>, String) {
    static COMPONENT: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let bytes = escape_component();
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        (bytes, sha256)
    })
}

/// What the user policy grants the escape provider: everything a miner
/// needs, narrowly. `mounts` and `endpoints` are TOML array items; `more`
/// is appended (further tables).
fn grant(mounts: &str, endpoints: &str, more: &str) -> String {
    grant_networks(mounts, endpoints, r#""none""#, more)
}

/// [`grant`] with the network modes `networks` (TOML array items).
fn grant_networks(mounts: &str, endpoints: &str, networks: &str, more: &str) -> String {
    format!(
        r#"
[providers.escape]
capabilities = ["containers", "sidecar", "metrics", "processes", "gpu-telemetry"]
gpus = ["1"]

[providers.escape.containers]
images = ["{FAKE_MINER_REPOSITORY}:*"]
mounts = [{mounts}]
network_modes = [{networks}]
ports = ["1024-65535"]
env = ["*"]
secrets = ["ESCAPE_GRANTED_*"]

[providers.escape.metrics]
endpoints = [{endpoints}]
{more}
"#
    )
}

fn default_grant() -> String {
    grant("", r#""session""#, "")
}

/// One OpenJarvis home with the escape provider loaded under a policy.
struct Harness {
    _home: tempfile::TempDir,
    paths: Paths,
    sandbox: Sandbox,
    provider: LoadedProvider,
    docker: Result<Arc<Docker>, String>,
    _containers: HomeContainers,
}

impl Harness {
    /// The user policy `user` (and no system policy).
    fn new(user: &str) -> Harness {
        Harness::with(|paths| {
            Policy::with_files(
                (paths.home().join("system-policy.toml"), None),
                (
                    paths.user_policy().absolute(),
                    Some(parse(user, &paths.user_policy().absolute())),
                ),
            )
        })
    }

    /// No policy file at all: an installed provider no policy names.
    fn unnamed() -> Harness {
        Harness::with(|paths| {
            Policy::with_files(
                (paths.home().join("system-policy.toml"), None),
                (paths.user_policy().absolute(), None),
            )
        })
    }

    fn with(policy: impl FnOnce(&Paths) -> Policy) -> Harness {
        Harness::with_limits(SandboxLimits::default(), policy)
    }

    fn with_limits(limits: SandboxLimits, policy: impl FnOnce(&Paths) -> Policy) -> Harness {
        let home = tempfile::tempdir().unwrap();
        // Canonical, so that paths the host resolves compare equal.
        let paths = Paths::with_home(home.path().canonicalize().unwrap());
        let policy = policy(&paths);
        let sandbox = Sandbox::new(limits, None)
            .unwrap()
            .with_audit(Arc::new(AuditLog::new(paths.audit_log())));
        let (bytes, sha256) = component();
        let compiled = sandbox.compile(bytes, sha256).unwrap();
        let pre = sandbox.prepare(&compiled).unwrap();
        let provider = LoadedProvider::new(
            &sandbox,
            pre,
            ProviderSource::Installed(paths.installed_providers().join("escape.wasm").absolute()),
            sha256.clone(),
            "escape.wasm",
            &policy,
        )
        .expect("info() succeeds");
        assert_eq!(provider.id(), ESCAPE);
        let docker = Docker::connect()
            .map(Arc::new)
            .map_err(|err| err.to_string());
        Harness {
            _containers: HomeContainers::new(paths.home()),
            _home: home,
            paths,
            sandbox,
            provider,
            docker,
        }
    }

    fn home(&self) -> &Path {
        self.paths.home()
    }

    fn session(&self) -> Session {
        self.session_with("escape-session")
    }

    fn session_with(&self, id: &str) -> Session {
        Session {
            wallet_address: Some(USER_WALLET.into()),
            ..Session::new(id, self.paths.clone(), self.docker.clone())
        }
    }

    /// `start` with `[mining.extra]` = `extra`.
    fn start(&self, extra: &[(&str, ExtraValue)]) -> Result<Result<(), Error>, ProviderError> {
        let host = self.provider.host_context(self.session());
        self.provider.start(&self.sandbox, host, &config(extra))
    }

    /// `start`, expecting the guest to return the host's error.
    fn attack(&self, extra: &[(&str, ExtraValue)]) -> Error {
        self.attack_in("escape-session", extra)
    }

    /// [`Harness::attack`] in the session `session`.
    fn attack_in(&self, session: &str, extra: &[(&str, ExtraValue)]) -> Error {
        self.attack_with(self.session_with(session), extra)
    }

    /// [`Harness::attack`] in `session`.
    fn attack_with(&self, session: Session, extra: &[(&str, ExtraValue)]) -> Error {
        let host = self.provider.host_context(session);
        match self.provider.start(&self.sandbox, host, &config(extra)) {
            Ok(Err(error)) => error,
            other => {
                let mut asked = format!("{extra:?}");
                asked.truncate(300);
                panic!("expected the host's error for {asked}, got {other:?}")
            }
        }
    }

    /// `gpu-telemetry.sample` in a session whose `cuda_visible_devices` is
    /// `selection`: the guest's report (`<n> GPUs`, then each reading's
    /// `Debug` text) or the host's error.
    fn telemetry(&self, selection: Option<&str>) -> Result<String, Error> {
        let mut session = self.session();
        session.gpu_selection = GpuSelection::new(selection);
        match self.attack_with(session, &[("attack", text("gpu-telemetry"))]) {
            Error::Failed(report) => Ok(report),
            error => Err(error),
        }
    }

    fn detect(&self, facts: &HardwareFacts, model: &str) -> Result<Verdict, ProviderError> {
        self.provider.detect(&self.sandbox, facts, "vllm", model)
    }

    fn docker(&self) -> &Docker {
        self.docker
            .as_ref()
            .expect("the test machine runs a Docker engine")
    }

    /// Every audit record so far.
    fn records(&self) -> Vec<Record> {
        audit::read(&self.paths.audit_log(), &audit::Filter::default(), None).unwrap()
    }

    /// The records written since `before` records.
    fn records_since(&self, before: usize) -> Vec<Record> {
        self.records().split_off(before)
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(self.paths.audit_log().absolute()).unwrap_or_default()
    }

    /// Containers the host created for this home.
    fn containers(&self) -> Vec<ContainerSummary> {
        self.docker()
            .list_labelled(LABEL_HOME, Some(&self.home().display().to_string()))
            .unwrap()
    }

    /// Writes a session record as the host would for `provider`.
    fn write_record(&self, provider: &str, vllm_port: u16) -> Vec<u8> {
        let record = jarvis_mine::session::SessionRecord {
            provider: provider.into(),
            vllm_endpoint: format!("http://127.0.0.1:{vllm_port}/v1"),
            model: "pearl-ai/model".into(),
            gateway_url: "http://127.0.0.1:8337".into(),
            gateway_metrics_url: "http://127.0.0.1:8339".into(),
            container_id: "0123456789ab".into(),
            wallet_address: "prl1owner".into(),
            started_at: 1_767_225_600,
            session_id: Some("owner-session".into()),
            image: Some("owner/image:1".into()),
            workers: Vec::new(),
        };
        jarvis_mine::session::sidecar::write(&self.paths.sidecar(), &record).unwrap();
        std::fs::read(self.paths.sidecar().absolute()).unwrap()
    }

    fn sidecar_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.paths.sidecar().absolute()).ok()
    }
}

fn parse(text: &str, path: &Path) -> PolicyFile {
    PolicyFile::parse(text, path).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

fn config(extra: &[(&str, ExtraValue)]) -> MiningConfig {
    MiningConfig {
        provider: ESCAPE.into(),
        wallet_address: "prl1escape".into(),
        submit_target: SubmitTarget::Solo(SoloTarget {
            pearld_rpc_url: "http://127.0.0.1:44107".into(),
        }),
        fee_bps: 0,
        fee_payout_address: None,
        extra: extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        workers: WorkersSetting::Auto,
        gpus: Vec::new(),
    }
}

fn text(value: impl Into<String>) -> ExtraValue {
    ExtraValue::Text(value.into())
}

fn texts(values: &[&str]) -> ExtraValue {
    ExtraValue::Texts(values.iter().map(|v| (*v).to_owned()).collect())
}

fn int(value: i64) -> ExtraValue {
    ExtraValue::Integer(value)
}

fn message(error: &Error) -> &str {
    match error {
        Error::Denied(m) | Error::Invalid(m) | Error::Unavailable(m) | Error::Failed(m) => m,
    }
}

/// The message of a `denied` error; anything else fails the test.
fn denied(error: Error) -> String {
    match error {
        Error::Denied(message) => message,
        other => panic!("expected denied, got {other:?}"),
    }
}

fn invalid(error: Error) -> String {
    match error {
        Error::Invalid(message) => message,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "{needle:?} is missing from:\n{haystack}"
        );
    }
}

/// Checks one audit record's identity, capability and decision.
#[track_caller]
fn assert_record(record: &Record, import: &str, decision: Decision) {
    let capability = import.split('.').next().unwrap();
    assert_eq!(record.provider, ESCAPE, "{record:?}");
    assert_eq!(record.component, component().1, "{record:?}");
    assert_eq!(record.wit, audit::WIT_VERSION, "{record:?}");
    assert_eq!(record.capability, capability, "{record:?}");
    assert!(
        record.action == import || record.action.starts_with(&format!("{import} ")),
        "{import}: {record:?}"
    );
    assert_eq!(record.decision, decision, "{record:?}");
    if decision == Decision::Deny {
        assert!(record.reason.is_some(), "{record:?}");
    }
}

/// The one record a single attack left, checked.
#[track_caller]
fn one_record(h: &Harness, before: usize, import: &str, decision: Decision) -> Record {
    let records = h.records_since(before);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_record(&records[0], import, decision);
    records.into_iter().next().unwrap()
}

/// A running fake-miner container made directly through Docker (not by the
/// provider), removed by `cleanup`.
fn victim(cleanup: &ContainerCleanup, tag: &str, labels: &[(&str, &str)]) -> String {
    let docker = Docker::connect().unwrap();
    let mut all = cleanup.labels();
    for (key, value) in labels {
        all.insert((*key).to_owned(), (*value).to_owned());
    }
    let spec = docker::ContainerSpec {
        name: Some(format!("escape-victim-{tag}-{}", cleanup.value())),
        image: fake_miner_image(),
        args: vec![
            "victim/model".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "8000".into(),
        ],
        env: vec![("PEARLD_RPC_PASSWORD".into(), "victim-password".into())],
        labels: all,
        network_mode: "none".into(),
        ..Default::default()
    };
    let id = docker.create(&spec).unwrap();
    docker.start(&id).unwrap();
    id
}

fn running(id: &str) -> bool {
    Docker::connect()
        .unwrap()
        .inspect(id)
        .unwrap()
        .is_some_and(|state| state.running)
}

/// A loopback listener counting the connections it accepts; `reply` (if
/// any) is written to each after its request is read, else the connection
/// is held open, unanswered, until the listener is dropped.
struct Server {
    port: u16,
    /// The peer port of every connection accepted so far, in order.
    peers: Arc<Mutex<Vec<u16>>>,
    /// The peer ports of the fences [`Server::accepted`] sent.
    fences: Mutex<Vec<u16>>,
}

impl Server {
    fn start(reply: Option<String>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&peers);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let peer = stream.peer_addr().map_or(0, |a| a.port());
                seen.lock().unwrap().push(peer);
                match &reply {
                    Some(reply) => {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buffer = [0u8; 4096];
                        let _ = stream.read(&mut buffer);
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    None => held.push(stream),
                }
            }
        });
        Server {
            port,
            peers,
            fences: Mutex::new(Vec::new()),
        }
    }

    /// Connections accepted from others so far. A fence connection of our
    /// own is sent first: the listener accepts in arrival order, so once the
    /// fence is accepted, every connection made before it has been counted.
    fn accepted(&self) -> usize {
        let mut fence = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let _ = fence.write_all(b"GET /fence HTTP/1.0\r\n\r\n");
        let mine = fence.local_addr().unwrap().port();
        self.fences.lock().unwrap().push(mine);
        wait_until("the fence to be accepted", Duration::from_secs(10), || {
            self.peers.lock().unwrap().contains(&mine)
        });
        let fences = self.fences.lock().unwrap();
        self.peers
            .lock()
            .unwrap()
            .iter()
            .filter(|peer| !fences.contains(peer))
            .count()
    }
}

fn http_reply(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

// ---------------------------------------------------------------------------
// Images and container specs.

#[test]
fn a_disallowed_image_is_denied_before_docker_sees_it() {
    let h = Harness::new(&default_grant());
    let image = "evil/miner:latest";
    let before = h.records().len();
    let error = h.attack(&[("attack", text("ensure-image")), ("image", text(image))]);
    let message = denied(error);
    assert_contains(
        &message,
        &[
            "image 'evil/miner:latest' is not in providers.\"escape\".containers.images",
            &h.paths.user_policy().display().to_string(),
        ],
    );
    let record = one_record(&h, before, "containers.ensure-image", Decision::Deny);
    assert_eq!(
        record.action,
        "containers.ensure-image image=evil/miner:latest"
    );
    assert_eq!(record.reason.as_deref(), Some(message.as_str()));
    assert!(!h.docker().image_present(image).unwrap());

    let before = h.records().len();
    let error = h.attack(&[("attack", text("run")), ("image", text(image))]);
    assert_contains(&denied(error), &["providers.\"escape\".containers.images"]);
    one_record(&h, before, "containers.run", Decision::Deny);
    assert!(h.containers().is_empty());
}

#[test]
fn privileged_flags_are_only_arguments_and_namespaces_stay_private() {
    let h = Harness::new(&default_grant());
    let args = [
        "--privileged",
        "--pid=host",
        "--ipc=host",
        "--uts=host",
        "--userns=host",
        "--cap-add=ALL",
        "--device=/dev/mem",
        "--security-opt=seccomp=unconfined",
        "-v",
        "/:/host",
        "--network=host",
    ];
    let before = h.records().len();
    let outcome = h.start(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("name", text(format!("escape-flags-{}", std::process::id()))),
        ("args", texts(&args)),
    ]);
    assert_eq!(outcome, Ok(Ok(())));
    let record = one_record(&h, before, "containers.run", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("ok"));

    let containers = h.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let created = &containers[0];
    assert_eq!(created.labels[LABEL_PROVIDER], ESCAPE);
    assert_eq!(created.labels[LABEL_COMPONENT], component().1);
    let id = created.id.clone();
    let inspected = raw_docker(|client| async move {
        client
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap()
    });
    let config = inspected.config.unwrap();
    assert_eq!(
        config.cmd.unwrap(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "the flags reach the entrypoint as arguments, nothing else"
    );
    let host = inspected.host_config.unwrap();
    assert_ne!(host.privileged, Some(true));
    for (what, mode) in [
        ("pid", host.pid_mode.clone()),
        ("ipc", host.ipc_mode.clone()),
        ("uts", host.uts_mode.clone()),
        ("userns", host.userns_mode.clone()),
        ("network", host.network_mode.clone()),
    ] {
        assert!(
            !mode.as_deref().unwrap_or_default().starts_with("host"),
            "{what} mode {mode:?}"
        );
    }
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    assert!(host.devices.unwrap_or_default().is_empty());
    assert!(host.device_requests.unwrap_or_default().is_empty());
    assert!(host.security_opt.unwrap_or_default().is_empty());
    assert!(host.binds.unwrap_or_default().is_empty());
    assert!(host.mounts.unwrap_or_default().is_empty());
    assert!(inspected.mounts.unwrap_or_default().is_empty());

    // Sharing another container's namespaces is not a network mode.
    let before = h.records().len();
    let network = format!("container:{}", created.id);
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("name", text("escape-shared-ns")),
        ("network", text(network.clone())),
    ]);
    assert_contains(
        &invalid(error),
        &[&format!(
            "network \"{network}\" is not one of host, bridge, none"
        )],
    );
    let record = one_record(&h, before, "containers.run", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("invalid"));
    // And the host network is not in the grant.
    let before = h.records().len();
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("name", text("escape-host-net")),
        ("network", text("host")),
    ]);
    assert_contains(
        &denied(error),
        &["network mode 'host' is not in providers.\"escape\".containers.network_modes"],
    );
    one_record(&h, before, "containers.run", Decision::Deny);
    assert_eq!(h.containers().len(), 1);
}

#[test]
fn the_docker_socket_and_system_paths_are_never_mounted_even_when_slash_is_granted() {
    let h = Harness::new(&grant(r#"{ path = "/" }"#, r#""session""#, ""));
    let socket_dir = Path::new("/run/docker.sock")
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut forbidden = vec![
        "/".to_owned(),
        "/var/run/docker.sock".to_owned(),
        "/run/docker.sock".to_owned(),
        "/proc".to_owned(),
        "/proc/1/root".to_owned(),
        "/sys".to_owned(),
        "/dev".to_owned(),
        // Directories that hold the socket expose it just the same.
        "/var/run".to_owned(),
        "/var".to_owned(),
        socket_dir,
        "/proc/../run".to_owned(),
    ];
    if let Some(unix) = Docker::default_host().strip_prefix("unix://") {
        forbidden.push(unix.to_owned());
        forbidden.push(Path::new(unix).parent().unwrap().display().to_string());
    }
    for mount in &forbidden {
        if !Path::new(mount).exists() {
            continue;
        }
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("mount", text(mount.clone())),
        ]);
        let message = denied(error);
        assert_contains(&message, &["into a container is not allowed"]);
        let record = one_record(&h, before, "containers.run", Decision::Deny);
        assert_eq!(record.reason.as_deref(), Some(message.as_str()), "{mount}");
    }
    assert!(h.containers().is_empty(), "{:?}", h.containers());
}

#[test]
fn mounts_outside_the_grant_are_denied_after_resolving_dots_and_symlinks() {
    let outer = tempfile::tempdir().unwrap();
    let outer = outer.path().canonicalize().unwrap();
    let granted = outer.join("granted");
    let outside = outer.join("outside");
    std::fs::create_dir_all(granted.join("models")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, granted.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", granted.join("etc")).unwrap();
    let h = Harness::new(&grant(
        &format!(r#"{{ path = "{}" }}"#, granted.display()),
        r#""session""#,
        "",
    ));
    let cases = [
        (format!("{}/../outside", granted.display()), outside.clone()),
        (granted.join("link").display().to_string(), outside.clone()),
        (granted.join("etc").display().to_string(), "/etc".into()),
    ];
    for (mount, resolved) in &cases {
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("mount", text(mount.clone())),
        ]);
        assert_contains(
            &denied(error),
            &[&format!(
                "mount of {} (read-write) is not in providers.\"escape\".containers.mounts",
                resolved.display()
            )],
        );
        one_record(&h, before, "containers.run", Decision::Deny);
    }
    assert!(h.containers().is_empty());
    // `link/..` is decided on as text (`granted/outside`), and that is what
    // would be mounted: it does not exist, so nothing is.
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        (
            "mount",
            text(granted.join("link/../outside").display().to_string()),
        ),
    ]);
    assert_contains(
        &invalid(error),
        &[&format!(
            "mount source does not exist: {}",
            granted.join("outside").display()
        )],
    );
    assert!(h.containers().is_empty());

    // The grant itself works: the denials above are about the paths.
    let outcome = h.start(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("name", text(format!("escape-mount-{}", std::process::id()))),
        ("mount", text(granted.join("models").display().to_string())),
        ("read_only", ExtraValue::Boolean(true)),
    ]);
    assert_eq!(outcome, Ok(Ok(())));
    assert_eq!(h.containers().len(), 1);
}

// ---------------------------------------------------------------------------
// Containers it does not own.

/// Class: oracles on host data. A container that is not the provider's
/// (another home's, another provider's, no labels at all, by id, id prefix
/// or name) and one that does not exist at all get the same answers, so a
/// provider learns nothing about containers it does not own, and none of
/// them is touched.
#[test]
fn containers_it_does_not_own_read_exactly_as_absent_and_are_untouched() {
    let cleanup = ContainerCleanup::new("escape-foreign");
    let h = Harness::new(&default_grant());
    let other_home = "/somewhere/else/.openjarvis";
    let victims = [
        victim(&cleanup, "plain", &[]),
        // Labelled for this provider, but for another home.
        victim(
            &cleanup,
            "other-home",
            &[(LABEL_PROVIDER, ESCAPE), (LABEL_HOME, other_home)],
        ),
        // This home, another provider.
        victim(
            &cleanup,
            "other-provider",
            &[
                (LABEL_PROVIDER, "vllm-pearl"),
                (LABEL_HOME, &h.home().display().to_string()),
            ],
        ),
    ];
    let probe = |reference: &str| {
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("probe-reference")),
            ("container", text(reference)),
            ("patterns", texts(&["gateway", "PEARLD", ""])),
        ]);
        let Error::Failed(answers) = error else {
            panic!("expected the report, got {error:?}");
        };
        assert_eq!(h.records_since(before).len(), 4, "one record per import");
        answers
    };
    let absent = probe("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_eq!(
        absent,
        "stop\tok\ninspect\tok none\ngrep-logs\tok 0 lines\nremove\tok"
    );
    assert_eq!(probe("escape-no-such-container"), absent);
    for id in &victims {
        let name = h.docker().inspect(id).unwrap().unwrap().name;
        for reference in [id.as_str(), &id[..12], &id[..20], name.as_str()] {
            assert_eq!(probe(reference), absent, "{reference}");
            assert!(running(id), "{reference} stopped {id}");
        }
    }
    assert!(!h.audit_text().contains("victim-password"));
}

// ---------------------------------------------------------------------------
// Secrets.

const UNGRANTED_SECRET: &str = "ESCAPE_UNGRANTED_SECRET";
const SECRET_VALUE_ENV: &str = "JARVIS_ESCAPE_SECRET_VALUE";

#[test]
fn a_secret_it_was_not_granted_is_denied_and_never_read() {
    let value = format!("s3cr3t-{}-{:?}", std::process::id(), Instant::now());
    if !in_child(
        "a_secret_it_was_not_granted_is_denied_and_never_read",
        &[(UNGRANTED_SECRET, &value), (SECRET_VALUE_ENV, &value)],
    ) {
        return;
    }
    let value = std::env::var(SECRET_VALUE_ENV).unwrap();
    assert_eq!(std::env::var(UNGRANTED_SECRET).unwrap(), value);
    let h = Harness::new(&default_grant());
    for secret in [UNGRANTED_SECRET, "HOME", "DOCKER_HOST"] {
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("secret", text(secret)),
        ]);
        let message = denied(error);
        assert_contains(
            &message,
            &[&format!(
                "secret '{secret}' is not in providers.\"escape\".containers.secrets"
            )],
        );
        assert!(!message.contains(&value));
        let record = one_record(&h, before, "containers.run", Decision::Deny);
        assert_contains(&record.action, &[&format!("secrets={secret}")]);
    }
    assert!(h.containers().is_empty());
    let audit = h.audit_text();
    assert!(!audit.is_empty());
    assert!(
        !audit.contains(&value),
        "the secret's value is in the audit log"
    );
    // Nothing under the home holds it either.
    for entry in walk(h.home()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&value),
            "{} holds the secret",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

// ---------------------------------------------------------------------------
// Metrics scrapes.

#[test]
fn scrapes_reach_only_granted_loopback_endpoints_and_follow_no_redirect() {
    let ok_metrics = http_reply(
        "200 OK",
        "Content-Type: text/plain\r\n",
        "# TYPE up gauge\nup 1\n",
    );
    let target = Server::start(Some(ok_metrics.clone()));
    let redirector = Server::start(Some(http_reply(
        "302 Found",
        &format!("Location: http://127.0.0.1:{}/metrics\r\n", target.port),
        "",
    )));
    let bystander = Server::start(Some(ok_metrics.clone()));
    let session = Server::start(Some(ok_metrics));
    let h = Harness::new(&grant(
        "",
        &format!(r#""session", "http://127.0.0.1:{}""#, redirector.port),
        "",
    ));
    // A record naming the port is the provider's word, not the host's: it
    // makes nothing the session's own.
    h.write_record(ESCAPE, session.port);

    // Not loopback; loopback but neither the session's nor granted; tricks
    // that name one host and mean another.
    let refused = [
        "http://10.1.2.3:9100/metrics".to_owned(),
        "http://169.254.169.254:80/latest/meta-data".to_owned(),
        format!("http://127.0.0.1:{}/metrics", bystander.port),
        format!("http://localhost:{}/metrics", bystander.port),
        format!("http://127.0.0.1:{}/metrics", session.port),
        format!("http://0.0.0.0:{}/metrics", session.port),
        format!("http://[::ffff:127.0.0.1]:{}/metrics", session.port),
        format!(
            "http://127.0.0.1:{}@10.1.2.3:{}/metrics",
            session.port, session.port
        ),
    ];
    for url in &refused {
        let before = h.records().len();
        let started = Instant::now();
        let message = denied(h.attack(&[("attack", text("scrape")), ("url", text(url.clone()))]));
        assert!(started.elapsed() < Duration::from_secs(1), "{url}");
        assert_contains(
            &message,
            &[
                "is not one of this session's loopback endpoints and is not in providers.\"escape\".metrics.endpoints",
                &h.paths.user_policy().display().to_string(),
            ],
        );
        one_record(&h, before, "metrics.scrape", Decision::Deny);
    }
    assert_eq!(bystander.accepted(), 0);
    assert_eq!(session.accepted(), 0);

    // A granted endpoint redirecting elsewhere: an answer, not a way there.
    let before = h.records().len();
    let url = format!("http://127.0.0.1:{}/metrics", redirector.port);
    let error = h.attack(&[("attack", text("scrape")), ("url", text(url))]);
    let Error::Failed(message) = &error else {
        panic!("expected failed, got {error:?}");
    };
    assert_contains(message, &["HTTP 302"]);
    let record = one_record(&h, before, "metrics.scrape", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("failed"));
    assert_eq!(redirector.accepted(), 1);
    assert_eq!(target.accepted(), 0, "the redirect was followed");

    // Another provider's session record makes no endpoint its own.
    h.write_record("vllm-pearl", session.port);
    let url = format!("http://127.0.0.1:{}/metrics", session.port);
    denied(h.attack(&[("attack", text("scrape")), ("url", text(url))]));
    assert_eq!(session.accepted(), 0);
}

#[test]
fn a_host_call_cannot_sleep_past_the_host_time_budget() {
    let silent = Server::start(None);
    let policy = grant(
        "",
        &format!(r#""http://127.0.0.1:{}""#, silent.port),
        "[providers.escape.limits]\nhost_time_ms = 500\n",
    );
    let h = Harness::new(&policy);
    assert_eq!(h.provider.limits().host_time, Duration::from_millis(500));
    let url = format!("http://127.0.0.1:{}/metrics", silent.port);
    let before = h.records().len();
    let started = Instant::now();
    let error = h.attack(&[
        ("attack", text("scrape")),
        ("url", text(url)),
        ("count", int(5)),
    ]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let report = message(&error).to_owned();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 5, "{report}");
    assert!(lines[0].starts_with("scrape#0\tunavailable: "), "{report}");
    for line in &lines[1..] {
        assert_contains(
            line,
            &["\tdenied: ", "host-time budget", "limits.host_time_ms"],
        );
    }
    // The four identical denials are one record with their count.
    let records = h.records_since(before);
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].outcome.as_deref(), Some("unavailable"));
    assert_record(&records[1], "metrics.scrape", Decision::Deny);
    assert_eq!(records[1].count, 4, "{records:#?}");

    // Without a budget in the policy the scrape's own timeout still holds.
    let h = Harness::new(&grant(
        "",
        &format!(r#""http://127.0.0.1:{}""#, silent.port),
        "",
    ));
    let started = Instant::now();
    let error = h.attack(&[
        ("attack", text("scrape")),
        ("url", text(format!("http://127.0.0.1:{}/", silent.port))),
    ]);
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// The session record.

#[test]
fn sidecar_writes_of_a_foreign_shape_or_size_leave_the_record_unchanged() {
    let h = Harness::new(&default_grant());
    let original = h.write_record(ESCAPE, 8000);
    let cases: [(&[(&str, ExtraValue)], &str); 6] = [
        (
            &[("huge_field", text("model")), ("huge_size", int(3000))],
            "model is 3000 bytes; the limit is 2048",
        ),
        (
            &[
                ("huge_field", text("wallet_address")),
                ("huge_size", int(1 << 20)),
            ],
            "wallet-address is 1048576 bytes; the limit is 2048",
        ),
        (
            &[("vllm_endpoint", text("file:///etc/passwd"))],
            "sidecar field `vllm_endpoint` is not acceptable",
        ),
        (
            &[("gateway_url", text("http://10.0.0.1:8337"))],
            "sidecar field `gateway_url` is not acceptable: the host must be loopback",
        ),
        (
            &[("metrics_url", text("http://user:pw@127.0.0.1:8000/metrics"))],
            "must not carry credentials",
        ),
        (
            &[("wallet_address", text("prl1\nprovider = \"vllm-pearl\""))],
            "sidecar field `wallet_address` contains a control character",
        ),
    ];
    for (extra, expected) in cases {
        let mut all = vec![("attack", text("sidecar-write"))];
        all.extend(extra.iter().cloned());
        let before = h.records().len();
        let message = invalid(h.attack(&all));
        assert_contains(&message, &["session record rejected", expected]);
        assert_eq!(
            h.sidecar_bytes().as_deref(),
            Some(&original[..]),
            "{expected}"
        );
        let record = one_record(&h, before, "sidecar.write", Decision::Allow);
        assert_eq!(record.outcome.as_deref(), Some("invalid"));
        assert!(record.action.len() < 4096, "{}", record.action.len());
    }

    // Another provider's record: neither read, removed, nor replaced.
    let foreign = h.write_record("vllm-pearl", 8000);
    assert_eq!(h.start(&[("attack", text("sidecar-read"))]), Ok(Ok(())));
    assert_eq!(h.start(&[("attack", text("sidecar-remove"))]), Ok(Ok(())));
    assert_eq!(h.sidecar_bytes().as_deref(), Some(&foreign[..]));
    let before = h.records().len();
    let message = denied(h.attack(&[("attack", text("sidecar-write"))]));
    // Refused without naming the other provider: its id is not this one's to know.
    assert_contains(
        &message,
        &[
            "another provider's session is recorded here",
            "host rule ownership",
        ],
    );
    assert!(!message.contains("vllm-pearl"), "{message}");
    one_record(&h, before, "sidecar.write", Decision::Deny);
    assert_eq!(h.sidecar_bytes().as_deref(), Some(&foreign[..]));
}

// ---------------------------------------------------------------------------
// Limits: the resource table, import loops, sleeping in the host, sizes.

#[test]
fn the_resource_table_is_capped_and_the_next_call_works() {
    let h = Harness::new(&default_grant());
    let outcome = h.start(&[("attack", text("resources")), ("count", int(100_000))]);
    // The classification keeps the trap's first line only, which does not
    // say "resource table"; that the call traps rather than returns is what
    // matters here.
    assert!(
        matches!(outcome, Err(ProviderError::Trapped(_))),
        "{outcome:?}"
    );
    // A fresh store: the next call has its whole table (a pollable on a
    // timer takes two of its MAX_RESOURCES = 1024 entries).
    let error = h.attack(&[("attack", text("resources")), ("count", int(500))]);
    assert_eq!(message(&error), "held 500 pollables");
    // Dropping what it makes keeps a guest under the cap indefinitely.
    let error = h.attack(&[("attack", text("resources-cycle")), ("count", int(20_000))]);
    assert_eq!(message(&error), "cycled 20000 pollables");
    // `detect` has the same cap.
    let facts = guest_facts(&linux_with_gpus(&[]));
    assert!(matches!(
        h.detect(&facts, "resources:100000"),
        Err(ProviderError::Trapped(_))
    ));
    assert!(h.detect(&facts, "resources:10").is_ok());
}

#[test]
fn a_tight_loop_of_imports_is_cut_off_then_killed() {
    let h = Harness::new(&default_grant());
    // A bounded loop: the first MAX_PRIVILEGED_CALLS run, the rest are denied.
    let calls = 3 * MAX_PRIVILEGED_CALLS as i64;
    let error = h.attack(&[
        ("attack", text("loop")),
        ("import", text("sidecar.read")),
        ("count", int(calls)),
    ]);
    let report = message(&error).to_owned();
    assert_contains(
        &report,
        &[
            &format!(
                "{calls} calls: {MAX_PRIVILEGED_CALLS} ok, {} denied, 0 other",
                calls - MAX_PRIVILEGED_CALLS as i64
            ),
            &format!(
                "more privileged calls than allowed in one provider call: the quota is {MAX_PRIVILEGED_CALLS}"
            ),
        ],
    );
    // The first read at once, its repeats and the denials collapsed: three
    // records, whose counts add up to every call.
    let records = h.records();
    let counts: Vec<(Decision, u64)> = records.iter().map(|r| (r.decision, r.count)).collect();
    assert_eq!(
        counts,
        [
            (Decision::Allow, 1),
            (Decision::Allow, MAX_PRIVILEGED_CALLS as u64 - 1),
            (Decision::Deny, calls as u64 - MAX_PRIVILEGED_CALLS as u64)
        ],
        "{records:#?}"
    );
    assert!(
        records[..2]
            .iter()
            .all(|r| r.outcome.as_deref() == Some("ok"))
    );
    let last = records.last().unwrap();
    assert_record(last, "sidecar.read", Decision::Deny);

    // An endless loop: denied past the cap, then killed at the deadline.
    // Cheap and denied imports are the guest's own time, so the kill comes
    // at the deadline in wall time too, not many deadlines late.
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.limits]\ncall_timeout_ms = 250\n",
    ));
    for import in ["sidecar.read", "clock.now", "log"] {
        let before = h.records().len();
        let started = Instant::now();
        let outcome = h.start(&[
            ("attack", text("loop")),
            ("import", text(import)),
            ("count", int(0)),
        ]);
        let elapsed = started.elapsed();
        eprintln!("an endless {import} loop was killed after {elapsed:?} (guest budget 250 ms)");
        assert_eq!(
            outcome,
            Err(ProviderError::Timeout(Duration::from_millis(250))),
            "{import}"
        );
        assert!(elapsed < Duration::from_secs(3), "{import}: {elapsed:?}");
        // Killed or not, the call's records are written, collapsed.
        let records = h.records_since(before);
        let expected = if import == "sidecar.read" { 3 } else { 0 };
        assert_eq!(records.len(), expected, "{import}: {records:#?}");
    }
}

#[test]
fn audit_records_stay_small_whatever_the_guest_sends() {
    let h = Harness::new(&default_grant());
    let huge = "a".repeat(1 << 20);
    for (attack, import) in [
        ("stop", "containers.stop"),
        ("remove", "containers.remove"),
        ("inspect", "containers.inspect"),
        ("grep-logs", "containers.grep-logs"),
    ] {
        let before = h.records().len();
        let message =
            invalid(h.attack(&[("attack", text(attack)), ("container", text(huge.clone()))]));
        assert_contains(&message, &["container id or name", "is not valid"]);
        assert!(message.len() < 4096, "{attack}: {}", message.len());
        let record = one_record(&h, before, import, Decision::Allow);
        assert_eq!(record.outcome.as_deref(), Some("invalid"));
    }
    let long_url = format!("http://{}.example:80/metrics", "b".repeat(60_000));
    let before = h.records().len();
    denied(h.attack(&[("attack", text("scrape")), ("url", text(long_url))]));
    one_record(&h, before, "metrics.scrape", Decision::Deny);
    for line in h.audit_text().lines() {
        assert!(line.len() < 4096, "an audit line of {} bytes", line.len());
    }
}

#[test]
fn log_searches_are_bounded_in_patterns() {
    let h = Harness::new(&default_grant());
    let patterns: Vec<String> = (0..1000).map(|i| format!("pattern-{i}")).collect();
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let error = h.attack(&[
        ("attack", text("grep-logs")),
        ("container", text("escape-miner")),
        ("patterns", texts(&patterns)),
    ]);
    assert_contains(&invalid(error), &["patterns"]);
}

// ---------------------------------------------------------------------------
// Batches (`grep-logs-all`, `scrape-all`).

/// Class: batches. A batch is decided whole before anything is fetched:
/// one URL the policy refuses, or one that is not a URL, refuses the call
/// (naming the request) and no endpoint in it gets a request; too many is
/// refused the same way. Admitted, each URL gets its own answer, in order,
/// and the call leaves one record naming every URL.
#[test]
fn a_scrape_batch_is_decided_whole_before_any_endpoint_is_asked() {
    let ok_metrics = http_reply(
        "200 OK",
        "Content-Type: text/plain\r\n",
        "# TYPE up gauge\nup 1\nother 2\n",
    );
    let granted = Server::start(Some(ok_metrics));
    let broken = Server::start(Some(http_reply("500 Internal Server Error", "", "")));
    let bystander = Server::start(Some(http_reply("200 OK", "", "up 1\n")));
    let h = Harness::new(&grant(
        "",
        &format!(
            r#""session", "http://127.0.0.1:{}", "http://127.0.0.1:{}""#,
            granted.port, broken.port
        ),
        "",
    ));
    let url = |port: u16| format!("http://127.0.0.1:{port}/metrics");
    let batch = |urls: &[String]| {
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        h.attack(&[("attack", text("scrape-all")), ("urls", texts(&urls))])
    };

    // One refused URL, anywhere in the batch: nothing is fetched.
    for urls in [
        vec![url(granted.port), url(bystander.port)],
        vec![url(bystander.port), url(granted.port)],
        vec![
            url(granted.port),
            url(granted.port),
            "http://10.1.2.3:9100/metrics".into(),
        ],
    ] {
        let refused = urls
            .iter()
            .position(|u| !u.contains(&granted.port.to_string()))
            .unwrap();
        let before = h.records().len();
        let message = denied(batch(&urls));
        assert_contains(
            &message,
            &[
                &format!("request {refused}: "),
                "is not one of this session's loopback endpoints and is not in providers.\"escape\".metrics.endpoints",
            ],
        );
        one_record(&h, before, "metrics.scrape-all", Decision::Deny);
    }
    // Not a URL, or too many: invalid, nothing fetched.
    let message = invalid(batch(&[url(granted.port), "ftp://127.0.0.1/x".into()]));
    assert_contains(
        &message,
        &["request 1: ", "only http:// endpoints may be scraped"],
    );
    let many: Vec<String> = (0..33).map(|_| url(granted.port)).collect();
    assert_contains(
        &invalid(batch(&many)),
        &["scrape-all takes at most 32 URLs, not 33"],
    );
    assert_eq!(granted.accepted(), 0);
    assert_eq!(bystander.accepted(), 0);

    // Admitted: each URL answered in order, a failure being its own.
    let before = h.records().len();
    let answers = steps(batch(&[
        url(granted.port),
        url(broken.port),
        url(granted.port),
    ]));
    assert_eq!(
        answers,
        [
            ("request#0".to_owned(), "ok 2 samples".to_owned()),
            (
                "request#1".to_owned(),
                format!("failed: {}: HTTP 500", url(broken.port))
            ),
            ("request#2".to_owned(), "ok 2 samples".to_owned()),
        ]
    );
    let record = one_record(&h, before, "metrics.scrape-all", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("ok"));
    assert_contains(
        &record.action,
        &[
            &format!("url=http://127.0.0.1:{}", granted.port),
            &format!("url=http://127.0.0.1:{}", broken.port),
        ],
    );
    assert_eq!(granted.accepted(), 2);
    assert_eq!(broken.accepted(), 1);
    // An empty batch is an empty answer.
    assert_eq!(batch(&[]), Error::Failed(String::new()));
}

/// Class: batches, references. In one `grep-logs-all`, a container the
/// provider does not own (unlabelled, another home's, another provider's)
/// and one that does not exist each read as an empty log, exactly as
/// `grep-logs` answers them, while its own container's lines come back.
#[test]
fn a_grep_batch_reads_only_its_own_containers_and_the_rest_read_as_absent() {
    let cleanup = ContainerCleanup::new("escape-batch");
    let h = Harness::new(&default_grant());
    let home = h.home().display().to_string();
    let own = victim(
        &cleanup,
        "own",
        &[(LABEL_PROVIDER, ESCAPE), (LABEL_HOME, &home)],
    );
    let foreign = [
        victim(&cleanup, "plain", &[]),
        victim(
            &cleanup,
            "other-home",
            &[
                (LABEL_PROVIDER, ESCAPE),
                (LABEL_HOME, "/somewhere/else/.openjarvis"),
            ],
        ),
        victim(
            &cleanup,
            "other-provider",
            &[(LABEL_PROVIDER, "vllm-pearl"), (LABEL_HOME, &home)],
        ),
    ];
    wait_until(
        "the own container's first log line",
        Duration::from_secs(20),
        || !h.docker().logs(&own, 10).unwrap_or_default().is_empty(),
    );
    let mut references = vec![own.clone()];
    for id in &foreign {
        references.push(id.clone());
        references.push(id[..12].to_owned());
    }
    references.push("escape-no-such-container".to_owned());
    let refs: Vec<&str> = references.iter().map(String::as_str).collect();
    let before = h.records().len();
    let answers = steps(h.attack(&[
        ("attack", text("grep-logs-all")),
        ("containers", texts(&refs)),
        ("patterns", texts(&[""])),
    ]));
    one_record(&h, before, "containers.grep-logs-all", Decision::Allow);
    assert_eq!(answers.len(), references.len());
    assert!(
        answers[0].1.starts_with("ok ") && !answers[0].1.starts_with("ok 0 "),
        "{answers:?}"
    );
    for (reference, (_, answer)) in references.iter().zip(&answers).skip(1) {
        assert_eq!(answer, "ok 0 lines []", "{reference}");
    }
    for id in &foreign {
        assert!(running(id), "{id} was touched");
    }
    // What comes back is redacted, in a batch as alone.
    assert!(!answers[0].1.contains("victim-password"), "{answers:?}");
    assert!(!h.audit_text().contains("victim-password"));
    // A reference that is not a container name refuses the batch, naming it.
    let message = invalid(h.attack(&[
        ("attack", text("grep-logs-all")),
        ("containers", texts(&[&own, "../../etc/passwd"])),
    ]));
    assert_contains(&message, &["request 1: ", "is not valid"]);
    let many: Vec<&str> = (0..33).map(|_| own.as_str()).collect();
    assert_contains(
        &invalid(h.attack(&[
            ("attack", text("grep-logs-all")),
            ("containers", texts(&many)),
        ])),
        &["grep-logs-all takes at most 32 requests, not 33"],
    );
}

/// Class: quotas. Each request of a batch is a privileged call against
/// `quotas.privileged_calls`, so batching is no way around it.
#[test]
fn each_request_of_a_batch_counts_against_the_privileged_calls_quota() {
    let endpoint = Server::start(Some(http_reply("200 OK", "", "up 1\n")));
    let h = Harness::new(&grant(
        "",
        &format!(r#""session", "http://127.0.0.1:{}""#, endpoint.port),
        "[providers.escape.quotas]\nprivileged_calls = 5\n",
    ));
    let url = format!("http://127.0.0.1:{}/metrics", endpoint.port);
    let batch = |count: usize| {
        let urls: Vec<&str> = (0..count).map(|_| url.as_str()).collect();
        h.attack(&[("attack", text("scrape-all")), ("urls", texts(&urls))])
    };
    assert_contains(&denied(batch(6)), &["quotas.privileged_calls"]);
    assert_eq!(endpoint.accepted(), 0);
    assert_eq!(steps(batch(5)).len(), 5);
    assert_eq!(endpoint.accepted(), 5);
    // 32 requests, past the quota of 5: refused, whatever the batch's size.
    assert_contains(&denied(batch(32)), &["quotas.privileged_calls"]);
    assert_eq!(endpoint.accepted(), 5);
}

// ---------------------------------------------------------------------------
// GPUs.

#[test]
fn gpus_outside_the_grant_are_invisible_and_cannot_be_asked_for() {
    let h = Harness::new(&default_grant());
    let facts = guest_facts(&linux_with_gpus(&[
        ("NVIDIA H100", "9.0", 81559),
        ("NVIDIA H100", "9.0", 81559),
        ("NVIDIA H100", "9.0", 81559),
    ]));
    let verdict = h.detect(&facts, "llama").unwrap();
    let reason = verdict.reason.unwrap();
    assert!(reason.starts_with("gpus=[1] "), "{reason}");
    // ... and detect may not read the session record either.
    assert_contains(
        &reason,
        &["sidecar.read=denied: sidecar.read is not available here: info() and detect() are pure"],
    );

    for (gpus, what) in [
        (texts(&["0"]), "GPU '0' is not in providers.\"escape\".gpus"),
        (
            texts(&["1", "2"]),
            "GPU '2' is not in providers.\"escape\".gpus",
        ),
        (
            texts(&["GPU-00000000"]),
            "GPU 'GPU-00000000' is not in providers.\"escape\".gpus",
        ),
        (text("all"), "all GPUs is not in providers.\"escape\".gpus"),
        (int(1), "a number of GPUs"),
    ] {
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("gpus", gpus),
        ]);
        assert_contains(&denied(error), &[what]);
        let record = one_record(&h, before, "containers.run", Decision::Deny);
        assert_contains(&record.action, &["gpus="]);
    }
    assert!(h.containers().is_empty());
}

// ---------------------------------------------------------------------------
// GPU telemetry: readings of the GPUs `detect` sees, and nothing of the rest.

/// A user policy that grants the escape provider `gpu-telemetry` and the
/// GPUs `gpus` (TOML array items), and nothing else.
fn telemetry_grant(gpus: &str) -> String {
    format!("[providers.escape]\ncapabilities = [\"gpu-telemetry\"]\ngpus = [{gpus}]\n")
}

/// The NVML indexes of a `gpu-telemetry` report's readings.
fn reading_indexes(report: &str) -> Vec<u32> {
    let mut lines = report.lines();
    let count: usize = lines
        .next()
        .and_then(|line| line.strip_suffix(" GPUs"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a report: {report}"));
    let indexes: Vec<u32> = lines
        .map(|line| {
            let rest = line
                .strip_prefix("GpuReading { index: ")
                .unwrap_or_else(|| panic!("not a reading: {line}"));
            rest[..rest.find(',').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(indexes.len(), count, "{report}");
    indexes
}

/// The GPU indexes `detect` was shown under `h`'s policy, on the host's
/// (fake) NVML narrowed to `selection` as `doctor` narrows them.
fn detected_indexes(h: &Harness, selection: Option<&str>) -> Vec<u32> {
    let host = host_gpu::HardwareFacts {
        os: Some("linux".into()),
        gpus: host_gpu::nvml::gpus(None).gpus,
        ..Default::default()
    };
    let facts = to_guest(&host, &GpuSelection::new(selection));
    let reason = h.detect(&facts, "llama").unwrap().reason.unwrap();
    let list = reason
        .strip_prefix("gpus=[")
        .and_then(|rest| rest.split_once(']'))
        .unwrap_or_else(|| panic!("{reason}"))
        .0;
    list.split(',')
        .filter(|i| !i.is_empty())
        .map(|i| i.parse().unwrap())
        .collect()
}

/// On four fake H100s (`GPU-h100-0` to `-3`) and a fifth GPU that has fallen
/// off the bus, each grant and selection reads exactly the GPUs `detect` is
/// shown, and every GPU outside them (not granted, not selected, absent, lost,
/// a foreign UUID or a MIG instance) reads the same: not there. No count,
/// index, note or error tells them apart.
#[test]
fn gpu_telemetry_reads_exactly_the_gpus_detect_sees_and_tells_nothing_of_the_rest() {
    if !in_child(
        "gpu_telemetry_reads_exactly_the_gpus_detect_sees_and_tells_nothing_of_the_rest",
        &[
            (NVML_LIBRARY_ENV, fake_nvml_library()),
            ("FAKE_NVML_GPUS", &format!("{};lost", h100s(4))),
        ],
    ) {
        return;
    }
    let cases: [(&str, Option<&str>, &[u32], &str); 14] = [
        (r#""1""#, None, &[1], "gpus=1"),
        (r#""1", "GPU-H100-3""#, None, &[1, 3], "gpus=1,GPU-H100-3"),
        (r#""*""#, None, &[0, 1, 2, 3], "gpus=all"),
        (r#""*""#, Some("2, 0"), &[0, 2], "gpus=2,0"),
        (
            r#""1", "2", "3""#,
            Some("GPU-h100-2,3"),
            &[2, 3],
            "gpus=GPU-h100-2,3",
        ),
        // Present, granted, not selected by the user.
        (r#""1""#, Some("2"), &[], "gpus=1"),
        // Present, selected, not granted.
        (r#""0""#, Some("1,2"), &[], "gpus=0"),
        // Granted, absent.
        (r#""7""#, None, &[], "gpus=7"),
        // Granted, present, but NVML cannot open it.
        (r#""4""#, None, &[], "gpus=4"),
        (r#""1", "4""#, Some("4, 1"), &[1], "gpus=1,4"),
        (
            r#""GPU-00000000-0000-0000-0000-000000000000""#,
            None,
            &[],
            "gpus=GPU-00000000-0000-0000-0000-000000000000",
        ),
        // A MIG instance is not its physical GPU: never read as one.
        (r#""MIG-h100-1/1/0""#, None, &[], "gpus=MIG-h100-1/1/0"),
        // No GPU granted at all.
        ("", None, &[], "gpus=none"),
        ("", Some("0,1,2,3"), &[], "gpus=none"),
    ];
    for (gpus, selection, expected, action) in cases {
        let h = Harness::new(&telemetry_grant(gpus));
        let report = h.telemetry(selection).unwrap();
        let case = format!("gpus = [{gpus}], cuda_visible_devices = {selection:?}");
        let record = one_record(&h, 0, "gpu-telemetry.sample", Decision::Allow);
        assert_eq!(record.outcome.as_deref(), Some("ok"), "{case}");
        assert_eq!(
            record.action,
            format!("gpu-telemetry.sample {action}"),
            "{case}"
        );
        assert_eq!(reading_indexes(&report), expected, "{case}: {report}");
        assert_eq!(detected_indexes(&h, selection), expected, "{case}");
        if expected.is_empty() {
            // Not granted, not selected, absent, unknown: one answer.
            assert_eq!(report, "0 GPUs", "{case}");
        }
        for line in report.lines().skip(1) {
            assert_contains(
                line,
                &["uuid: Some(\"GPU-h100-", "name: Some(\"NVIDIA H100"],
            );
        }
    }
}

/// What a provider hears when the host has no usable NVML: one sentence,
/// whatever the cause, with no path or driver detail in it. A provider that
/// may see no GPU is not told even that: its list is empty, as on a host
/// with NVML.
fn no_nvml_is_one_answer_without_host_detail(host_detail: &str) {
    let h = Harness::new(&telemetry_grant(r#""*""#));
    let error = h.telemetry(None).unwrap_err();
    assert_eq!(error, Error::Unavailable(NO_NVML.into()));
    assert!(!NO_NVML.contains(host_detail));
    let record = one_record(&h, 0, "gpu-telemetry.sample", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("unavailable"));
    assert_eq!(record.reason.as_deref(), Some(NO_NVML));
    assert!(!h.audit_text().contains(host_detail));

    let none = Harness::new(&telemetry_grant(""));
    assert_eq!(none.telemetry(None).unwrap(), "0 GPUs");
    let record = one_record(&none, 0, "gpu-telemetry.sample", Decision::Allow);
    assert_eq!(record.outcome.as_deref(), Some("ok"));
}

#[test]
fn gpu_telemetry_without_an_nvml_library_does_not_name_its_path() {
    let library = "/nonexistent/escape-secret-dir/libnvidia-ml.so.1";
    if !in_child(
        "gpu_telemetry_without_an_nvml_library_does_not_name_its_path",
        &[(NVML_LIBRARY_ENV, library)],
    ) {
        return;
    }
    no_nvml_is_one_answer_without_host_detail("escape-secret-dir");
}

#[test]
fn gpu_telemetry_with_an_nvml_that_fails_to_start_answers_the_same() {
    if !in_child(
        "gpu_telemetry_with_an_nvml_that_fails_to_start_answers_the_same",
        &[
            (NVML_LIBRARY_ENV, fake_nvml_library()),
            ("FAKE_NVML_INIT_FAIL", "1"),
        ],
    ) {
        return;
    }
    no_nvml_is_one_answer_without_host_detail("driver is not loaded");
}

/// The capability must be granted by every view and the call made in a
/// lifecycle call; each denial names its key or host rule, touches no GPU
/// and leaves one deny record. A flood of calls is cut off at the
/// privileged-call quota like any import's.
#[test]
fn gpu_telemetry_is_denied_unless_granted_and_bounded_like_every_import() {
    // Granted every other capability and every GPU, but not gpu-telemetry.
    let h = Harness::new(
        r#"
[providers.escape]
capabilities = ["containers", "sidecar", "metrics", "processes"]
gpus = ["*"]
"#,
    );
    let error = h.telemetry(None).unwrap_err();
    assert_eq!(
        denied(error),
        format!(
            "capability 'gpu-telemetry' is not in providers.\"escape\".capabilities (policy {})",
            h.paths.user_policy().absolute().display()
        )
    );
    let record = one_record(&h, 0, "gpu-telemetry.sample", Decision::Deny);
    assert_eq!(
        record.policy_file.as_deref(),
        Some(&*h.paths.user_policy().absolute().display().to_string())
    );

    // Granted by the user, revoked by the system policy's ceiling.
    let h = Harness::with(|paths| {
        let system = paths.home().join("system-policy.toml");
        let user = paths.user_policy().absolute();
        Policy::with_files(
            (
                system.clone(),
                Some(parse("[default]\ncapabilities = [\"metrics\"]\n", &system)),
            ),
            (user.clone(), Some(parse(&telemetry_grant(r#""*""#), &user))),
        )
    });
    assert_contains(
        &denied(h.telemetry(None).unwrap_err()),
        &[
            "capability 'gpu-telemetry' is not in default.capabilities",
            "system-policy.toml",
        ],
    );
    one_record(&h, 0, "gpu-telemetry.sample", Decision::Deny);

    // Granted, but from the pure detect.
    let h = Harness::new(&telemetry_grant(r#""*""#));
    let reason = h
        .detect(&guest_facts(&linux_with_gpus(&[])), "all-imports")
        .unwrap()
        .reason
        .unwrap();
    assert_contains(
        &reason,
        &[
            "gpu-telemetry.sample\tdenied: gpu-telemetry.sample is not available here: info() and detect() are pure",
        ],
    );

    // A flood: the first `privileged_calls` answer, the rest are denied
    // and collapse into one record. No GPU is granted, so no NVML is asked.
    let h = Harness::new(&format!(
        "{}[providers.escape.quotas]\nprivileged_calls = 5\n",
        telemetry_grant("")
    ));
    let error = h.attack(&[
        ("attack", text("loop")),
        ("import", text("gpu-telemetry.sample")),
        ("count", int(50)),
    ]);
    assert_contains(
        message(&error),
        &[
            "50 calls: 5 ok, 45 denied, 0 other",
            "quotas.privileged_calls",
        ],
    );
    let records = h.records();
    let counts: Vec<(Decision, u64)> = records.iter().map(|r| (r.decision, r.count)).collect();
    assert_eq!(
        counts,
        [
            (Decision::Allow, 1),
            (Decision::Allow, 4),
            (Decision::Deny, 45)
        ],
        "{records:#?}"
    );
    assert_record(
        records.last().unwrap(),
        "gpu-telemetry.sample",
        Decision::Deny,
    );
}

// ---------------------------------------------------------------------------
// One choke point: every import under every denying policy.

/// The privileged imports, read from the WIT the host is generated from:
/// every function of every interface the world imports, but `log` and
/// `clock` (which touch nothing). A new import cannot be left out of the
/// table below: the guest's `all-imports` must report exactly these.
fn privileged_imports() -> Vec<String> {
    let imports: Vec<String> = world_imports(include_str!("../wit/types.wit"))
        .into_iter()
        .filter(|import| !import.starts_with("log.") && !import.starts_with("clock."))
        .collect();
    assert!(imports.len() >= 3, "{imports:?}");
    imports
}

/// Parses `all-imports`' report into `(import, answer)` pairs.
fn report(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let (import, answer) = line.split_once('\t').expect("import<TAB>answer");
            (import.to_owned(), answer.to_owned())
        })
        .collect()
}

/// What an import that got through would disturb: a running container the
/// provider owns, its session record, a live session endpoint.
struct Stage {
    own: String,
    endpoint: Server,
    record: Vec<u8>,
}

fn stage(h: &Harness, cleanup: &ContainerCleanup) -> Stage {
    let home = h.home().display().to_string();
    let own = victim(
        cleanup,
        "own",
        &[(LABEL_PROVIDER, ESCAPE), (LABEL_HOME, &home)],
    );
    let endpoint = Server::start(Some(http_reply("200 OK", "", "up 1\n")));
    let record = h.write_record(ESCAPE, endpoint.port);
    Stage {
        own,
        endpoint,
        record,
    }
}

/// Sets the stage so that any import that got through would leave a mark:
/// a running container this provider would own, its own session record, a
/// live session endpoint. Calls every import once, through `call`, and
/// checks each was denied with `because`, that nothing moved, and that there
/// is exactly one deny record per import.
fn every_import_denied(
    h: &Harness,
    because: &str,
    call: impl FnOnce(&Harness, &[(&str, ExtraValue)]) -> String,
) {
    let cleanup = ContainerCleanup::new("escape-table");
    let Stage {
        own,
        endpoint,
        record,
    } = stage(h, &cleanup);
    let image = "jarvis-test/escape-never-pulled:1";
    let before = h.records().len();
    let answers = report(&call(
        h,
        &[
            ("attack", text("all-imports")),
            ("image", text(image)),
            ("container", text(own.clone())),
            ("name", text(format!("escape-table-{}", cleanup.value()))),
            (
                "url",
                text(format!("http://127.0.0.1:{}/metrics", endpoint.port)),
            ),
        ],
    ));

    let privileged: Vec<&(String, String)> =
        answers.iter().filter(|(i, _)| i != "clock.now").collect();
    let imports = privileged_imports();
    assert_eq!(
        privileged
            .iter()
            .map(|(i, _)| i.as_str())
            .collect::<Vec<_>>(),
        imports
    );
    for (import, answer) in &privileged {
        assert!(
            answer.starts_with("denied: ") && answer.contains(because),
            "{import} was not denied because {because:?}: {answer}"
        );
    }
    // Nothing moved.
    assert!(running(&own), "the provider's container was stopped");
    let containers = h.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].id, own);
    assert_eq!(h.sidecar_bytes().as_deref(), Some(&record[..]));
    assert_eq!(endpoint.accepted(), 0, "the endpoint was scraped");
    assert!(!h.docker().image_present(image).unwrap());
    // One deny record per import, in order.
    let records = h.records_since(before);
    assert_eq!(records.len(), imports.len(), "{records:#?}");
    for (record, import) in records.iter().zip(&imports) {
        assert_record(record, import, Decision::Deny);
        assert_contains(record.reason.as_deref().unwrap(), &[because]);
    }
}

/// `start --dry-run` runs the provider's `start` against a host that only
/// records: whatever the provider calls, nothing on the host changes, and
/// each import that would change something is refused by the dry-run rule.
#[test]
fn a_dry_run_changes_nothing_whatever_the_provider_calls() {
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\ncontainers = 4",
    ));
    let cleanup = ContainerCleanup::new("escape-dry-run");
    let Stage { own, record, .. } = stage(&h, &cleanup);
    let recorder = jarvis_mine::host::dry_run::Recorder::default();
    let mut session = h.session();
    session.dry_run = Some(recorder.clone());
    let error = h.attack_with(
        session,
        &[
            ("attack", text("all-imports")),
            ("image", text(fake_miner_image())),
            ("container", text(own.clone())),
            ("name", text(format!("escape-dry-run-{}", cleanup.value()))),
        ],
    );
    let Error::Failed(text) = error else {
        panic!("expected the report, got {error:?}");
    };
    let answers = report(&text);
    for import in jarvis_mine::host::dry_run::REFUSED {
        let (_, answer) = answers
            .iter()
            .find(|(i, _)| i == import)
            .unwrap_or_else(|| panic!("{import} missing from {text}"));
        assert!(
            answer.starts_with("denied: ") && answer.contains("--dry-run"),
            "{import}: {answer}"
        );
    }
    for import in ["containers.run", "containers.run-all"] {
        assert!(answers.contains(&(import.into(), "ok".into())), "{text}");
    }
    // Nothing moved: the provider's container runs, no other exists, the
    // record is the one on disk; the plan holds what would have been made.
    assert!(running(&own), "the provider's container was stopped");
    assert_eq!(h.containers().len(), 1, "{:?}", h.containers());
    assert_eq!(h.sidecar_bytes().as_deref(), Some(&record[..]));
    assert_eq!(recorder.plan().containers.len(), 2, "{:?}", recorder.plan());
}

fn all_imports_from_start(h: &Harness, extra: &[(&str, ExtraValue)]) -> String {
    let error = h.attack(extra);
    let Error::Failed(report) = error else {
        panic!("expected the report, got {error:?}");
    };
    assert_contains(&report, &["clock.now\tok"]);
    report
}

#[test]
fn every_import_is_denied_to_an_installed_provider_no_policy_names() {
    let h = Harness::unnamed();
    every_import_denied(
        &h,
        "provider is installed and no policy grants it anything",
        all_imports_from_start,
    );
}

#[test]
fn every_import_is_denied_under_a_system_policy_granting_no_capability() {
    let h = Harness::with(|paths| {
        let system = paths.home().join("system-policy.toml");
        Policy::with_files(
            (
                system.clone(),
                Some(parse("[default]\ncapabilities = []\n", &system)),
            ),
            (
                paths.user_policy().absolute(),
                Some(parse(&default_grant(), &paths.user_policy().absolute())),
            ),
        )
    });
    every_import_denied(&h, "is not in default.capabilities", all_imports_from_start);
}

#[test]
fn every_import_is_denied_under_a_broken_system_policy() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("mining-policy.toml");
    std::fs::write(&broken, "[default]\ncapabilities = [\"everything\"]\n").unwrap();
    if !in_child(
        "every_import_is_denied_under_a_broken_system_policy",
        &[(SYSTEM_POLICY_ENV, broken.to_str().unwrap())],
    ) {
        return;
    }
    let h = Harness::with(|paths| {
        paths
            .user_policy()
            .parent()
            .unwrap()
            .create_dir_all()
            .unwrap();
        std::fs::write(paths.user_policy().absolute(), default_grant()).unwrap();
        let policy = Policy::load(paths).unwrap();
        assert!(policy.system_problem().is_some());
        policy
    });
    every_import_denied(
        &h,
        "the system policy is unusable, so every privileged call is denied",
        all_imports_from_start,
    );
}

#[test]
fn every_import_is_denied_in_detect_whatever_the_policy_grants() {
    let h = Harness::new(&default_grant());
    every_import_denied(
        &h,
        "is not available here: info() and detect() are pure",
        |h, _| {
            let facts = guest_facts(&linux_with_gpus(&[]));
            let reason = h.detect(&facts, "all-imports").unwrap().reason.unwrap();
            assert_contains(&reason, &["clock.now\tdenied: "]);
            reason
        },
    );
}

/// A hole this suite found: WASI's `monotonic-clock.subscribe-duration`
/// armed a real timer although the guest's clock is frozen, and
/// `pollable.block` slept on it inside the host, where epochs do not
/// interrupt. The host's timers are now due at once (no time passes for
/// the guest), so a sleep returns immediately.
#[test]
fn a_guest_cannot_sleep_inside_a_wasi_call_past_its_deadline() {
    let h = Harness::new(&default_grant());
    let facts = guest_facts(&linux_with_gpus(&[]));
    let started = Instant::now();
    let outcome = h.detect(&facts, "sleep:8000");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "detect slept {elapsed:?}: {outcome:?}"
    );
    let started = Instant::now();
    let outcome = h.start(&[("attack", text("sleep")), ("count", int(8000))]);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "start slept {elapsed:?}: {outcome:?}"
    );
}

#[test]
fn an_ungranted_capability_is_denied_before_the_request_is_even_read() {
    let h = Harness::unnamed();
    let because = "provider is installed and no policy grants it anything";
    let cases: [(&[(&str, ExtraValue)], &str); 5] = [
        (
            &[
                ("attack", text("run")),
                ("network", text("container:0123456789ab")),
            ],
            "containers.run",
        ),
        (
            &[
                ("attack", text("ensure-image")),
                ("image", text("not an image")),
            ],
            "containers.ensure-image",
        ),
        (
            &[
                ("attack", text("stop")),
                ("container", text("x".repeat(100_000))),
            ],
            "containers.stop",
        ),
        (
            &[
                ("attack", text("sidecar-write")),
                ("huge_field", text("model")),
                ("huge_size", int(10_000)),
            ],
            "sidecar.write",
        ),
        (
            &[("attack", text("scrape")), ("url", text("gopher://x"))],
            "metrics.scrape",
        ),
    ];
    for (extra, import) in cases {
        let before = h.records().len();
        assert_contains(&denied(h.attack(extra)), &[because]);
        one_record(&h, before, import, Decision::Deny);
    }
}

// ---------------------------------------------------------------------------
// The classes of issue 8, several variants each.

/// Polls `done` until it holds, failing after `limit`.
#[track_caller]
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    assert!(
        wait_for(limit, || done().then_some(())).is_some(),
        "timed out waiting for {what}"
    );
}

/// The report lines of a multi-call attack, as `(step, answer)`.
fn steps(error: Error) -> Vec<(String, String)> {
    let Error::Failed(text) = error else {
        panic!("expected the report, got {error:?}");
    };
    report(&text)
}

/// Class: oracles. Match counts of `grep-logs` over a log that prints a
/// granted secret are computed on the redacted text: two containers whose
/// logs differ only by their secret's value answer every guess (each
/// prefix of one secret, the whole, near misses) with the same counts, and
/// no line returned holds either value.
#[test]
fn log_searches_cannot_rebuild_a_granted_secret_byte_by_byte() {
    let pid = std::process::id();
    let (first, second) = (format!("Zq{pid}x7Kw"), format!("mB{pid}u2Pe"));
    if !in_child(
        "log_searches_cannot_rebuild_a_granted_secret_byte_by_byte",
        &[
            ("ESCAPE_GRANTED_ORACLE_A", &first),
            ("ESCAPE_GRANTED_ORACLE_B", &second),
        ],
    ) {
        return;
    }
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\ncontainers = 2\n",
    ));
    let run = |tag: &str| {
        assert_eq!(
            h.start(&[
                ("attack", text("run")),
                ("image", text(fake_miner_image())),
                ("name", text(format!("escape-oracle-{tag}-{pid}"))),
                ("secret", text(format!("ESCAPE_GRANTED_ORACLE_{tag}"))),
                ("secret_as", text("PEARLD_RPC_PASSWORD")),
            ]),
            Ok(Ok(()))
        );
        let id = h
            .containers()
            .into_iter()
            .find(|c| c.name.ends_with(&format!("escape-oracle-{tag}-{pid}")))
            .unwrap()
            .id;
        // The raw log does hold the value: the redaction is what is tested.
        let value = std::env::var(format!("ESCAPE_GRANTED_ORACLE_{tag}")).unwrap();
        wait_until("the secret in the raw log", Duration::from_secs(20), || {
            h.docker()
                .logs(&id, 100)
                .unwrap_or_default()
                .iter()
                .any(|l| l.contains(&value))
        });
        id
    };
    let (a, b) = (run("A"), run("B"));
    let mut guesses: Vec<String> = (1..=first.len()).map(|n| first[..n].to_owned()).collect();
    guesses.extend([
        format!("={}", &first[..1]),
        format!(": {}", &first[..3]),
        format!("{}y", &first[..first.len() - 1]),
        format!("\"{first}\""),
        second.clone(),
    ]);
    let refs: Vec<&str> = guesses.iter().map(String::as_str).collect();
    let probe = |id: &str| {
        steps(h.attack(&[
            ("attack", text("grep-probe")),
            ("container", text(id)),
            ("patterns", texts(&refs)),
        ]))
    };
    let (on_a, on_b) = (probe(&a), probe(&b));
    assert_eq!(on_a.len(), guesses.len());
    assert_eq!(on_a, on_b, "counts depend on the secret's value");
    // The same guesses in batches of both containers.
    for guess in &refs {
        let answers = steps(h.attack(&[
            ("attack", text("grep-logs-all")),
            ("containers", texts(&[&a, &b])),
            ("patterns", texts(&[guess])),
        ]));
        let count = |answer: &str| answer.split(' ').nth(1).unwrap().to_owned();
        assert_eq!(
            count(&answers[0].1),
            count(&answers[1].1),
            "{guess}: {answers:?}"
        );
        assert!(
            !answers
                .iter()
                .any(|(_, a)| a.contains(&first) || a.contains(&second)),
            "{answers:?}"
        );
    }
    for id in [&a, &b] {
        let error = h.attack(&[
            ("attack", text("grep-logs")),
            ("container", text(id.clone())),
            ("patterns", texts(&["", "PEARLD", "gateway"])),
        ]);
        let shown = format!("{error:?}");
        assert!(
            shown.contains("[REDACTED]") || shown.contains("PEARLD"),
            "{shown}"
        );
        assert!(
            !shown.contains(&first) && !shown.contains(&second),
            "{shown}"
        );
    }
    let audit = h.audit_text();
    assert!(!audit.contains(&first) && !audit.contains(&second));
}

/// Class: self-declared endpoints. Whatever a provider writes in its
/// session record (any field, any loopback spelling), a scrape of it is
/// not "the session's own", and the service there gets no request; the
/// session's endpoints are the ports the host recorded for containers it
/// created, and a container cannot claim a port a service already holds.
#[test]
fn a_session_record_cannot_make_a_local_service_the_sessions_own() {
    let ok = http_reply("200 OK", "", "# TYPE up gauge\nup 1\n");
    let bystander = Server::start(Some(ok));
    let h = Harness::new(&grant_networks("", r#""session""#, r#""none", "host""#, ""));
    let port = bystander.port;
    let spellings = [
        format!("http://127.0.0.1:{port}/metrics"),
        format!("http://localhost:{port}/metrics"),
        format!("http://127.0.0.2:{port}/metrics"),
        format!("http://[::1]:{port}/metrics"),
    ];
    for field in [
        "vllm_endpoint",
        "gateway_url",
        "gateway_metrics_url",
        "metrics_url",
    ] {
        for url in &spellings {
            let before = h.records().len();
            let answers = steps(h.attack(&[
                ("attack", text("declare-and-scrape")),
                (field, text(url.clone())),
                ("url", text(url.clone())),
            ]));
            // The record may be refused for its shape; either way the
            // scrape that follows is not the session's.
            assert!(
                answers[0].1 == "ok" || answers[0].1.starts_with("invalid: "),
                "{field}: {answers:?}"
            );
            assert!(
                answers[1].1.starts_with("denied: ") && answers[1].1.contains("metrics.endpoints"),
                "{field} {url}: {answers:?}"
            );
            let records = h.records_since(before);
            assert_eq!(records[1].decision, Decision::Deny, "{records:?}");
        }
    }
    assert_eq!(bystander.accepted(), 0);

    // A container may not claim the bystander's port as its own.
    let before = h.records().len();
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("network", text("host")),
        ("ports", texts(&[&format!("{port}:{port}")])),
    ]);
    assert_contains(
        message(&error),
        &[&format!("host port {port} is already in use")],
    );
    one_record(&h, before, "containers.run", Decision::Allow);
    assert!(h.containers().is_empty());

    // The control: a port the host published for a container it created
    // is the session's, and answers.
    let own = free_port();
    assert_eq!(
        h.start(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            (
                "name",
                text(format!("escape-endpoint-{}", std::process::id()))
            ),
            ("network", text("host")),
            ("ports", texts(&[&format!("{own}:{own}")])),
            (
                "args",
                texts(&["m", "--host", "127.0.0.1", "--port", &own.to_string()])
            ),
        ]),
        Ok(Ok(()))
    );
    let url = format!("http://127.0.0.1:{own}/metrics");
    wait_until("the container's metrics", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", own)).is_ok()
    });
    assert_eq!(
        h.start(&[("attack", text("scrape")), ("url", text(url))]),
        Ok(Ok(()))
    );
}

/// Class: quotas. Each has a default, each denial names its key.
#[test]
fn quotas_bound_containers_gpus_shared_memory_records_and_calls() {
    // Containers: one per granted GPU (here one GPU, "1"), by default.
    let h = Harness::new(&default_grant());
    let name = format!("escape-quota-{}", std::process::id());
    let answers = steps(h.attack(&[
        ("attack", text("run-many")),
        ("image", text(fake_miner_image())),
        ("name", text(name.clone())),
        ("count", int(5)),
    ]));
    assert!(answers[0].1.starts_with("ok"), "{answers:?}");
    for (_, answer) in &answers[1..] {
        assert_contains(
            answer,
            &[
                "denied: ",
                "providers.\"escape\".quotas.containers",
                "(default 1",
            ],
        );
    }
    assert_eq!(h.containers().len(), 1);

    // A policy raising it, to 3, is obeyed (and 8 is the most it may say).
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\ncontainers = 3\n",
    ));
    let answers = steps(h.attack(&[
        ("attack", text("run-many")),
        ("image", text(fake_miner_image())),
        ("name", text(name.clone())),
        ("count", int(5)),
    ]));
    let created = answers.iter().filter(|(_, a)| a.starts_with("ok")).count();
    assert_eq!(created, 3, "{answers:?}");
    assert_contains(
        &answers[4].1,
        &["providers.\"escape\".quotas.containers in"],
    );
    assert_eq!(h.containers().len(), 3);
    let too_many = "[providers.escape.quotas]\ncontainers = 9\n";
    assert!(PolicyFile::parse(&grant("", r#""session""#, too_many), Path::new("p")).is_err());

    // Shared memory and GPUs per container.
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\nshm_mib = 64\ngpus_per_container = 0\n",
    ));
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("shm_bytes", int(65 << 20)),
    ]);
    assert_contains(&denied(error), &["quotas.shm_mib", "65 MiB"]);
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("gpus", text("1")),
    ]);
    assert_contains(&denied(error), &["quotas.gpus_per_container", "1 GPUs"]);
    assert!(h.containers().is_empty());

    // The session record's size.
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\nsidecar_bytes = 512\n",
    ));
    let error = h.attack(&[
        ("attack", text("sidecar-write")),
        ("huge_field", text("model")),
        ("huge_size", int(600)),
    ]);
    assert_contains(
        &denied(error),
        &["quotas.sidecar_bytes", "the quota is 512"],
    );
    assert!(h.sidecar_bytes().is_none());

    // Privileged calls per provider call.
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\nprivileged_calls = 5\n",
    ));
    let before = h.records().len();
    let error = h.attack(&[
        ("attack", text("loop")),
        ("import", text("sidecar.read")),
        ("count", int(50)),
    ]);
    assert_contains(message(&error), &["5 ok"]);
    let records = h.records_since(before);
    let allowed: u64 = records
        .iter()
        .filter(|r| r.decision == Decision::Allow)
        .map(|r| r.count)
        .sum();
    assert_eq!(allowed, 5, "{records:#?}");
    let denials: Vec<&Record> = records
        .iter()
        .filter(|r| r.decision == Decision::Deny)
        .collect();
    assert_eq!(
        denials.len(),
        1,
        "the excess calls collapse into one record: {records:#?}"
    );
    assert_eq!(denials[0].count, 45);
    assert_contains(
        denials[0].reason.as_deref().unwrap(),
        &["quotas.privileged_calls"],
    );
}

/// Class: namespaces. A community provider's containers are named under
/// `jm.<id>.`, whatever it asks for, so it cannot take the built-in's name
/// or another provider's; the name is in the audit record.
#[test]
fn container_names_live_in_the_providers_namespace() {
    let h = Harness::new(&grant(
        "",
        r#""session""#,
        "[providers.escape.quotas]\ncontainers = 4\n",
    ));
    for (asked, given) in [
        ("openjarvis-pearl-miner", "jm.escape.openjarvis-pearl-miner"),
        (
            "jm.vllm-pearl.openjarvis-pearl-miner",
            "jm.escape.jm.vllm-pearl.openjarvis-pearl-miner",
        ),
        ("..escape", ""),
        ("a", "jm.escape.a"),
    ] {
        let before = h.records().len();
        let outcome = h.start(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("name", text(asked)),
        ]);
        if given.is_empty() {
            assert_contains(&invalid(outcome.unwrap().unwrap_err()), &["is not valid"]);
            continue;
        }
        assert_eq!(outcome, Ok(Ok(())), "{asked}");
        let record = one_record(&h, before, "containers.run", Decision::Allow);
        assert_contains(&record.action, &[&format!("name={given}")]);
        assert!(
            h.containers().iter().any(|c| c.name == given),
            "{asked}: {:?}",
            h.containers()
        );
    }
    assert!(
        !h.containers()
            .iter()
            .any(|c| c.name == "openjarvis-pearl-miner")
    );
}

/// Class: no host probing before the decision. Ungranted mount sources
/// that exist (a file, a directory, a link, /proc/self/cwd) and ones that
/// do not are refused in words that differ only by the path as written,
/// normalised as text.
#[test]
fn ungranted_mounts_are_refused_alike_whether_or_not_they_exist() {
    let outer = tempfile::tempdir().unwrap();
    let outer = outer.path().canonicalize().unwrap();
    let granted = outer.join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(outer.join("a-file"), "x").unwrap();
    std::fs::create_dir_all(outer.join("a-dir")).unwrap();
    std::os::unix::fs::symlink("/etc", outer.join("a-link")).unwrap();
    let h = Harness::new(&grant(
        &format!(r#"{{ path = "{}" }}"#, granted.display()),
        r#""session""#,
        "",
    ));
    let shape = |path: &str| {
        let error = h.attack(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            ("mount", text(path)),
        ]);
        denied(error).replace(path, "<PATH>")
    };
    let probes = [
        outer.join("a-file").display().to_string(),
        outer.join("a-dir").display().to_string(),
        outer.join("a-link").display().to_string(),
        outer.join("no-such-path").display().to_string(),
        "/proc/self/cwd".to_owned(),
        "/proc/self/root/etc".to_owned(),
        "/etc/shadow".to_owned(),
        "/nonexistent/deeper/path".to_owned(),
    ];
    let before = h.records().len();
    let expected = shape(&probes[0]);
    // The audit record carries the denial's parts.
    let record = one_record(&h, before, "containers.run", Decision::Deny);
    assert_eq!(
        record.rule.as_deref(),
        Some("providers.\"escape\".containers.mounts")
    );
    assert_eq!(
        record.policy_file.as_deref(),
        Some(h.paths.user_policy().display().to_string().as_str())
    );
    assert_contains(
        &expected,
        &["<PATH> (read-write) is not in providers.\"escape\".containers.mounts"],
    );
    for probe in &probes {
        assert_eq!(shape(probe), expected, "{probe}");
    }
    assert!(h.containers().is_empty());
}

/// Class: every denial names its rule, host invariants included.
#[test]
fn every_refusal_names_the_key_or_host_rule_that_made_it() {
    let h = Harness::new(&grant(r#"{ path = "/" }"#, r#""session""#, ""));
    let error = h.attack(&[
        ("attack", text("run")),
        ("image", text(fake_miner_image())),
        ("mount", text("/proc")),
    ]);
    assert_contains(
        &denied(error),
        &["host rule forbidden-mounts, docs/security.md#forbidden-mounts"],
    );
    let last = h.records().pop().unwrap();
    assert_eq!(last.rule.as_deref(), Some("host:forbidden-mounts"));
    assert_eq!(last.policy_file, None);
    let facts = guest_facts(&linux_with_gpus(&[]));
    let reason = h.detect(&facts, "all-imports").unwrap().reason.unwrap();
    for (import, answer) in report(&reason) {
        assert_contains(
            &answer,
            &["host rule pure-calls, docs/security.md#pure-calls"],
        );
        assert!(!import.is_empty());
    }
    let docs = include_str!("../docs/security.md");
    for rule in [
        "forbidden-mounts",
        "pure-calls",
        "declared-capabilities",
        "ownership",
        "payout-address",
        "host-time",
        "audit-log",
    ] {
        assert!(
            docs.contains(&format!("### {rule}")),
            "docs/security.md has no section for host rule {rule}"
        );
    }
}

/// Class: image references. Patterns match the parsed parts of a reference
/// as Docker reads it, so a pattern for one repository cannot be stretched
/// to another registry, repository or path.
#[test]
fn image_patterns_match_parsed_references_not_strings() {
    let h = Harness::new(&default_grant());
    let repository = FAKE_MINER_REPOSITORY;
    for image in [
        format!("{repository}:5000/alpine:latest"),
        format!("{repository}.evil.io/x:1"),
        format!("evil.io/{repository}:1"),
        format!("{repository}/../alpine:1"),
        format!("{repository}-x:1"),
        format!("localhost/{repository}:1"),
        format!("{repository}/sub:1"),
    ] {
        let before = h.records().len();
        let error = h.attack(&[
            ("attack", text("ensure-image")),
            ("image", text(image.clone())),
        ]);
        match error {
            Error::Denied(message) => {
                assert_contains(&message, &["providers.\"escape\".containers.images"]);
                one_record(&h, before, "containers.ensure-image", Decision::Deny);
            }
            Error::Invalid(message) => assert_contains(&message, &["is not valid"]),
            other => panic!("{image}: {other:?}"),
        }
    }
    // The same image, spelled as Docker normalises it, is the grant's.
    for image in [
        fake_miner_image(),
        format!("docker.io/{}", fake_miner_image()),
        format!("index.docker.io/{}", fake_miner_image()),
    ] {
        assert_eq!(
            h.start(&[
                ("attack", text("ensure-image")),
                ("image", text(image.clone()))
            ]),
            Ok(Ok(())),
            "{image}"
        );
    }
    assert!(h.containers().is_empty());
}

/// Class: rewards go to the user. A Pearl address other than the user's
/// wallet, anywhere in a container's env values or arguments, however it is
/// written, is refused before anything is created; the wallet itself passes.
#[test]
fn a_container_cannot_pay_anyone_but_the_users_wallet() {
    let h = Harness::new(&default_grant());
    let author = "prl1qauthorswalletxxxxxxxxxxxxxxxxxxxx";
    let upper = author.to_ascii_uppercase();
    let cases: Vec<Vec<(&str, ExtraValue)>> = vec![
        vec![("env", texts(&[&format!("PEARLD_MINING_ADDRESS={author}")]))],
        vec![(
            "env",
            texts(&[&format!("WARMUP=--payout {author} --other")]),
        )],
        vec![("args", texts(&[&format!("--wallet={author}")]))],
        vec![("args", texts(&["--wallet", &upper]))],
        vec![(
            "args",
            texts(&["--to", "prl1", "qauthorswalletxxxxxxxxxxxxxxxxxxxx"]),
        )],
        vec![(
            "args",
            texts(&[&format!(
                "http://pool.example/?addr={}",
                author.replace("1q", "%31q")
            )]),
        )],
        vec![(
            "args",
            texts(&[&format!("stratum+tcp://pool.example:3333#{author}.rig1")]),
        )],
    ];
    for case in &cases {
        let mut extra = vec![("attack", text("run")), ("image", text(fake_miner_image()))];
        extra.extend(case.iter().cloned());
        let before = h.records().len();
        let message = denied(h.attack(&extra));
        assert_contains(
            &message,
            &["[mining].wallet_address", "host rule payout-address"],
        );
        one_record(&h, before, "containers.run", Decision::Deny);
    }
    assert!(h.containers().is_empty());
    // The user's own wallet, in any case, is what a miner is for.
    assert_eq!(
        h.start(&[
            ("attack", text("run")),
            ("image", text(fake_miner_image())),
            (
                "env",
                texts(&[&format!("PEARLD_MINING_ADDRESS={USER_WALLET}")])
            ),
            (
                "args",
                texts(&[&format!("--wallet={}", USER_WALLET.to_ascii_uppercase())])
            ),
        ]),
        Ok(Ok(()))
    );
}

// ---------------------------------------------------------------------------
// Host processes.

/// What a user grants for processes: the gateway, its variables, one
/// secret pattern and unprivileged ports; `more` is appended.
fn process_grant(more: &str) -> String {
    format!(
        r#"
[providers.escape]
capabilities = ["processes", "sidecar", "metrics"]

[providers.escape.processes]
programs = ["pearl-gateway"]
env = ["PEARLD_*", "MINER_RPC_*", "METRICS_BIND"]
secrets = ["ESCAPE_GRANTED_*"]
ports = ["1024-65535"]
{more}
"#
    )
}

/// Kills, when dropped, every process labelled for a home.
struct HomeProcesses(PathBuf);

impl Drop for HomeProcesses {
    fn drop(&mut self) {
        for (pid, _) in labelled_processes(&self.0) {
            kill(pid, "-KILL");
        }
    }
}

/// Class: a host program given code. Whatever the policy grants, a program
/// is a name the host knows, and it takes only its own arguments and
/// variables: each spelling below is refused as `invalid` before the policy
/// is asked, and nothing starts.
#[test]
fn processes_run_only_host_programs_with_their_own_arguments_and_variables() {
    let h = Harness::new(&process_grant(""));
    let _processes = HomeProcesses(h.home().to_owned());
    let before = h.records().len();
    let programs = [
        "/bin/sh",
        "sh",
        "python3",
        "../pearl-gateway",
        "/usr/local/bin/pearl-gateway",
        "pearl-gateway ",
        "PEARL-GATEWAY",
        "",
    ];
    for program in programs {
        let error = h.attack(&[("attack", text("spawn")), ("program", text(program))]);
        assert_contains(&invalid(error), &["is not one the host runs"]);
    }
    let arguments: [(&str, &[&str]); 6] = [
        ("pearl-gateway", &["start", "--config", "/etc/passwd"]),
        ("pearl-gateway", &["-c", "import os"]),
        ("pearl-gateway", &["stop"]),
        ("pearl-miner-loop", &["-c", "import os; os.system('id')"]),
        ("pearl-miner-loop", &["--m", "1;id"]),
        ("pearl-miner-loop", &["evil.py"]),
    ];
    for (program, args) in arguments {
        let error = h.attack(&[
            ("attack", text("spawn")),
            ("program", text(program)),
            ("args", texts(args)),
        ]);
        assert!(
            matches!(error, Error::Invalid(_)),
            "{program} {args:?}: {error:?}"
        );
    }
    let error = h.attack(&[
        ("attack", text("spawn")),
        ("no_args", ExtraValue::Boolean(true)),
    ]);
    assert_contains(&invalid(error), &["takes `start`"]);
    for variable in [
        "LD_PRELOAD=/tmp/evil.so",
        "LD_LIBRARY_PATH=/tmp",
        "PYTHONPATH=/tmp",
        "PYTHONSTARTUP=/tmp/evil.py",
        "PATH=/tmp",
        "BASH_ENV=/tmp/evil.sh",
        "OPENJARVIS_MINING_HOME=/",
        "OPENJARVIS_MINING_SESSION=other",
    ] {
        let error = h.attack(&[("attack", text("spawn")), ("env", texts(&[variable]))]);
        assert_contains(&invalid(error), &["does not take the environment variable"]);
    }
    assert!(labelled_processes(h.home()).is_empty());
    assert!(!h.home().join("logs/mining").exists());
    let records = h.records_since(before);
    assert!(!records.is_empty());
    for record in &records {
        assert_record(record, "processes.spawn", Decision::Allow);
        assert_eq!(record.outcome.as_deref(), Some("invalid"), "{record:#?}");
    }
}

/// A spawn's parameters, and what its denial must say.
type SpawnCase = (Vec<(&'static str, ExtraValue)>, &'static [&'static str]);

/// Class: asking beyond the grant. Programs, variables, secrets and ports
/// outside it are denied naming the key, before a secret is read or a port
/// is tried; a Pearl address other than the user's is denied too.
#[test]
fn ungranted_programs_variables_secrets_and_ports_are_denied_before_anything_starts() {
    let h = Harness::new(&process_grant(""));
    let _processes = HomeProcesses(h.home().to_owned());
    let cases: Vec<SpawnCase> = vec![
        (
            vec![
                ("program", text("pearl-miner-loop")),
                ("args", texts(&["--backend", "cpu"])),
            ],
            &["program 'pearl-miner-loop'", "processes.programs"],
        ),
        (
            vec![("env", texts(&["LOGGING_LEVEL=debug"]))],
            &["environment variable 'LOGGING_LEVEL'", "processes.env"],
        ),
        (
            vec![("secret", text("HOME"))],
            &["secret 'HOME'", "processes.secrets"],
        ),
        (
            vec![("secret", text("ESCAPE_OTHER_SECRET"))],
            &["secret 'ESCAPE_OTHER_SECRET'", "processes.secrets"],
        ),
        (
            vec![("ports", texts(&["80"]))],
            &["host port 80", "processes.ports"],
        ),
        (
            vec![("ports", texts(&["8080", "22"]))],
            &["host port 22", "processes.ports"],
        ),
        (
            vec![(
                "env",
                texts(&["PEARLD_MINING_ADDRESS=prl1qattackerattackerattacker00000000"]),
            )],
            &["carries Pearl address", "prl1qattacker"],
        ),
    ];
    for (extra, needles) in cases {
        let mut extra = extra;
        extra.push(("attack", text("spawn")));
        let error = h.attack(&extra);
        let answer = match &error {
            Error::Denied(m) => m.clone(),
            other => panic!("{extra:?} was not denied: {other:?}"),
        };
        assert_contains(&answer, needles);
    }
    assert!(labelled_processes(h.home()).is_empty());
    assert!(!h.home().join("logs/mining").exists());
}

/// Class: ownership, oracles and quotas on running processes. A process
/// the host started is this session's alone: another session's handle, an
/// unknown handle and a foreign one read alike; a readiness wait connects
/// only to a port the process was declared to serve; its log is read back
/// redacted; past the quota a spawn is denied.
#[test]
fn a_spawned_process_is_its_sessions_own_and_reads_nothing_else() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pearl");
    let path = format!(
        "{}:{}",
        fixtures.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let python = fixtures.join("python").display().to_string();
    let secret = "escape-granted-secret-value-1234";
    if !in_child(
        "a_spawned_process_is_its_sessions_own_and_reads_nothing_else",
        &[
            ("PATH", &path),
            ("PYTHONPATH", &python),
            ("ESCAPE_GRANTED_PW", secret),
            ("TEST_GATEWAY_EXPECTED_PW", secret),
        ],
    ) {
        return;
    }
    let h = Harness::new(&process_grant("[providers.escape.quotas]\nprocesses = 1\n"));
    let _processes = HomeProcesses(h.home().to_owned());
    let (port, metrics) = (free_port(), free_port());
    let spawn = |name: &str| -> Vec<(&'static str, ExtraValue)> {
        vec![
            ("attack", text("spawn")),
            ("name", text(name)),
            ("secret", text("ESCAPE_GRANTED_PW")),
            (
                "env",
                texts(&[
                    "MINER_RPC_TRANSPORT=tcp",
                    &format!("MINER_RPC_PORT={port}"),
                    &format!("METRICS_BIND=127.0.0.1:{metrics}"),
                    &format!("PEARLD_MINING_ADDRESS={USER_WALLET}"),
                ]),
            ),
            ("ports", texts(&[&port.to_string(), &metrics.to_string()])),
        ]
    };
    h.start(&spawn("escape-process")).unwrap().unwrap();
    let log = h.home().join("logs/mining/jm.escape.escape-process.log");
    // Its own session: a declared port answers, an undeclared one is not tried.
    let own = steps(h.attack(&[
        ("attack", text("probe-process")),
        ("handle", text("escape-process")),
        ("port", text(port.to_string())),
        ("keep", ExtraValue::Boolean(true)),
        ("wait_ms", text("20000")),
    ]));
    assert_eq!(own[0], ("wait-listening".into(), "ok".into()), "{own:?}");
    assert_eq!(own[1].1, "ok found");
    // Listening, it is one labelled process (a version manager's shim, such
    // as pyenv's, runs helpers with the same labels while it starts).
    wait_until("one process", Duration::from_secs(20), || {
        labelled_processes(h.home()).len() == 1
    });
    assert_eq!(labelled_processes(h.home())[0].1, "escape-process");
    assert!(log.exists());
    let undeclared = steps(h.attack(&[
        ("attack", text("probe-process")),
        ("handle", text("escape-process")),
        ("port", text("22")),
        ("keep", ExtraValue::Boolean(true)),
    ]));
    assert_contains(&undeclared[0].1, &["invalid: ", "not one of the ports"]);

    // Another session, an unknown handle and a malformed one: nothing, alike.
    let foreign = steps(h.attack_in(
        "another-session",
        &[
            ("attack", text("probe-process")),
            ("handle", text("escape-process")),
            ("port", text(port.to_string())),
        ],
    ));
    let unknown = steps(h.attack(&[
        ("attack", text("probe-process")),
        ("handle", text("escape-no-such-process")),
        ("port", text(port.to_string())),
    ]));
    let shape = |answers: &[(String, String)]| -> Vec<String> {
        answers
            .iter()
            .map(|(import, answer)| {
                format!(
                    "{import} {}",
                    answer
                        .replace("escape-no-such-process", "X")
                        .replace("escape-process", "X")
                )
            })
            .collect()
    };
    assert_eq!(shape(&foreign), shape(&unknown));
    assert_eq!(foreign[1].1, "ok none");
    assert_eq!(foreign[2].1, "ok 0 lines []");
    assert_eq!(foreign[3].1, "ok");
    assert_eq!(
        labelled_processes(h.home()).len(),
        1,
        "a foreign stop touched it"
    );
    for handle in ["../escape-process", "escape process", "/proc/1"] {
        let answers =
            steps(h.attack(&[("attack", text("probe-process")), ("handle", text(handle))]));
        for (_, answer) in answers {
            assert_contains(&answer, &["invalid: ", "process name"]);
        }
    }

    // Its log is read back without the secret it was given.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "pearld password is {secret}"))
        .unwrap();
    let tail = steps(h.attack(&[
        ("attack", text("probe-process")),
        ("handle", text("escape-process")),
        ("keep", ExtraValue::Boolean(true)),
    ]));
    assert!(
        tail[2].1.contains("[REDACTED]") && !tail[2].1.contains(secret),
        "{tail:?}"
    );

    // The quota is one process: the next is denied, and nothing starts.
    let error = h.attack(&spawn("escape-second"));
    assert_contains(&denied(error), &["quotas.processes", "the quota is 1"]);
    assert_eq!(labelled_processes(h.home()).len(), 1);

    // The session record may name only the gateway's declared ports.
    for url in [
        "http://127.0.0.1:22/metrics".to_owned(),
        format!("http://10.0.0.1:{metrics}/metrics"),
        format!("http://user:pw@127.0.0.1:{metrics}/metrics"),
    ] {
        let error = h.attack(&[
            ("attack", text("sidecar-write-processes")),
            ("metrics_url", text(url.clone())),
            ("wallet_address", text(USER_WALLET)),
        ]);
        assert!(matches!(error, Error::Invalid(_)), "{url}: {error:?}");
    }
    assert!(h.sidecar_bytes().is_none());

    // Its own stop ends it.
    let stopped = steps(h.attack(&[
        ("attack", text("probe-process")),
        ("handle", text("escape-process")),
    ]));
    assert_eq!(stopped[3].1, "ok");
    wait_until("the process to end", Duration::from_secs(10), || {
        labelled_processes(h.home()).is_empty()
    });
}
