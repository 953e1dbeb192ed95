//! A provider to copy. It mines with a container image of your choosing on
//! one NVIDIA GPU of at least 24 GiB, and shows each part of the contract:
//! a pure `detect` (unit-tested natively below), a `start` that describes a
//! container and records the session, `stop`, and `stats` from the session's
//! own metrics endpoint. Rename it, change `check` and `container`, build it
//! (docs/providers.md), install it with `jarvis mine providers install`, and
//! grant it what it requests in `<home>/mining/policy.toml` (docs/policy.md).

use mining_provider_sdk::host::containers::{self, ContainerSpec, EnvValue, GpuRequest};
use mining_provider_sdk::host::{metrics, sidecar};
use mining_provider_sdk::types::{
    Capabilities, Capability, Error, HardwareFacts, MiningConfig, MiningStats, ProviderInfo,
};
use mining_provider_sdk::{Provider, export_provider, log};

const ID: &str = "provider-template";
const MIN_GPU_MIB: u64 = 24 * 1024;
const CONTAINER: &str = "provider-template-miner";
const METRICS_PORT: u16 = 9400;

struct Template;

impl Provider for Template {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: ID.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Template: a containerised miner on one large NVIDIA GPU".into(),
            // Requests, not grants: the host's policy decides.
            capabilities: vec![
                Capability::Containers,
                Capability::Sidecar,
                Capability::Metrics,
            ],
        }
    }

    fn detect(facts: HardwareFacts, _engine_id: String, _model: String) -> Capabilities {
        check(&facts).into()
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        let image = config.extra_text("image").ok_or_else(|| {
            Error::Invalid(format!(
                "set [mining.extra].image to the miner image {ID} should run"
            ))
        })?;
        containers::ensure_image(&image)?;
        let id = containers::run(&container(&image, &config))?;
        log::info(&format!("started {CONTAINER} ({id})"));
        let endpoint = format!("http://127.0.0.1:{METRICS_PORT}");
        let recorded = sidecar::write(&sidecar::Session {
            vllm_endpoint: format!("{endpoint}/v1"),
            model: config.extra_text_or("model", "unknown"),
            gateway_url: endpoint.clone(),
            gateway_metrics_url: format!("{endpoint}/metrics"),
            metrics_url: format!("{endpoint}/metrics"),
            container_id: id.clone(),
            wallet_address: config.wallet_address.clone(),
            image,
            workers: Vec::new(),
        });
        if let Err(err) = recorded {
            // Never leave a container nobody knows about.
            let _ = containers::stop(&id, 10);
            let _ = containers::remove(&id);
            return Err(err);
        }
        Ok(())
    }

    fn stop() -> Result<(), Error> {
        if let Some(session) = sidecar::read()? {
            containers::stop(&session.container_id, 10)?;
        }
        sidecar::remove()
    }

    fn is_running() -> bool {
        let Ok(Some(session)) = sidecar::read() else {
            return false;
        };
        matches!(containers::inspect(&session.container_id), Ok(Some(state)) if state.running)
    }

    fn stats() -> MiningStats {
        let mut stats = MiningStats::empty(ID);
        let session = match sidecar::read() {
            Ok(Some(session)) => session,
            Ok(None) => return stats,
            Err(err) => {
                stats.last_error = Some(err.describe());
                return stats;
            }
        };
        match metrics::scrape(&session.metrics_url) {
            Ok(samples) => {
                let total = |name: &str| -> u64 {
                    samples
                        .iter()
                        .filter(|s| s.name == name)
                        .map(|s| s.value as u64)
                        .sum()
                };
                stats.shares_submitted = total("miner_shares_submitted_total");
                stats.shares_accepted = total("miner_shares_accepted_total");
                stats.shares_rejected = total("miner_shares_rejected_total");
            }
            Err(err) => stats.last_error = Some(err.describe()),
        }
        stats
    }
}

export_provider!(Template);

/// The whole decision, as a plain function of the facts.
fn check(facts: &HardwareFacts) -> Result<(), String> {
    if facts.os_name() != "linux" {
        return Err(format!(
            "{ID} needs Linux; this host is '{}'",
            facts.os_name()
        ));
    }
    if !facts.docker_reachable() {
        return Err(format!("{ID} needs Docker: start the Docker daemon"));
    }
    match facts.largest_gpu_mib("nvidia") {
        Some(mib) if mib >= MIN_GPU_MIB => Ok(()),
        Some(mib) => Err(format!(
            "{ID} needs an NVIDIA GPU with at least {MIN_GPU_MIB} MiB; the largest has {mib} MiB"
        )),
        None => Err(format!("{ID} needs an NVIDIA GPU")),
    }
}

/// The container, described: the host validates it, checks it against the
/// policy, resolves the secret reference and labels it as this provider's.
fn container(image: &str, config: &MiningConfig) -> ContainerSpec {
    ContainerSpec {
        name: CONTAINER.into(),
        image: image.into(),
        args: vec!["--metrics-port".into(), METRICS_PORT.to_string()],
        env: vec![
            (
                "MINER_WALLET".into(),
                EnvValue::Text(config.wallet_address.clone()),
            ),
            (
                "MINER_TOKEN".into(),
                EnvValue::OptionalSecret("MINER_TOKEN".into()),
            ),
        ],
        gpus: GpuRequest::Count(1),
        mounts: Vec::new(),
        ports: Vec::new(),
        shm_size_bytes: None,
        network: "host".into(),
        restart: "no".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mining_provider_sdk::types::Gpu;

    fn host(os: &str, docker: bool, gpus: &[(&str, u64)]) -> HardwareFacts {
        let mut facts = HardwareFacts::unknown();
        facts.os = Some(os.into());
        facts.docker.reachable = Some(docker);
        facts.gpus = gpus
            .iter()
            .enumerate()
            .map(|(i, (vendor, mib))| Gpu {
                index: i as u32,
                uuid: None,
                name: "gpu".into(),
                vendor: (*vendor).into(),
                compute_capability: None,
                memory_total_mib: Some(*mib),
            })
            .collect();
        facts
    }

    #[test]
    fn decides_from_the_facts() {
        assert_eq!(check(&host("linux", true, &[("nvidia", 81_559)])), Ok(()));
        assert!(
            check(&host("darwin", true, &[("nvidia", 81_559)]))
                .unwrap_err()
                .contains("Linux")
        );
        assert!(
            check(&host("linux", false, &[("nvidia", 81_559)]))
                .unwrap_err()
                .contains("Docker")
        );
        assert!(
            check(&host("linux", true, &[("nvidia", 16_384)]))
                .unwrap_err()
                .contains("16384 MiB")
        );
        assert!(
            check(&host("linux", true, &[("amd", 196_608)]))
                .unwrap_err()
                .contains("NVIDIA GPU")
        );
    }
}
