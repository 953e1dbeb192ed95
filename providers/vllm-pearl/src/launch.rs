//! From `[mining]` to a container spec and a session record (reference §3.2).
//! Pure: no import is called here, so every rule is unit-tested natively.

use mining_provider_sdk::host::containers::{
    ContainerSpec, EnvValue, GpuRequest, Mount, MountSource, Port,
};
use mining_provider_sdk::host::sidecar::Session;
use mining_provider_sdk::types::{Error, ExtraValue, MiningConfig, SubmitTarget};

pub const DEFAULT_IMAGE: &str = "openjarvis/pearl-miner:master";
pub const CONTAINER_NAME: &str = "openjarvis-pearl-miner";
pub const LOCAL_MODEL_BIND_PATH: &str = "/models/openjarvis-local-pearl-model";
const HF_CACHE_BIND_PATH: &str = "/root/.cache/huggingface";
const SHM_SIZE_BYTES: u64 = 8 << 30;
const GATEWAY_SOCKET: &str = "/tmp/pearlgw.sock";

/// What `start` will ask the host for.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub spec: ContainerSpec,
    /// The session record, without the container id (known after `run`).
    pub session: Session,
}

pub fn plan(config: &MiningConfig) -> Result<Launch, Error> {
    let pearld_rpc_url = match &config.submit_target {
        SubmitTarget::Solo(solo) => solo.pearld_rpc_url.clone(),
        SubmitTarget::Pool(_) => {
            return Err(Error::Invalid(
                "pool mining is not supported yet: set [mining].submit_target = \"solo\"".into(),
            ));
        }
    };
    let image = config.extra_text_or("docker_image_tag", DEFAULT_IMAGE);
    let model = config.extra_text_or("model", pearl_catalog::DEFAULT_PEARL_MODEL);
    let spec_defaults = pearl_catalog::find(&model);
    let vllm_port = port(config, "vllm_port", 8000)?;
    let gateway_port = port(config, "gateway_port", 8337)?;
    let gateway_metrics_port = port(config, "gateway_metrics_port", 8339)?;
    let gpu_memory_utilization = config.extra_float(
        "gpu_memory_utilization",
        spec_defaults.map_or(0.96, |s| s.default_gpu_memory_utilization),
        0.05..=1.0,
    )?;
    let max_model_len = config.extra_integer(
        "max_model_len",
        spec_defaults.map_or(8192, |s| i64::from(s.default_max_model_len)),
        1..=10_000_000,
    )?;
    let local_model = config.extra_text("local_model_path");

    let mut args = vec![
        local_model
            .as_ref()
            .map_or(model.clone(), |_| LOCAL_MODEL_BIND_PATH.to_owned()),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        vllm_port.to_string(),
        "--gpu-memory-utilization".into(),
        gpu_memory_utilization.to_string(),
        "--enforce-eager".into(),
        "--max-model-len".into(),
        max_model_len.to_string(),
    ];
    if local_model.is_some() {
        args.extend(["--served-model-name".to_owned(), model.clone()]);
    }
    args.extend(extra_vllm_args(config)?);

    let gpu_ids: Vec<String> = config
        .extra_text("cuda_visible_devices")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let mut env: Vec<(String, EnvValue)> = vec![
        text("PEARLD_RPC_URL", &pearld_rpc_url),
        text(
            "PEARLD_RPC_USER",
            &config.extra_text_or("pearld_rpc_user", "rpcuser"),
        ),
        (
            "PEARLD_RPC_PASSWORD".into(),
            EnvValue::Secret(
                config.extra_text_or("pearld_rpc_password_env", "PEARLD_RPC_PASSWORD"),
            ),
        ),
        text("PEARLD_MINING_ADDRESS", &config.wallet_address),
        (
            "HF_TOKEN".into(),
            EnvValue::OptionalSecret(config.extra_text_or("hf_token_env", "HF_TOKEN")),
        ),
        text("MINER_RPC_TRANSPORT", "uds"),
        text("MINER_RPC_SOCKET_PATH", GATEWAY_SOCKET),
    ];
    let gpus = match config.extra_text("gpu_request").as_deref() {
        // For trying the flow against a test image on a host without GPUs.
        Some("none") => GpuRequest::None,
        None | Some("auto") if gpu_ids.is_empty() => GpuRequest::All,
        None | Some("auto") => {
            let local: Vec<String> = (0..gpu_ids.len()).map(|i| i.to_string()).collect();
            env.push(text("CUDA_VISIBLE_DEVICES", &local.join(",")));
            env.push(text("NVIDIA_VISIBLE_DEVICES", &gpu_ids.join(",")));
            GpuRequest::DeviceIds(gpu_ids)
        }
        Some(other) => {
            return Err(Error::Invalid(format!(
                "[mining.extra].gpu_request must be \"auto\" or \"none\", got {other:?}"
            )));
        }
    };
    let mut mounts = vec![Mount {
        source: MountSource::HfCache,
        target: HF_CACHE_BIND_PATH.into(),
        read_only: false,
    }];
    if let Some(path) = &local_model {
        mounts.push(Mount {
            source: MountSource::HostPath(path.clone()),
            target: LOCAL_MODEL_BIND_PATH.into(),
            read_only: true,
        });
    }
    let loopback = |port: u16| format!("http://127.0.0.1:{port}");
    Ok(Launch {
        spec: ContainerSpec {
            name: CONTAINER_NAME.into(),
            image: image.clone(),
            args,
            env,
            gpus,
            mounts,
            // On the host network nothing is published, but the host
            // records these as the session's endpoints (and checks they
            // are free before the container starts).
            ports: [vllm_port, gateway_port, gateway_metrics_port]
                .into_iter()
                .map(|port| Port {
                    host: port,
                    container: port,
                })
                .collect(),
            shm_size_bytes: Some(SHM_SIZE_BYTES),
            network: "host".into(),
            restart: "unless-stopped".into(),
        },
        session: Session {
            vllm_endpoint: format!("{}/v1", loopback(vllm_port)),
            model,
            gateway_url: loopback(gateway_port),
            gateway_metrics_url: loopback(gateway_metrics_port),
            metrics_url: format!("{}/metrics", loopback(vllm_port)),
            container_id: String::new(),
            wallet_address: config.wallet_address.clone(),
            image,
        },
    })
}

fn text(name: &str, value: &str) -> (String, EnvValue) {
    (name.to_owned(), EnvValue::Text(value.to_owned()))
}

fn port(config: &MiningConfig, key: &str, default: u16) -> Result<u16, Error> {
    config
        .extra_integer(key, i64::from(default), 1..=65535)
        .map(|p| p as u16)
}

/// `[mining.extra].vllm_args`: a shell-quoted string or a list.
fn extra_vllm_args(config: &MiningConfig) -> Result<Vec<String>, Error> {
    match config.extra("vllm_args") {
        None => Ok(Vec::new()),
        Some(ExtraValue::Texts(args)) => Ok(args.clone()),
        Some(ExtraValue::Text(line)) => shlex::split(line).ok_or_else(|| {
            Error::Invalid(format!(
                "[mining.extra].vllm_args has unbalanced quotes: {line:?}"
            ))
        }),
        Some(_) => Err(Error::Invalid(
            "[mining.extra].vllm_args must be a string or list".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
