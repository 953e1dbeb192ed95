//! Parsed policy files, cached per provider so a command reads only the
//! grants of the providers it runs.
//!
//! Parsing a policy costs about 30 µs per provider table; an enterprise file
//! naming a thousand providers would cost a `doctor` that otherwise takes a
//! few milliseconds tens of them. So the first command after a file changes
//! parses it strictly (as always) and writes, under
//! `<home>/cache/mining/policy/<file>-<identity>/`, its `[installed]` and
//! `[default]` rules and one small JSON file per provider table. Later
//! commands open only what they need. The identity is the file's device,
//! inode, size, and modification and change times, so any edit, replacement
//! or `touch` makes a new entry. An unreadable entry falls back to parsing.

use super::file::{Grant, InstalledRules, PolicyError, PolicyFile};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One policy file's rules, parsed now or read from the cache.
#[derive(Debug)]
pub struct LayerRules {
    source: PathBuf,
    pub installed: InstalledRules,
    pub default: Option<Grant>,
    providers: Providers,
}

#[derive(Debug)]
enum Providers {
    Parsed(BTreeMap<String, Grant>),
    Cached(PathBuf),
}

const COMPLETE: &str = "complete.json";
const PROVIDERS: &str = "providers";

/// What `complete.json` holds: the rules every command needs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    installed: InstalledRules,
    default: Option<Grant>,
}

impl LayerRules {
    pub fn parsed(source: &Path, file: PolicyFile) -> LayerRules {
        LayerRules {
            source: source.to_owned(),
            installed: file.installed,
            default: file.default,
            providers: Providers::Parsed(file.providers),
        }
    }

    /// The `[providers."id"]` table, if the file has one.
    pub fn provider(&self, id: &str) -> Option<Grant> {
        match &self.providers {
            Providers::Parsed(map) => map.get(id).cloned(),
            Providers::Cached(dir) => {
                match std::fs::read(dir.join(PROVIDERS).join(format!("{id}.json"))) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                    Ok(bytes) if let Ok(grant) = serde_json::from_slice(&bytes) => Some(grant),
                    // A damaged entry: the source file decides.
                    _ => PolicyFile::load(&self.source)
                        .ok()
                        .flatten()
                        .and_then(|mut file| file.providers.remove(id)),
                }
            }
        }
    }
}

/// Loads `path` (`None` when it does not exist), from `cache_root` when an
/// entry for this very file is there, else by parsing and then caching it.
pub fn load(path: &Path, cache_root: Option<&Path>) -> Result<Option<LayerRules>, PolicyError> {
    let Some(root) = cache_root else {
        return Ok(PolicyFile::load(path)?.map(|file| LayerRules::parsed(path, file)));
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Let the parser report it.
        Err(_) => return Ok(PolicyFile::load(path)?.map(|file| LayerRules::parsed(path, file))),
    };
    let (family, entry) = entry_dir(root, path, &meta);
    if let Some(rules) = read_entry(path, &entry) {
        return Ok(Some(rules));
    }
    let Some(file) = PolicyFile::load(path)? else {
        return Ok(None);
    };
    // Best effort: a read-only cache only costs the next command a parse.
    let _ = write_entry(&family, &entry, &file);
    Ok(Some(LayerRules::parsed(path, file)))
}

/// `<root>/<hash of the path>-<identity>`, and the prefix shared by every
/// entry of this path.
fn entry_dir(root: &Path, path: &Path, meta: &Metadata) -> (String, PathBuf) {
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let family: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let identity = format!(
        "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    (family.clone(), root.join(format!("{family}-{identity}")))
}

fn read_entry(source: &Path, entry: &Path) -> Option<LayerRules> {
    let head: Head = serde_json::from_slice(&std::fs::read(entry.join(COMPLETE)).ok()?).ok()?;
    Some(LayerRules {
        source: source.to_owned(),
        installed: head.installed,
        default: head.default,
        providers: Providers::Cached(entry.to_owned()),
    })
}

/// Writes the entry into a temporary directory and renames it into place,
/// so a reader sees a whole entry or none; then drops older entries of the
/// same file.
fn write_entry(family: &str, entry: &Path, file: &PolicyFile) -> std::io::Result<()> {
    let root = entry.parent().expect("entries live under the cache root");
    std::fs::create_dir_all(root)?;
    let temp = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(root)?;
    let providers = temp.path().join(PROVIDERS);
    std::fs::create_dir(&providers)?;
    for (id, grant) in &file.providers {
        std::fs::write(
            providers.join(format!("{id}.json")),
            serde_json::to_vec(grant)?,
        )?;
    }
    let head = Head {
        installed: file.installed.clone(),
        default: file.default.clone(),
    };
    // Written last: its presence marks the entry complete.
    std::fs::write(temp.path().join(COMPLETE), serde_json::to_vec(&head)?)?;
    let built = temp.keep();
    if std::fs::rename(&built, entry).is_err() {
        // Another command cached the same file first.
        let _ = std::fs::remove_dir_all(&built);
    }
    for old in std::fs::read_dir(root)?.flatten() {
        let name = old.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&format!("{family}-")) && old.path() != entry {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[installed]
allow = true
[default]
capabilities = ["sidecar"]
[providers.a]
capabilities = ["containers"]
[providers.a.containers]
images = ["pearl/*"]
ports = [8000, "9000-9001"]
[providers.b.limits]
memory_mib = 32
"#;

    #[test]
    fn a_cached_file_reads_the_same_as_a_parsed_one() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, TEXT).unwrap();
        let cache = dir.path().join("cache");
        let first = load(&policy, Some(&cache)).unwrap().unwrap();
        assert!(matches!(first.providers, Providers::Parsed(_)));
        let second = load(&policy, Some(&cache)).unwrap().unwrap();
        assert!(matches!(second.providers, Providers::Cached(_)));
        for id in ["a", "b", "absent"] {
            let json = |rules: &LayerRules| serde_json::to_string(&rules.provider(id)).unwrap();
            assert_eq!(json(&first), json(&second), "{id}");
        }
        let a = second.provider("a").unwrap();
        assert!(a.containers.unwrap().images.unwrap()[0].matches("pearl/miner:1"));
        assert_eq!(second.installed.allow, Some(true));
        assert!(second.default.is_some());
    }

    #[test]
    fn an_edit_makes_a_new_entry_and_drops_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        let cache = dir.path().join("cache");
        std::fs::write(&policy, TEXT).unwrap();
        load(&policy, Some(&cache)).unwrap();
        std::fs::write(&policy, "[providers.c]\ncapabilities = []\n").unwrap();
        let edited = load(&policy, Some(&cache)).unwrap().unwrap();
        assert!(edited.provider("a").is_none());
        assert!(edited.provider("c").is_some());
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
        let cached = load(&policy, Some(&cache)).unwrap().unwrap();
        assert!(matches!(cached.providers, Providers::Cached(_)));
        assert!(cached.provider("c").is_some());
    }

    #[test]
    fn a_broken_file_is_never_cached_and_a_damaged_entry_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        let cache = dir.path().join("cache");
        std::fs::write(&policy, "[providers.a]\nbogus = 1\n").unwrap();
        assert!(load(&policy, Some(&cache)).is_err());
        assert!(load(&policy, Some(&cache)).is_err());
        std::fs::write(&policy, TEXT).unwrap();
        load(&policy, Some(&cache)).unwrap();
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(entry.join(PROVIDERS).join("a.json"), "{ damaged").unwrap();
        let cached = load(&policy, Some(&cache)).unwrap().unwrap();
        assert!(cached.provider("a").unwrap().capabilities.is_some());
    }
}
