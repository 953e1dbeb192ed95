//! Where OpenJarvis keeps things (reference §1.6, §6): one home directory,
//! resolved as `$OPENJARVIS_HOME` > `$XDG_DATA_HOME/openjarvis` > `~/.openjarvis`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
    config_file: PathBuf,
}

impl Paths {
    /// Resolves the paths from the environment, as OpenJarvis does.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = match (var("OPENJARVIS_HOME"), var("XDG_DATA_HOME"), var("HOME")) {
            (Some(home), _, _) => home,
            (None, Some(data), _) => data.join("openjarvis"),
            (None, None, Some(user)) => user.join(".openjarvis"),
            (None, None, None) => {
                anyhow::bail!("cannot find the OpenJarvis home: set OPENJARVIS_HOME (or HOME)")
            }
        };
        let config_file = var("OPENJARVIS_CONFIG").unwrap_or_else(|| home.join("config.toml"));
        Ok(Paths { home, config_file })
    }

    pub fn with_home(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        Paths {
            config_file: home.join("config.toml"),
            home,
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `$OPENJARVIS_CONFIG` or `<home>/config.toml`.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The session sidecar OpenJarvis's engine discovery reads.
    pub fn sidecar(&self) -> PathBuf {
        self.home.join("runtime").join("mining.json")
    }

    /// The advisory lock serialising `mine start` / `mine stop` (reference §1.6
    /// defines the path; the reference never takes it).
    pub fn lock_file(&self) -> PathBuf {
        self.home.join("runtime").join("mining.lock")
    }

    /// Community provider components.
    pub fn installed_providers(&self) -> PathBuf {
        self.home.join("mining").join("providers")
    }

    /// The user's capability policy (docs/policy.md).
    pub fn user_policy(&self) -> PathBuf {
        self.home.join("mining").join("policy.toml")
    }

    /// The audit log of privileged calls and policy decisions.
    pub fn audit_log(&self) -> PathBuf {
        self.home.join("logs").join("mining-audit.jsonl")
    }

    /// Compiled-component cache.
    pub fn component_cache(&self) -> PathBuf {
        self.home.join("cache").join("mining").join("components")
    }
}
