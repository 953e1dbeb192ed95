//! `jarvis mine policy show|check`: the effective grants, and where each
//! came from; and validation of a policy file before it is deployed.

use super::output::{BAD, DIM, GOOD, HEADING, paint};
use super::session::{paths_and_config, sandbox_and_registry};
use super::{CliError, CliResult, output_error};
use crate::bounded_read::{self, POLICY_FILE};
use crate::policy::{PolicyFile, PolicySource, View};
use crate::provider::LoadedProvider;
use crate::sandbox::{SandboxLimits, human_bytes, human_duration};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine policy show
  jarvis mine policy show --provider acme-miner --json
  jarvis mine policy check ~/.openjarvis/mining/policy.toml")]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print each provider's effective grants and the files they come from.
    #[command(after_help = "Examples:
  jarvis mine policy show
  jarvis mine policy show --provider acme-miner --json")]
    Show {
        /// Only this provider.
        #[arg(long, value_name = "ID")]
        provider: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a policy file (exit 2 with file:line:column when it is not valid).
    #[command(after_help = "Examples:
  jarvis mine policy check ~/.openjarvis/mining/policy.toml
  sudo jarvis mine policy check /etc/openjarvis/mining-policy.toml")]
    Check {
        /// The policy file to check.
        file: PathBuf,
    },
}

pub fn run(args: &PolicyArgs, limits: SandboxLimits) -> CliResult {
    match &args.command {
        PolicyCommand::Show { provider, json } => show(provider.as_deref(), *json, limits),
        PolicyCommand::Check { file } => check(file),
    }
}

#[derive(Serialize)]
struct ShowReport {
    files: Vec<PolicySource>,
    providers: Vec<ProviderGrants>,
}

#[derive(Serialize)]
struct ProviderGrants {
    id: String,
    source: &'static str,
    requested: Vec<&'static str>,
    granted: Vec<&'static str>,
    /// Requested but withheld, with the policy's reason.
    withheld: BTreeMap<&'static str, String>,
    limits: Limits,
    /// The files that decide, in the order they are applied.
    views: Vec<View>,
}

#[derive(Serialize)]
struct Limits {
    memory_bytes: usize,
    call_timeout_ms: u128,
    host_time_ms: u128,
    output_bytes: usize,
}

fn grants(provider: &LoadedProvider) -> ProviderGrants {
    let policy = provider.policy();
    let requested = provider.requested();
    let limits = provider.limits();
    ProviderGrants {
        id: provider.id().to_owned(),
        source: provider.source.label(),
        requested: requested.iter().map(|c| c.name()).collect(),
        granted: policy
            .granted(requested)
            .into_iter()
            .map(|c| c.name())
            .collect(),
        withheld: requested
            .iter()
            .filter_map(|c| Some((c.name(), policy.withheld(*c)?.reason)))
            .collect(),
        limits: Limits {
            memory_bytes: limits.memory_bytes,
            call_timeout_ms: limits.call_timeout.as_millis(),
            host_time_ms: limits.host_time.as_millis(),
            output_bytes: limits.output_bytes,
        },
        views: policy.views().to_vec(),
    }
}

fn show(only: Option<&str>, json: bool, limits: SandboxLimits) -> CliResult {
    let (paths, _) = paths_and_config()?;
    let (_, registry, policy) = sandbox_and_registry(&paths, limits)?;
    let providers: Vec<ProviderGrants> = registry
        .providers
        .iter()
        .filter(|p| only.is_none_or(|id| p.id() == id))
        .map(grants)
        .collect();
    if let Some(id) = only
        && providers.is_empty()
    {
        let known: Vec<&str> = registry.providers.iter().map(|p| p.id()).collect();
        return Err(CliError::invalid_input(format!(
            "no provider '{id}' is loaded (known: {})",
            known.join(", ")
        )));
    }
    let report = ShowReport {
        files: policy.sources(),
        providers,
    };
    super::output::print(json, &report, write_report)?;
    Ok(ExitCode::SUCCESS)
}

fn write_report(out: &mut impl Write, report: &ShowReport) -> std::io::Result<()> {
    writeln!(out, "{}", paint(HEADING, "Policy files"))?;
    for file in &report.files {
        writeln!(
            out,
            "  {:<7} {}  {}",
            file.role,
            file.path.display(),
            paint(
                if file.state.starts_with("invalid") {
                    BAD
                } else {
                    DIM
                },
                &file.state
            )
        )?;
    }
    for provider in &report.providers {
        writeln!(out)?;
        writeln!(
            out,
            "{} {}",
            paint(HEADING, &provider.id),
            paint(DIM, &format!("({})", provider.source))
        )?;
        let capabilities: Vec<String> = provider
            .requested
            .iter()
            .map(|c| {
                if provider.granted.contains(c) {
                    format!("{c} {}", paint(GOOD, "granted"))
                } else {
                    format!("{c} {}", paint(BAD, "withheld"))
                }
            })
            .collect();
        let capabilities = if capabilities.is_empty() {
            "none requested".to_owned()
        } else {
            capabilities.join(", ")
        };
        writeln!(out, "  capabilities  {capabilities}")?;
        for (capability, reason) in &provider.withheld {
            writeln!(out, "    {capability}: {reason}")?;
        }
        let l = &provider.limits;
        writeln!(
            out,
            "  limits        memory {}, call {}, host time {}, output {}",
            human_bytes(l.memory_bytes),
            human_duration(std::time::Duration::from_millis(l.call_timeout_ms as u64)),
            human_duration(std::time::Duration::from_millis(l.host_time_ms as u64)),
            human_bytes(l.output_bytes),
        )?;
        if provider.views.is_empty() {
            writeln!(
                out,
                "  rules         built-in default: everything the host's own limits allow"
            )?;
        }
        for view in &provider.views {
            let role = match view.role {
                crate::policy::Role::Grants => "grants",
                crate::policy::Role::Ceiling => "ceiling",
            };
            writeln!(
                out,
                "  rules         [{}] in {} ({role}{})",
                view.key,
                view.file.display(),
                if view.strict {
                    ", keys left out grant nothing"
                } else {
                    ""
                }
            )?;
            let Some(grant) = &view.grant else {
                writeln!(
                    out,
                    "                {}",
                    paint(BAD, "no grant: every capability denied")
                )?;
                continue;
            };
            let text = snippet(&view.key, grant);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                writeln!(out, "                {line}")?;
            }
        }
    }
    Ok(())
}

/// The grant as the TOML that says it, under its own key, ready to paste.
fn snippet(key: &str, grant: &crate::policy::file::Grant) -> String {
    let mut root = toml::Table::new();
    let value = toml::Value::try_from(grant).unwrap_or_else(|_| toml::Table::new().into());
    match key.strip_prefix("providers.") {
        Some(id) => {
            let id = id.trim_matches('"').to_owned();
            root.insert(
                "providers".into(),
                toml::Table::from_iter([(id, value)]).into(),
            );
        }
        None => {
            root.insert(key.to_owned(), value);
        }
    }
    toml::to_string(&root).unwrap_or_default()
}

fn check(file: &std::path::Path) -> CliResult {
    let text = bounded_read::read_text(file, &POLICY_FILE)
        .map_err(|err| CliError::invalid_input(err.to_string()))?;
    let policy =
        PolicyFile::parse(&text, file).map_err(|err| CliError::invalid_input(err.to_string()))?;
    let mut out = super::output::stdout();
    let providers: Vec<&str> = policy.providers.keys().map(String::as_str).collect();
    writeln!(
        out,
        "{}: {} ({} provider grant{}{}{})",
        file.display(),
        paint(GOOD, "valid"),
        providers.len(),
        if providers.len() == 1 { "" } else { "s" },
        if policy.default.is_some() {
            ", a [default] grant"
        } else {
            ""
        },
        match policy.installed.allow {
            Some(false) => ", installed providers disabled",
            _ if policy.installed.sha256.is_some() => ", installed providers pinned by sha256",
            _ => "",
        }
    )
    .map_err(output_error)?;
    Ok(ExitCode::SUCCESS)
}
