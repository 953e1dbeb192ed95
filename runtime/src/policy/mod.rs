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

mod capabilities;
mod containers;
mod denial;
pub mod file;
mod gpus;
mod installed;
mod limits;
mod metrics;
mod processes;
pub mod quotas;
pub mod values;

pub use capabilities::CapabilityName;
pub use containers::{GpuAsk, MountPath, RunRequest, lexically_normal};
pub use denial::{Denial, HostRule, Rule};
pub use file::{Grant, PolicyError, PolicyFile};
pub use limits::LimitCeilings;
pub use metrics::ScrapeRequest;
pub use processes::SpawnRequest;
pub use quotas::Quota;

use crate::bindings::Capability;
use crate::paths::Paths;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The system policy's default location.
pub const SYSTEM_POLICY: &str = "/etc/openjarvis/mining-policy.toml";
/// Overrides [`SYSTEM_POLICY`] (for tests and unusual installs).
pub const SYSTEM_POLICY_ENV: &str = "OPENJARVIS_MINING_POLICY";

/// One policy file as loaded.
#[derive(Debug, Clone)]
enum Layer {
    Absent,
    Loaded(Arc<PolicyFile>),
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

    /// Loads the system policy and `paths`' user policy, parsing both
    /// strictly (every command: nothing parsed is kept between commands, so
    /// nothing a user can write stands in for the administrator's file). A
    /// broken user file is an error; a broken system file loads as "deny
    /// everything".
    pub fn load(paths: &Paths) -> Result<Policy, PolicyError> {
        let system_path = Policy::system_path();
        let user_file = paths.user_policy();
        let user_path = user_file.absolute();
        // The two files are independent: parse them side by side (the
        // parse is most of what a policy costs a command).
        let (system, user) = std::thread::scope(|scope| {
            let system = scope.spawn(|| PolicyFile::load(&system_path));
            let user = PolicyFile::load_home(&user_file);
            (
                system
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                user,
            )
        });
        let system = match system {
            Ok(None) => Layer::Absent,
            Ok(Some(file)) => Layer::Loaded(Arc::new(file)),
            Err(err) => Layer::Broken(err.to_string()),
        };
        let user = match user? {
            None => Layer::Absent,
            Some(file) => Layer::Loaded(Arc::new(file)),
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
        Policy::with_files(
            (Policy::system_path(), None),
            (paths.user_policy().absolute(), None),
        )
    }

    /// A policy from files already parsed (the paths are for messages).
    pub fn with_files(
        (system_path, system): (PathBuf, Option<PolicyFile>),
        (user_path, user): (PathBuf, Option<PolicyFile>),
    ) -> Policy {
        let layer =
            |file: Option<PolicyFile>| file.map_or(Layer::Absent, |f| Layer::Loaded(Arc::new(f)));
        Policy {
            system: layer(system),
            user: layer(user),
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
            let (key, grant) = match file.providers.get(id) {
                Some(grant) => (format!("providers.\"{id}\""), grant.clone()),
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
        capability: Option<&'static str>,
        dimension: &str,
        what: &str,
        get: impl Fn(&'a Grant) -> Option<&'a T>,
    ) -> Result<Option<&'a T>, Denial> {
        let Some(grant) = &self.grant else {
            return Err(Denial::key(
                capability,
                format!("{}.{dimension}", self.key),
                &self.file,
                format!(
                    "{what}: provider is installed and no policy grants it anything: add a [{}] table with {dimension} to {}",
                    self.key,
                    self.file.display()
                ),
            ));
        };
        match get(grant) {
            Some(rules) => Ok(Some(rules)),
            None if self.strict => Err(Denial::key(
                capability,
                format!("{}.{dimension}", self.key),
                &self.file,
                format!(
                    "{what}: {}.{dimension} is not set, so nothing is granted (policy {})",
                    self.key,
                    self.file.display()
                ),
            )),
            None => Ok(None),
        }
    }

    fn not_in(&self, capability: Option<&'static str>, what: &str, dimension: &str) -> Denial {
        Denial::key(
            capability,
            format!("{}.{dimension}", self.key),
            &self.file,
            format!(
                "{what} is not in {}.{dimension} (policy {})",
                self.key,
                self.file.display()
            ),
        )
    }
}

/// A privileged request, described for the policy.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// Acts on the provider's own state (its containers, its session
    /// record): only the capability is checked; ownership is the host's.
    Own {
        target: &'a str,
    },
    EnsureImage {
        image: &'a str,
    },
    RunContainer(&'a RunRequest),
    Scrape(&'a ScrapeRequest),
    SpawnProcess(&'a SpawnRequest),
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

    /// The one decision: may this provider make this request? The request
    /// is plain data the host gathered without acting on the host.
    pub fn check(&self, capability: Capability, request: &Request<'_>) -> Result<(), Denial> {
        if let Some(denial) = self.broken_denial(Some(capability.name())) {
            return Err(denial);
        }
        self.capability(capability)?;
        match request {
            Request::Own { .. } => Ok(()),
            Request::EnsureImage { image } => self.image(image, None),
            Request::RunContainer(run) => self.run(run),
            Request::Scrape(scrape) => self.scrape(scrape),
            Request::SpawnProcess(spawn) => self.spawn(spawn),
        }
    }

    /// A broken system policy denies everything.
    fn broken_denial(&self, capability: Option<&'static str>) -> Option<Denial> {
        self.broken.as_ref().map(|broken| {
            Denial::key(
                capability,
                "(the whole file)",
                Policy::system_path(),
                broken.clone(),
            )
        })
    }

    /// Checks `allows` against every view that lists rules for `dimension`.
    fn each<T>(
        &self,
        capability: Option<&'static str>,
        dimension: &str,
        get: impl Fn(&Grant) -> Option<&T>,
        allows: impl Fn(&T) -> bool,
        what: impl Fn() -> String,
    ) -> Result<(), Denial> {
        for view in &self.views {
            if let Some(rules) = view.rules(capability, dimension, &what(), &get)?
                && !allows(rules)
            {
                return Err(view.not_in(capability, &what(), dimension));
            }
        }
        Ok(())
    }

    /// Every name in `names` must match a pattern of `dimension` in each
    /// view that lists rules for it.
    fn names_granted(
        &self,
        capability: Option<&'static str>,
        dimension: &str,
        get: impl Fn(&Grant) -> Option<&Vec<values::Pattern>>,
        names: &[String],
        what: &str,
    ) -> Result<(), Denial> {
        for name in names {
            self.each(
                capability,
                dimension,
                &get,
                |patterns| patterns.iter().any(|p| p.matches(name)),
                || format!("{what} '{name}'"),
            )?;
        }
        Ok(())
    }

    /// Every port in `ports` must lie in a range of `dimension`.
    fn ports_granted(
        &self,
        capability: Option<&'static str>,
        dimension: &str,
        get: impl Fn(&Grant) -> Option<&Vec<containers::PortRange>>,
        ports: &[u16],
    ) -> Result<(), Denial> {
        for port in ports {
            self.each(
                capability,
                dimension,
                &get,
                |ranges| ranges.iter().any(|r| r.contains(*port)),
                || format!("host port {port}"),
            )?;
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
}

#[cfg(test)]
mod tests;
