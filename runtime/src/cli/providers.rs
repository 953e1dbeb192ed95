//! `jarvis mine providers list|inspect|install|remove`: community providers.
//! The library is `crate::install`; this file asks and prints.

use super::escape::one_line;
use super::output::{BAD, DIM, GOOD, HEADING, paint};
use super::session::{policy, sandbox_and_registry};
use super::{CliError, CliResult, exit, output_error};
use crate::bindings::Contract;
use crate::install::{
    self, CapabilityStatus, Inspection, InstallError, InstallPlan, Installer, Planned, Summary,
};
use crate::paths::Paths;
use crate::policy::{Policy, Role};
use crate::provider::ProviderSource;
use crate::rewards::ComponentScan;
use crate::sandbox::{Sandbox, SandboxLimits, human_bytes, human_duration};
use crate::session::LockError;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:
  jarvis mine providers list
  jarvis mine providers inspect ./acme-miner.wasm
  jarvis mine providers install ./acme-miner.wasm")]
pub struct ProvidersArgs {
    #[command(subcommand)]
    command: ProvidersCommand,
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Built-in and installed providers: what each requests and what the policy grants.
    #[command(after_help = "Examples:
  jarvis mine providers list
  jarvis mine providers list --json")]
    List(ListArgs),
    /// Show a provider (by id) or a component file (by path) in full.
    #[command(after_help = "Examples:
  jarvis mine providers inspect vllm-pearl
  jarvis mine providers inspect ./acme-miner.wasm --json")]
    Inspect(InspectArgs),
    /// Validate a component and copy it into <home>/mining/providers/.
    #[command(after_help = "Examples:
  jarvis mine providers install ./acme-miner.wasm
  jarvis mine providers install -y --replace ./acme-miner.wasm")]
    Install(InstallArgs),
    /// Delete an installed provider and its compiled code.
    #[command(after_help = "Examples:
  jarvis mine providers remove acme-miner
  jarvis mine providers remove -y acme-miner")]
    Remove(RemoveArgs),
}

#[derive(Args)]
struct ListArgs {
    /// Print one JSON object (`providers`, `failures`) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// A provider id, or the path of a component file (anything with a `/`
    /// or a `.` is a path; ids have neither).
    #[arg(value_name = "ID|FILE")]
    target: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InstallArgs {
    /// The component (`.wasm`) to install.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Install without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Replace an installed provider with the same id (or overwrite
    /// `<id>.wasm` when it holds something else).
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
struct RemoveArgs {
    /// An installed provider's id, or the name of a file in
    /// <home>/mining/providers/ (for one that does not load).
    #[arg(value_name = "ID")]
    target: String,
    /// Remove without asking.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub fn run(args: &ProvidersArgs, limits: SandboxLimits) -> CliResult {
    let paths = Paths::from_env().map_err(|err| CliError::failure(err.to_string()))?;
    match &args.command {
        ProvidersCommand::List(list) => run_list(&paths, list, limits),
        ProvidersCommand::Inspect(inspect) => run_inspect(&paths, inspect, limits),
        ProvidersCommand::Install(install) => run_install(&paths, install, limits),
        ProvidersCommand::Remove(remove) => run_remove(&paths, remove, limits),
    }
}

/// Exit codes: a bad file or name 2, a policy denial 9, a held lock 8.
fn install_error(err: InstallError) -> CliError {
    let code = match &err {
        InstallError::Invalid(_) => exit::INVALID_INPUT,
        InstallError::Denied(_) => exit::DENIED,
        InstallError::Lock(LockError::Busy { .. }) => exit::BUSY,
        InstallError::Lock(_) | InstallError::Failed(_) => exit::FAILURE,
    };
    CliError {
        code,
        message: err.to_string(),
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    providers: Vec<Summary>,
    failures: Vec<FailureRow<'a>>,
    /// Where installed providers live.
    directory: PathBuf,
    /// Where grants go.
    policy: &'a Path,
}

#[derive(Serialize)]
struct FailureRow<'a> {
    name: &'a str,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a Path>,
    error: &'a str,
}

fn run_list(paths: &Paths, args: &ListArgs, limits: SandboxLimits) -> CliResult {
    let (_sandbox, registry, policy) = sandbox_and_registry(paths, limits)?;
    let listing = Listing {
        providers: registry.providers.iter().map(Summary::of).collect(),
        failures: registry
            .failures
            .iter()
            .map(|failure| FailureRow {
                name: &failure.name,
                source: failure.source.label(),
                file: match &failure.source {
                    ProviderSource::Installed(path) => Some(path),
                    ProviderSource::Builtin => None,
                },
                error: &failure.error,
            })
            .collect(),
        directory: paths.installed_providers().absolute(),
        policy: policy.user_path(),
    };
    super::output::print(args.json, &listing, |out, listing| {
        write_listing(out, listing)
    })?;
    Ok(ExitCode::SUCCESS)
}

fn write_listing(out: &mut impl Write, listing: &Listing<'_>) -> std::io::Result<()> {
    let source = |row: &Summary| match &row.file {
        Some(file) => format!("{} ({})", row.source, crate::registry::file_name(file)),
        None => row.source.to_owned(),
    };
    let width = |header: &str, cells: &mut dyn Iterator<Item = usize>| {
        cells.max().unwrap_or(0).max(header.len())
    };
    let id_w = width("ID", &mut listing.providers.iter().map(|p| p.id.len()));
    let source_w = width(
        "SOURCE",
        &mut listing.providers.iter().map(|p| source(p).len()),
    );
    let version_w = width(
        "VERSION",
        &mut listing.providers.iter().map(|p| p.version.len()),
    );
    writeln!(out, "{}", paint(HEADING, "Mining providers"))?;
    let header = format!(
        "{:<id_w$}  {:<source_w$}  {:<version_w$}  {:<12}  CAPABILITIES",
        "ID", "SOURCE", "VERSION", "SHA256"
    );
    writeln!(out, "{}", paint(HEADING, &header))?;
    for row in &listing.providers {
        writeln!(
            out,
            "{:<id_w$}  {:<source_w$}  {:<version_w$}  {:<12}  {}",
            row.id,
            one_line(&source(row)),
            one_line(&row.version),
            install::short(&row.sha256),
            capability_marks(&row.capabilities)
        )?;
    }
    if !listing.failures.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint(HEADING, "Not loaded"))?;
        for failure in &listing.failures {
            let origin = match failure.file {
                Some(file) if crate::registry::file_name(file) != failure.name => {
                    format!("{}, {}", failure.source, crate::registry::file_name(file))
                }
                _ => failure.source.to_owned(),
            };
            writeln!(
                out,
                "{} {} ({}): {}",
                paint(BAD, "✗"),
                one_line(failure.name),
                one_line(&origin),
                one_line(failure.error)
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        paint(
            DIM,
            &format!(
                "Installed providers live in {}; grants go in {}.\nDetails: jarvis mine providers inspect ID",
                listing.directory.display(),
                listing.policy.display()
            )
        )
    )
}

/// `containers ✓  sidecar ✗`, or `none requested`.
fn capability_marks(capabilities: &[CapabilityStatus]) -> CapabilityMarks<'_> {
    CapabilityMarks(capabilities)
}

struct CapabilityMarks<'a>(&'a [CapabilityStatus]);

impl std::fmt::Display for CapabilityMarks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "{}", paint(DIM, "none requested"));
        }
        for (n, c) in self.0.iter().enumerate() {
            let mark = if c.granted {
                paint(GOOD, "✓")
            } else {
                paint(BAD, "✗")
            };
            let gap = if n == 0 { "" } else { "  " };
            write!(f, "{gap}{} {mark}", c.name)?;
        }
        Ok(())
    }
}

fn run_inspect(paths: &Paths, args: &InspectArgs, limits: SandboxLimits) -> CliResult {
    let target = args.target.as_str();
    // Ids have neither a `/` nor a `.`; anything else is a path.
    let path_like = target.contains(['/', '.']);
    let inspection = if path_like {
        inspect_file(paths, Path::new(target), limits)?
    } else {
        let (sandbox, registry, policy) = sandbox_and_registry(paths, limits)?;
        let installer = Installer {
            paths,
            sandbox: &sandbox,
            registry: &registry,
            policy: &policy,
        };
        if !installer.knows(target) && Path::new(target).is_file() {
            inspect_file(paths, Path::new(target), limits)?
        } else {
            installer.inspect_id(target).map_err(install_error)?
        }
    };
    super::output::print(args.json, &inspection, |out, inspection| {
        write_inspection(out, inspection)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A file is inspected with the compiled-code cache, which it leaves as it
/// found it.
fn inspect_file(paths: &Paths, file: &Path, limits: SandboxLimits) -> Result<Inspection, CliError> {
    if !file.exists() {
        return Err(CliError::invalid_input(format!(
            "{}: no such file (give a provider id or the path of a component)",
            file.display()
        )));
    }
    let policy = policy(paths)?;
    let cache = paths.component_cache();
    let sandbox = Sandbox::new(limits, Some(cache.clone()))
        .map_err(|err| CliError::failure(format!("cannot start the provider sandbox: {err:#}")))?;
    install::inspect_file(&sandbox, &policy, file, Some(&cache)).map_err(install_error)
}

fn write_inspection(out: &mut impl Write, inspection: &Inspection) -> std::io::Result<()> {
    let summary = &inspection.summary;
    let origin = match &summary.file {
        Some(file) => format!("{}, {}", summary.source, file.display()),
        None => summary.source.to_owned(),
    };
    writeln!(
        out,
        "{} {}  {}",
        paint(HEADING, &summary.id),
        one_line(&summary.version),
        paint(DIM, format!("({})", one_line(&origin)))
    )?;
    if !summary.description.is_empty() {
        writeln!(out, "  {}", one_line(&summary.description))?;
    }
    let field = |out: &mut dyn Write, name: &str, value: &dyn std::fmt::Display| {
        writeln!(out, "  {:<14}{value}", paint(HEADING, name))
    };
    // An older contract's component is served through the shims.
    let served = (inspection.contract != Contract::CURRENT.version()).then(|| {
        format!(
            " (contract {}, served through shims over {})",
            inspection.contract,
            Contract::CURRENT.version()
        )
    });
    field(
        out,
        "WIT",
        &format_args!(
            "{}{}",
            one_line(&inspection.wit),
            paint(DIM, served.unwrap_or_default())
        ),
    )?;
    field(out, "sha256", &summary.sha256)?;
    field(
        out,
        "size",
        &format_args!(
            "{} ({} bytes)",
            human_bytes(inspection.size as usize),
            inspection.size
        ),
    )?;
    let imports = group_interfaces(&inspection.imports);
    field(
        out,
        "imports",
        &one_line(imports.first().map_or("none", String::as_str)),
    )?;
    for line in imports.iter().skip(1) {
        field(out, "", &one_line(line))?;
    }
    if summary.capabilities.is_empty() {
        field(out, "capabilities", &paint(DIM, "none requested"))?;
    }
    let name_w = summary
        .capabilities
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for (n, capability) in summary.capabilities.iter().enumerate() {
        let label = if n == 0 { "capabilities" } else { "" };
        match &capability.reason {
            None => field(
                out,
                label,
                &format_args!("{:<name_w$}  {} granted", capability.name, paint(GOOD, "✓")),
            )?,
            Some(reason) => field(
                out,
                label,
                &format_args!(
                    "{:<name_w$}  {} withheld: {}",
                    capability.name,
                    paint(BAD, "✗"),
                    one_line(reason)
                ),
            )?,
        }
    }
    let limits = &inspection.limits;
    field(
        out,
        "limits",
        &format_args!(
            "{} guest time per call, {} memory, {} output, {} log; {} in host calls per lifecycle call",
            human_duration(Duration::from_millis(limits.call_timeout_ms)),
            human_bytes(limits.memory_bytes),
            human_bytes(limits.output_bytes),
            human_bytes(limits.log_bytes),
            human_duration(Duration::from_millis(limits.host_time_ms)),
        ),
    )?;
    if inspection.policy.is_empty() {
        field(
            out,
            "policy",
            &"no policy file names it: a built-in gets what it requests",
        )?;
    }
    for (n, view) in inspection.policy.iter().enumerate() {
        let role = match (view.role, view.present) {
            (Role::Grants, true) => "grants",
            (Role::Grants, false) => "grants; not there, so nothing is granted",
            (Role::Ceiling, _) => "ceiling",
        };
        let label = if n == 0 { "policy" } else { "" };
        field(
            out,
            label,
            &format_args!("[{}] in {} ({role})", view.key, view.file.display()),
        )?;
    }
    for note in &inspection.notes {
        field(out, "note", &paint(BAD, one_line(note)))?;
    }
    write_warnings(out, &inspection.warnings)
}

/// Pearl addresses and pool URLs the component embeds, and what the host
/// does about addresses.
fn write_warnings(out: &mut impl Write, scan: &ComponentScan) -> std::io::Result<()> {
    let label = |n: usize| if n == 0 { "warning" } else { "" };
    for (n, finding) in scan.findings.iter().enumerate() {
        writeln!(
            out,
            "  {}{}",
            paint(HEADING, &format!("{:<14}", label(n))),
            paint(BAD, &format!("embeds {finding}"))
        )?;
    }
    if scan.omitted > 0 {
        writeln!(out, "  {:<14}and {} more", "", scan.omitted)?;
    }
    if !scan.findings.is_empty() {
        writeln!(
            out,
            "  {:<14}{}",
            "",
            paint(
                DIM,
                "Mining rewards go only to [mining].wallet_address: the host refuses a container whose env or args carry another Pearl address. A pool URL sends hash power to that pool."
            )
        )?;
    }
    Ok(())
}

/// `openjarvis:mining@0.1.0: log, types` per package, in first-seen order;
/// names that are not interfaces as they are.
fn group_interfaces(names: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in names {
        let (package, interface) = match name.split_once('/') {
            Some((namespace, rest)) => match rest.split_once('@') {
                Some((interface, version)) => (format!("{namespace}@{version}"), interface),
                None => (namespace.to_owned(), rest),
            },
            None => (name.clone(), ""),
        };
        if !groups.contains_key(&package) {
            order.push(package.clone());
        }
        let members = groups.entry(package).or_default();
        if !interface.is_empty() {
            members.push(interface);
        }
    }
    order
        .into_iter()
        .map(|package| match groups[&package].as_slice() {
            [] => package,
            members => format!("{package}: {}", members.join(", ")),
        })
        .collect()
}

fn run_install(paths: &Paths, args: &InstallArgs, limits: SandboxLimits) -> CliResult {
    let (sandbox, registry, policy) = sandbox_and_registry(paths, limits)?;
    let installer = Installer {
        paths,
        sandbox: &sandbox,
        registry: &registry,
        policy: &policy,
    };
    let planned = installer
        .plan_install(&args.file, args.replace)
        .map_err(install_error)?;
    let mut out = super::output::stdout();
    let plan = match planned {
        Planned::AlreadyInstalled { inspected, file } => {
            write_inspection(&mut out, &inspected.inspection).map_err(output_error)?;
            writeln!(
                out,
                "\nProvider '{}' is already installed from {} (same sha256); nothing to do.",
                inspected.provider.id(),
                file.display()
            )
            .map_err(output_error)?;
            return Ok(ExitCode::SUCCESS);
        }
        Planned::Install(plan) => plan,
    };
    write_inspection(&mut out, &plan.inspected.inspection).map_err(output_error)?;
    write_replacement(&mut out, &plan, &policy).map_err(output_error)?;
    out.flush().map_err(output_error)?;
    let verb = if plan.replaces.is_some() || plan.overwrites {
        "Replace"
    } else {
        "Install"
    };
    let question = format!("{verb} provider '{}'?", plan.id());
    if !consent(args.yes, &question, "install")? {
        return Err(CliError::failure(
            "not installed: you declined; nothing was changed",
        ));
    }
    let id = plan.id().to_owned();
    let version = plan.inspected.provider.info.version.clone();
    let capabilities = plan.inspected.inspection.summary.capabilities.clone();
    let advice = install::grant_advice(&plan.inspected.provider, &policy);
    let installed = plan.commit(&installer).map_err(install_error)?;
    let cached = match installed.cache_entries.first() {
        Some(entry) => format!("compiled code cached in {}", entry.display()),
        None => "not cached (the next run compiles it)".to_owned(),
    };
    let mut written = || -> std::io::Result<()> {
        writeln!(
            out,
            "\n{} {id} {} as {}; {cached}.",
            paint(GOOD, "Installed"),
            one_line(&version),
            installed.file.display()
        )?;
        if let Some(old) = &installed.replaced {
            writeln!(
                out,
                "Replaced version {} (sha256 {}) from {}.",
                one_line(&old.version),
                install::short(&old.sha256),
                old.file.display()
            )?;
        }
        if capabilities.is_empty() {
            writeln!(
                out,
                "It requests no capabilities. It sees GPUs only where the policy lists them: gpus = [...] under [providers.\"{id}\"] in {}.",
                policy.user_path().display()
            )?;
        } else {
            writeln!(
                out,
                "The policy grants: {}",
                capability_marks(&capabilities)
            )?;
        }
        match &advice {
            Some(advice) if advice.table_exists => writeln!(
                out,
                "To grant what it requests, set this in the existing [providers.\"{id}\"] table of {}:\n\n{}",
                advice.file.display(),
                indent(&advice.snippet)
            )?,
            Some(advice) => writeln!(
                out,
                "To grant what it requests, add to {}:\n\n{}",
                advice.file.display(),
                indent(&advice.snippet)
            )?,
            None if !capabilities.is_empty() => {
                writeln!(out, "The policy already grants everything it requests.")?;
            }
            None => {}
        }
        writeln!(out, "{}", paint(DIM, "Nothing was granted automatically."))
    };
    written().map_err(output_error)?;
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// What installing this plan replaces or overwrites, and what carries over.
fn write_replacement(
    out: &mut impl Write,
    plan: &InstallPlan,
    policy: &Policy,
) -> std::io::Result<()> {
    if let Some(old) = &plan.replaces {
        writeln!(
            out,
            "\nThis replaces '{}' version {} (sha256 {}) installed from {}.",
            plan.id(),
            one_line(&old.version),
            install::short(&old.sha256),
            old.file.display()
        )?;
        if let Some(file) = install::user_table(&plan.inspected.provider, policy) {
            writeln!(
                out,
                "Grants go by id: what [providers.\"{}\"] in {} grants applies to the new component too.",
                plan.id(),
                file.display()
            )?;
        }
    } else if plan.overwrites {
        writeln!(out, "\nThis overwrites {}.", plan.target.display())?;
    }
    Ok(())
}

fn run_remove(paths: &Paths, args: &RemoveArgs, limits: SandboxLimits) -> CliResult {
    let (sandbox, registry, policy) = sandbox_and_registry(paths, limits)?;
    let installer = Installer {
        paths,
        sandbox: &sandbox,
        registry: &registry,
        policy: &policy,
    };
    let plan = installer.plan_remove(&args.target).map_err(install_error)?;
    let what = match (&plan.version, &plan.sha256) {
        (Some(version), Some(sha)) => format!(
            "{} {} ({}, sha256 {})",
            one_line(&plan.name()),
            one_line(version),
            plan.file.display(),
            install::short(sha)
        ),
        _ => format!("{} ({})", one_line(&plan.name()), plan.file.display()),
    };
    let question = format!("Remove provider {what}?");
    if !consent(args.yes, &question, "remove")? {
        return Err(CliError::failure(
            "not removed: you declined; nothing was changed",
        ));
    }
    let name = plan.name();
    let shadowed = plan.shadowed.clone();
    let policy_table = plan.policy_table.clone();
    let removed = plan.commit(&installer).map_err(install_error)?;
    let mut out = super::output::stdout();
    let entries = match removed.cache_entries.len() {
        1 => "1 compiled cache entry".to_owned(),
        n => format!("{n} compiled cache entries"),
    };
    // The name may be a file name: kept on one line.
    let name = one_line(&name);
    writeln!(
        out,
        "{} {name}: deleted {} and {entries}.",
        paint(GOOD, "Removed"),
        removed.file.display()
    )
    .map_err(output_error)?;
    let mut text = String::new();
    if let Some(copy) = &removed.cache_kept_for {
        text.push_str(&format!(
            "Its compiled code stays: {} is the same component.\n",
            copy.display()
        ));
    }
    if let Some(next) = shadowed.first() {
        text.push_str(&format!(
            "{} also declares '{name}' and loads in its place from now on.\n",
            next.display()
        ));
    }
    if let Some(file) = policy_table {
        text.push_str(&format!(
            "[providers.\"{name}\"] in {} still grants that id: delete the table unless you mean to install '{name}' again.\n",
            file.display()
        ));
    }
    write!(out, "{text}").map_err(output_error)?;
    Ok(ExitCode::SUCCESS)
}

/// `--yes`, else the answer to a prompt on a terminal, else exit 2.
fn consent(yes: bool, question: &str, verb: &str) -> Result<bool, CliError> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::invalid_input(format!(
            "pass --yes to {verb} without a prompt (stdin is not a terminal); nothing was changed"
        )));
    }
    let mut err = super::output::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::failure(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}
