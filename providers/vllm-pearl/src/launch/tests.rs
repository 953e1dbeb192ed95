use super::*;
use mining_provider_sdk::types::{PoolTarget, SoloTarget};

fn config(extra: Vec<(&str, ExtraValue)>) -> MiningConfig {
    MiningConfig {
        provider: "vllm-pearl".into(),
        wallet_address: "prl1qexampleaddress".into(),
        submit_target: SubmitTarget::Solo(SoloTarget {
            pearld_rpc_url: "http://localhost:44107".into(),
        }),
        fee_bps: 0,
        fee_payout_address: None,
        extra: extra.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn text(value: &str) -> ExtraValue {
    ExtraValue::Text(value.into())
}

fn env<'a>(launch: &'a Launch, name: &str) -> Option<&'a EnvValue> {
    launch
        .spec
        .env
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[test]
fn defaults_match_the_reference_launch() {
    let launch = plan(&config(vec![])).unwrap();
    let spec = &launch.spec;
    assert_eq!(spec.name, "openjarvis-pearl-miner");
    assert_eq!(spec.image, "openjarvis/pearl-miner:master");
    assert_eq!(
        spec.args,
        [
            "pearl-ai/Llama-3.3-70B-Instruct-pearl",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--gpu-memory-utilization",
            "0.96",
            "--enforce-eager",
            "--max-model-len",
            "8192"
        ]
    );
    assert_eq!(spec.gpus, GpuRequest::All);
    assert_eq!(spec.shm_size_bytes, Some(8 << 30));
    assert_eq!(
        (spec.network.as_str(), spec.restart.as_str()),
        ("host", "unless-stopped")
    );
    assert_eq!(
        env(&launch, "PEARLD_RPC_PASSWORD"),
        Some(&EnvValue::Secret("PEARLD_RPC_PASSWORD".into()))
    );
    assert_eq!(
        env(&launch, "HF_TOKEN"),
        Some(&EnvValue::OptionalSecret("HF_TOKEN".into()))
    );
    assert_eq!(
        env(&launch, "MINER_RPC_TRANSPORT"),
        Some(&EnvValue::Text("uds".into()))
    );
    assert_eq!(env(&launch, "CUDA_VISIBLE_DEVICES"), None);
    assert_eq!(launch.session.vllm_endpoint, "http://127.0.0.1:8000/v1");
    assert_eq!(launch.session.metrics_url, "http://127.0.0.1:8000/metrics");
    assert_eq!(launch.session.gateway_metrics_url, "http://127.0.0.1:8339");
    assert_eq!(spec.mounts.len(), 1);
    assert_eq!(spec.mounts[0].source, MountSource::HfCache);
}

#[test]
fn gpu_ids_map_host_to_container() {
    let launch = plan(&config(vec![("cuda_visible_devices", text(" 1, 3 "))])).unwrap();
    assert_eq!(
        launch.spec.gpus,
        GpuRequest::DeviceIds(vec!["1".into(), "3".into()])
    );
    assert_eq!(
        env(&launch, "NVIDIA_VISIBLE_DEVICES"),
        Some(&EnvValue::Text("1,3".into()))
    );
    assert_eq!(
        env(&launch, "CUDA_VISIBLE_DEVICES"),
        Some(&EnvValue::Text("0,1".into()))
    );
    let none = plan(&config(vec![("gpu_request", text("none"))])).unwrap();
    assert_eq!(none.spec.gpus, GpuRequest::None);
    assert!(plan(&config(vec![("gpu_request", text("some"))])).is_err());
}

#[test]
fn local_model_and_extra_args() {
    let launch = plan(&config(vec![
        ("local_model_path", text("/data/llama-pearl")),
        (
            "vllm_args",
            text("--tensor-parallel-size 2 --kv-cache-dtype 'fp8'"),
        ),
        ("vllm_port", ExtraValue::Integer(18000)),
    ]))
    .unwrap();
    let args = &launch.spec.args;
    assert_eq!(args[0], LOCAL_MODEL_BIND_PATH);
    assert!(args.windows(2).any(|w| w
        == [
            "--served-model-name",
            "pearl-ai/Llama-3.3-70B-Instruct-pearl"
        ]));
    assert!(args.ends_with(&[
        "--tensor-parallel-size".into(),
        "2".into(),
        "--kv-cache-dtype".into(),
        "fp8".into()
    ]));
    assert_eq!(
        launch.spec.mounts[1].source,
        MountSource::HostPath("/data/llama-pearl".into())
    );
    assert!(launch.spec.mounts[1].read_only);
    assert_eq!(launch.session.vllm_endpoint, "http://127.0.0.1:18000/v1");
    let list = plan(&config(vec![(
        "vllm_args",
        ExtraValue::Texts(vec!["--a".into(), "b c".into()]),
    )]))
    .unwrap();
    assert!(list.spec.args.ends_with(&["--a".into(), "b c".into()]));
}

#[test]
fn bad_values_are_invalid_before_anything_happens() {
    let mut pool = config(vec![]);
    pool.submit_target = SubmitTarget::Pool(PoolTarget {
        url: "https://pool.example/submit".into(),
        worker_id: None,
    });
    match plan(&pool) {
        Err(Error::Invalid(message)) => {
            assert!(message.starts_with("pool mining is not supported yet"))
        }
        other => panic!("{other:?}"),
    }
    for (key, value) in [
        ("vllm_port", ExtraValue::Integer(70000)),
        ("vllm_port", text("eighty")),
        ("gpu_memory_utilization", ExtraValue::Float(1.5)),
        ("vllm_args", text("--x 'unbalanced")),
        ("vllm_args", ExtraValue::Boolean(true)),
    ] {
        assert!(
            matches!(plan(&config(vec![(key, value)])), Err(Error::Invalid(_))),
            "{key}"
        );
    }
}
