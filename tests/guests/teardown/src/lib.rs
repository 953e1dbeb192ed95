//! A provider that leaves cleanup to the host, to prove the host does it.
//!
//! `start` runs `[mining.extra].containers` fake miners (`image`, on
//! loopback ports from `port` up, host network, `restart`, extra
//! `miner_args`), writes a session record naming the first, and then ends
//! as `start_then` says: `ok`, `refuse` (an error), `trap` (a panic) or
//! `spin` (until the deadline kills it).
//!
//! `stop` gets no config, so `start` writes the wanted `stop` behaviour
//! into the record's model name (`teardown/stop-<mode>`): `ok` stops and
//! removes the first container and the record; `refuse`, `trap` and `spin`
//! leave everything running.

use mining_provider_sdk::host::{containers, sidecar};
use mining_provider_sdk::types::{
    Capabilities, Capability, Error, ExtraValue, HardwareFacts, MiningConfig, ProviderInfo,
};
use mining_provider_sdk::{Provider, export_provider};

struct Teardown;

impl Provider for Teardown {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "teardown".into(),
            version: "0.0.1".into(),
            description: "leaves cleanup to the host".into(),
            capabilities: vec![Capability::Containers, Capability::Sidecar],
        }
    }

    fn detect(_facts: HardwareFacts, _engine_id: String, _model: String) -> Capabilities {
        Capabilities::supported()
    }

    fn start(config: MiningConfig) -> Result<(), Error> {
        let count = config.extra_integer("containers", 1, 1..=8)?;
        let port = config.extra_integer("port", 8000, 1024..=65000)?;
        let image = config
            .extra_text("image")
            .ok_or_else(|| Error::Invalid("[mining.extra].image is required".into()))?;
        let model = format!("teardown/stop-{}", config.extra_text_or("stop", "ok"));
        let miner_args = match config.extra("miner_args") {
            Some(ExtraValue::Texts(args)) => args.clone(),
            _ => Vec::new(),
        };
        let mut first = None;
        for i in 0..count {
            let mut args = vec![
                model.clone(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                (port + i).to_string(),
            ];
            args.extend(miner_args.iter().cloned());
            let id = containers::run(&containers::ContainerSpec {
                name: format!("teardown-{i}"),
                image: image.clone(),
                args,
                env: Vec::new(),
                gpus: containers::GpuRequest::None,
                mounts: Vec::new(),
                ports: Vec::new(),
                shm_size_bytes: None,
                network: "host".into(),
                restart: config.extra_text_or("restart", "no"),
            })?;
            first.get_or_insert(id);
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        sidecar::write(&sidecar::Session {
            vllm_endpoint: format!("{endpoint}/v1"),
            model,
            gateway_url: "http://127.0.0.1:8337".into(),
            gateway_metrics_url: "http://127.0.0.1:8339".into(),
            metrics_url: format!("{endpoint}/metrics"),
            container_id: first.unwrap_or_default(),
            wallet_address: config.wallet_address.clone(),
            image,
            workers: Vec::new(),
        })?;
        match config.extra_text_or("start_then", "ok").as_str() {
            "refuse" => Err(Error::Failed("teardown refuses to finish start".into())),
            "trap" => panic!("teardown traps in start"),
            "spin" => spin(),
            _ => Ok(()),
        }
    }

    fn stop() -> Result<(), Error> {
        let Some(session) = sidecar::read()? else {
            return Ok(());
        };
        match session.model.rsplit('-').next().unwrap_or_default() {
            "refuse" => Err(Error::Failed("teardown refuses to stop".into())),
            "trap" => panic!("teardown traps in stop"),
            "spin" => spin(),
            _ => {
                containers::stop(&session.container_id, 5)?;
                containers::remove(&session.container_id)?;
                sidecar::remove()
            }
        }
    }
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

export_provider!(Teardown);
