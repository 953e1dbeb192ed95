//! `jarvis pearl`: Pearl's own tools (`pearld`, `oyster`, `prlctl`), found
//! and run by the library (`pearl_tools.rs`).

use super::output::{BAD, GOOD, HEADING, paint};
use super::{CliError, CliResult, exit, output_error};
use crate::pearl_tools::{
    AddressOptions, Found, Invocation, NotFound, RunError, Search, Source, Tool, exit_code,
    parse_server,
};
use crate::redact::Redactor;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct PearlArgs {
    #[command(subcommand)]
    command: PearlCommand,
}

#[derive(Subcommand)]
enum PearlCommand {
    /// Show which Pearl tools (pearld, oyster, prlctl) are found, and where.
    #[command(
        after_help = "Looks on PATH, then in bin/ of --pearl-home, $PEARL_HOME, ./pearl, ../pearl and
~/pearl, then in ~/.local/bin (where Pearl's install script puts them).

Examples:
  jarvis pearl doctor
  jarvis pearl doctor --pearl-home ~/src/pearl
  jarvis pearl doctor --json --strict"
    )]
    Doctor(DoctorArgs),
    /// Run pearld, Pearl's full node, with these arguments.
    #[command(
        after_help = "pearld's exit code is this command's (127 if pearld is not found).
Options after the first argument for pearld, and everything after --, are pearld's.

Examples:
  jarvis pearl node --rpcuser=rpcuser --rpcpass=rpcpass --txindex
  jarvis pearl node --pearl-home ~/src/pearl -- --help"
    )]
    Node(PassArgs),
    /// Run oyster, Pearl's wallet daemon, with these arguments.
    #[command(
        after_help = "oyster's exit code is this command's (127 if oyster is not found).
Options after the first argument for oyster, and everything after --, are oyster's.

Examples:
  jarvis pearl wallet -u rpcuser -P rpcpass --create
  jarvis pearl wallet -- --help"
    )]
    Wallet(PassArgs),
    /// Run prlctl, Pearl's RPC client (for the node, or with --wallet the wallet).
    #[command(
        after_help = "prlctl's exit code is this command's (127 if prlctl is not found).
Options after the first argument for prlctl, and everything after --, are prlctl's.

Examples:
  jarvis pearl ctl -u rpcuser -P rpcpass getblockcount
  jarvis pearl ctl --wallet --skipverify -u rpcuser -P rpcpass -s localhost:44207 getbalance
  jarvis pearl ctl -- --help"
    )]
    Ctl(PassArgs),
    /// Ask the Oyster wallet for a new receiving address (prlctl --wallet getnewaddress).
    #[command(
        after_help = "Runs prlctl --wallet --skipverify -u USER -P PASSWORD -s SERVER getnewaddress and
prints its answer; the password is never printed. prlctl's exit code is this command's.

Examples:
  jarvis pearl address
  jarvis pearl address -u alice -P \"$WALLET_PASS\" -s localhost:44209
  PEARL_WALLET_PASSWORD=… jarvis pearl address --notls"
    )]
    Address(AddressArgs),
}

#[derive(Args)]
struct HomeArg {
    /// A Pearl checkout whose bin/ holds the tools (looked in after PATH, before $PEARL_HOME).
    #[arg(long, value_name = "DIR")]
    pearl_home: Option<PathBuf>,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Print one JSON object instead of rows.
    #[arg(long)]
    json: bool,
    /// Exit 1 unless all three tools are found.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct PassArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Arguments for the tool, passed on unchanged (after --, even -h, -v and --pearl-home).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

#[derive(Args)]
struct AddressArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The wallet's RPC user (oyster's -u).
    #[arg(short = 'u', long, value_name = "USER", default_value = "rpcuser")]
    user: String,
    /// The wallet's RPC password (oyster's -P); never printed or logged.
    #[arg(
        short = 'P',
        long,
        value_name = "PASSWORD",
        default_value = "rpcpass",
        env = "PEARL_WALLET_PASSWORD",
        hide_env_values = true
    )]
    password: String,
    /// The wallet's RPC address as host:port, not a URL (testnet: localhost:44209).
    #[arg(short = 's', long, value_name = "HOST:PORT", default_value = crate::pearl_tools::WALLET_SERVER, value_parser = parse_server)]
    server: String,
    /// Plain HTTP to the wallet (it must run with TLS off).
    #[arg(long, overrides_with = "tls")]
    notls: bool,
    /// TLS to the wallet (the default).
    #[arg(long, overrides_with = "notls")]
    tls: bool,
    /// With TLS, accept the wallet's self-signed certificate (the default).
    #[arg(long, overrides_with = "verify")]
    skipverify: bool,
    /// With TLS, verify the wallet's certificate (against prlctl's own certificate settings).
    #[arg(long, overrides_with = "skipverify")]
    verify: bool,
}

pub fn run(args: &PearlArgs) -> CliResult {
    match &args.command {
        PearlCommand::Doctor(args) => doctor(args),
        PearlCommand::Node(args) => pass_through(Tool::Node, args),
        PearlCommand::Wallet(args) => pass_through(Tool::Wallet, args),
        PearlCommand::Ctl(args) => pass_through(Tool::Ctl, args),
        PearlCommand::Address(args) => address(args),
    }
}

fn search(home: &HomeArg) -> Search {
    Search::from_env(home.pearl_home.clone())
}

/// The tool, or the error that says where it was looked for. A root that
/// is not a directory is in that error; when the tool is found elsewhere, a
/// `--pearl-home` typo is still worth a warning.
fn resolve(search: &Search, tool: Tool) -> Result<Found, CliError> {
    let found = search.resolve(tool).map_err(not_found)?;
    for (source, root) in search.missing_roots() {
        if *source == Source::PearlHomeFlag {
            tracing::warn!("--pearl-home {} is not a directory", root.display());
        } else {
            tracing::info!("{} {} is not a directory", source.label(), root.display());
        }
    }
    tracing::info!(
        "{}: {} (from {})",
        tool.binary(),
        found.path.display(),
        found.source.label()
    );
    Ok(found)
}

fn not_found(err: NotFound) -> CliError {
    CliError {
        code: exit::NOT_FOUND,
        message: err.to_string(),
    }
}

fn run_error(err: RunError) -> CliError {
    CliError {
        code: if err.not_found() {
            exit::NOT_FOUND
        } else {
            exit::CANNOT_RUN
        },
        message: err.to_string(),
    }
}

fn pass_through(tool: Tool, args: &PassArgs) -> CliResult {
    let found = resolve(&search(&args.home), tool)?;
    let invocation = Invocation::passthrough(&found, &args.args);
    tracing::info!("running {invocation}");
    let code = crate::pearl_tools::hand_over(&invocation).map_err(run_error)?;
    Ok(ExitCode::from(code))
}

fn address(args: &AddressArgs) -> CliResult {
    let found = resolve(&search(&args.home), Tool::Ctl)?;
    let options = AddressOptions {
        user: args.user.clone(),
        password: args.password.clone(),
        server: args.server.clone(),
        no_tls: args.notls,
        skip_verify: !args.verify,
    };
    let invocation = Invocation {
        program: found.path,
        args: options.args(),
    };
    tracing::info!("running {invocation}");
    let output = crate::pearl_tools::run_captured(&invocation).map_err(run_error)?;
    // prlctl's own text may quote its command line or credentials.
    let redactor = Redactor::new([&args.password]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    super::output::stdout()
        .write_all(redactor.redact(&stdout).as_bytes())
        .map_err(output_error)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = super::output::stderr().write_all(redactor.redact(&stderr).as_bytes());
    let code = exit_code(output.status);
    if code != 0 {
        return Err(CliError {
            code,
            message: format!("prlctl exited with {code}"),
        });
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ToolRow {
    name: &'static str,
    role: &'static str,
    found: bool,
    path: Option<PathBuf>,
    source: Option<&'static str>,
}

#[derive(Serialize)]
struct Place {
    source: &'static str,
    dir: PathBuf,
}

#[derive(Serialize)]
struct DoctorReport {
    ready: bool,
    tools: Vec<ToolRow>,
    searched: Vec<Place>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    /// The places looked in, as the rows say them.
    #[serde(skip)]
    looked_in: String,
}

fn doctor(args: &DoctorArgs) -> CliResult {
    let search = search(&args.home);
    let tools: Vec<ToolRow> = Tool::ALL
        .into_iter()
        .map(|tool| {
            let found = search.resolve(tool).ok();
            ToolRow {
                name: tool.binary(),
                role: tool.role(),
                found: found.is_some(),
                source: found.as_ref().map(|f| f.source.label()),
                path: found.map(|f| f.path),
            }
        })
        .collect();
    let report = DoctorReport {
        ready: tools.iter().all(|t| t.found),
        tools,
        searched: search
            .candidates()
            .iter()
            .map(|c| Place {
                source: c.source.label(),
                dir: c.dir.clone(),
            })
            .collect(),
        warnings: search
            .missing_roots()
            .iter()
            .map(|(source, root)| {
                format!("{} {} is not a directory", source.label(), root.display())
            })
            .collect(),
        looked_in: crate::pearl_tools::places(search.candidates()),
    };
    super::output::print(args.json, &report, write_doctor)?;
    if args.strict && !report.ready {
        let missing: Vec<&str> = report
            .tools
            .iter()
            .filter(|t| !t.found)
            .map(|t| t.name)
            .collect();
        return Err(CliError {
            code: exit::FAILURE,
            message: format!("not found: {}", missing.join(", ")),
        });
    }
    Ok(ExitCode::SUCCESS)
}

fn write_doctor(out: &mut impl Write, report: &DoctorReport) -> std::io::Result<()> {
    writeln!(out, "{}", paint(HEADING, "Pearl CLI Doctor"))?;
    for tool in &report.tools {
        match (&tool.path, tool.source) {
            (Some(path), Some(source)) => writeln!(
                out,
                "  {:<8} {} (from {source}) {}",
                tool.name,
                path.display(),
                paint(GOOD, "OK")
            )?,
            _ => writeln!(out, "  {:<8} not found {}", tool.name, paint(BAD, "FAIL"))?,
        }
    }
    if report.ready {
        return Ok(());
    }
    writeln!(out)?;
    for warning in &report.warnings {
        writeln!(out, "{warning}.")?;
    }
    writeln!(out, "Looked in {}.", report.looked_in)?;
    writeln!(out, "{}", crate::pearl_tools::INSTALL_HINT)
}
