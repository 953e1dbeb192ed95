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
        workers: WorkersSetting::Auto,
        gpus: Vec::new(),
    }
}

fn text(value: &str) -> ExtraValue {
    ExtraValue::Text(value.into())
}

fn env<'a>(launch: &'a Launch, name: &str) -> Option<&'a EnvValue> {
    worker_env(&launch.specs[0], name)
}

fn worker_env<'a>(spec: &'a ContainerSpec, name: &str) -> Option<&'a EnvValue> {
    spec.env.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn gpu(index: u32, name: &str, compute_capability: &str, memory_total_mib: u64) -> Gpu {
    Gpu {
        index,
        uuid: Some(format!("GPU-{index:04}")),
        name: name.into(),
        vendor: "nvidia".into(),
        compute_capability: Some(compute_capability.into()),
        memory_total_mib: Some(memory_total_mib),
    }
}

fn h100s(count: u32) -> Vec<Gpu> {
    (0..count)
        .map(|i| gpu(i, "NVIDIA H100 80GB HBM3", "9.0", 81_559))
        .collect()
}

fn on(gpus: Vec<Gpu>, workers: WorkersSetting, extra: Vec<(&str, ExtraValue)>) -> MiningConfig {
    MiningConfig {
        gpus,
        workers,
        ..config(extra)
    }
}

#[test]
fn defaults_match_the_reference_launch() {
    let launch = plan(&config(vec![])).unwrap();
    let spec = &launch.specs[0];
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
        launch.specs[0].gpus,
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
    assert_eq!(none.specs[0].gpus, GpuRequest::None);
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
    let args = &launch.specs[0].args;
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
        launch.specs[0].mounts[1].source,
        MountSource::HostPath("/data/llama-pearl".into())
    );
    assert!(launch.specs[0].mounts[1].read_only);
    assert_eq!(launch.session.vllm_endpoint, "http://127.0.0.1:18000/v1");
    let list = plan(&config(vec![(
        "vllm_args",
        ExtraValue::Texts(vec!["--a".into(), "b c".into()]),
    )]))
    .unwrap();
    assert!(list.specs[0].args.ends_with(&["--a".into(), "b c".into()]));
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

#[test]
fn one_worker_per_h100_on_an_eight_gpu_host() {
    let launch = plan(&on(h100s(8), WorkersSetting::Auto, vec![])).unwrap();
    assert_eq!(launch.specs.len(), 8);
    for (i, spec) in launch.specs.iter().enumerate() {
        let name = if i == 0 {
            "openjarvis-pearl-miner".to_owned()
        } else {
            format!("openjarvis-pearl-miner-{i}")
        };
        assert_eq!(spec.name, name);
        assert_eq!(spec.gpus, GpuRequest::DeviceIds(vec![i.to_string()]));
        assert_eq!(
            worker_env(spec, "NVIDIA_VISIBLE_DEVICES"),
            Some(&EnvValue::Text(i.to_string()))
        );
        assert_eq!(
            worker_env(spec, "CUDA_VISIBLE_DEVICES"),
            Some(&EnvValue::Text("0".into()))
        );
        let port = 8000 + i as u16;
        assert_eq!(spec.args[3..5], ["--port".to_owned(), port.to_string()]);
        assert!(!spec.args.contains(&"--tensor-parallel-size".to_owned()));
        // Only worker 0 declares the gateway's ports.
        let ports: Vec<u16> = spec.ports.iter().map(|p| p.host).collect();
        assert_eq!(
            ports,
            if i == 0 {
                vec![8000, 8337, 8339]
            } else {
                vec![port]
            }
        );
    }
    let session = launch.session_with(&(0..8).map(|i| format!("c{i}")).collect::<Vec<_>>());
    assert_eq!(session.container_id, "c0");
    assert_eq!(session.vllm_endpoint, "http://127.0.0.1:8000/v1");
    assert_eq!(session.workers.len(), 8);
    assert_eq!(session.workers[7].container_id, "c7");
    assert_eq!(session.workers[7].gpus, ["7"]);
    assert_eq!(session.workers[7].vllm_endpoint, "http://127.0.0.1:8007/v1");
    assert_eq!(
        session.workers[7].metrics_url,
        "http://127.0.0.1:8007/metrics"
    );
}

#[test]
fn container_name_renames_every_worker() {
    let launch = plan(&on(
        h100s(3),
        WorkersSetting::Auto,
        vec![("container_name", text("miner-alice"))],
    ))
    .unwrap();
    let names: Vec<&str> = launch.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["miner-alice", "miner-alice-1", "miner-alice-2"]);
}

#[test]
fn a_4090_beside_h100s_is_left_out() {
    let mut gpus = h100s(2);
    gpus.push(gpu(2, "NVIDIA GeForce RTX 4090", "8.9", 24_564));
    let launch = plan(&on(gpus, WorkersSetting::Auto, vec![])).unwrap();
    let devices: Vec<&GpuRequest> = launch.specs.iter().map(|s| &s.gpus).collect();
    assert_eq!(
        devices,
        [
            &GpuRequest::DeviceIds(vec!["0".into()]),
            &GpuRequest::DeviceIds(vec!["1".into()])
        ]
    );
}

#[test]
fn explicit_groups_run_tensor_parallel() {
    let groups =
        WorkersSetting::Groups(vec![vec!["0".into()], vec!["GPU-0002".into(), "3".into()]]);
    let launch = plan(&on(h100s(4), groups, vec![])).unwrap();
    assert_eq!(launch.specs.len(), 2);
    let second = &launch.specs[1];
    assert_eq!(
        second.gpus,
        GpuRequest::DeviceIds(vec!["2".into(), "3".into()])
    );
    assert!(
        second
            .args
            .ends_with(&["--tensor-parallel-size".into(), "2".into()])
    );
    assert_eq!(
        worker_env(second, "CUDA_VISIBLE_DEVICES"),
        Some(&EnvValue::Text("0,1".into()))
    );
    assert_eq!(
        worker_env(second, "NVIDIA_VISIBLE_DEVICES"),
        Some(&EnvValue::Text("2,3".into()))
    );
    assert_eq!(launch.session.workers[1].gpus, ["2", "3"]);
}

#[test]
fn single_is_the_reference_launch_and_one_worker_keeps_its_record() {
    let single = plan(&on(h100s(8), WorkersSetting::Single, vec![])).unwrap();
    assert_eq!(single.specs.len(), 1);
    assert_eq!(single.specs[0].gpus, GpuRequest::All);
    assert!(single.session.workers.is_empty());
    let one = plan(&on(h100s(1), WorkersSetting::Auto, vec![])).unwrap();
    assert_eq!(one.specs.len(), 1);
    assert_eq!(one.specs[0].gpus, GpuRequest::DeviceIds(vec!["0".into()]));
    assert!(one.session.workers.is_empty());
}

#[test]
fn no_gpu_request_plans_the_same_workers_without_devices() {
    let launch = plan(&on(
        h100s(3),
        WorkersSetting::Auto,
        vec![("gpu_request", text("none"))],
    ))
    .unwrap();
    assert_eq!(launch.specs.len(), 3);
    assert!(launch.specs.iter().all(|s| s.gpus == GpuRequest::None));
    assert_eq!(launch.session.workers[2].gpus, ["2"]);
}

#[test]
fn plans_that_cannot_be_made_say_why() {
    let ada = vec![gpu(0, "NVIDIA GeForce RTX 4090", "8.9", 24_564)];
    match plan(&on(ada, WorkersSetting::Auto, vec![])) {
        Err(Error::Unavailable(reason)) => assert!(reason.contains("RTX 4090"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let unknown = WorkersSetting::Groups(vec![vec!["9".into()]]);
    match plan(&on(h100s(2), unknown, vec![])) {
        Err(Error::Invalid(reason)) => assert!(reason.contains('9'), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Worker ports past 65535.
    let high = vec![("vllm_port", ExtraValue::Integer(65_530))];
    assert!(matches!(
        plan(&on(h100s(8), WorkersSetting::Auto, high)),
        Err(Error::Invalid(_))
    ));
}
