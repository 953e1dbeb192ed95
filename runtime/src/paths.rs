//! Where OpenJarvis keeps things (reference §1.6, §6): one home directory,
//! resolved as `$OPENJARVIS_HOME` > `$XDG_DATA_HOME/openjarvis` > `~/.openjarvis`.
//!
//! The home is canonicalised once, here: `/x/h/`, `/x/./h`, `/x/y/../h` and a
//! symlink to `/x/h` are one home, with one sidecar, one lock and one
//! ownership label on its containers. Spelled differently, they would be
//! two homes that delete each other's sessions.

use crate::home::{self, HomePath};
use std::path::{Component, Path, PathBuf};

/// Every location under the home is a [`HomePath`]: reached through the
/// home's one directory handle (see `home.rs`), never by an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
    root: HomePath,
    config_file: PathBuf,
}

/// Why the home cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find the OpenJarvis home: set OPENJARVIS_HOME (or HOME)")]
    NoHome,
    #[error(
        "the OpenJarvis home {home} ({source_var}) cannot be created or resolved: {error}; \
         point {source_var} at a directory you can write"
    )]
    Unusable {
        home: PathBuf,
        source_var: &'static str,
        error: std::io::Error,
    },
    #[error(
        "the OpenJarvis home {home} ({source_var}) is not a directory; \
         point {source_var} at a directory"
    )]
    NotADirectory {
        home: PathBuf,
        source_var: &'static str,
    },
}

impl Paths {
    /// Resolves the paths from the environment, as OpenJarvis does, creating
    /// the home if it is missing and canonicalising it.
    pub fn from_env() -> Result<Self, PathsError> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let (home, source_var) = match (var("OPENJARVIS_HOME"), var("XDG_DATA_HOME"), var("HOME")) {
            (Some(home), _, _) => (home, "OPENJARVIS_HOME"),
            (None, Some(data), _) => (data.join("openjarvis"), "XDG_DATA_HOME"),
            (None, None, Some(user)) => (user.join(".openjarvis"), "HOME"),
            (None, None, None) => return Err(PathsError::NoHome),
        };
        let home = canonical_home(&home, source_var)?;
        let config_file = var("OPENJARVIS_CONFIG").unwrap_or_else(|| home.join("config.toml"));
        Ok(Paths {
            root: home::root(&home),
            home,
            config_file,
        })
    }

    /// The paths of `home`: canonical when it exists; a home that does not
    /// exist (yet) is normalised lexically (no `.`, no trailing `/`), since
    /// creating directories is [`from_env`](Self::from_env)'s business.
    pub fn with_home(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        let home = home
            .canonicalize()
            .unwrap_or_else(|_| lexically_normal(&home));
        Paths {
            config_file: home.join("config.toml"),
            root: home::root(&home),
            home,
        }
    }

    /// The canonical home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `path` as a location under the home, when it is one (by its
    /// spelling: plain names below the canonical home); `None` otherwise.
    pub fn in_home(&self, path: &Path) -> Option<HomePath> {
        let relative = path.strip_prefix(&self.home).ok()?;
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        (plain && !relative.as_os_str().is_empty()).then(|| self.root.join(relative))
    }

    /// The value of the home label on this home's containers.
    pub fn home_label(&self) -> String {
        self.home.display().to_string()
    }

    /// `$OPENJARVIS_CONFIG` or `<home>/config.toml`.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The session sidecar OpenJarvis's engine discovery reads.
    pub fn sidecar(&self) -> HomePath {
        self.root.join("runtime/mining.json")
    }

    /// The advisory lock serialising `mine start` / `mine stop` (reference §1.6
    /// defines the path; the reference never takes it).
    pub fn lock_file(&self) -> HomePath {
        self.root.join("runtime/mining.lock")
    }

    /// The host's record of the last session that ended here (see
    /// `session::history`), so `status` tells `stopped` from `configured`.
    pub fn last_session(&self) -> HomePath {
        self.root.join("runtime/mining-last-session.json")
    }

    /// The host's energy baseline of the running session (see
    /// `telemetry::baseline`): each session GPU's energy counter when the
    /// session started. Written and removed by the host only.
    pub fn energy_baseline(&self) -> HomePath {
        self.root.join("runtime/mining-energy-baseline.json")
    }

    /// Community provider components.
    pub fn installed_providers(&self) -> HomePath {
        self.root.join("mining/providers")
    }

    /// The user's capability policy (docs/policy.md).
    pub fn user_policy(&self) -> HomePath {
        self.root.join("mining/policy.toml")
    }

    /// The audit log of privileged calls and policy decisions.
    pub fn audit_log(&self) -> HomePath {
        self.root.join("logs/mining-audit.jsonl")
    }

    /// Compiled-component cache.
    pub fn component_cache(&self) -> HomePath {
        self.root.join("cache/mining/components")
    }

    /// Cached answers of slow host probes (the Pearl-package probe).
    pub fn probe_cache(&self) -> HomePath {
        self.root.join("cache/mining/probes")
    }

    /// The home itself, as a handle.
    pub fn root(&self) -> HomePath {
        self.root.clone()
    }

    /// `<home>/logs/mining/`: the logs of the processes the host started
    /// (the reference's `log_dir`).
    pub fn mining_logs(&self) -> HomePath {
        self.root.join("logs/mining")
    }

    /// `<home>/runtime/processes.json`: the processes the host started
    /// (`process::table`).
    pub fn process_table(&self) -> HomePath {
        self.root.join("runtime/processes.json")
    }

    /// `<home>/telemetry/mining.db`: the mining history `jarvis mine
    /// supervise` records and `jarvis mine history` reads (`history`).
    pub fn mining_history(&self) -> HomePath {
        self.root.join("telemetry/mining.db")
    }
}

/// Creates `home` if missing, then resolves it to its canonical path.
fn canonical_home(home: &Path, source_var: &'static str) -> Result<PathBuf, PathsError> {
    let unusable = |error| PathsError::Unusable {
        home: home.to_owned(),
        source_var,
        error,
    };
    if home.exists() && !home.is_dir() {
        return Err(PathsError::NotADirectory {
            home: home.to_owned(),
            source_var,
        });
    }
    std::fs::create_dir_all(home).map_err(unusable)?;
    home.canonicalize().map_err(unusable)
}

/// `home` without `.` components, `..` folded into their parent, and no
/// trailing separator (no file system access).
fn lexically_normal(home: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in home.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if normal.file_name().is_some() => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_home_are_one_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        std::fs::create_dir_all(home.join("sub")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&home, &link).unwrap();
        let canonical = home.canonicalize().unwrap();
        let spellings = [
            home.clone(),
            PathBuf::from(format!("{}/", home.display())),
            home.join("."),
            home.join("sub").join(".."),
            link.clone(),
            PathBuf::from(format!("{}/", link.display())),
        ];
        for spelling in spellings {
            let paths = Paths::with_home(&spelling);
            assert_eq!(paths.home(), canonical, "{}", spelling.display());
            assert_eq!(paths.home_label(), canonical.display().to_string());
            assert_eq!(
                paths.sidecar().absolute(),
                canonical.join("runtime/mining.json")
            );
            assert_eq!(
                canonical_home(&spelling, "OPENJARVIS_HOME").unwrap(),
                canonical
            );
        }
    }

    #[test]
    fn a_missing_home_is_created_then_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("a/b/");
        let resolved = canonical_home(&home, "OPENJARVIS_HOME").unwrap();
        assert!(resolved.is_dir());
        assert_eq!(resolved, dir.path().canonicalize().unwrap().join("a/b"));
        // Without creating: lexical only.
        assert_eq!(
            Paths::with_home("/nonexistent/x/./y/../z/").home(),
            Path::new("/nonexistent/x/z")
        );
    }

    #[test]
    fn a_file_or_an_uncreatable_home_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = canonical_home(&file, "OPENJARVIS_HOME").unwrap_err();
        assert!(
            err.to_string()
                .contains("is not a directory; point OPENJARVIS_HOME"),
            "{err}"
        );
        let err = canonical_home(&file.join("below"), "XDG_DATA_HOME").unwrap_err();
        assert!(
            err.to_string().contains("cannot be created or resolved")
                && err
                    .to_string()
                    .contains("point XDG_DATA_HOME at a directory"),
            "{err}"
        );
    }
}
