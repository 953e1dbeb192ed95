//! A cache of the Pearl-package probe, so that `doctor` does not start a
//! Python interpreter (50–100 ms behind a pyenv shim) on every run.
//!
//! The answer depends on which interpreter `python3` is and what its import
//! path holds, so the cache is keyed by, and only trusted while all of these
//! are unchanged (each a `stat` or a small read, no process):
//!
//! - the `python3` that PATH resolves to, and the file behind it (a shim's
//!   identity: device, inode, size, modification time);
//! - the environment that steers an interpreter or a version manager
//!   (`PYTHON*`, `PYENV*`, `VIRTUAL_ENV`, `CONDA_PREFIX`, `HOME`) and the
//!   version files pyenv and asdf read (the nearest `.python-version` and
//!   `.tool-versions` above the working directory, pyenv's global `version`);
//! - the interpreter the probe ran (`sys.executable`) and every directory on
//!   its `sys.path`: installing or removing a package adds or removes an entry
//!   in a site-packages directory, which changes that directory's time.
//!
//! The file lives in the user's own OpenJarvis home; only doctor's and
//! `detect`'s view of installed packages is read from it, never anything run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::facts::PearlFacts;
use crate::probe_cache::{CacheDir, Identity, read_small};

/// The cache file's name inside the directory the caller gives.
pub const FILE_NAME: &str = "python-probe.json";
/// Bump when the probe or the key changes meaning.
const FORMAT: u32 = 1;

/// Which interpreter `python3` means here, before running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    format: u32,
    python3: Identity,
    env: Vec<(String, String)>,
    version_files: Vec<(PathBuf, String)>,
}

impl Key {
    /// `None` when there is no `python3` on PATH (nothing to probe or cache).
    pub fn here() -> Option<Key> {
        let python3 = which::which("python3").ok()?;
        let mut env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| {
                name.starts_with("PYTHON")
                    || name.starts_with("PYENV")
                    || ["VIRTUAL_ENV", "CONDA_PREFIX", "HOME"].contains(&name.as_str())
            })
            .collect();
        env.sort();
        let mut version_files = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            for name in [".python-version", ".tool-versions"] {
                if let Some(file) = cwd
                    .ancestors()
                    .map(|dir| dir.join(name))
                    .find(|f| f.is_file())
                {
                    let text = read_small(&file).unwrap_or_default();
                    version_files.push((file, text));
                }
            }
        }
        // pyenv's global version, next to its shims directory.
        if let Some(root) = python3
            .parent()
            .filter(|dir| dir.ends_with("shims"))
            .and_then(Path::parent)
        {
            let global = root.join("version");
            let text = read_small(&global).unwrap_or_default();
            version_files.push((global, text));
        }
        Some(Key {
            format: FORMAT,
            python3: Identity::of(&python3.canonicalize().unwrap_or(python3)),
            env,
            version_files,
        })
    }
}

/// A probe's answer with what it depended on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    key: Key,
    /// The interpreter and its import path, as the probe saw them.
    depends_on: Vec<Identity>,
    pub facts: PearlFacts,
}

impl Entry {
    pub fn new(key: Key, executable: &Path, import_path: &[PathBuf], facts: PearlFacts) -> Entry {
        let depends_on = std::iter::once(executable)
            .chain(import_path.iter().map(PathBuf::as_path))
            .map(Identity::of)
            .collect();
        Entry {
            key,
            depends_on,
            facts,
        }
    }

    fn current(&self, key: &Key) -> bool {
        self.key == *key && self.depends_on.iter().all(Identity::current)
    }
}

/// The cached facts for `key`, if the cache in `dir` holds a current answer.
pub fn lookup(dir: &CacheDir, key: &Key) -> Option<PearlFacts> {
    let text = dir.read(FILE_NAME)?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    entry.current(key).then_some(entry.facts)
}

/// Replaces the cache in `dir` (created owner-only if missing). Failure only
/// costs the next run a probe, so it is not reported.
pub fn store(dir: &CacheDir, entry: &Entry) {
    let _ = dir.replace_json(FILE_NAME, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, site: &Path) -> (Key, Entry) {
        let key = Key {
            format: FORMAT,
            python3: Identity::of(&dir.join("python3")),
            env: vec![("PYENV_VERSION".into(), "3.12".into())],
            version_files: vec![],
        };
        let facts = PearlFacts {
            python_packages: Some(vec!["pearl_mining".into()]),
            ..PearlFacts::default()
        };
        let entry = Entry::new(key.clone(), &dir.join("python3"), &[site.to_owned()], facts);
        (key, entry)
    }

    #[test]
    fn an_answer_is_reused_until_what_it_depends_on_changes() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site-packages");
        std::fs::create_dir(&site).unwrap();
        // An old time, so the install below changes it whatever the clock's
        // granularity.
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(&site)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::write(dir.path().join("python3"), "#!/bin/sh\n").unwrap();
        let cache = CacheDir::open_ambient(&dir.path().join("cache")).unwrap();
        let (key, entry) = entry(dir.path(), &site);
        assert_eq!(lookup(&cache, &key), None, "nothing cached yet");
        store(&cache, &entry);
        assert_eq!(lookup(&cache, &key), Some(entry.facts.clone()));

        // Another interpreter selected: a different key.
        let mut other = key.clone();
        other.env[0].1 = "3.13".into();
        assert_eq!(lookup(&cache, &other), None);

        // A package installed: the site-packages directory gained an entry.
        std::fs::create_dir(site.join("pearl_gateway")).unwrap();
        assert_eq!(
            lookup(&cache, &key),
            None,
            "a changed site-packages refreshes"
        );
        // The shim replaced.
        store(&cache, &entry);
        std::fs::remove_file(dir.path().join("python3")).unwrap();
        std::fs::write(dir.path().join("python3"), "#!/bin/sh\nexec other\n").unwrap();
        assert_eq!(
            lookup(&cache, &key),
            None,
            "a replaced interpreter refreshes"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_place_of_the_cache_is_a_miss_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = entry(dir.path(), dir.path());
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join(FILE_NAME))
            .status()
            .unwrap();
        assert!(made.success());
        let cache = CacheDir::open_ambient(dir.path()).unwrap();
        assert_eq!(lookup(&cache, &key), None);
    }

    #[test]
    fn a_damaged_cache_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = entry(dir.path(), dir.path());
        let cache = CacheDir::open_ambient(dir.path()).unwrap();
        for text in ["", "{", "[]", "{\"key\": 1}"] {
            std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
            assert_eq!(lookup(&cache, &key), None, "{text:?}");
        }
    }
}
