//! The capability policy: what each provider may do on this host.
//!
//! Two files, intersected. The system policy (`/etc/openjarvis/mining-policy.toml`,
//! or `$OPENJARVIS_MINING_POLICY`) is a ceiling a user cannot loosen; the
//! user's `<home>/mining/policy.toml` grants. A provider gets what it declares
//! in `info()` and every view below allows:
//!
//! - the *granting* view: the user file's `[providers.ID]` (else its
//!   `[default]`); for an installed provider the user file does not name, the
//!   system file's entry. Built-ins need none: their default grant is
//!   everything the host's own invariants allow. An installed provider that
//!   no file names gets nothing, and where a file grants an installed
//!   provider, a key it leaves out grants nothing (deny by default).
//! - the *ceiling* view: the system file's `[providers.ID]` (else its
//!   `[default]`), where a key left out does not constrain.
//!
//! A broken system policy denies everything; a broken user policy is an
//! error for the command (the user can fix it). Denials are data: each names
//! the key to change and the file it lives in.

mod cache;
pub mod file;

use cache::LayerRules;
pub use file::{PolicyError, PolicyFile};

use crate::bindings::Capability;
use crate::host::capability_name;
use crate::paths::Paths;
use crate::sandbox::SandboxLimits;
use file::{CapabilityName, GpuId, Grant, LimitRules};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The system policy's default location.
pub const SYSTEM_POLICY: &str = "/etc/openjarvis/mining-policy.toml";
/// Overrides [`SYSTEM_POLICY`] (for tests and unusual installs).
pub const SYSTEM_POLICY_ENV: &str = "OPENJARVIS_MINING_POLICY";

/// One policy file as loaded.
#[derive(Debug, Clone)]
enum Layer {
    Absent,
    Loaded(Arc<LayerRules>),
    /// Unusable: denies everything (system file only).
    Broken(String),
}

/// Both policy files of this host and user.
#[derive(Debug, Clone)]
pub struct Policy {
    system_path: PathBuf,
    system: Layer,
    user_path: PathBuf,
    user: Layer,
}

impl Policy {
    /// Where the system policy is read from.
    pub fn system_path() -> PathBuf {
        std::env::var_os(SYSTEM_POLICY_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(SYSTEM_POLICY), PathBuf::from)
    }

    /// Loads the system policy and `paths`' user policy. A broken user file is
    /// an error; a broken system file loads as "deny everything".
    pub fn load(paths: &Paths) -> Result<Policy, PolicyError> {
        let system_path = Policy::system_path();
        let cache_root = paths.policy_cache();
        let system = match cache::load(&system_path, Some(&cache_root)) {
            Ok(None) => Layer::Absent,
            Ok(Some(rules)) => Layer::Loaded(Arc::new(rules)),
            Err(err) => Layer::Broken(err.to_string()),
        };
        let user_path = paths.user_policy();
        let user = match cache::load(&user_path, Some(&cache_root))? {
            None => Layer::Absent,
            Some(rules) => Layer::Loaded(Arc::new(rules)),
        };
        Ok(Policy {
            system_path,
            system,
            user_path,
            user,
        })
    }

    /// No policy files at all: built-ins unconstrained, installed providers denied.
    pub fn none(paths: &Paths) -> Policy {
        Policy::with_files((Policy::system_path(), None), (paths.user_policy(), None))
    }

    /// A policy from files already parsed (the paths are for messages).
    pub fn with_files(
        (system_path, system): (PathBuf, Option<PolicyFile>),
        (user_path, user): (PathBuf, Option<PolicyFile>),
    ) -> Policy {
        let layer = |path: &Path, file: Option<PolicyFile>| {
            file.map_or(Layer::Absent, |f| {
                Layer::Loaded(Arc::new(LayerRules::parsed(path, f)))
            })
        };
        Policy {
            system: layer(&system_path, system),
            user: layer(&user_path, user),
            system_path,
            user_path,
        }
    }

    /// Each policy file and what became of it, for `policy show` and `doctor`.
    pub fn sources(&self) -> Vec<PolicySource> {
        let source = |role, path: &Path, layer: &Layer| PolicySource {
            role,
            path: path.to_owned(),
            state: match layer {
                Layer::Absent => "absent".into(),
                Layer::Loaded(_) => "loaded".into(),
                Layer::Broken(error) => {
                    format!("invalid, every privileged call is denied: {error}")
                }
            },
        };
        vec![
            source("system", &self.system_path, &self.system),
            source("user", &self.user_path, &self.user),
        ]
    }

    pub fn user_path(&self) -> &Path {
        &self.user_path
    }

    pub fn system_file(&self) -> &Path {
        &self.system_path
    }

    /// Why the system policy denies everything, when it is broken.
    pub fn system_problem(&self) -> Option<String> {
        match &self.system {
            Layer::Broken(error) => Some(format!(
                "{error}; the system policy is unusable, so every privileged call is denied (check it with `jarvis mine policy check {}`)",
                self.system_path.display()
            )),
            _ => None,
        }
    }

    /// Whether an installed component with `sha256` may load at all.
    pub fn admit_installed(&self, sha256: &str) -> Result<(), String> {
        if let Some(problem) = self.system_problem() {
            return Err(problem);
        }
        for (path, layer) in self.layers() {
            let Layer::Loaded(file) = layer else { continue };
            if file.installed.allow == Some(false) {
                return Err(format!(
                    "installed providers are disabled by installed.allow (policy {})",
                    path.display()
                ));
            }
            if let Some(allowed) = &file.installed.sha256
                && !allowed.iter().any(|digest| digest.to_string() == sha256)
            {
                return Err(format!(
                    "component sha256 {sha256} is not in installed.sha256 (policy {})",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    fn layers(&self) -> [(&Path, &Layer); 2] {
        [
            (&self.system_path, &self.system),
            (&self.user_path, &self.user),
        ]
    }

    /// The effective policy of one provider.
    pub fn for_provider(&self, id: &str, builtin: bool) -> ProviderPolicy {
        let entry = |path: &Path, layer: &Layer, role: Role| -> Option<View> {
            let Layer::Loaded(file) = layer else {
                return None;
            };
            let (key, grant) = match file.provider(id) {
                Some(grant) => (format!("providers.\"{id}\""), grant),
                None => ("default".to_owned(), file.default.clone()?),
            };
            Some(View {
                file: path.to_owned(),
                key,
                grant: Some(grant),
                role,
                strict: role == Role::Grants && !builtin,
            })
        };
        let mut views = Vec::new();
        let granting = entry(&self.user_path, &self.user, Role::Grants).or_else(|| {
            if builtin {
                None
            } else {
                entry(&self.system_path, &self.system, Role::Grants)
            }
        });
        let granted_by_system = granting
            .as_ref()
            .is_some_and(|v| v.file == self.system_path);
        match granting {
            Some(view) => views.push(view),
            None if !builtin => views.push(View {
                file: self.user_path.clone(),
                key: format!("providers.\"{id}\""),
                grant: None,
                role: Role::Grants,
                strict: true,
            }),
            None => {}
        }
        if !granted_by_system
            && let Some(ceiling) = entry(&self.system_path, &self.system, Role::Ceiling)
        {
            views.push(ceiling);
        }
        ProviderPolicy {
            provider: id.to_owned(),
            views,
            broken: self.system_problem(),
        }
    }
}

/// A policy file and its state: `absent`, `loaded` or `invalid, ...`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySource {
    pub role: &'static str,
    pub path: PathBuf,
    pub state: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Grants what it lists.
    Grants,
    /// Narrows what the granting view allows.
    Ceiling,
}

/// One file's say about one provider.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub file: PathBuf,
    /// `providers."ID"` or `default`.
    pub key: String,
    /// `None`: the provider is installed and no file names it.
    pub grant: Option<Grant>,
    pub role: Role,
    /// A key left out grants nothing (installed providers' granting view).
    pub strict: bool,
}

impl View {
    /// What this view says about one dimension: `Ok(None)` when it does not
    /// constrain it, `Ok(Some(rules))` when it lists rules, `Err` when it
    /// grants nothing there.
    fn rules<'a, T>(
        &'a self,
        dimension: &str,
        get: impl Fn(&'a Grant) -> Option<&'a T>,
    ) -> Result<Option<&'a T>, String> {
        let Some(grant) = &self.grant else {
            return Err(format!(
                "provider is installed and no policy grants it anything: add a [{}] table with {dimension} to {}",
                self.key,
                self.file.display()
            ));
        };
        match get(grant) {
            Some(rules) => Ok(Some(rules)),
            None if self.strict => Err(format!(
                "{}.{dimension} is not set, so nothing is granted (policy {})",
                self.key,
                self.file.display()
            )),
            None => Ok(None),
        }
    }

    fn not_in(&self, what: &str, dimension: &str) -> String {
        format!(
            "{what} is not in {}.{dimension} (policy {})",
            self.key,
            self.file.display()
        )
    }
}

/// A privileged request, described for the policy.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// Acts on the provider's own state (its containers, its session
    /// record): only the capability is checked; ownership is the import's.
    Own {
        target: &'a str,
    },
    EnsureImage {
        image: &'a str,
    },
    RunContainer(&'a RunRequest),
    Scrape(&'a ScrapeRequest),
}

/// A container launch as the policy sees it: resolved host paths, the names
/// (never the values) of env variables and secrets.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub image: String,
    /// The local image's id and repo digests (looked up only when a policy pins digests).
    pub image_digests: Vec<String>,
    pub gpus: GpuAsk,
    /// Canonical host paths and whether each is mounted read-only.
    pub mounts: Vec<(PathBuf, bool)>,
    pub network: String,
    pub host_ports: Vec<u16>,
    pub env_names: Vec<String>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GpuAsk {
    #[default]
    None,
    All,
    Count(u32),
    Ids(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    pub host: String,
    pub port: u16,
    /// The endpoint is one of the provider's own session's loopback endpoints.
    pub session: bool,
}

/// The policy of one provider: every check and the effective limits.
#[derive(Debug, Clone)]
pub struct ProviderPolicy {
    provider: String,
    views: Vec<View>,
    broken: Option<String>,
}

impl ProviderPolicy {
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// The one decision: may this provider make this request?
    pub fn check(&self, capability: Capability, request: &Request<'_>) -> Result<(), String> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        self.capability(capability)?;
        match request {
            Request::Own { .. } => Ok(()),
            Request::EnsureImage { image } => self.image(image, None),
            Request::RunContainer(run) => self.run(run),
            Request::Scrape(scrape) => self.scrape(scrape),
        }
    }

    /// Checks `allows` against every view that lists rules for `dimension`.
    fn each<T>(
        &self,
        dimension: &str,
        get: impl Fn(&Grant) -> Option<&T>,
        allows: impl Fn(&T) -> bool,
        what: impl Fn() -> String,
    ) -> Result<(), String> {
        for view in &self.views {
            if let Some(rules) = view
                .rules(dimension, &get)
                .map_err(|e| format!("{}: {e}", what()))?
                && !allows(rules)
            {
                return Err(view.not_in(&what(), dimension));
            }
        }
        Ok(())
    }

    fn capability(&self, capability: Capability) -> Result<(), String> {
        let wanted = CapabilityName::of(capability);
        self.each(
            "capabilities",
            |g| g.capabilities.as_ref(),
            |granted| granted.contains(&wanted),
            || format!("capability '{}'", capability_name(capability)),
        )
    }

    fn image(&self, image: &str, digests: Option<&[String]>) -> Result<(), String> {
        self.each(
            "containers.images",
            |g| g.containers.as_ref()?.images.as_ref(),
            |patterns| patterns.iter().any(|p| p.matches(image)),
            || format!("image '{image}'"),
        )?;
        let Some(digests) = digests else {
            return Ok(());
        };
        self.each(
            "containers.digests",
            |g| g.containers.as_ref()?.digests.as_ref(),
            |pinned| {
                pinned
                    .iter()
                    .any(|want| digests.iter().any(|have| have.ends_with(&want.to_string())))
            },
            || match digests.first() {
                Some(id) => format!("image '{image}' ({id})"),
                None => format!("image '{image}' (not present locally, digest unknown)"),
            },
        )
    }

    /// Whether any view pins image digests (the caller then looks them up).
    pub fn pins_digests(&self) -> bool {
        self.views.iter().any(|v| {
            v.grant
                .as_ref()
                .and_then(|g| g.containers.as_ref())
                .is_some_and(|c| c.digests.is_some())
        })
    }

    fn run(&self, run: &RunRequest) -> Result<(), String> {
        let digests = self.pins_digests().then_some(run.image_digests.as_slice());
        self.image(&run.image, digests)?;
        self.gpus(&run.gpus)?;
        for (path, read_only) in &run.mounts {
            self.each(
                "containers.mounts",
                |g| g.containers.as_ref()?.mounts.as_ref(),
                |rules| {
                    rules.iter().any(|rule| {
                        (*read_only || !rule.read_only)
                            && rule
                                .path
                                .resolve()
                                .is_some_and(|granted| path.starts_with(granted))
                    })
                },
                || {
                    format!(
                        "mount of {} ({})",
                        path.display(),
                        if *read_only {
                            "read-only"
                        } else {
                            "read-write"
                        }
                    )
                },
            )?;
        }
        self.each(
            "containers.network_modes",
            |g| g.containers.as_ref()?.network_modes.as_ref(),
            |modes| modes.iter().any(|m| m.as_str() == run.network),
            || format!("network mode '{}'", run.network),
        )?;
        for port in &run.host_ports {
            self.each(
                "containers.ports",
                |g| g.containers.as_ref()?.ports.as_ref(),
                |ranges| ranges.iter().any(|r| r.contains(*port)),
                || format!("host port {port}"),
            )?;
        }
        for name in &run.env_names {
            self.each(
                "containers.env",
                |g| g.containers.as_ref()?.env.as_ref(),
                |patterns| patterns.iter().any(|p| p.matches(name)),
                || format!("environment variable '{name}'"),
            )?;
        }
        for secret in &run.secrets {
            self.each(
                "containers.secrets",
                |g| g.containers.as_ref()?.secrets.as_ref(),
                |patterns| patterns.iter().any(|p| p.matches(secret)),
                || format!("secret '{secret}'"),
            )?;
        }
        Ok(())
    }

    fn gpus(&self, ask: &GpuAsk) -> Result<(), String> {
        let ids = match ask {
            GpuAsk::None => return Ok(()),
            GpuAsk::Ids(ids) => ids,
            GpuAsk::All | GpuAsk::Count(_) => {
                let what = if *ask == GpuAsk::All {
                    "all GPUs".to_owned()
                } else {
                    "a number of GPUs".to_owned()
                };
                return self
                    .each(
                        "gpus",
                        |g| g.gpus.as_ref(),
                        |granted| granted.iter().any(GpuId::is_any),
                        || what.clone(),
                    )
                    .map_err(|err| {
                        format!(
                            "{err}; name the GPUs instead with [mining.extra].cuda_visible_devices"
                        )
                    });
            }
        };
        for id in ids {
            self.each(
                "gpus",
                |g| g.gpus.as_ref(),
                |granted| granted.iter().any(|g| g.names(id, Some(id))),
                || format!("GPU '{id}'"),
            )?;
        }
        Ok(())
    }

    /// Whether `detect` may see the GPU with this index and UUID.
    pub fn gpu_visible(&self, index: u32, uuid: Option<&str>) -> bool {
        self.broken.is_none()
            && self
                .each(
                    "gpus",
                    |g| g.gpus.as_ref(),
                    |granted| granted.iter().any(|g| g.names(&index.to_string(), uuid)),
                    String::new,
                )
                .is_ok()
    }

    fn scrape(&self, scrape: &ScrapeRequest) -> Result<(), String> {
        let url = format!("http://{}:{}", scrape.host, scrape.port);
        fn endpoints(grant: &Grant) -> Option<&Vec<file::Endpoint>> {
            grant.metrics.as_ref()?.endpoints.as_ref()
        }
        let listed = |view: &View| {
            view.grant.as_ref().and_then(endpoints).is_some_and(|list| {
                list.iter().any(|e| {
                    (scrape.session && e.is_session()) || e.matches(&scrape.host, scrape.port)
                })
            })
        };
        if !scrape.session
            && !self
                .views
                .iter()
                .any(|v| v.role == Role::Grants && listed(v))
        {
            let (key, file) = self.granting_key();
            return Err(format!(
                "endpoint {url} is not one of this session's loopback endpoints and is not in {key}.metrics.endpoints (policy {})",
                file.display()
            ));
        }
        for view in &self.views {
            let constrained = view.grant.as_ref().and_then(endpoints).is_some();
            // The metrics capability itself grants the session's own endpoints.
            if constrained && !listed(view) {
                return Err(view.not_in(&format!("endpoint {url}"), "metrics.endpoints"));
            }
        }
        Ok(())
    }

    /// The key and file where a grant for this provider belongs.
    fn granting_key(&self) -> (String, PathBuf) {
        match self.views.iter().find(|v| v.role == Role::Grants) {
            Some(view) => (view.key.clone(), view.file.clone()),
            None => (
                format!("providers.\"{}\"", self.provider),
                PathBuf::from("<home>/mining/policy.toml"),
            ),
        }
    }

    /// `base` narrowed by every view's `limits`.
    pub fn limits(&self, base: &SandboxLimits) -> SandboxLimits {
        let mut limits = *base;
        for rules in self.views.iter().filter_map(|v| v.grant.as_ref()?.limits) {
            let LimitRules {
                memory_mib,
                call_timeout_ms,
                host_time_ms,
                output_kib,
            } = rules;
            if let Some(mib) = memory_mib {
                limits.memory_bytes = limits.memory_bytes.min((mib.0 as usize) << 20);
            }
            if let Some(ms) = call_timeout_ms {
                limits.call_timeout = limits.call_timeout.min(Duration::from_millis(ms.0));
            }
            if let Some(ms) = host_time_ms {
                limits.host_time = limits.host_time.min(Duration::from_millis(ms.0));
            }
            if let Some(kib) = output_kib {
                limits.output_bytes = limits.output_bytes.min((kib.0 as usize) << 10);
            }
        }
        limits
    }

    /// The capabilities of `declared` that the policy grants.
    pub fn granted(&self, declared: &[Capability]) -> Vec<Capability> {
        declared
            .iter()
            .copied()
            .filter(|c| self.broken.is_none() && self.capability(*c).is_ok())
            .collect()
    }

    /// The reason a capability is withheld, if it is.
    pub fn withheld(&self, capability: Capability) -> Option<String> {
        self.broken
            .clone()
            .or_else(|| self.capability(capability).err())
    }
}

#[cfg(test)]
mod tests;
