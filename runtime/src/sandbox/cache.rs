//! On-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 and the engine's compatibility
//! hash (wasmtime version and every compilation setting), written atomically,
//! and end with a checksum of the artifact. Anything unreadable, truncated,
//! corrupt or foreign is a miss: the component is recompiled and rewritten.
//!
//! An entry is wasmtime's artifact as it serialized it, then a trailer
//! (CRC-32 of the artifact, then a magic), so wasmtime can map the file
//! instead of copying it: a Python provider's 35 MB artifact loads in a
//! fraction of the time a copy takes. The checksum guards against
//! corruption; whoever could write an entry could write its checksum too,
//! which is why the cache directory is the user's own.

use crate::home::HomePath;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"JMCWASM2";
const TRAILER_LEN: usize = 4 + MAGIC.len();
/// Entries are `<sha256>-<ENGINE_KEY_LEN hex digits>.cwasm`.
const ENGINE_KEY_LEN: usize = 16;
const EXTENSION: &str = ".cwasm";

pub struct ComponentCache {
    dir: HomePath,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(dir: HomePath, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// Every entry in `dir` for the component with this sha256, whichever
    /// engine compiled it (another wasmtime version or setting leaves its own).
    pub fn entries(dir: &HomePath, sha256: &str) -> std::io::Result<Vec<HomePath>> {
        let listing = match dir.read_dir() {
            Ok(listing) => listing,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut entries = Vec::new();
        for entry in listing {
            let is_entry = entry
                .name
                .to_str()
                .and_then(|name| name.strip_prefix(sha256)?.strip_prefix('-'))
                .and_then(|rest| rest.strip_suffix(EXTENSION))
                .is_some_and(|key| {
                    key.len() == ENGINE_KEY_LEN && key.bytes().all(|b| b.is_ascii_hexdigit())
                });
            if is_entry {
                entries.push(entry.path);
            }
        }
        entries.sort_by(|a, b| a.relative().cmp(b.relative()));
        Ok(entries)
    }

    /// Deletes every entry for this sha256 ([`entries`](Self::entries)) and
    /// returns what it deleted. An entry another process removed first is
    /// not an error.
    pub fn remove(dir: &HomePath, sha256: &str) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for path in ComponentCache::entries(dir, sha256)? {
            match path.remove_file() {
                Ok(()) => removed.push(path.absolute()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(removed)
    }

    /// The entry for a component with this sha256 (hex).
    pub fn entry_path(&self, sha256: &str) -> HomePath {
        self.dir
            .join(format!("{sha256}-{}{EXTENSION}", self.engine_key))
    }

    /// A cached compiled component, or `None` on any kind of miss.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry_path(sha256);
        let bytes = path.read().ok()?;
        let (artifact, trailer) = bytes.split_at_checked(bytes.len().checked_sub(TRAILER_LEN)?)?;
        let (crc, magic) = trailer.split_at(4);
        if magic != MAGIC || crc != crc32fast::hash(artifact).to_le_bytes() {
            tracing::debug!(path = %path.display(), "ignoring corrupt compiled-component cache entry");
            return None;
        }
        // SAFETY: the file holds what `Component::serialize` of an engine
        // with the same compatibility hash (it is in the key) produced, its
        // checksum matches, and entries are only ever replaced by rename, so
        // the mapped file does not change under the component.
        // Mapped through the file opened in the home's handle: its
        // `/proc/self/fd` link names that very file, whatever the path does.
        let file = path.open().ok()?;
        let opened = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        match unsafe { Component::deserialize_file(engine, &opened) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::debug!(path = %path.display(), "cache entry not loadable: {err}");
                None
            }
        }
    }

    /// Stores a compiled component. Failures only cost a recompilation later,
    /// so they are logged, not returned.
    pub fn store(&self, sha256: &str, component: &Component) {
        if let Err(err) = self.try_store(sha256, component) {
            tracing::warn!(dir = %self.dir.display(), "could not cache compiled component: {err:#}");
        }
    }

    fn try_store(&self, sha256: &str, component: &Component) -> anyhow::Result<()> {
        let artifact = component.serialize().map_err(anyhow::Error::from)?;
        self.entry_path(sha256)
            .replace(crate::atomic_file::Mode::Fixed(0o600), |file| {
                file.write_all(&artifact)?;
                file.write_all(&crc32fast::hash(&artifact).to_le_bytes())?;
                file.write_all(MAGIC)
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_one_component_across_engines_are_found_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::home::root(tmp.path());
        let sha = "ab".repeat(32);
        let other = "cd".repeat(32);
        let names = [
            format!("{sha}-0123456789abcdef.cwasm"),
            format!("{sha}-fedcba9876543210.cwasm"),
            format!("{other}-0123456789abcdef.cwasm"),
            format!("{sha}-notanengine.cwasm"),
            format!("{sha}-0123456789abcdef.cwasm.bak"),
            ".compile-x1y2".to_owned(),
        ];
        for name in &names {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        let found = ComponentCache::entries(&dir, &sha).unwrap();
        assert_eq!(found, [dir.join(&names[0]), dir.join(&names[1])]);
        let absolute: Vec<PathBuf> = found.iter().map(HomePath::absolute).collect();
        assert_eq!(ComponentCache::remove(&dir, &sha).unwrap(), absolute);
        assert!(ComponentCache::entries(&dir, &sha).unwrap().is_empty());
        for kept in &names[2..] {
            assert!(tmp.path().join(kept).exists(), "{kept}");
        }
        assert!(
            ComponentCache::entries(&dir.join("missing"), &sha)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_entry_path_is_one_of_its_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::home::root(tmp.path());
        let engine = Engine::default();
        let cache = ComponentCache::new(dir.clone(), &engine);
        let sha = "ef".repeat(32);
        let path = cache.entry_path(&sha);
        std::fs::write(path.absolute(), b"x").unwrap();
        assert_eq!(ComponentCache::entries(&dir, &sha).unwrap(), [path]);
    }
}
