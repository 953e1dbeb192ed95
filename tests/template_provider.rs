//! The documented provider template (providers/examples/rust-template) is a
//! working provider: built into a component by tests/build.rs, loaded like
//! any installed provider, and exercised through the sandbox and the policy.

use jarvis_mine::bindings::{Error, ExtraValue, MiningConfig, SoloTarget, SubmitTarget};
use jarvis_mine::host::Session;
use jarvis_mine::paths::Paths;
use jarvis_mine::provider::LoadedProvider;
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use jarvis_mine_tests::{
    guest_facts, linux_with_gpus, load, load_with_policy, sandbox, template_component, user_policy,
};

const GRANT: &str = r#"
[providers.provider-template]
capabilities = ["containers", "sidecar", "metrics"]
gpus = ["*"]
[providers.provider-template.containers]
images = ["acme/miner:*"]
network_modes = ["host"]
env = ["MINER_*"]
secrets = ["MINER_TOKEN"]
"#;

fn session(home: &std::path::Path) -> Session {
    Session::new(
        "template-session",
        Paths::with_home(home),
        Err("no Docker in this test".into()),
    )
}

fn config(image: Option<&str>) -> MiningConfig {
    MiningConfig {
        provider: "provider-template".into(),
        wallet_address: "prl1qexampleaddress".into(),
        submit_target: SubmitTarget::Solo(SoloTarget {
            pearld_rpc_url: "http://127.0.0.1:44107".into(),
        }),
        fee_bps: 0,
        fee_payout_address: None,
        extra: image
            .map(|image| vec![("image".to_owned(), ExtraValue::Text(image.to_owned()))])
            .unwrap_or_default(),
        workers: jarvis_mine::bindings::WorkersSetting::Auto,
        gpus: Vec::new(),
    }
}

fn start(
    sandbox: &Sandbox,
    provider: &LoadedProvider,
    home: &std::path::Path,
    image: Option<&str>,
) -> Result<(), Error> {
    provider
        .start(
            sandbox,
            provider.host_context(session(home)),
            &config(image),
        )
        .expect("start does not trap")
}

#[test]
fn detect_decides_from_the_facts_it_is_allowed_to_see() {
    let sandbox = sandbox(SandboxLimits::default());
    let granted = load_with_policy(&sandbox, &template_component(), &user_policy(GRANT));
    assert_eq!(granted.id(), "provider-template");
    assert_eq!(
        granted.info.capabilities,
        ["containers", "sidecar", "metrics"]
    );
    let mut h100 = linux_with_gpus(&[("NVIDIA H100 80GB HBM3", "9.0", 81_559)]);
    h100.docker = Some(host_gpu::DockerFacts {
        reachable: Some(true),
        version: Some("28.2.2".into()),
        error: None,
    });
    let verdict = granted
        .detect(&sandbox, &guest_facts(&h100), "vllm", "any")
        .unwrap();
    assert!(verdict.supported, "{verdict:?}");

    let mut small = linux_with_gpus(&[("NVIDIA GeForce RTX 4080", "8.9", 16_376)]);
    small.docker = h100.docker.clone();
    let verdict = granted
        .detect(&sandbox, &guest_facts(&small), "vllm", "any")
        .unwrap();
    assert_eq!(
        verdict.reason.as_deref(),
        Some(
            "provider-template needs an NVIDIA GPU with at least 24576 MiB; the largest has 16376 MiB"
        )
    );

    // Installed and not granted: it sees no GPU at all.
    let ungranted = load(&sandbox, &template_component());
    let verdict = ungranted
        .detect(&sandbox, &guest_facts(&h100), "vllm", "any")
        .unwrap();
    assert_eq!(
        verdict.reason.as_deref(),
        Some("provider-template needs an NVIDIA GPU")
    );
}

#[test]
fn its_lifecycle_goes_through_the_policy() {
    let home = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxLimits::default());
    let granted = load_with_policy(&sandbox, &template_component(), &user_policy(GRANT));

    let missing = start(&sandbox, &granted, home.path(), None).unwrap_err();
    assert!(
        matches!(&missing, Error::Invalid(m) if m.contains("set [mining.extra].image")),
        "{missing:?}"
    );
    let denied = start(&sandbox, &granted, home.path(), Some("evil/miner:1")).unwrap_err();
    assert!(
        matches!(&denied, Error::Denied(m) if m.contains("containers.images")),
        "{denied:?}"
    );
    // Granted image, but no Docker here: the host says so, as data.
    let unavailable = start(&sandbox, &granted, home.path(), Some("acme/miner:1")).unwrap_err();
    assert!(
        matches!(&unavailable, Error::Unavailable(m) if m.contains("no Docker")),
        "{unavailable:?}"
    );

    // No session: stats are empty, stop has nothing to do.
    let stats = granted
        .stats(&sandbox, granted.host_context(session(home.path())))
        .unwrap();
    assert_eq!(stats.provider_id, "provider-template");
    assert_eq!(stats.last_error, None);
    granted
        .stop(&sandbox, granted.host_context(session(home.path())))
        .unwrap()
        .unwrap();

    // Without a grant every step is denied, and stats say why.
    let ungranted = load(&sandbox, &template_component());
    let stats = ungranted
        .stats(&sandbox, ungranted.host_context(session(home.path())))
        .unwrap();
    let reason = stats.last_error.unwrap_or_default();
    assert!(reason.starts_with("denied: "), "{reason}");
    assert!(reason.contains("no policy grants it anything"), "{reason}");
}
