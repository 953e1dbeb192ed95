//! `jarvis mine init`: choose a provider, check this host can run it, make the
//! image present, then write `[mining]`. Every check runs before anything is
//! written; an existing `[mining]` table is kept unless `--force`.

use super::doctor::load_facts;
use super::escape::one_line;
use super::output::{eprintln, println};
use super::session::{open_docker, paths_and_config, sandbox_and_registry};
use super::start::progress_sink;
use super::{CliError, CliResult, exit};
use crate::config::{DEFAULT_PASSWORD_ENV, DEFAULT_PEARLD_RPC_URL, DEFAULT_PEARLD_RPC_USER};
use crate::config_edit::{MiningSection, WriteOutcome, write_mining_section};
use crate::doctor::{DEFAULT_ENGINE, check_address};
use crate::facts::{GpuSelection, default_provider, to_guest};
use crate::sandbox::SandboxLimits;
use clap::{Args, ValueEnum};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_IMAGE: &str = "openjarvis/pearl-miner:master";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProviderChoice {
    Auto,
    VllmPearl,
    CpuPearl,
    AppleMpsPearl,
}

#[derive(Args)]
pub struct InitArgs {
    /// Which provider to configure (`auto` picks one for this host).
    #[arg(long, value_enum, default_value = "auto")]
    provider: ProviderChoice,
    /// Pearl payout address (prl1q… or prl1p…).
    #[arg(long, alias = "wallet-address")]
    wallet: Option<String>,
    #[arg(long, alias = "pearld-rpc-url")]
    pearld_url: Option<String>,
    #[arg(long, alias = "pearld-rpc-user")]
    pearld_user: Option<String>,
    /// Name of the environment variable holding the pearld password.
    #[arg(long, alias = "pearld-rpc-password-env")]
    pearld_password_env: Option<String>,
    #[arg(long, default_value = pearl_catalog::DEFAULT_PEARL_MODEL)]
    model: String,
    /// A converted Pearl checkpoint directory to serve instead of downloading.
    #[arg(long, value_name = "DIR")]
    local_model_path: Option<PathBuf>,
    /// Extra vLLM argument (repeatable).
    #[arg(long = "vllm-arg", value_name = "ARG")]
    vllm_args: Vec<String>,
    #[arg(long, default_value = DEFAULT_IMAGE)]
    image: String,
    /// GPU indexes or UUIDs, comma-separated (default: all).
    #[arg(long, default_value = "")]
    cuda_visible_devices: String,
    #[arg(long, default_value = "127.0.0.1")]
    gateway_host: String,
    #[arg(long, default_value_t = 8337)]
    gateway_port: u16,
    #[arg(long, alias = "metrics-port", default_value_t = 8339)]
    gateway_metrics_port: u16,
    #[arg(long, default_value_t = 8000)]
    vllm_port: u16,
    /// A Pearl checkout to build the miner image from when it cannot be pulled.
    #[arg(long, value_name = "DIR")]
    pearl_source_dir: Option<PathBuf>,
    /// `none` launches without any GPU request (for trying the flow with a test image).
    #[arg(long, value_parser = ["auto", "none"], default_value = "auto")]
    gpu_request: String,
    /// Use hardware facts from this file instead of probing (see docs/facts.md).
    #[arg(long, value_name = "FILE")]
    facts: Option<PathBuf>,
    /// Do not make the image present now (`start` will).
    #[arg(long)]
    no_image: bool,
    /// Replace an existing [mining] table.
    #[arg(long)]
    force: bool,
    /// Never prompt; use flags and defaults.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub fn run(args: &InitArgs, limits: SandboxLimits) -> CliResult {
    let (paths, config) = paths_and_config()?;
    if config.mining.is_some() && !args.force {
        println!("[mining] section already present; not overwriting (use --force to replace it).");
        return Ok(ExitCode::SUCCESS);
    }
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let facts = match &args.facts {
        Some(file) => load_facts(file)?,
        None => host_gpu::gather(&host_gpu::GatherOptions::default()),
    };
    let provider = match args.provider {
        ProviderChoice::Auto => default_provider(&facts),
        ProviderChoice::VllmPearl => "vllm-pearl",
        ProviderChoice::CpuPearl => "cpu-pearl",
        ProviderChoice::AppleMpsPearl => "apple-mps-pearl",
    };
    let wallet = answer(
        interactive,
        &args.wallet,
        "Pearl wallet address (prl1q/prl1p...)",
        "",
    )?;
    check_address(&wallet).map_err(|why| CliError {
        code: exit::INVALID_WALLET,
        message: format!("Invalid wallet address: {why}"),
    })?;
    let pearld_url = answer(
        interactive,
        &args.pearld_url,
        "pearld RPC URL",
        DEFAULT_PEARLD_RPC_URL,
    )?;
    let pearld_user = answer(
        interactive,
        &args.pearld_user,
        "pearld RPC user",
        DEFAULT_PEARLD_RPC_USER,
    )?;
    let password_env = answer(
        interactive,
        &args.pearld_password_env,
        "env var holding pearld password",
        DEFAULT_PASSWORD_ENV,
    )?;

    let vllm = provider == "vllm-pearl";
    let local_model = match &args.local_model_path {
        Some(path) => Some(path.canonicalize().map_err(|_| {
            CliError::invalid_input(format!(
                "local Pearl model path does not exist: {}",
                path.display()
            ))
        })?),
        None => None,
    };
    if vllm && local_model.is_none() && pearl_catalog::find(&args.model).is_none() {
        return Err(CliError {
            code: exit::UNKNOWN_MODEL,
            message: format!("unknown model '{}': see `jarvis mine models`", args.model),
        });
    }
    // The provider's own verdict, from its sandboxed detect.
    if local_model.is_none() {
        let (sandbox, registry, _) = sandbox_and_registry(&paths, limits)?;
        let loaded = registry.get(provider).ok_or_else(|| {
            CliError::failure(format!(
                "provider '{provider}' failed to load: see `jarvis mine doctor`"
            ))
        })?;
        let selection = GpuSelection::new(Some(&args.cuda_visible_devices));
        let verdict = loaded
            .detect(
                &sandbox,
                &to_guest(&facts, &selection),
                DEFAULT_ENGINE,
                &args.model,
            )
            .map_err(|err| CliError::failure(format!("{provider} detect failed: {err}")))?;
        if !verdict.supported {
            return Err(CliError {
                code: exit::UNSUPPORTED,
                message: format!(
                    "{provider} not supported on this host: {}\nSee `jarvis mine models` and `jarvis mine doctor` for details.",
                    one_line(&verdict.reason.unwrap_or_default())
                ),
            });
        }
    }
    if vllm {
        let docker = open_docker()?;
        if !args.no_image {
            eprintln!("Resolving image {}...", args.image);
            docker
                .ensure_image(
                    &args.image,
                    args.pearl_source_dir.as_deref(),
                    &mut progress_sink(),
                )
                .map_err(|err| CliError {
                    code: exit::DOCKER_UNAVAILABLE,
                    message: err.to_string(),
                })?;
        }
    }
    if std::env::var_os(&password_env).is_none() {
        eprintln!("Warning: ${password_env} is not set. Set it before `jarvis mine start`.");
    }

    let mut section = MiningSection::new(provider, wallet);
    if vllm {
        let spec = pearl_catalog::find(&args.model);
        section = section
            .with_extra("docker_image_tag", args.image.as_str())
            .with_extra("model", args.model.as_str())
            .with_extra("cuda_visible_devices", args.cuda_visible_devices.trim())
            .with_extra("gateway_port", i64::from(args.gateway_port))
            .with_extra("gateway_metrics_port", i64::from(args.gateway_metrics_port))
            .with_extra("vllm_port", i64::from(args.vllm_port))
            .with_extra(
                "gpu_memory_utilization",
                spec.map_or(0.96, |s| s.default_gpu_memory_utilization),
            )
            .with_extra(
                "max_model_len",
                spec.map_or(8192, |s| i64::from(s.default_max_model_len)),
            )
            .with_extra("pearld_rpc_url", pearld_url.as_str())
            .with_extra("pearld_rpc_user", pearld_user.as_str())
            .with_extra("pearld_rpc_password_env", password_env.as_str())
            .with_extra("hf_token_env", "HF_TOKEN");
        if let Some(path) = &local_model {
            section = section.with_extra("local_model_path", path.display().to_string().as_str());
        }
        if !args.vllm_args.is_empty() {
            section = section.with_extra("vllm_args", args.vllm_args.clone());
        }
        if let Some(dir) = &args.pearl_source_dir {
            section = section.with_extra("pearl_source_dir", dir.display().to_string().as_str());
        }
        if args.gpu_request == "none" {
            section = section.with_extra("gpu_request", "none");
        }
    } else {
        section = section
            .with_extra("gateway_host", args.gateway_host.as_str())
            .with_extra("gateway_port", i64::from(args.gateway_port))
            .with_extra("metrics_port", i64::from(args.gateway_metrics_port))
            .with_extra("pearld_rpc_url", pearld_url.as_str())
            .with_extra("pearld_rpc_user", pearld_user.as_str())
            .with_extra("pearld_rpc_password_env", password_env.as_str());
    }
    let outcome = write_mining_section(paths.config_file(), &section, args.force)
        .map_err(|err| CliError::invalid_input(err.to_string()))?;
    if outcome == WriteOutcome::AlreadyConfigured {
        println!("[mining] section already present; not overwriting (use --force to replace it).");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Wrote [mining] for {provider} to {}.",
        paths.config_file().display()
    );
    println!("Done. Run `jarvis mine start` to begin mining.");
    Ok(ExitCode::SUCCESS)
}

/// A flag's value, else a prompt on a terminal, else the default (an empty
/// default means the value is required).
fn answer(
    interactive: bool,
    flag: &Option<String>,
    prompt: &str,
    default: &str,
) -> Result<String, CliError> {
    if let Some(value) = flag {
        return Ok(value.trim().to_owned());
    }
    if interactive {
        let mut err = super::output::stderr();
        let shown = if default.is_empty() {
            String::new()
        } else {
            format!(" [{default}]")
        };
        let _ = write!(err, "{prompt}{shown}: ");
        let _ = err.flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::failure(e.to_string()))?;
        let line = line.trim();
        if !line.is_empty() {
            return Ok(line.to_owned());
        }
    }
    if default.is_empty() {
        return Err(CliError::invalid_input(format!(
            "{prompt} is required: pass it as a flag (see --help)"
        )));
    }
    Ok(default.to_owned())
}
