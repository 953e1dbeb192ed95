//! `jarvis mine init`: choose a provider, check this host can run it, make the
//! image present, then write `[mining]`. Every check runs before anything is
//! written; an existing `[mining]` table is kept unless `--force`.

use super::doctor::{gather, load_facts};
use super::escape::one_line;
use super::output::{eprintln, println};
use super::session::{open_docker, paths_and_config, sandbox_and_registry};
use super::start::progress_sink;
use super::{CliError, CliResult, exit};
use crate::config::{
    DEFAULT_PASSWORD_ENV, DEFAULT_PEARLD_RPC_URL, DEFAULT_PEARLD_RPC_USER, env_name, http_url,
};
use crate::config_edit::{MiningSection, WriteOutcome, write_mining_section};
use crate::doctor::{DEFAULT_ENGINE, check_address};
use crate::facts::{BUILTIN_PROVIDERS, GpuSelection, auto_provider, to_guest};
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::sandbox::SandboxLimits;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
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
#[command(after_help = "Examples:
  jarvis mine init                                   # asks on a terminal
  jarvis mine init -y --wallet prl1q... --provider auto
  jarvis mine init -y --wallet prl1q... --gpu-request none --image jarvis-test/fake-miner:latest

Gated Hugging Face models need HF_TOKEN set when `jarvis mine start` runs.")]
pub struct InitArgs {
    /// Which provider to configure (`auto` picks one for this host).
    #[arg(long, value_enum, default_value = "auto")]
    provider: ProviderChoice,
    /// Pearl payout address (prl1q… or prl1p…).
    #[arg(long, alias = "wallet-address")]
    wallet: Option<String>,
    /// pearld's JSON-RPC URL (default http://localhost:44107).
    #[arg(long, alias = "pearld-rpc-url", value_name = "URL")]
    pearld_url: Option<String>,
    /// pearld's RPC user (default rpcuser).
    #[arg(long, alias = "pearld-rpc-user", value_name = "USER")]
    pearld_user: Option<String>,
    /// Name of the environment variable holding the pearld password (never the password).
    #[arg(long, alias = "pearld-rpc-password-env", value_name = "NAME")]
    pearld_password_env: Option<String>,
    /// The Pearl model to serve (see `jarvis mine models`; gated models need HF_TOKEN).
    #[arg(long, value_name = "ID", default_value = pearl_catalog::DEFAULT_PEARL_MODEL)]
    model: String,
    /// A converted Pearl checkpoint directory to serve instead of downloading.
    #[arg(long, value_name = "DIR")]
    local_model_path: Option<PathBuf>,
    /// Extra vLLM argument (repeatable).
    #[arg(long = "vllm-arg", value_name = "ARG")]
    vllm_args: Vec<String>,
    /// The miner image to run (built from --pearl-source-dir when it cannot be pulled).
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    image: String,
    /// GPU indexes or UUIDs, comma-separated (default: all).
    #[arg(long, value_name = "IDS", default_value = "")]
    cuda_visible_devices: String,
    /// Address the Pearl gateway listens on (cpu-pearl, apple-mps-pearl).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    gateway_host: String,
    /// The gateway's miner port.
    #[arg(long, value_name = "PORT", default_value_t = 8337)]
    gateway_port: u16,
    /// The gateway's Prometheus metrics port.
    #[arg(
        long,
        alias = "metrics-port",
        value_name = "PORT",
        default_value_t = 8339
    )]
    gateway_metrics_port: u16,
    /// The port vLLM serves the OpenAI API on (loopback).
    #[arg(long, value_name = "PORT", default_value_t = 8000)]
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
        None => gather(&paths),
    };
    let (sandbox, registry, _) = sandbox_and_registry(&paths, limits)?;
    let selection = GpuSelection::new(Some(&args.cuda_visible_devices));
    let verdict = |id: &str| -> Result<(), String> {
        detect(&sandbox, &registry, id, &facts, &selection, &args.model)
    };
    let test_flow = args.gpu_request == "none";
    let provider = match args.provider {
        // Trying the flow with a test image needs no GPU: vllm-pearl it is.
        ProviderChoice::Auto if test_flow => {
            eprintln!("Chose vllm-pearl: --gpu-request none runs its container without a GPU.");
            "vllm-pearl"
        }
        ProviderChoice::Auto => choose(&facts, verdict)?,
        ProviderChoice::VllmPearl => "vllm-pearl",
        ProviderChoice::CpuPearl => "cpu-pearl",
        ProviderChoice::AppleMpsPearl => "apple-mps-pearl",
    };
    if interactive {
        eprintln!(
            "This sets up Pearl mining with {provider}: it asks for your payout address and \
             pearld node, then shows what it will write to {} and asks before writing. \
             Ctrl-C leaves everything as it is.",
            paths.config_file().display()
        );
    }
    let wallet = ask(
        interactive,
        &args.wallet,
        "Pearl wallet address (prl1q... or prl1p...)",
        "",
        check_address,
    )
    .map_err(|err| match err {
        Asked::Invalid(why) => CliError {
            code: exit::INVALID_WALLET,
            message: format!("Invalid wallet address: {why}"),
        },
        other => other.into(),
    })?;
    let pearld_url = ask(
        interactive,
        &args.pearld_url,
        "pearld RPC URL",
        DEFAULT_PEARLD_RPC_URL,
        http_url,
    )
    .map_err(|err| err.flag("--pearld-url"))?;
    let pearld_user = ask(
        interactive,
        &args.pearld_user,
        "pearld RPC user",
        DEFAULT_PEARLD_RPC_USER,
        |_| Ok(()),
    )
    .map_err(|err| err.flag("--pearld-user"))?;
    let password_env = ask(
        interactive,
        &args.pearld_password_env,
        "Environment variable holding the pearld password",
        DEFAULT_PASSWORD_ENV,
        env_name,
    )
    .map_err(|err| err.flag("--pearld-password-env"))?;

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
    // The provider's own verdict, from its sandboxed detect (a local model
    // and a GPU-less test flow are the user's call).
    if local_model.is_none() && !(vllm && test_flow) {
        verdict(provider).map_err(|reason| CliError {
            code: exit::UNSUPPORTED,
            message: format!(
                "{provider} cannot mine on this host: {}\nSee `jarvis mine doctor` for what to fix, or pick another with --provider.",
                one_line(&reason)
            ),
        })?;
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
    if interactive {
        let text = section
            .to_toml()
            .map_err(|err| CliError::invalid_input(err.to_string()))?;
        eprintln!(
            "\nThis will be written to {}:\n\n{text}",
            paths.config_file().display()
        );
        let write = dialoguer::Confirm::new()
            .with_prompt("Write it?")
            .default(true)
            .interact()
            .map_err(|_| interrupted())?;
        if !write {
            eprintln!("Nothing written.");
            return Ok(ExitCode::SUCCESS);
        }
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

/// A provider's sandboxed `detect` on these facts: `Err` is why it cannot
/// mine here.
fn detect(
    sandbox: &Sandbox,
    registry: &Registry,
    id: &str,
    facts: &host_gpu::HardwareFacts,
    selection: &GpuSelection,
    model: &str,
) -> Result<(), String> {
    let loaded = registry
        .get(id)
        .ok_or_else(|| format!("provider '{id}' failed to load: see `jarvis mine doctor`"))?;
    let verdict = loaded
        .detect(sandbox, &to_guest(facts, selection), DEFAULT_ENGINE, model)
        .map_err(|err| format!("its detect failed: {err}"))?;
    if verdict.supported {
        Ok(())
    } else {
        Err(verdict.reason.unwrap_or_else(|| "unsupported".into()))
    }
}

/// `--provider auto`: the provider this hardware suggests if it can start,
/// else the first built-in that can; says which and why. With none, says
/// what each lacks and writes nothing.
fn choose(
    facts: &host_gpu::HardwareFacts,
    verdict: impl Fn(&str) -> Result<(), String>,
) -> Result<&'static str, CliError> {
    let reasons: Vec<(&str, Result<(), String>)> = BUILTIN_PROVIDERS
        .iter()
        .map(|id| (*id, verdict(id)))
        .collect();
    let can_start = |id: &str| reasons.iter().any(|(r, v)| *r == id && v.is_ok());
    match auto_provider(facts, can_start) {
        Ok(chosen) => {
            let passed_over: Vec<String> = reasons
                .iter()
                .take_while(|(id, _)| *id != chosen)
                .filter_map(|(id, v)| {
                    v.as_ref()
                        .err()
                        .map(|why| format!("{id}: {}", one_line(why)))
                })
                .collect();
            if passed_over.is_empty() {
                eprintln!("Chose {chosen}: it can mine on this host.");
            } else {
                eprintln!(
                    "Chose {chosen}: it can mine on this host; {}.",
                    passed_over.join("; ")
                );
            }
            Ok(chosen)
        }
        Err(_) => {
            let lines: Vec<String> = reasons
                .iter()
                .filter_map(|(id, v)| {
                    v.as_ref()
                        .err()
                        .map(|why| format!("  {id}: {}", one_line(why)))
                })
                .collect();
            Err(CliError {
                code: exit::UNSUPPORTED,
                message: format!(
                    "No provider can mine on this host, so nothing was written:\n{}\nSee `jarvis mine doctor` for what to fix; `--gpu-request none` tries the flow with a test image.",
                    lines.join("\n")
                ),
            })
        }
    }
}

/// Why an answer could not be had.
enum Asked {
    /// The value given by flag is not valid (the reason).
    Invalid(String),
    /// Required, not given, and no terminal to ask on.
    Missing(String),
    /// Ctrl-C or Ctrl-D at a prompt.
    Interrupted,
}

impl Asked {
    /// The error, naming the flag that gave the bad value.
    fn flag(self, flag: &str) -> CliError {
        match self {
            Asked::Invalid(why) => CliError::invalid_input(format!("{flag}: {why}")),
            other => other.into(),
        }
    }
}

impl From<Asked> for CliError {
    fn from(asked: Asked) -> Self {
        match asked {
            Asked::Invalid(why) => CliError::invalid_input(why),
            Asked::Missing(what) => CliError::invalid_input(format!(
                "{what} is required: pass it as a flag (see --help)"
            )),
            Asked::Interrupted => interrupted(),
        }
    }
}

fn interrupted() -> CliError {
    CliError {
        code: exit::INTERRUPTED,
        message: "interrupted: nothing was written".to_owned(),
    }
}

/// A flag's value (checked), else a prompt on a terminal that asks again
/// until the answer is valid, else the default (an empty default means the
/// value is required).
fn ask(
    interactive: bool,
    flag: &Option<String>,
    prompt: &str,
    default: &str,
    valid: impl Fn(&str) -> Result<(), String>,
) -> Result<String, Asked> {
    if let Some(value) = flag {
        let value = value.trim().to_owned();
        valid(&value).map_err(Asked::Invalid)?;
        return Ok(value);
    }
    if interactive {
        return ask_on_terminal(prompt, default, valid);
    }
    if default.is_empty() {
        return Err(Asked::Missing(prompt.to_owned()));
    }
    Ok(default.to_owned())
}

/// One question, asked again with the reason until the answer is valid.
/// The line is read in the terminal's own (cooked) mode, so Ctrl-D is end
/// of input (nothing is written) and Ctrl-C the terminal's SIGINT; the
/// yes/no question is dialoguer's.
fn ask_on_terminal(
    prompt: &str,
    default: &str,
    valid: impl Fn(&str) -> Result<(), String>,
) -> Result<String, Asked> {
    use std::io::{BufRead, Write};
    let theme = dialoguer::theme::SimpleTheme;
    let shown = if default.is_empty() {
        format!("{prompt}: ")
    } else {
        format!("{prompt} [{default}]: ")
    };
    loop {
        let mut err = super::output::stderr();
        let _ = write!(err, "{shown}");
        let _ = err.flush();
        let mut line = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|_| Asked::Interrupted)?;
        if read == 0 {
            let _ = writeln!(err);
            return Err(Asked::Interrupted);
        }
        let answer = match line.trim() {
            "" => default,
            typed => typed,
        };
        match valid(answer) {
            Ok(()) => return Ok(answer.to_owned()),
            Err(why) => {
                let mut text = String::new();
                let _ = dialoguer::theme::Theme::format_error(&theme, &mut text, &why);
                let _ = writeln!(err, "{text}");
            }
        }
    }
}
