//! Community providers: what a component is, installing it into
//! `<home>/mining/providers/`, removing it. The library behind
//! `jarvis mine providers`; the command line only asks and prints.
//!
//! Nothing here grants anything. An installed provider gets what the policy
//! files give its id, which for an id they do not name is nothing; install
//! says what to add to `<home>/mining/policy.toml` instead.
//!
//! - [`inspect_file`] and [`Installer::inspect_id`] compile a component and
//!   call its pure `info()` in the sandbox, then describe it: identity, the
//!   WIT package it exports, size, sha256, requested capabilities against the
//!   policy, effective limits, and warnings about Pearl addresses and pool
//!   URLs written into it.
//! - [`Installer::plan_install`] validates a file the same way and checks the
//!   built-in ids, the policy's `[installed]` rules and what is installed;
//!   [`InstallPlan::commit`] then writes the validated bytes (not the file
//!   again) to `<id>.wasm` with a temp file and a rename, keeps the compiled
//!   code in the cache and records the install in the audit log. A plan that
//!   is dropped uncommitted leaves nothing behind, not even cache entries.
//! - [`Installer::plan_remove`] and [`RemovePlan::commit`] delete an installed
//!   file and every cache entry of its component.

use crate::bindings::Capability;
use crate::home::HomePath;
use crate::paths::Paths;
use crate::policy::{Policy, Role};
use crate::provider::{LoadedProvider, ProviderSource};
use crate::registry::{self, BUILTIN_COMPONENTS, Registry};
use crate::rewards::{self, ComponentScan};
use crate::sandbox::{ComponentCache, Sandbox};
use crate::session::{LockError, SessionLock, sidecar};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::Component;

/// How long replacing or removing a provider waits for a `start` or `stop`
/// that holds the session lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Mode of an installed provider file: the user's, readable by all.
const FILE_MODE: u32 = 0o644;

/// Why an inspection, install or removal did not happen. The message says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The file is not a provider, the id is taken, nothing has that id.
    #[error("{0}")]
    Invalid(String),
    /// The policy forbids it.
    #[error("{0}")]
    Denied(String),
    /// The session lock is held, or cannot be taken.
    #[error("{0}")]
    Lock(#[from] LockError),
    /// Reading, writing or recording failed, or the provider is in use.
    #[error("{0}")]
    Failed(String),
}

/// One requested capability and the policy's answer.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityStatus {
    pub name: &'static str,
    pub granted: bool,
    /// Why it is withheld: the key to change and the file it lives in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `info()` says and what the policy grants: one row of `list`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub version: String,
    pub description: String,
    /// `builtin`, `installed`, or `file` (a component that is not installed).
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub sha256: String,
    /// Requested in `info()`, each granted or withheld.
    pub capabilities: Vec<CapabilityStatus>,
}

impl Summary {
    pub fn of(provider: &LoadedProvider) -> Summary {
        let file = match &provider.source {
            ProviderSource::Builtin => None,
            ProviderSource::Installed(path) => Some(path.clone()),
        };
        Summary {
            id: provider.info.id.clone(),
            version: provider.info.version.clone(),
            description: provider.info.description.clone(),
            source: provider.source.label(),
            file,
            sha256: provider.sha256.clone(),
            capabilities: capabilities(provider),
        }
    }
}

/// The requested capabilities with the policy's answer for each.
pub fn capabilities(provider: &LoadedProvider) -> Vec<CapabilityStatus> {
    provider
        .requested()
        .iter()
        .map(|capability| {
            let reason = provider.policy().withheld(*capability).map(|d| d.reason);
            CapabilityStatus {
                name: capability.name(),
                granted: reason.is_none(),
                reason,
            }
        })
        .collect()
}

/// The limits a provider's calls run under (the sandbox's, narrowed by the policy).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Guest time per call.
    pub call_timeout_ms: u64,
    /// Time one lifecycle call may spend in host calls.
    pub host_time_ms: u64,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub log_bytes: usize,
}

/// One policy file's say about a provider.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub file: PathBuf,
    /// `providers."ID"` or `default`.
    pub key: String,
    /// `grants` or `ceiling`.
    pub role: Role,
    /// Whether the file has that table (an installed provider's granting
    /// view may name a table that does not exist yet: it then grants nothing).
    pub present: bool,
}

/// Everything `inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub summary: Summary,
    /// The package the component exports `provider` from, e.g. `openjarvis:mining@0.1.0`.
    pub wit: String,
    /// The contract version the host serves it as (`0.1.0`: through the
    /// shims over the current contract).
    pub contract: &'static str,
    /// Every interface the component exports and imports, as it names them.
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    /// Size of the component in bytes.
    pub size: u64,
    pub limits: Limits,
    pub policy: Vec<PolicyView>,
    /// What stands in the way of installing (or loading) it, if anything.
    pub notes: Vec<String>,
    /// Pearl addresses and pool URLs written into the component: a provider
    /// that pays its author would carry them.
    pub warnings: ComponentScan,
}

/// The bytes of a component and their sha256.
pub struct ComponentBytes {
    /// Where they came from (`None` for a built-in).
    pub path: Option<PathBuf>,
    pub bytes: Cow<'static, [u8]>,
    pub sha256: String,
}

impl ComponentBytes {
    /// Reads a component file: a regular file, at most the registry's size
    /// limit, with a component's preamble.
    pub fn read(path: &Path) -> Result<ComponentBytes, InstallError> {
        let bytes = registry::read_component_file(path)
            .map_err(|err| InstallError::Invalid(err.to_string()))?;
        Ok(ComponentBytes {
            path: Some(path.to_owned()),
            sha256: sha256_hex(&bytes),
            bytes: Cow::Owned(bytes),
        })
    }

    fn builtin(id: &str) -> Option<ComponentBytes> {
        let builtin = BUILTIN_COMPONENTS.iter().find(|b| b.id == id)?;
        Some(ComponentBytes {
            path: None,
            bytes: Cow::Borrowed(builtin.bytes),
            sha256: builtin.sha256.to_owned(),
        })
    }

    fn name(&self) -> String {
        self.path.as_deref().map_or_else(
            || "built-in component".to_owned(),
            |path| path.display().to_string(),
        )
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A component compiled, linked and asked for `info()`.
pub struct Inspected {
    pub inspection: Inspection,
    pub provider: LoadedProvider,
}

/// Compiles and links `component`, calls its `info()`, and describes it.
/// `source` decides the policy (built-in or installed) it is judged by.
fn inspect(
    sandbox: &Sandbox,
    policy: &Policy,
    component: &ComponentBytes,
    source: ProviderSource,
) -> Result<Inspected, InstallError> {
    let name = component.name();
    let invalid = |err: String| InstallError::Invalid(format!("{name}: {err}"));
    let pre = registry::link(sandbox, &component.bytes, &component.sha256).map_err(invalid)?;
    let compiled = pre.component().clone();
    let provider = LoadedProvider::new(
        sandbox,
        pre,
        source,
        component.sha256.clone(),
        &name,
        policy,
    )
    .map_err(|err| invalid(format!("info() failed: {err}")))?;
    let (wit, exports, imports) = interfaces(&compiled);
    let limits = provider.limits();
    let inspection = Inspection {
        summary: Summary::of(&provider),
        wit,
        contract: provider.contract().version(),
        exports,
        imports,
        size: component.bytes.len() as u64,
        limits: Limits {
            call_timeout_ms: limits.call_timeout.as_millis() as u64,
            host_time_ms: limits.host_time.as_millis() as u64,
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
            log_bytes: limits.log_bytes,
        },
        policy: provider
            .policy()
            .views()
            .iter()
            .map(|view| PolicyView {
                file: view.file.clone(),
                key: view.key.clone(),
                role: view.role,
                present: view.grant.is_some(),
            })
            .collect(),
        notes: Vec::new(),
        warnings: rewards::scan_component(&component.bytes),
    };
    Ok(Inspected {
        inspection,
        provider,
    })
}

/// The WIT package the component exports `provider` from, then every
/// export and import name, read from the component's type.
fn interfaces(component: &Component) -> (String, Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let engine = component.engine();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    let wit = exports
        .iter()
        .filter_map(|name| split_interface(name))
        .find(|(package, interface, _)| *package == "openjarvis:mining" && *interface == "provider")
        .map_or_else(
            || "unknown".to_owned(),
            |(package, _, version)| match version {
                Some(version) => format!("{package}@{version}"),
                None => package.to_owned(),
            },
        );
    (wit, exports, imports)
}

/// `openjarvis:mining/provider@0.1.0` -> (`openjarvis:mining`, `provider`, `0.1.0`).
fn split_interface(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some((package, interface, version))
}

/// Describes a component file as it would be installed: judged as an
/// installed provider, with notes on what would stop it from installing.
/// `cache_dir` is the sandbox's compiled-code cache, if it has one: code
/// already there is used, code compiled for this inspection is removed again,
/// so looking at a file leaves nothing behind.
pub fn inspect_file(
    sandbox: &Sandbox,
    policy: &Policy,
    path: &Path,
    cache_dir: Option<&HomePath>,
) -> Result<Inspection, InstallError> {
    let component = ComponentBytes::read(path)?;
    let _fresh = cache_dir.map(|dir| FreshCacheEntries::before(dir.clone(), &component.sha256));
    let inspected = inspect(
        sandbox,
        policy,
        &component,
        ProviderSource::Installed(path.to_owned()),
    )?;
    let mut inspection = inspected.inspection;
    inspection.summary.source = "file";
    if let Some(clash) = builtin_clash(&inspection.summary.id) {
        inspection.notes.push(clash);
    }
    if let Err(denial) = policy.admit_installed(&component.sha256) {
        inspection
            .notes
            .push(format!("the policy would not load it: {denial}"));
    }
    Ok(inspection)
}

fn builtin_clash(id: &str) -> Option<String> {
    BUILTIN_COMPONENTS.iter().any(|b| b.id == id).then(|| {
        format!(
            "provider id '{id}' belongs to a built-in provider, which always wins: an installed provider cannot take it (give this one another id in its info())"
        )
    })
}

/// The user's policy file, when it has a `[providers."ID"]` table for this
/// provider: grants go by id, so they carry over to whatever component
/// next installs under it.
pub fn user_table(provider: &LoadedProvider, policy: &Policy) -> Option<PathBuf> {
    let key = format!("providers.\"{}\"", provider.id());
    provider
        .policy()
        .views()
        .iter()
        .any(|view| {
            view.role == Role::Grants
                && view.file == policy.user_path()
                && view.key == key
                && view.grant.is_some()
        })
        .then(|| policy.user_path().to_owned())
}

/// What to add to the user's policy so a provider gets what it requests.
#[derive(Debug, Clone, Serialize)]
pub struct GrantAdvice {
    /// The user's policy file.
    pub file: PathBuf,
    /// Requested capabilities the policy withholds now.
    pub withheld: Vec<&'static str>,
    /// Whether the file already has this provider's table: then `snippet`
    /// is the line to set in it, else a table to append.
    pub table_exists: bool,
    pub snippet: String,
}

/// `None` when the policy grants every capability the provider requests.
pub fn grant_advice(provider: &LoadedProvider, policy: &Policy) -> Option<GrantAdvice> {
    let statuses = capabilities(provider);
    let withheld: Vec<&'static str> = statuses
        .iter()
        .filter(|s| !s.granted)
        .map(|s| s.name)
        .collect();
    if withheld.is_empty() {
        return None;
    }
    let key = format!("providers.\"{}\"", provider.id());
    let file = policy.user_path().to_owned();
    let table_exists = user_table(provider, policy).is_some();
    let list = statuses
        .iter()
        .map(|s| format!("\"{}\"", s.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut snippet = String::new();
    if !table_exists {
        snippet.push_str(&format!("[{key}]\n"));
    }
    snippet.push_str(&format!("capabilities = [{list}]\n"));
    if !table_exists {
        snippet.push_str(
            "# gpus = [\"0\"]   # GPUs it may see and use (indexes, UUIDs or \"*\"); none unless listed\n",
        );
        if provider.requested().contains(&Capability::Containers) {
            snippet.push_str(&format!(
                "# [{key}.containers]\n# images = [\"REPOSITORY:*\"]   # and mounts, ports, env, secrets as it needs; a key left out grants nothing\n"
            ));
        }
    }
    Some(GrantAdvice {
        file,
        withheld,
        table_exists,
        snippet,
    })
}

/// Install and remove work against one home, its policy and its providers
/// as loaded (the sandbox should cache compiled code and keep the audit log).
pub struct Installer<'a> {
    pub paths: &'a Paths,
    pub sandbox: &'a Sandbox,
    pub registry: &'a Registry,
    pub policy: &'a Policy,
}

/// An installed provider a new component replaces.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    pub file: PathBuf,
    pub version: String,
    pub sha256: String,
}

/// What [`Installer::plan_install`] found.
pub enum Planned {
    /// Validated and allowed: commit after the user agrees.
    Install(Box<InstallPlan>),
    /// This very component (same id and sha256) is installed already.
    AlreadyInstalled {
        inspected: Box<Inspected>,
        file: PathBuf,
    },
}

/// A validated install, not yet written.
pub struct InstallPlan {
    pub inspected: Inspected,
    /// `<home>/mining/providers/<id>.wasm`.
    pub target: HomePath,
    /// The installed provider with the same id this replaces (`--replace`).
    pub replaces: Option<Replaced>,
    /// Whether `target` holds something other than the provider replaced.
    pub overwrites: bool,
    source: PathBuf,
    bytes: Vec<u8>,
    fresh: FreshCacheEntries,
}

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub file: PathBuf,
    /// The compiled code the next run loads.
    pub cache_entries: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
}

/// What a removal will delete.
#[derive(Debug, Clone, Serialize)]
pub struct RemovePlan {
    /// `None` when the file did not load (its id is unknown).
    pub id: Option<String>,
    pub version: Option<String>,
    pub file: PathBuf,
    /// `None` when the file cannot be read.
    pub sha256: Option<String>,
    /// Other installed files that declare the same id; the first loads next.
    pub shadowed: Vec<PathBuf>,
    /// The user's policy file when it keeps a table for this id.
    pub policy_table: Option<PathBuf>,
}

/// What a removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub file: PathBuf,
    /// The compiled code deleted with it.
    pub cache_entries: Vec<PathBuf>,
    /// Another installed file holds the same component, so its compiled
    /// code stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_kept_for: Option<PathBuf>,
}

impl Installer<'_> {
    /// Describes a loaded provider (built-in or installed) by id.
    pub fn inspect_id(&self, id: &str) -> Result<Inspection, InstallError> {
        let Some(provider) = self.registry.get(id) else {
            return Err(self.unknown_provider(id));
        };
        let component = match &provider.source {
            ProviderSource::Builtin => ComponentBytes::builtin(id)
                .ok_or_else(|| InstallError::Failed(format!("built-in '{id}' has no component")))?,
            ProviderSource::Installed(path) => ComponentBytes::read(path)?,
        };
        Ok(inspect(
            self.sandbox,
            self.policy,
            &component,
            provider.source.clone(),
        )?
        .inspection)
    }

    /// Whether any loaded provider or failed file goes by `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.registry.get(name).is_some() || self.registry.failures.iter().any(|f| f.name == name)
    }

    fn unknown_provider(&self, id: &str) -> InstallError {
        if let Some(failure) = self.registry.failures.iter().find(|f| f.name == id) {
            return InstallError::Invalid(format!(
                "provider '{id}' did not load: {}",
                failure.error
            ));
        }
        let ids: Vec<&str> = self.registry.providers.iter().map(|p| p.id()).collect();
        InstallError::Invalid(format!(
            "no provider '{id}'; the providers are {} (to inspect a file, give its path, e.g. ./{id}.wasm)",
            ids.join(", ")
        ))
    }

    /// Validates `file` and decides what installing it means. Refuses a
    /// component that is not a provider, an id of a built-in, a component
    /// the policy's `[installed]` rules do not admit (recorded in the audit
    /// log), and, unless `replace`, an id that is installed from another
    /// component or a target file that holds something else.
    pub fn plan_install(&self, file: &Path, replace: bool) -> Result<Planned, InstallError> {
        let component = ComponentBytes::read(file)?;
        let dir = self.paths.installed_providers();
        let fresh = FreshCacheEntries::before(self.paths.component_cache(), &component.sha256);
        let mut inspected = inspect(
            self.sandbox,
            self.policy,
            &component,
            ProviderSource::Installed(file.to_owned()),
        )?;
        inspected.inspection.summary.source = "file";
        let id = inspected.provider.id().to_owned();
        if let Some(clash) = builtin_clash(&id) {
            return Err(InstallError::Invalid(clash));
        }
        if let Err(denial) = self.policy.admit_installed(&component.sha256) {
            self.audit(
                &id,
                &component.sha256,
                "install",
                format!("install {}", file.display()),
                Err(denial.clone()),
            );
            return Err(InstallError::Denied(format!(
                "{id}: denied: {denial}; nothing was installed"
            )));
        }
        let target = dir.join(format!("{id}.wasm"));
        let installed = self
            .registry
            .providers
            .iter()
            .find_map(|p| match &p.source {
                ProviderSource::Installed(path) if p.id() == id => Some((p, path)),
                _ => None,
            });
        let mut replaces = None;
        if let Some((existing, path)) = installed {
            if existing.sha256 == component.sha256 {
                return Ok(Planned::AlreadyInstalled {
                    inspected: Box::new(inspected),
                    file: path.clone(),
                });
            }
            if !replace {
                return Err(InstallError::Invalid(format!(
                    "provider '{id}' is already installed from {} (version {}, sha256 {}); pass --replace to replace it with this component (version {}, sha256 {}), or remove it first with `jarvis mine providers remove {id}`",
                    path.display(),
                    existing.info.version,
                    short(&existing.sha256),
                    inspected.provider.info.version,
                    short(&component.sha256),
                )));
            }
            replaces = Some(Replaced {
                file: path.clone(),
                version: existing.info.version.clone(),
                sha256: existing.sha256.clone(),
            });
        }
        let overwrites = target.exists()
            && replaces
                .as_ref()
                .is_none_or(|r| r.file != target.absolute());
        if overwrites && !replace {
            return Err(InstallError::Invalid(format!(
                "{} exists and is not provider '{id}' ({}); move it away, or pass --replace to overwrite it",
                target.display(),
                self.describe_file(&target.absolute())
            )));
        }
        if replaces.is_some() {
            check_session(self.paths, &id)?;
        }
        Ok(Planned::Install(Box::new(InstallPlan {
            inspected,
            target,
            replaces,
            overwrites,
            source: file.to_owned(),
            bytes: component.bytes.into_owned(),
            fresh,
        })))
    }

    /// What an installed file is, as the registry saw it.
    fn describe_file(&self, path: &Path) -> String {
        let source = ProviderSource::Installed(path.to_owned());
        if let Some(provider) = self.registry.providers.iter().find(|p| p.source == source) {
            return format!("it holds provider '{}'", provider.id());
        }
        match self.registry.failures.iter().find(|f| f.source == source) {
            Some(failure) => format!("it did not load: {}", failure.error),
            None => "not a provider file".to_owned(),
        }
    }

    /// Finds what `target` names: a loaded installed provider's id, or the
    /// name of a `.wasm` file in the providers directory (with or without
    /// `.wasm`), which also reaches files that did not load.
    pub fn plan_remove(&self, target: &str) -> Result<RemovePlan, InstallError> {
        if BUILTIN_COMPONENTS.iter().any(|b| b.id == target) {
            return Err(InstallError::Invalid(format!(
                "'{target}' is a built-in provider; built-in providers cannot be removed; revoke them in the policy instead: capabilities = [] under [providers.\"{target}\"] in {}",
                self.policy.user_path().display()
            )));
        }
        let dir = self.paths.installed_providers();
        let loaded = self
            .registry
            .providers
            .iter()
            .find_map(|p| match &p.source {
                ProviderSource::Installed(path) if p.id() == target => Some((p, path)),
                _ => None,
            });
        let plan = if let Some((provider, path)) = loaded {
            RemovePlan {
                id: Some(target.to_owned()),
                version: Some(provider.info.version.clone()),
                file: path.clone(),
                sha256: Some(provider.sha256.clone()),
                shadowed: self.shadowed(target),
                policy_table: user_table(provider, self.policy),
            }
        } else if let Some(path) = plain_file_in(&dir, target) {
            let provider = self
                .registry
                .providers
                .iter()
                .find(|p| p.source == ProviderSource::Installed(path.absolute()));
            RemovePlan {
                id: provider.map(|p| p.id().to_owned()),
                version: provider.map(|p| p.info.version.clone()),
                sha256: registry::read_installed_component(&path)
                    .ok()
                    .map(|bytes| sha256_hex(&bytes)),
                shadowed: provider.map_or_else(Vec::new, |p| self.shadowed(p.id())),
                policy_table: provider.and_then(|p| user_table(p, self.policy)),
                file: path.absolute(),
            }
        } else {
            return Err(self.not_installed(target, &dir));
        };
        if let Some(id) = &plan.id {
            check_session(self.paths, id)?;
        }
        Ok(plan)
    }

    /// Installed files that declare `id` but lost to the one that loaded.
    fn shadowed(&self, id: &str) -> Vec<PathBuf> {
        self.registry
            .failures
            .iter()
            .filter(|f| f.name == id)
            .filter_map(|f| match &f.source {
                ProviderSource::Installed(path) => Some(path.clone()),
                ProviderSource::Builtin => None,
            })
            .collect()
    }

    fn not_installed(&self, target: &str, dir: &HomePath) -> InstallError {
        let ids: Vec<&str> = self
            .registry
            .providers
            .iter()
            .filter(|p| p.source != ProviderSource::Builtin)
            .map(|p| p.id())
            .collect();
        let broken: Vec<String> = self
            .registry
            .failures
            .iter()
            .filter_map(|f| match &f.source {
                ProviderSource::Installed(path)
                    if path.parent() == Some(dir.absolute().as_path()) =>
                {
                    Some(registry::file_name(path))
                }
                _ => None,
            })
            .collect();
        let mut message = if ids.is_empty() {
            format!(
                "no installed provider '{target}'; no providers are installed in {}",
                dir.display()
            )
        } else {
            format!(
                "no installed provider '{target}'; installed: {}",
                ids.join(", ")
            )
        };
        if !broken.is_empty() {
            message.push_str(&format!(
                " (not loaded, removable by file name: {})",
                broken.join(", ")
            ));
        }
        InstallError::Invalid(message)
    }

    fn audit(
        &self,
        provider: &str,
        sha256: &str,
        capability: &str,
        action: String,
        outcome: Result<(), String>,
    ) {
        if let Some(log) = self.sandbox.audit_log() {
            log.decision(provider, sha256, capability, action, outcome);
        }
    }

    /// A host that cannot keep its record does not change what runs.
    fn audit_ready(&self) -> Result<(), InstallError> {
        match self.sandbox.audit_log() {
            Some(log) => log.ready().map_err(InstallError::Failed),
            None => Ok(()),
        }
    }
}

impl InstallPlan {
    pub fn id(&self) -> &str {
        self.inspected.provider.id()
    }

    /// Writes the component to its place, keeps its compiled code and
    /// records the install. The session lock is held while a provider is
    /// replaced, so no `start` or `stop` runs half of each.
    pub fn commit(mut self, installer: &Installer<'_>) -> Result<Installed, InstallError> {
        installer.audit_ready()?;
        let id = self.id().to_owned();
        let sha256 = self.inspected.provider.sha256.clone();
        let _lock = match &self.replaces {
            Some(_) => Some(SessionLock::acquire_for(
                &installer.paths.lock_file(),
                LOCK_WAIT,
                "install",
            )?),
            None => None,
        };
        if self.replaces.is_some() {
            check_session(installer.paths, &id)?;
        }
        let dir = installer.paths.installed_providers();
        // Components this install takes out of service, for their cache entries.
        let mut retired: Vec<(PathBuf, String)> = registry::read_installed_component(&self.target)
            .ok()
            .map(|bytes| (self.target.absolute(), sha256_hex(&bytes)))
            .into_iter()
            .collect();
        write_atomically(&self.target, &self.bytes).map_err(|err| {
            InstallError::Failed(format!(
                "cannot write {}: {err}; check that {} is a writable directory",
                self.target.display(),
                dir.display()
            ))
        })?;
        self.fresh.keep = true;
        if let Some(old) = self
            .replaces
            .as_ref()
            .filter(|old| old.file != self.target.absolute())
        {
            remove_file(installer.paths, &old.file)?;
            retired.push((old.file.clone(), old.sha256.clone()));
        }
        for (file, old_sha256) in retired {
            if old_sha256 != sha256 && same_component_in(&dir, &file, &old_sha256).is_none() {
                let _ = ComponentCache::remove(&installer.paths.component_cache(), &old_sha256);
            }
        }
        let cache_entries = ComponentCache::entries(&installer.paths.component_cache(), &sha256)
            .unwrap_or_default()
            .iter()
            .map(HomePath::absolute)
            .collect();
        let mut action = format!(
            "install {} from {}",
            registry::file_name(self.target.relative()),
            self.source.display()
        );
        if let Some(old) = &self.replaces {
            action.push_str(&format!(
                " replacing {} ({})",
                registry::file_name(&old.file),
                old.sha256
            ));
        }
        installer.audit(&id, &sha256, "install", action, Ok(()));
        Ok(Installed {
            file: self.target.absolute(),
            cache_entries,
            replaced: self.replaces.clone(),
        })
    }
}

impl RemovePlan {
    /// A name for messages: the id, else the file name.
    pub fn name(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| registry::file_name(&self.file))
    }

    /// Deletes the file and every cache entry of its component, under the
    /// session lock, and records the removal.
    pub fn commit(self, installer: &Installer<'_>) -> Result<Removed, InstallError> {
        installer.audit_ready()?;
        let _lock = SessionLock::acquire_for(&installer.paths.lock_file(), LOCK_WAIT, "remove")?;
        if let Some(id) = &self.id {
            check_session(installer.paths, id)?;
        }
        remove_file(installer.paths, &self.file)?;
        let cache_dir = installer.paths.component_cache();
        let dir = installer.paths.installed_providers();
        let cache_kept_for = self
            .sha256
            .as_deref()
            .and_then(|sha| same_component_in(&dir, &self.file, sha));
        let cache_entries = match &self.sha256 {
            Some(sha) if cache_kept_for.is_none() => ComponentCache::remove(&cache_dir, sha)
                .map_err(|err| {
                    InstallError::Failed(format!(
                        "removed {}, but cannot remove its compiled code from {}: {err}",
                        self.file.display(),
                        cache_dir.display()
                    ))
                })?,
            _ => Vec::new(),
        };
        // Attributed to the id (none for a file that never loaded: the
        // action names the file), so `audit --provider ID` finds it.
        installer.audit(
            self.id.as_deref().unwrap_or_default(),
            self.sha256.as_deref().unwrap_or_default(),
            "remove",
            format!(
                "remove {} ({} cache entries)",
                registry::file_name(&self.file),
                cache_entries.len()
            ),
            Ok(()),
        );
        Ok(Removed {
            file: self.file,
            cache_entries,
            cache_kept_for,
        })
    }
}

/// `dir/<name>` or `dir/<name>.wasm`, when `name` is a plain file name and
/// that is a `.wasm` file (never a path that leaves `dir`).
fn plain_file_in(dir: &HomePath, name: &str) -> Option<HomePath> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let candidates = [dir.join(name), dir.join(format!("{name}.wasm"))];
    candidates.into_iter().find(|path| {
        path.relative().extension().is_some_and(|ext| ext == "wasm")
            && path.symlink_metadata().is_ok_and(|m| !m.is_dir())
    })
}

/// Another `.wasm` file in `dir` (not `except`) whose bytes have this sha256.
fn same_component_in(dir: &HomePath, except: &Path, sha256: &str) -> Option<PathBuf> {
    dir.read_dir()
        .ok()?
        .into_iter()
        .map(|entry| entry.path)
        .filter(|path| {
            path.absolute() != except
                && path.relative().extension().is_some_and(|ext| ext == "wasm")
        })
        .find(|path| {
            registry::read_installed_component(path).is_ok_and(|bytes| sha256_hex(&bytes) == sha256)
        })
        .map(|path| path.absolute())
}

/// Refuses to touch the provider of the current mining session.
fn check_session(paths: &Paths, id: &str) -> Result<(), InstallError> {
    match sidecar::read(&paths.sidecar()) {
        Ok(Some(record)) if record.provider == id => Err(InstallError::Failed(format!(
            "provider '{id}' runs the current mining session ({}); stop it first with `jarvis mine stop`",
            paths.sidecar().display()
        ))),
        _ => Ok(()),
    }
}

/// Removes an installed file; one outside the home is never touched.
fn remove_file(paths: &Paths, path: &Path) -> Result<(), InstallError> {
    let failed = |err: &dyn std::fmt::Display| {
        InstallError::Failed(format!("cannot remove {}: {err}", path.display()))
    };
    let in_home = paths
        .in_home(path)
        .ok_or_else(|| failed(&"it is not under the OpenJarvis home"))?;
    in_home.remove_file_if_present().map_err(|err| failed(&err))
}

/// Writes `bytes` to `target` atomically, mode 0644: a reader sees the old
/// file or the new one, never half.
fn write_atomically(target: &HomePath, bytes: &[u8]) -> std::io::Result<()> {
    // The temporary file has no name (or not `*.wasm`): the registry never
    // loads a half-written file.
    target.write_atomically(crate::atomic_file::Mode::Fixed(FILE_MODE), bytes)
}

/// The first 12 hex digits of a sha256, as `list` shows it.
pub fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Cache entries compiled while validating; deleted on drop unless the
/// install went through.
struct FreshCacheEntries {
    dir: HomePath,
    sha256: String,
    before: Vec<HomePath>,
    keep: bool,
}

impl FreshCacheEntries {
    fn before(dir: HomePath, sha256: &str) -> Self {
        let before = ComponentCache::entries(&dir, sha256).unwrap_or_default();
        FreshCacheEntries {
            dir,
            sha256: sha256.to_owned(),
            before,
            keep: false,
        }
    }
}

impl Drop for FreshCacheEntries {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for entry in ComponentCache::entries(&self.dir, &self.sha256).unwrap_or_default() {
            if !self.before.contains(&entry) {
                let _ = entry.remove_file();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_split_into_package_interface_and_version() {
        assert_eq!(
            split_interface("openjarvis:mining/provider@0.1.0"),
            Some(("openjarvis:mining", "provider", Some("0.1.0")))
        );
        assert_eq!(
            split_interface("wasi:cli/environment@0.2.6"),
            Some(("wasi:cli", "environment", Some("0.2.6")))
        );
        assert_eq!(
            split_interface("openjarvis:mining/log"),
            Some(("openjarvis:mining", "log", None))
        );
        assert_eq!(split_interface("run"), None);
    }

    #[test]
    fn only_plain_wasm_names_in_the_directory_are_removable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::home::root(tmp.path());
        std::fs::write(tmp.path().join("x.wasm"), b"").unwrap();
        std::fs::write(tmp.path().join("notes.txt"), b"").unwrap();
        assert_eq!(plain_file_in(&dir, "x"), Some(dir.join("x.wasm")));
        assert_eq!(plain_file_in(&dir, "x.wasm"), Some(dir.join("x.wasm")));
        for refused in ["notes.txt", "notes", "../x.wasm", "..", "", "y"] {
            assert_eq!(plain_file_in(&dir, refused), None, "{refused}");
        }
    }

    #[test]
    fn short_digests() {
        assert_eq!(short(&"a".repeat(64)), "aaaaaaaaaaaa");
        assert_eq!(short("abc"), "abc");
    }
}
