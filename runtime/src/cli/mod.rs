//! The `jarvis mine` command line: argument parsing, logging, exit codes.
//! Each subcommand is a thin file over the library.
//!
//! Output goes through `output` only (its writers escape control
//! characters), so the standard print macros are refused here.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod attach;
mod audit;
mod doctor;
mod escape;
mod history;
mod init;
mod inspect_model;
mod logs;
mod models;
pub mod output;
mod pearl;
mod policy;
mod probe_progress;
mod providers;
mod service;
mod session;
mod start;
mod status;
mod stop;
mod supervise;
mod top;
mod validate_host;
mod validate_model;

use crate::sandbox::SandboxLimits;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes, documented in docs/user-guide.md.
pub mod exit {
    /// A check failed (`doctor --strict`) or an operation could not complete.
    pub const FAILURE: u8 = 1;
    /// Bad input: a malformed config or facts file, bad arguments, no `[mining]`.
    pub const INVALID_INPUT: u8 = 2;
    /// The Docker daemon cannot be reached, or the miner image cannot be had.
    pub const DOCKER_UNAVAILABLE: u8 = 3;
    /// The wallet address is malformed.
    pub const INVALID_WALLET: u8 = 4;
    /// The model is not a Pearl model the registry knows.
    pub const UNKNOWN_MODEL: u8 = 5;
    /// A variable named for a secret (the pearld password) is not set.
    pub const MISSING_SECRET: u8 = 6;
    /// The provider cannot mine on this host (`init`).
    pub const UNSUPPORTED: u8 = 7;
    /// Another `jarvis mine` command holds the session lock.
    pub const BUSY: u8 = 8;
    /// The capability policy denied what was asked (the message names the key).
    pub const DENIED: u8 = 9;
    /// `audit --verify`: the audit log's hash chain is broken (tampering).
    pub const AUDIT_BROKEN: u8 = 10;
    /// `validate-host`: a criterion of the NVIDIA release gate failed.
    pub const GATE_FAILED: u8 = 11;
    /// `jarvis pearl`: a Pearl tool was found but cannot be run (as a shell says).
    pub const CANNOT_RUN: u8 = 126;
    /// `jarvis pearl`: a Pearl tool is not found (as a shell says "command not found").
    pub const NOT_FOUND: u8 = 127;
    /// Ctrl-C or Ctrl-D at a prompt: nothing was written (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn invalid_input(message: impl Into<String>) -> Self {
        CliError {
            code: exit::INVALID_INPUT,
            message: message.into(),
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: exit::FAILURE,
            message: message.into(),
        }
    }
}

type CliResult = Result<ExitCode, CliError>;

/// A failed write to stdout; a closed pipe (`jarvis mine status | head`) is
/// not an error worth a message.
fn output_error(err: std::io::Error) -> CliError {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError {
            code: 0,
            message: String::new(),
        };
    }
    CliError::failure(format!("cannot write output: {err}"))
}

#[derive(Parser)]
#[command(
    name = "jarvis",
    version,
    about = "OpenJarvis command line (mining subsystem)"
)]
struct Cli {
    /// More output: -v this tool's steps and timings, -vv debug, -vvv everything (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Configure and run Pearl mining.
    Mine(Box<MineArgs>),
    /// Access Pearl node, wallet, and RPC tools.
    Pearl(pearl::PearlArgs),
    /// Print a shell completion script (docs/user-guide.md#shell-completion).
    #[command(after_help = "Examples:
  jarvis completions bash > ~/.local/share/bash-completion/completions/jarvis
  jarvis completions zsh > ~/.zfunc/_jarvis
  jarvis completions fish > ~/.config/fish/completions/jarvis.fish")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct MineArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(subcommand)]
    command: MineCommand,
}

/// Limits for every call into a provider.
#[derive(Args)]
struct SandboxArgs {
    /// Wall-clock limit of one provider call, e.g. 2s or 500ms.
    #[arg(long, global = true, value_name = "DURATION", env = "JARVIS_MINE_CALL_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    call_timeout: Duration,
    /// Memory one provider instance may use, in MiB.
    #[arg(long, global = true, value_name = "MIB", env = "JARVIS_MINE_MEMORY_LIMIT_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    memory_limit: u32,
}

impl SandboxArgs {
    fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            call_timeout: self.call_timeout,
            memory_bytes: self.memory_limit as usize * (1 << 20),
            ..SandboxLimits::default()
        }
    }
}

#[derive(Subcommand)]
enum MineCommand {
    /// List Pearl model support status.
    #[command(after_help = "Examples:
  jarvis mine models
  jarvis mine models --json")]
    Models(models::ModelsArgs),
    /// Check whether this host can mine, and say what to do next.
    Doctor(doctor::DoctorArgs),
    /// Set up mining: pick a provider for this host and write [mining].
    Init(init::InitArgs),
    /// Launch the configured mining provider.
    Start(start::StartArgs),
    /// Stop the configured mining provider (and everything it started).
    #[command(after_help = "Examples:
  jarvis mine stop
  jarvis -v mine stop    # name each container removed")]
    Stop,
    /// Print live mining stats.
    Status(status::StatusArgs),
    /// Shares per hour, energy, and energy per share per day, from the supervisor's history.
    History(history::HistoryArgs),
    /// Manual mode: write a sidecar for an externally-started miner.
    Attach(attach::AttachArgs),
    /// Inspect a Pearl model artifact before spending GPU time.
    InspectModel(inspect_model::InspectModelArgs),
    /// Collect runtime evidence for Pearl model validation.
    ValidateModel(validate_model::ValidateModelArgs),
    /// Run the NVIDIA release gate on this host and record its evidence.
    ValidateHost(validate_host::ValidateHostArgs),
    /// Print the Pearl miner container log tail.
    #[command(after_help = "Examples:
  jarvis mine logs
  jarvis mine logs -n 50 -f")]
    Logs(logs::LogsArgs),
    /// Show effective capability grants, or check a policy file.
    Policy(policy::PolicyArgs),
    /// Read the audit log of privileged calls and policy decisions.
    #[command(after_help = "Examples:
  jarvis mine audit -n 20
  jarvis mine audit --provider acme-miner --denied
  jarvis mine audit --verify")]
    Audit(audit::AuditArgs),
    /// Install, inspect and remove community providers.
    Providers(providers::ProvidersArgs),
    /// Keep the session mining: restart failed workers, serve Prometheus metrics.
    Supervise(supervise::SuperviseArgs),
    /// Run `jarvis mine supervise` under systemd: install or remove its unit.
    Service(service::ServiceArgs),
    /// A live view of the workers and GPUs in the terminal.
    Top(top::TopArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Completions { shell } => completions(shell),
        Command::Pearl(args) => pearl::run(&args),
        Command::Mine(mine) => match mine.command {
            MineCommand::Models(args) => models::run(&args),
            MineCommand::Doctor(args) => doctor::run(&args, mine.sandbox.limits()),
            MineCommand::Init(args) => init::run(&args, mine.sandbox.limits()),
            MineCommand::Start(args) => start::run(&args, mine.sandbox.limits()),
            MineCommand::Stop => stop::run(mine.sandbox.limits()),
            MineCommand::Status(args) => status::run(&args, mine.sandbox.limits()),
            MineCommand::History(args) => history::run(&args),
            MineCommand::Attach(args) => attach::run(&args),
            MineCommand::Logs(args) => logs::run(&args),
            MineCommand::InspectModel(args) => inspect_model::run(&args),
            MineCommand::ValidateModel(args) => validate_model::run(&args),
            MineCommand::ValidateHost(args) => validate_host::run(&args, mine.sandbox.limits()),
            MineCommand::Policy(args) => policy::run(&args, mine.sandbox.limits()),
            MineCommand::Audit(args) => audit::run(&args),
            MineCommand::Providers(args) => providers::run(&args, mine.sandbox.limits()),
            MineCommand::Supervise(args) => supervise::run(&args, mine.sandbox.limits()),
            MineCommand::Service(args) => service::run(&args),
            MineCommand::Top(args) => top::run(&args, mine.sandbox.limits()),
        },
    };
    result.unwrap_or_else(|err| {
        if !err.message.is_empty() {
            output::error(&err.message);
        }
        ExitCode::from(err.code)
    })
}

/// The completion script for `shell`, on stdout.
fn completions(shell: clap_complete::Shell) -> CliResult {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jarvis", &mut script);
    // The script is ours (no foreign text), so it is written as it is.
    std::io::stdout().write_all(&script).map_err(output_error)?;
    Ok(ExitCode::SUCCESS)
}

/// Help and version as clap prints them; a usage error, which quotes the
/// arguments, plain through the escaping writer (exit 2).
fn usage_error(err: &clap::Error) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let _ = write!(output::stderr(), "{}", err.render());
    ExitCode::from(exit::INVALID_INPUT)
}

/// `-v`: this tool's own steps (probes, decisions, container ids,
/// timings); `-vv`: debug for this project's crates; `-vvv`: everything.
/// Lines are `LEVEL message`, with the module path from `-vv` on.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "warn,jarvis_mine=info,host_gpu=info",
        2 => "warn,jarvis_mine=debug,host_gpu=debug",
        _ => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The Docker client and its HTTP stack log request and response bodies
    // at debug level, and a container's environment holds resolved secrets:
    // they never get past warnings, whatever RUST_LOG asks for.
    for quiet in [
        "bollard=warn",
        "hyper=warn",
        "hyper_util=warn",
        "h2=warn",
        "tonic=warn",
        // ureq-proto dumps request bytes (an Authorization header) at trace.
        "ureq=warn",
        "ureq_proto=warn",
        "rustls=warn",
    ] {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Log lines carry provider and container text: escaped, so uncoloured.
        .with_writer(output::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(verbose >= 2)
        .init();
}

/// "2s", "1.5s", "500ms", or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: use e.g. 2s or 500ms"))?;
    let seconds = value * scale;
    if !(0.001..=3600.0).contains(&seconds) {
        return Err(format!("'{text}' is out of range: use 1ms to 3600s"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag says what it does, and every command's help ends with
    /// examples.
    #[test]
    fn every_flag_has_help_and_every_command_examples() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str())
                {
                    missing.push(format!("{path}: --{} has no help", arg.get_id()));
                }
            }
            let leaf = command.get_subcommands().next().is_none();
            let examples = command
                .get_after_help()
                .is_some_and(|text| text.to_string().contains("Examples:"));
            if leaf && !examples && command.get_name() != "help" {
                missing.push(format!("{path}: no examples"));
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
