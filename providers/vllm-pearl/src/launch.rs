//! From `[mining]` to container specs and a session record (reference §3.2).
//! Pure: no import is called here, so every rule is unit-tested natively.
//!
//! One container per worker (`[mining.extra].workers`, planned by
//! `pearl_catalog::workers` over the GPUs the host lets this provider use):
//! vLLM uses only the GPUs it is given and, without a tensor-parallel flag,
//! only the first, so one container with every GPU visible mines on one.
//! Worker 0 keeps the reference's container name and ports; worker `i` is
//! `openjarvis-pearl-miner-<i>` on `vllm_port + i`. `[mining.extra].
//! container_name` renames them all (two homes on one Docker engine, each
//! with its own GPUs, need two names; OpenJarvis's tooling then no longer
//! finds worker 0 by its reference name). Only worker 0 declares
//! the gateway's ports: each container's gateway speaks to its miner over
//! a socket in the container's own /tmp, so the others need none.

use mining_provider_sdk::host::containers::{
    ContainerSpec, EnvValue, GpuRequest, Mount, MountSource, Port,
};
use mining_provider_sdk::host::sidecar::{Session, WorkerSession};
use mining_provider_sdk::types::{
    Error, ExtraValue, Gpu, MiningConfig, SubmitTarget, WorkersSetting,
};
use pearl_catalog::workers::{self as plan, GpuCandidate};

pub const DEFAULT_IMAGE: &str = "openjarvis/pearl-miner:master";
pub const CONTAINER_NAME: &str = "openjarvis-pearl-miner";
pub const LOCAL_MODEL_BIND_PATH: &str = "/models/openjarvis-local-pearl-model";
const HF_CACHE_BIND_PATH: &str = "/root/.cache/huggingface";
const SHM_SIZE_BYTES: u64 = 8 << 30;
const GATEWAY_SOCKET: &str = "/tmp/pearlgw.sock";

/// What `start` will ask the host for.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// One per worker, worker 0 first.
    pub specs: Vec<ContainerSpec>,
    /// The session record, without container ids (known after `run-all`):
    /// worker 0's endpoints, and every worker when there are several.
    pub session: Session,
}

impl Launch {
    /// The session record once the workers' containers have these ids.
    pub fn session_with(&self, ids: &[String]) -> Session {
        let mut session = self.session.clone();
        session.container_id = ids.first().cloned().unwrap_or_default();
        for (worker, id) in session.workers.iter_mut().zip(ids) {
            worker.container_id = id.clone();
        }
        session
    }
}

/// One worker's share of the host: what Docker gives its container.
#[derive(Debug, Clone, PartialEq)]
struct WorkerGpus {
    request: GpuRequest,
    /// Host GPU ids, for the session record.
    ids: Vec<String>,
    env: Vec<(String, EnvValue)>,
    args: Vec<String>,
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
    let base_name = config.extra_text_or("container_name", CONTAINER_NAME);
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
        String::new(),
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
    let env: Vec<(String, EnvValue)> = vec![
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
    let workers = worker_gpus(config, &model)?;
    let mut specs = Vec::with_capacity(workers.len());
    let mut sessions = Vec::with_capacity(workers.len());
    for (index, worker) in (0u32..).zip(workers) {
        let port =
            plan::worker_port(vllm_port, index).map_err(|err| Error::Invalid(err.to_string()))?;
        let mut args = args.clone();
        args[PORT_ARG] = port.to_string();
        args.extend(worker.args);
        let mut ports = vec![port];
        if index == 0 {
            ports.extend([gateway_port, gateway_metrics_port]);
        }
        specs.push(ContainerSpec {
            name: worker_name(&base_name, index),
            image: image.clone(),
            args,
            env: env.iter().cloned().chain(worker.env).collect(),
            gpus: worker.request,
            mounts: mounts.clone(),
            // On the host network nothing is published, but the host
            // records these as the session's endpoints (and checks they
            // are free before the container starts).
            ports: ports
                .into_iter()
                .map(|port| Port {
                    host: port,
                    container: port,
                })
                .collect(),
            shm_size_bytes: Some(SHM_SIZE_BYTES),
            network: "host".into(),
            restart: "unless-stopped".into(),
        });
        sessions.push(WorkerSession {
            container_id: String::new(),
            gpus: worker.ids,
            vllm_endpoint: format!("{}/v1", loopback(port)),
            metrics_url: format!("{}/metrics", loopback(port)),
        });
    }
    let first = sessions[0].clone();
    Ok(Launch {
        specs,
        session: Session {
            vllm_endpoint: first.vllm_endpoint,
            model,
            gateway_url: loopback(gateway_port),
            gateway_metrics_url: loopback(gateway_metrics_port),
            metrics_url: first.metrics_url,
            container_id: String::new(),
            wallet_address: config.wallet_address.clone(),
            image,
            // One worker keeps the reference's record exactly.
            workers: if sessions.len() > 1 {
                sessions
            } else {
                Vec::new()
            },
        },
    })
}

/// Where `--port`'s value sits in the shared arguments.
const PORT_ARG: usize = 4;

/// Worker 0 keeps the base name (by default the reference's, so
/// OpenJarvis's tooling finds it); worker `n` is `<base>-<n>`.
pub fn worker_name(base: &str, index: u32) -> String {
    match index {
        0 => base.to_owned(),
        n => format!("{base}-{n}"),
    }
}

/// The workers and their GPUs. `single` (and a host that listed no GPU)
/// is the reference's one container with every GPU; otherwise the plan.
/// `gpu_request = "none"` (a test image on a host without GPUs) plans the
/// same workers but gives their containers no device.
fn worker_gpus(config: &MiningConfig, model: &str) -> Result<Vec<WorkerGpus>, Error> {
    let request_devices = match config.extra_text("gpu_request").as_deref() {
        Some("none") => false,
        None | Some("auto") => true,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "[mining.extra].gpu_request must be \"auto\" or \"none\", got {other:?}"
            )));
        }
    };
    let setting = match &config.workers {
        WorkersSetting::Auto if config.gpus.is_empty() => None,
        WorkersSetting::Auto => Some(plan::WorkersSetting::Auto),
        WorkersSetting::Single => None,
        WorkersSetting::Groups(groups) => Some(plan::WorkersSetting::Groups(groups.clone())),
    };
    let Some(setting) = setting else {
        return Ok(vec![single_worker(config, request_devices)]);
    };
    let candidates: Vec<GpuCandidate> = config.gpus.iter().map(candidate).collect();
    let planned = plan::plan_workers(&candidates, model, &setting).map_err(|err| match err {
        plan::PlanError::NoGpu
        | plan::PlanError::NoQualifyingGpu { .. }
        | plan::PlanError::ModelDoesNotFit { .. } => Error::Unavailable(err.to_string()),
        _ => Error::Invalid(err.to_string()),
    })?;
    Ok(planned
        .workers
        .iter()
        .map(|worker| WorkerGpus {
            request: if request_devices {
                GpuRequest::DeviceIds(worker.docker_device_ids())
            } else {
                GpuRequest::None
            },
            ids: worker.docker_device_ids(),
            env: vec![
                text("CUDA_VISIBLE_DEVICES", &worker.cuda_visible_devices()),
                text("NVIDIA_VISIBLE_DEVICES", &worker.nvidia_visible_devices()),
            ],
            args: worker.vllm_args(),
        })
        .collect())
}

/// The reference's launch: every GPU (or those `cuda_visible_devices`
/// names) in one container.
fn single_worker(config: &MiningConfig, request_devices: bool) -> WorkerGpus {
    let ids: Vec<String> = config
        .extra_text("cuda_visible_devices")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let mut worker = WorkerGpus {
        request: GpuRequest::None,
        ids: Vec::new(),
        env: Vec::new(),
        args: Vec::new(),
    };
    if request_devices && ids.is_empty() {
        worker.request = GpuRequest::All;
    } else if request_devices {
        let local: Vec<String> = (0..ids.len()).map(|i| i.to_string()).collect();
        worker.env = vec![
            text("CUDA_VISIBLE_DEVICES", &local.join(",")),
            text("NVIDIA_VISIBLE_DEVICES", &ids.join(",")),
        ];
        worker.request = GpuRequest::DeviceIds(ids.clone());
        worker.ids = ids;
    }
    worker
}

fn candidate(gpu: &Gpu) -> GpuCandidate {
    GpuCandidate {
        index: gpu.index,
        uuid: gpu.uuid.clone(),
        name: gpu.name.clone(),
        vendor: gpu.vendor.clone(),
        compute_capability: gpu.compute_capability.clone(),
        memory_total_mib: gpu.memory_total_mib,
    }
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
