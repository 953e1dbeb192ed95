//! Free space where models will be downloaded: the Hugging Face hub cache.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::facts::DiskFacts;

/// Free space on the filesystem that holds (or will hold) the Hugging Face
/// cache. When the cache does not exist yet, its nearest existing ancestor is
/// measured, so a fresh machine still reports the right filesystem; `path` is
/// the directory actually measured.
pub fn disk_facts() -> DiskFacts {
    let env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let home = std::env::home_dir();
    let Some(cache) = hf_hub_cache(env, home.as_deref()) else {
        return DiskFacts::default();
    };
    let Some(measured) = nearest_existing(&cache).or(home) else {
        return DiskFacts::default();
    };
    DiskFacts {
        free_mib: fs4::available_space(&measured)
            .ok()
            .map(|bytes| bytes / (1024 * 1024)),
        path: Some(measured.display().to_string()),
    }
}

/// The hub cache as `huggingface_hub` resolves it: `$HF_HUB_CACHE`, else
/// `<HF home>/hub` (see [`hf_home`]).
fn hf_hub_cache(env: impl Fn(&str) -> Option<OsString>, home: Option<&Path>) -> Option<PathBuf> {
    match env("HF_HUB_CACHE") {
        Some(cache) => expand_home(cache, home),
        None => Some(hf_home_from(env, home)?.join("hub")),
    }
}

/// The Hugging Face home (what the miner container mounts as its cache):
/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> Option<PathBuf> {
    hf_home_from(
        |name| std::env::var_os(name),
        std::env::home_dir().as_deref(),
    )
}

fn hf_home_from(env: impl Fn(&str) -> Option<OsString>, home: Option<&Path>) -> Option<PathBuf> {
    match env("HF_HOME") {
        Some(hf_home) => expand_home(hf_home, home),
        None => match env("XDG_CACHE_HOME") {
            Some(xdg) => Some(expand_home(xdg, home)?.join("huggingface")),
            None => Some(home?.join(".cache").join("huggingface")),
        },
    }
}

/// A leading `~` expanded as Python's `expanduser` does.
fn expand_home(value: OsString, home: Option<&Path>) -> Option<PathBuf> {
    let path = PathBuf::from(value);
    match path.strip_prefix("~") {
        Ok(rest) => home.map(|home| home.join(rest)),
        Err(_) => Some(path),
    }
}

/// `path` itself or its closest ancestor that exists.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|dir| dir.is_dir())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(vars: &[(&str, &str)]) -> Option<PathBuf> {
        let env = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        };
        hf_hub_cache(env, Some(Path::new("/home/miner")))
    }

    #[test]
    fn hub_cache_precedence() {
        let all = [
            ("HF_HUB_CACHE", "/fast/hub"),
            ("HF_HOME", "/hf"),
            ("XDG_CACHE_HOME", "/xdg"),
        ];
        assert_eq!(cache_with(&all), Some("/fast/hub".into()));
        assert_eq!(cache_with(&all[1..]), Some("/hf/hub".into()));
        assert_eq!(cache_with(&all[2..]), Some("/xdg/huggingface/hub".into()));
        assert_eq!(
            cache_with(&[]),
            Some("/home/miner/.cache/huggingface/hub".into())
        );
    }

    #[test]
    fn tilde_is_home() {
        assert_eq!(
            cache_with(&[("HF_HOME", "~/hf")]),
            Some("/home/miner/hf/hub".into())
        );
    }

    #[test]
    fn no_home_and_no_variables_is_unknown() {
        assert_eq!(hf_hub_cache(|_| None, None), None);
    }

    #[test]
    fn a_missing_cache_measures_its_nearest_existing_ancestor() {
        let dir = std::env::temp_dir();
        let missing = dir
            .join("jarvis-no-such-dir")
            .join("huggingface")
            .join("hub");
        assert_eq!(nearest_existing(&missing), Some(dir));
    }
}
