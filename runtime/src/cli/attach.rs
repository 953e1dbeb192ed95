//! `jarvis mine attach`: record an externally started miner so OpenJarvis
//! routes inference to it. Under the session lock, and never over a live
//! session that `jarvis mine start` made.

use super::output::println;
use super::session::{mine_error, paths};
use super::{CliError, CliResult};
use crate::docker::Docker;
use crate::lifecycle;
use crate::session::state::EXTERNAL_CONTAINER_ID;
use crate::session::{SessionRecord, sidecar};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine attach --vllm-endpoint http://127.0.0.1:8000/v1 \\
      --gateway-url http://127.0.0.1:8337 --gateway-metrics-url http://127.0.0.1:8339/metrics")]
pub struct AttachArgs {
    /// The miner's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.
    #[arg(long)]
    vllm_endpoint: String,
    /// The gateway's URL, e.g. http://127.0.0.1:8337.
    #[arg(long)]
    gateway_url: String,
    /// The gateway's metrics URL, e.g. http://127.0.0.1:8339.
    #[arg(long)]
    gateway_metrics_url: String,
    /// The model the miner serves (recorded for OpenJarvis's routing).
    #[arg(long, value_name = "ID", default_value = pearl_catalog::DEFAULT_PEARL_MODEL)]
    model: String,
    /// The miner's container id, when it runs in one.
    #[arg(long, value_name = "ID", default_value = EXTERNAL_CONTAINER_ID)]
    container_id: String,
    /// The payout address the miner mines to (recorded, not checked against pearld).
    #[arg(long, value_name = "ADDR", default_value = "")]
    wallet: String,
}

pub fn run(args: &AttachArgs) -> CliResult {
    let paths = paths()?;
    let endpoint = args.vllm_endpoint.trim_end_matches('/');
    let record = SessionRecord {
        provider: "vllm-pearl".into(),
        vllm_endpoint: endpoint.to_owned(),
        model: args.model.clone(),
        gateway_url: args.gateway_url.clone(),
        gateway_metrics_url: args.gateway_metrics_url.clone(),
        container_id: args.container_id.clone(),
        wallet_address: args.wallet.clone(),
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        session_id: None,
        image: None,
        workers: Vec::new(),
    };
    sidecar::validate(&record)
        .map_err(|err| CliError::invalid_input(format!("cannot attach: {err}")))?;
    let docker = Docker::connect()
        .map(Arc::new)
        .map_err(|err| err.to_string());
    lifecycle::attach(&paths, docker, &record).map_err(mine_error)?;
    println!("Sidecar written to {}", paths.sidecar().display());
    Ok(ExitCode::SUCCESS)
}
