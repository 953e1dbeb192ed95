use super::*;
use crate::bindings::Capability as C;
use std::time::Duration;

const SYSTEM: &str = "/etc/openjarvis/mining-policy.toml";
const USER: &str = "/home/u/.openjarvis/mining/policy.toml";

fn layer(text: Option<&str>, path: &str) -> Layer {
    match text {
        None => Layer::Absent,
        Some(text) => match PolicyFile::parse(text, Path::new(path)) {
            Ok(file) => Layer::Loaded(Arc::new(file)),
            Err(err) => Layer::Broken(err.to_string()),
        },
    }
}

fn policy(system: Option<&str>, user: Option<&str>) -> Policy {
    Policy {
        system_path: SYSTEM.into(),
        system: layer(system, SYSTEM),
        user_path: USER.into(),
        user: layer(user, USER),
    }
}

fn run(image: &str) -> RunRequest {
    RunRequest {
        image: image.into(),
        network: "host".into(),
        ..RunRequest::default()
    }
}

fn denied(result: Result<(), Denial>) -> String {
    result.expect_err("should be denied").reason
}

#[test]
fn builtins_are_unconstrained_without_policy_files() {
    let p = policy(None, None).for_provider("vllm-pearl", true);
    let mut request = run("anything/at:all");
    request.gpus = GpuAsk::All;
    request.mounts = vec![("/data".into(), false)];
    request.secrets = vec!["PEARLD_RPC_PASSWORD".into()];
    assert_eq!(
        p.check(C::Containers, &Request::RunContainer(&request)),
        Ok(())
    );
    assert!(p.gpu_visible(3, Some("GPU-x")));
}

#[test]
fn installed_providers_get_nothing_unless_named() {
    let p = policy(None, None).for_provider("stranger", false);
    let err = denied(p.check(C::Sidecar, &Request::Own { target: "" }));
    assert!(err.contains("no policy grants it anything"), "{err}");
    assert!(err.contains("[providers.\"stranger\"]"), "{err}");
    assert!(err.contains(USER), "{err}");
    assert!(!p.gpu_visible(0, None));
}

#[test]
fn an_installed_grant_leaving_a_key_out_grants_nothing_there() {
    let user = r#"
[providers.stranger]
capabilities = ["containers"]
[providers.stranger.containers]
images = ["stranger/*:*"]
network_modes = ["bridge"]
"#;
    let p = policy(None, Some(user)).for_provider("stranger", false);
    assert_eq!(
        p.check(
            C::Containers,
            &Request::EnsureImage {
                image: "stranger/miner:1"
            }
        ),
        Ok(())
    );
    let err = denied(p.check(C::Sidecar, &Request::Own { target: "" }));
    assert!(
        err.contains("capability 'sidecar' is not in providers.\"stranger\".capabilities"),
        "{err}"
    );
    let mut request = run("stranger/miner:1");
    request.network = "bridge".into();
    request.env_names = vec!["TOKEN".into()];
    let err = denied(p.check(C::Containers, &Request::RunContainer(&request)));
    assert!(
        err.contains("providers.\"stranger\".containers.env is not set"),
        "{err}"
    );
}

#[test]
fn the_denial_names_the_key_and_the_file() {
    let system = r#"
[providers.x.containers]
images = ["pearl/*"]
"#;
    let user = r#"
[providers.x]
capabilities = ["containers"]
[providers.x.containers]
images = ["*"]
"#;
    let p = policy(Some(system), Some(user)).for_provider("x", false);
    let err = denied(p.check(
        C::Containers,
        &Request::EnsureImage {
            image: "evil/miner:latest",
        },
    ));
    assert_eq!(
        err,
        format!(
            "image 'evil/miner:latest' is not in providers.\"x\".containers.images (policy {SYSTEM})"
        )
    );
}

#[test]
fn a_user_file_cannot_loosen_the_system_file() {
    let system = r#"
[default]
capabilities = ["sidecar"]
gpus = ["0"]
[default.limits]
memory_mib = 32
"#;
    let user = r#"
[providers.vllm-pearl]
capabilities = ["containers", "sidecar", "metrics"]
gpus = ["*"]
[providers.vllm-pearl.limits]
memory_mib = 512
"#;
    let p = policy(Some(system), Some(user)).for_provider("vllm-pearl", true);
    assert_eq!(p.check(C::Sidecar, &Request::Own { target: "" }), Ok(()));
    let err = denied(p.check(C::Containers, &Request::Own { target: "" }));
    assert!(err.contains("default.capabilities"), "{err}");
    assert!(err.contains(SYSTEM), "{err}");
    assert!(p.gpu_visible(0, None));
    assert!(!p.gpu_visible(1, None));
    let limits = crate::sandbox::SandboxLimits::default().narrowed(&p.limit_ceilings());
    assert_eq!(limits.memory_bytes, 32 << 20);
}

#[test]
fn the_system_file_can_revoke_a_builtin() {
    let system = "[providers.cpu-pearl]\ncapabilities = []\n";
    let p = policy(Some(system), None);
    let cpu = p.for_provider("cpu-pearl", true);
    assert!(
        denied(cpu.check(C::Containers, &Request::Own { target: "" }))
            .contains("providers.\"cpu-pearl\".capabilities")
    );
    assert_eq!(
        p.for_provider("vllm-pearl", true)
            .check(C::Containers, &Request::Own { target: "" }),
        Ok(())
    );
}

#[test]
fn a_system_grant_serves_an_installed_provider_the_user_does_not_name() {
    let system = r#"
[providers.approved]
capabilities = ["sidecar"]
"#;
    let p = policy(Some(system), None).for_provider("approved", false);
    assert_eq!(p.check(C::Sidecar, &Request::Own { target: "" }), Ok(()));
    assert!(p.check(C::Metrics, &Request::Own { target: "" }).is_err());
}

#[test]
fn a_broken_system_policy_denies_everything() {
    let p = policy(Some("[providers.x]\nbogus = 1\n"), None);
    let problem = p.system_problem().unwrap();
    assert!(problem.contains(&format!("{SYSTEM}:2:1")), "{problem}");
    let builtin = p.for_provider("vllm-pearl", true);
    let err = denied(builtin.check(C::Sidecar, &Request::Own { target: "" }));
    assert!(err.contains("every privileged call is denied"), "{err}");
    assert!(!builtin.gpu_visible(0, None));
    assert!(p.admit_installed(&"a".repeat(64)).is_err());
}

#[test]
fn installed_rules_gate_loading() {
    let sha = "ab".repeat(32);
    assert_eq!(policy(None, None).admit_installed(&sha), Ok(()));
    let off = policy(Some("[installed]\nallow = false\n"), None);
    assert!(
        off.admit_installed(&sha)
            .unwrap_err()
            .contains("installed.allow")
    );
    let pinned = format!("[installed]\nsha256 = [\"{}\"]\n", "cd".repeat(32));
    let err = policy(None, Some(&pinned))
        .admit_installed(&sha)
        .unwrap_err();
    assert!(err.contains("is not in installed.sha256"), "{err}");
    let ok = format!("[installed]\nsha256 = [\"{}\"]\n", sha.to_uppercase());
    assert_eq!(policy(Some(&ok), None).admit_installed(&sha), Ok(()));
}

#[test]
fn container_constraints_are_each_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("llama")).unwrap();
    let models = models.canonicalize().unwrap();
    let user = format!(
        r#"
[providers.p]
capabilities = ["containers"]
gpus = ["1", "GPU-aaaa"]
[providers.p.containers]
images = ["pearl/miner:*"]
mounts = [{{ path = "{}", read_only = true }}]
network_modes = ["bridge"]
ports = [8000, "9000-9001"]
env = ["MINER_*"]
secrets = ["HF_TOKEN"]
"#,
        models.display()
    );
    let p = policy(None, Some(&user)).for_provider("p", false);
    let good = RunRequest {
        image: "pearl/miner:1".into(),
        gpus: GpuAsk::Ids(vec!["1".into(), "GPU-AAAA".into()]),
        mounts: vec![(models.join("llama"), true)],
        network: "bridge".into(),
        host_ports: vec![8000, 9001],
        env_names: vec!["MINER_X".into()],
        secrets: vec!["HF_TOKEN".into()],
        ..RunRequest::default()
    };
    assert_eq!(
        p.check(C::Containers, &Request::RunContainer(&good)),
        Ok(())
    );
    let cases: Vec<(RunRequest, &str)> = vec![
        (
            RunRequest {
                image: "evil/miner:1".into(),
                ..good.clone()
            },
            "containers.images",
        ),
        (
            RunRequest {
                gpus: GpuAsk::Ids(vec!["0".into()]),
                ..good.clone()
            },
            "GPU '0' is not in providers.\"p\".gpus",
        ),
        (
            RunRequest {
                gpus: GpuAsk::All,
                ..good.clone()
            },
            "cuda_visible_devices",
        ),
        (
            RunRequest {
                gpus: GpuAsk::Count(1),
                ..good.clone()
            },
            "a number of GPUs",
        ),
        (
            RunRequest {
                mounts: vec![(models.join("llama"), false)],
                ..good.clone()
            },
            "(read-write) is not in",
        ),
        (
            RunRequest {
                mounts: vec![(dir.path().to_owned(), true)],
                ..good.clone()
            },
            "containers.mounts",
        ),
        (
            RunRequest {
                network: "host".into(),
                ..good.clone()
            },
            "network mode 'host'",
        ),
        (
            RunRequest {
                host_ports: vec![22],
                ..good.clone()
            },
            "host port 22",
        ),
        (
            RunRequest {
                env_names: vec!["LD_PRELOAD".into()],
                ..good.clone()
            },
            "'LD_PRELOAD'",
        ),
        (
            RunRequest {
                secrets: vec!["PEARLD_RPC_PASSWORD".into()],
                ..good.clone()
            },
            "secret 'PEARLD_RPC_PASSWORD' is not in providers.\"p\".containers.secrets",
        ),
    ];
    for (request, expected) in cases {
        let err = denied(p.check(C::Containers, &Request::RunContainer(&request)));
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn pinned_digests_need_a_matching_local_image() {
    let digest = format!("sha256:{}", "e".repeat(64));
    let system = format!("[providers.vllm-pearl.containers]\ndigests = [\"{digest}\"]\n");
    let p = policy(Some(&system), None).for_provider("vllm-pearl", true);
    assert!(p.pins_digests());
    let mut request = run("openjarvis/pearl-miner:master");
    request.image_digests = Some(vec![digest.clone()]);
    assert_eq!(
        p.check(C::Containers, &Request::RunContainer(&request)),
        Ok(())
    );
    request.image_digests = Some(vec![format!("openjarvis/pearl-miner@{digest}")]);
    assert_eq!(
        p.check(C::Containers, &Request::RunContainer(&request)),
        Ok(())
    );
    request.image_digests = Some(vec![format!("sha256:{}", "f".repeat(64))]);
    let err = denied(p.check(C::Containers, &Request::RunContainer(&request)));
    assert!(err.contains("containers.digests"), "{err}");
    request.image_digests = Some(vec![]);
    assert!(
        denied(p.check(C::Containers, &Request::RunContainer(&request))).contains("digest unknown")
    );
}

#[test]
fn metrics_endpoints_are_the_session_unless_granted() {
    let session = ScrapeRequest {
        host: "127.0.0.1".into(),
        port: 8000,
        session: true,
    };
    let remote = ScrapeRequest {
        host: "10.0.0.5".into(),
        port: 9100,
        session: false,
    };
    let loopback_other = ScrapeRequest {
        host: "127.0.0.1".into(),
        port: 22,
        session: false,
    };
    let builtin = policy(None, None).for_provider("vllm-pearl", true);
    assert_eq!(
        builtin.check(C::Metrics, &Request::Scrape(&session)),
        Ok(())
    );
    let err = denied(builtin.check(C::Metrics, &Request::Scrape(&remote)));
    assert!(
        err.contains("not one of this session's loopback endpoints"),
        "{err}"
    );
    assert!(
        builtin
            .check(C::Metrics, &Request::Scrape(&loopback_other))
            .is_err()
    );

    let user =
        "[providers.vllm-pearl.metrics]\nendpoints = [\"session\", \"http://10.0.0.5:9100\"]\n";
    let granted = policy(None, Some(user)).for_provider("vllm-pearl", true);
    assert_eq!(granted.check(C::Metrics, &Request::Scrape(&remote)), Ok(()));
    assert_eq!(
        granted.check(C::Metrics, &Request::Scrape(&session)),
        Ok(())
    );

    let system = "[default.metrics]\nendpoints = [\"http://10.0.0.5:*\"]\n";
    let ceiling = policy(Some(system), Some(user)).for_provider("vllm-pearl", true);
    assert_eq!(ceiling.check(C::Metrics, &Request::Scrape(&remote)), Ok(()));
    let err = denied(ceiling.check(C::Metrics, &Request::Scrape(&session)));
    assert!(err.contains("default.metrics.endpoints"), "{err}");
}

#[test]
fn limits_take_the_smallest_value() {
    let system = "[default.limits]\ncall_timeout_ms = 500\n";
    let user = "[providers.vllm-pearl.limits]\ncall_timeout_ms = 900\noutput_kib = 8\nhost_time_ms = 1000\n";
    let p = policy(Some(system), Some(user)).for_provider("vllm-pearl", true);
    let limits = crate::sandbox::SandboxLimits::default().narrowed(&p.limit_ceilings());
    assert_eq!(limits.call_timeout, Duration::from_millis(500));
    assert_eq!(limits.output_bytes, 8 << 10);
    assert_eq!(limits.host_time, Duration::from_secs(1));
    assert_eq!(
        limits.memory_bytes,
        crate::sandbox::SandboxLimits::default().memory_bytes
    );
}

#[test]
fn granted_is_declared_intersected_with_the_policy() {
    let user = "[providers.s]\ncapabilities = [\"sidecar\", \"containers\"]\n";
    let p = policy(None, Some(user)).for_provider("s", false);
    assert_eq!(p.granted(&[C::Containers, C::Metrics]), vec![C::Containers]);
    assert!(
        p.withheld(C::Metrics)
            .unwrap()
            .reason
            .contains("capabilities")
    );
}

fn spawn(
    program: crate::process::Program,
    env: &[&str],
    secrets: &[&str],
    ports: &[u16],
) -> SpawnRequest {
    SpawnRequest {
        name: "gateway".into(),
        program,
        env_names: env.iter().map(|s| s.to_string()).collect(),
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_vec(),
    }
}

#[test]
fn processes_are_granted_per_program_variable_secret_and_port() {
    use crate::process::Program::{Gateway, MinerLoop};
    let user = r#"
[providers.community]
capabilities = ["processes"]
[providers.community.processes]
programs = ["pearl-gateway"]
env = ["PEARLD_*", "MINER_RPC_PORT"]
secrets = ["PEARLD_RPC_PASSWORD"]
ports = ["8337-8339"]
"#;
    let p = policy(None, Some(user)).for_provider("community", false);
    let ok = spawn(
        Gateway,
        &["PEARLD_RPC_URL", "MINER_RPC_PORT"],
        &["PEARLD_RPC_PASSWORD"],
        &[8337, 8339],
    );
    assert_eq!(p.check(C::Processes, &Request::SpawnProcess(&ok)), Ok(()));
    for (request, key) in [
        (spawn(MinerLoop, &[], &[], &[]), "processes.programs"),
        (spawn(Gateway, &["METRICS_BIND"], &[], &[]), "processes.env"),
        (spawn(Gateway, &[], &["HF_TOKEN"], &[]), "processes.secrets"),
        (spawn(Gateway, &[], &[], &[9000]), "processes.ports"),
    ] {
        let err = denied(p.check(C::Processes, &Request::SpawnProcess(&request)));
        assert!(err.contains(key), "{key}: {err}");
    }
    // A key the granting file leaves out grants nothing to an installed provider.
    let bare = "[providers.community]\ncapabilities = [\"processes\"]\n";
    let p = policy(None, Some(bare)).for_provider("community", false);
    let err = denied(p.check(C::Processes, &Request::SpawnProcess(&ok)));
    assert!(err.contains("processes.programs is not set"), "{err}");
    // The system file is a ceiling, even for a built-in.
    let system = "[default.processes]\nprograms = [\"pearl-miner-loop\"]\n";
    let p = policy(Some(system), None).for_provider("cpu-pearl", true);
    let err = denied(p.check(C::Processes, &Request::SpawnProcess(&ok)));
    assert!(err.contains("default.processes.programs"), "{err}");
    assert!(
        PolicyFile::parse(
            "[default.processes]\nprograms = [\"/bin/sh\"]\n",
            Path::new("p")
        )
        .is_err()
    );
    assert_eq!(p.processes_quota().value, quotas::DEFAULT_PROCESSES);
}
