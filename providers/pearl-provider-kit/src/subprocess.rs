//! The session cpu-pearl and apple-mps-pearl run (reference §2.2, §2.3,
//! §9): Pearl's `pearl-gateway`, then, once its miner port accepts
//! connections, our miner loop, both through the host's `processes`
//! import; then the session record of OpenJarvis's cpu shape, whose PIDs
//! the host fills in. A pool target and a missing password are refused
//! before anything is started.

use crate::gateway_metrics::apply_gateway;
use mining_provider_sdk::host::processes::{self, EnvValue, ProcessSpec};
use mining_provider_sdk::host::{clock, metrics, sidecar};
use mining_provider_sdk::types::{Error, MiningConfig, MiningStats, SubmitTarget};

/// The gateway's process name, and its log `pearl-gateway.log` (§9.1).
pub const GATEWAY: &str = "pearl-gateway";

/// How long `start` waits for the gateway's miner port by default: it
/// warms its proof worker before it listens.
const DEFAULT_GATEWAY_WAIT_SECONDS: i64 = 120;
/// Grace before SIGKILL (§9.1): the miner loop first, then the gateway.
const MINER_LOOP_GRACE_MS: u32 = 2000;
const GATEWAY_GRACE_MS: u32 = 5000;
/// Log lines read for counts when the gateway serves no metrics.
const LOG_LINES: u32 = 1000;

/// Miner loop log lines (runtime/miner-loops/pearl_miner_loop.py).
const SHARE_SUBMITTED: &str = "share submitted";
const SHARE_ACCEPTED: &str = "share accepted";
const SHARE_REJECTED: &str = "share rejected";
/// The gateway's own line for a block the node took (pearl-and-peers §1.5.3).
const BLOCK_ACCEPTED: &str = "Block accepted by node";

/// The lifecycle half of a `Provider` impl for a [`Backend`] constant:
/// `start`, `stop`, `is_running` and `stats` through this module.
#[macro_export]
macro_rules! subprocess_lifecycle {
    ($backend:expr) => {
        fn start(
            config: $crate::sdk::types::MiningConfig,
        ) -> Result<(), $crate::sdk::types::Error> {
            $crate::subprocess::start(&$backend, &config)
        }

        fn stop() -> Result<(), $crate::sdk::types::Error> {
            $crate::subprocess::stop(&$backend)
        }

        fn is_running() -> bool {
            $crate::subprocess::is_running(&$backend)
        }

        fn stats() -> $crate::sdk::types::MiningStats {
            $crate::subprocess::stats(&$backend)
        }
    };
}

/// What differs between the CPU and the MPS provider.
pub struct Backend {
    pub provider_id: &'static str,
    /// The miner loop's `--backend`.
    pub backend: &'static str,
    /// m, n, k, rank defaults (`[mining.extra]` overrides each).
    pub shape: [i64; 4],
}

impl Backend {
    /// The miner loop's process name, and its log (`<id>-miner.log`, §9.1).
    pub fn miner_loop(&self) -> String {
        format!("{}-miner", self.provider_id)
    }
}

/// Where the gateway listens, from `[mining.extra]` (reference defaults).
struct Endpoints {
    host: String,
    gateway_port: u16,
    metrics_port: u16,
}

impl Endpoints {
    fn of(config: &MiningConfig) -> Result<Endpoints, Error> {
        let port = |key, default: u16| {
            config
                .extra_integer(key, i64::from(default), 1..=65535)
                .map(|p| p as u16)
        };
        let host = config.extra_text_or("gateway_host", "127.0.0.1");
        // The gateway binds loopback whatever it is told (its server.py);
        // a session's endpoints are loopback too.
        if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
            return Err(Error::Invalid(format!(
                "[mining.extra].gateway_host must be a loopback address (127.0.0.1), not {host:?}: pearl-gateway only listens on loopback"
            )));
        }
        let endpoints = Endpoints {
            host,
            gateway_port: port("gateway_port", 8337)?,
            metrics_port: port("metrics_port", 8339)?,
        };
        if endpoints.gateway_port == endpoints.metrics_port {
            return Err(Error::Invalid(
                "[mining.extra].gateway_port and metrics_port must differ".into(),
            ));
        }
        Ok(endpoints)
    }

    fn gateway_url(&self) -> String {
        format!("http://{}:{}", self.host, self.gateway_port)
    }

    fn metrics_url(&self) -> String {
        format!("http://{}:{}/metrics", self.host, self.metrics_port)
    }
}

/// The gateway's process: §9.2's environment, the password by reference.
fn gateway_spec(config: &MiningConfig, at: &Endpoints, rpc_url: &str) -> ProcessSpec {
    let text = |name: &str, value: &str| (name.to_owned(), EnvValue::Text(value.to_owned()));
    let password = config.extra_text_or("pearld_rpc_password_env", "PEARLD_RPC_PASSWORD");
    ProcessSpec {
        name: GATEWAY.into(),
        program: "pearl-gateway".into(),
        args: vec!["start".into()],
        env: vec![
            text("PEARLD_RPC_URL", rpc_url),
            text(
                "PEARLD_RPC_USER",
                &config.extra_text_or("pearld_rpc_user", "rpcuser"),
            ),
            ("PEARLD_RPC_PASSWORD".into(), EnvValue::Secret(password)),
            text("PEARLD_MINING_ADDRESS", &config.wallet_address),
            text("MINER_RPC_TRANSPORT", "tcp"),
            text("MINER_RPC_HOST", &at.host),
            text("MINER_RPC_PORT", &at.gateway_port.to_string()),
            text("METRICS_BIND", &format!("{}:{}", at.host, at.metrics_port)),
        ],
        ports: vec![at.gateway_port, at.metrics_port],
    }
}

/// The miner loop's process, with m/n/k/rank from `[mining.extra]`.
fn miner_loop_spec(
    backend: &Backend,
    config: &MiningConfig,
    at: &Endpoints,
) -> Result<ProcessSpec, Error> {
    let mut args = vec![
        "--backend".to_owned(),
        backend.backend.to_owned(),
        "--gateway-host".to_owned(),
        at.host.clone(),
        "--gateway-port".to_owned(),
        at.gateway_port.to_string(),
    ];
    for (key, default) in ["m", "n", "k", "rank"].into_iter().zip(backend.shape) {
        let value = config.extra_integer(key, default, 1..=1 << 20)?;
        args.extend([format!("--{key}"), value.to_string()]);
    }
    Ok(ProcessSpec {
        name: backend.miner_loop(),
        program: "pearl-miner-loop".into(),
        args,
        env: Vec::new(),
        ports: Vec::new(),
    })
}

pub fn start(backend: &Backend, config: &MiningConfig) -> Result<(), Error> {
    let rpc_url = match &config.submit_target {
        SubmitTarget::Solo(solo) => solo.pearld_rpc_url.clone(),
        SubmitTarget::Pool(_) => {
            return Err(Error::Invalid(format!(
                "pool mining is not supported by {}: set [mining].submit_target = \"solo\"",
                backend.provider_id
            )));
        }
    };
    let at = Endpoints::of(config)?;
    let wait_seconds = config.extra_integer(
        "gateway_wait_seconds",
        DEFAULT_GATEWAY_WAIT_SECONDS,
        1..=3600,
    )?;
    let miner_loop = miner_loop_spec(backend, config, &at)?;
    // The host resolves the password when it spawns the gateway: unset,
    // the spawn is refused and nothing has started.
    let gateway = processes::spawn(&gateway_spec(config, &at, &rpc_url))?;
    let started = processes::wait_listening(&gateway, at.gateway_port, wait_seconds as u32 * 1000)
        .and_then(|()| processes::spawn(&miner_loop))
        .and_then(|miner| {
            sidecar::write_processes(&sidecar::ProcessSession {
                gateway_url: at.gateway_url(),
                metrics_url: at.metrics_url(),
                wallet_address: config.wallet_address.clone(),
                gateway_process: gateway.clone(),
                miner_loop_process: miner,
            })
        });
    if started.is_err() {
        // The host stops what this session started anyway; say it here too.
        let _ = stop(backend);
    }
    started
}

pub fn stop(backend: &Backend) -> Result<(), Error> {
    let miner = processes::stop(&backend.miner_loop(), MINER_LOOP_GRACE_MS);
    let gateway = processes::stop(GATEWAY, GATEWAY_GRACE_MS);
    let record = sidecar::remove();
    miner.and(gateway).and(record)
}

pub fn is_running(backend: &Backend) -> bool {
    [GATEWAY.to_owned(), backend.miner_loop()]
        .iter()
        .all(|name| matches!(processes::inspect(name), Ok(Some(state)) if state.running))
}

/// The gateway's metrics when it serves them, else counts from the miner
/// loop's and the gateway's log lines (the newest [`LOG_LINES`] of each).
pub fn stats(backend: &Backend) -> MiningStats {
    let mut stats = MiningStats::empty(backend.provider_id);
    let session = match sidecar::read_processes() {
        Ok(Some(session)) => session,
        Ok(None) => return stats,
        Err(err) => {
            stats.last_error = Some(format!("cannot read the session: {}", err.describe()));
            return stats;
        }
    };
    let now = clock::now().ok();
    let started = processes::inspect(GATEWAY).ok().flatten();
    if let (Some(now), Some(state)) = (now, &started) {
        stats.uptime_seconds = (now - state.started_at).max(0.0);
    }
    if started.is_none() {
        return stats;
    }
    match metrics::scrape(&session.metrics_url) {
        Ok(samples) => apply_gateway(&mut stats, &samples, now),
        Err(_) => apply_log_lines(
            &mut stats,
            &processes::tail_log(&backend.miner_loop(), LOG_LINES).unwrap_or_default(),
            &processes::tail_log(GATEWAY, LOG_LINES).unwrap_or_default(),
        ),
    }
    stats
}

/// Counts from log lines: the loop's submissions (and the gateway's
/// refusals of them) and the gateway's blocks.
pub fn apply_log_lines(stats: &mut MiningStats, miner: &[String], gateway: &[String]) {
    let count =
        |lines: &[String], text: &str| lines.iter().filter(|l| l.contains(text)).count() as u64;
    stats.shares_submitted = count(miner, SHARE_SUBMITTED);
    stats.shares_accepted = count(miner, SHARE_ACCEPTED);
    stats.shares_rejected = count(miner, SHARE_REJECTED);
    stats.blocks_found = count(gateway, BLOCK_ACCEPTED);
    if let Some(line) = miner.iter().rev().find(|l| l.contains(SHARE_REJECTED)) {
        stats.last_error = Some(line.trim().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mining_provider_sdk::types::{ExtraValue, PoolTarget, SoloTarget, WorkersSetting};

    const CPU: Backend = Backend {
        provider_id: "cpu-pearl",
        backend: "cpu",
        shape: [256, 128, 1024, 32],
    };

    fn config(extra: Vec<(&str, ExtraValue)>) -> MiningConfig {
        MiningConfig {
            provider: "cpu-pearl".into(),
            wallet_address: "prl1qwallet".into(),
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

    #[test]
    fn the_gateway_gets_the_reference_environment_and_the_password_by_reference() {
        let config = config(vec![(
            "pearld_rpc_password_env",
            ExtraValue::Text("MY_PW".into()),
        )]);
        let at = Endpoints::of(&config).unwrap();
        let spec = gateway_spec(&config, &at, "http://localhost:44107");
        let env: std::collections::BTreeMap<_, _> = spec.env.iter().cloned().collect();
        assert_eq!(env["PEARLD_RPC_PASSWORD"], EnvValue::Secret("MY_PW".into()));
        assert_eq!(env["METRICS_BIND"], EnvValue::Text("127.0.0.1:8339".into()));
        assert_eq!(env["MINER_RPC_TRANSPORT"], EnvValue::Text("tcp".into()));
        assert_eq!(
            env["PEARLD_MINING_ADDRESS"],
            EnvValue::Text("prl1qwallet".into())
        );
        assert_eq!(spec.ports, [8337, 8339]);
        assert_eq!(spec.args, ["start"]);
    }

    #[test]
    fn the_miner_loop_gets_the_shape_from_extra_else_the_backend_defaults() {
        let config = config(vec![("rank", ExtraValue::Integer(16))]);
        let at = Endpoints::of(&config).unwrap();
        let spec = miner_loop_spec(&CPU, &config, &at).unwrap();
        assert_eq!(spec.name, "cpu-pearl-miner");
        assert_eq!(
            spec.args.join(" "),
            "--backend cpu --gateway-host 127.0.0.1 --gateway-port 8337 --m 256 --n 128 --k 1024 --rank 16"
        );
    }

    #[test]
    fn a_pool_target_and_a_remote_gateway_host_are_refused_before_anything_runs() {
        let mut pool = config(vec![]);
        pool.submit_target = SubmitTarget::Pool(PoolTarget {
            url: "stratum+tcp://pool:3333".into(),
            worker_id: None,
        });
        // No host is linked in a unit test: reaching an import would panic.
        assert!(matches!(start(&CPU, &pool), Err(Error::Invalid(m)) if m.contains("pool")));
        let remote = config(vec![("gateway_host", ExtraValue::Text("0.0.0.0".into()))]);
        assert!(matches!(start(&CPU, &remote), Err(Error::Invalid(m)) if m.contains("loopback")));
    }

    #[test]
    fn log_lines_give_counts_when_the_gateway_serves_no_metrics() {
        let lines = |texts: &[&str]| texts.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let miner = lines(&[
            "2026 INFO share submitted",
            "2026 INFO share accepted",
            "2026 INFO share submitted",
            "2026 INFO share accepted",
            "2026 WARNING share rejected: -32000 Rejecting proof: test",
        ]);
        let gateway = lines(&["Received PlainProof", "Block accepted by node!"]);
        let mut stats = MiningStats::empty("cpu-pearl");
        apply_log_lines(&mut stats, &miner, &gateway);
        assert_eq!(
            (
                stats.shares_submitted,
                stats.shares_accepted,
                stats.shares_rejected,
                stats.blocks_found
            ),
            (2, 2, 1, 1)
        );
        assert!(stats.last_error.unwrap().contains("Rejecting proof"));
    }
}
