//! On-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 and the engine's compatibility
//! hash (wasmtime version and every compilation setting), written atomically,
//! and carry a checksum of the artifact. Anything unreadable, truncated,
//! corrupt or foreign is a miss: the component is recompiled and rewritten.

use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"JMCWASM1";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The entry for a component with this sha256 (hex).
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// A cached compiled component, or `None` on any kind of miss.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry_path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let (header, artifact) = bytes.split_at_checked(HEADER_LEN)?;
        if &header[..MAGIC.len()] != MAGIC || header[MAGIC.len()..] != Sha256::digest(artifact)[..]
        {
            tracing::debug!(path = %path.display(), "ignoring corrupt compiled-component cache entry");
            return None;
        }
        // SAFETY: the artifact was produced by `Component::serialize` of an
        // engine with the same compatibility hash (it is in the key) and its
        // checksum matches what was written, so it is what we serialized.
        match unsafe { Component::deserialize(engine, artifact) } {
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
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::Builder::new()
            .prefix(".compile-")
            .tempfile_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(&artifact))?;
        file.write_all(&artifact)?;
        file.as_file().sync_all()?;
        file.persist(self.entry_path(sha256))?;
        Ok(())
    }
}
