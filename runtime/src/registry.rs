//! The provider registry: built-in components embedded in `jarvis`, then
//! community components from `<home>/mining/providers/*.wasm`.
//!
//! A broken file never affects the others; it is reported with the reason.
//! Ids are unique: on a clash the built-in (or the first file) wins.

use crate::bounded_read::{self, Header, InputFile, ReadError};
use crate::home::HomePath;
use crate::policy::Policy;
use crate::provider::{LoadedProvider, ProviderSource};
use crate::sandbox::{ProviderPre, Sandbox};
use sha2::{Digest, Sha256};
use std::path::Path;

/// A built-in provider component, compiled from `providers/` by build.rs.
pub struct BuiltinComponent {
    pub id: &'static str,
    pub bytes: &'static [u8],
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/builtin_components.rs"));

/// The largest provider file we read (Python components are ~20 MB).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// A provider component file, installed or to be installed.
pub const COMPONENT_FILE: InputFile = InputFile {
    noun: "a provider",
    expected: "a WebAssembly component file (.wasm, see docs/providers.md)",
    max_bytes: MAX_COMPONENT_BYTES,
    header: Some(Header {
        len: COMPONENT_PREAMBLE.len(),
        check: component_header,
    }),
};

/// `\0asm`, binary version 13, layer 1: the component encoding wasmtime reads.
const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\0\x01\0";

/// A provider that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The provider id when known, else the file name.
    pub name: String,
    pub source: ProviderSource,
    pub error: String,
}

pub struct Registry {
    /// Loaded providers in registration order: built-ins first, then files by name.
    pub providers: Vec<LoadedProvider>,
    pub failures: Vec<LoadFailure>,
}

impl Registry {
    /// Loads the built-ins and every `*.wasm` in `installed_dir` (if given)
    /// that the policy admits.
    pub fn load(sandbox: &Sandbox, installed_dir: Option<&HomePath>, policy: &Policy) -> Registry {
        let mut candidates: Vec<Candidate> = BUILTIN_COMPONENTS
            .iter()
            .map(|builtin| Candidate {
                name: builtin.id.to_owned(),
                source: ProviderSource::Builtin,
                expected_id: Some(builtin.id),
                bytes: Ok(builtin.bytes.into()),
                sha256: Some(builtin.sha256.to_owned()),
            })
            .collect();
        let mut failures = Vec::new();
        if let Some(dir) = installed_dir {
            match installed_files(dir) {
                Ok(files) => candidates.extend(files.into_iter().map(Candidate::from_file)),
                Err(err) => failures.push(LoadFailure {
                    name: dir.display().to_string(),
                    source: ProviderSource::Installed(dir.absolute()),
                    error: format!("cannot list installed providers: {err}"),
                }),
            }
        }
        // Compile in parallel (a cold start compiles everything), register in order.
        let loaded: Vec<Result<LoadedProvider, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = candidates
                .iter()
                .map(|candidate| scope.spawn(|| candidate.load(sandbox, policy)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("loader thread panicked".into()))
                })
                .collect()
        });
        let mut providers: Vec<LoadedProvider> = Vec::new();
        for (candidate, result) in candidates.into_iter().zip(loaded) {
            let provider = match result {
                Ok(provider) => provider,
                Err(error) => {
                    failures.push(candidate.failure(error));
                    continue;
                }
            };
            if let Some(owner) = providers.iter().find(|p| p.id() == provider.id()) {
                let owner = match &owner.source {
                    ProviderSource::Builtin => "the built-in provider".to_owned(),
                    ProviderSource::Installed(path) => file_name(path),
                };
                failures.push(LoadFailure {
                    name: provider.id().to_owned(),
                    source: provider.source.clone(),
                    error: format!(
                        "provider id '{}' is already taken by {owner}, which wins; rename this provider",
                        provider.id()
                    ),
                });
                continue;
            }
            providers.push(provider);
        }
        Registry {
            providers,
            failures,
        }
    }

    pub fn get(&self, id: &str) -> Option<&LoadedProvider> {
        self.providers.iter().find(|p| p.id() == id)
    }
}

struct Candidate {
    name: String,
    source: ProviderSource,
    expected_id: Option<&'static str>,
    bytes: Result<Vec<u8>, String>,
    sha256: Option<String>,
}

impl Candidate {
    fn from_file(path: HomePath) -> Candidate {
        Candidate {
            name: file_name(path.relative()),
            bytes: read_installed_component(&path).map_err(|err| err.to_string()),
            source: ProviderSource::Installed(path.absolute()),
            expected_id: None,
            sha256: None,
        }
    }

    fn load(&self, sandbox: &Sandbox, policy: &Policy) -> Result<LoadedProvider, String> {
        let bytes = self.bytes.as_ref().map_err(Clone::clone)?;
        let sha256 = self
            .sha256
            .clone()
            .unwrap_or_else(|| format!("{:x}", Sha256::digest(bytes)));
        if self.source != ProviderSource::Builtin
            && let Err(denial) = policy.admit_installed(&sha256)
        {
            // Refused on every command that loads providers: recorded once a
            // day, under the id the component gives (its pure `info()`, run
            // only when the record is due; never the file name).
            if let Some(log) = sandbox.audit_log() {
                log.daily_decision(
                    &sha256,
                    "load",
                    format!("load {}", self.name),
                    Err(denial.clone()),
                    || self.identify(sandbox, bytes, &sha256, policy),
                );
            }
            return Err(format!("not loaded: {denial}"));
        }
        let pre = link(sandbox, bytes, &sha256)?;
        let provider = LoadedProvider::new(
            sandbox,
            pre,
            self.source.clone(),
            sha256,
            &self.name,
            policy,
        )
        .map_err(|err| format!("info() failed: {err}"))?;
        if let Some(expected) = self.expected_id.filter(|id| *id != provider.id()) {
            return Err(format!(
                "built-in provider reports id '{}', expected '{expected}'",
                provider.id()
            ));
        }
        Ok(provider)
    }

    /// The id the component's `info()` returns, if it is a provider.
    fn identify(
        &self,
        sandbox: &Sandbox,
        bytes: &[u8],
        sha256: &str,
        policy: &Policy,
    ) -> Option<String> {
        let pre = link(sandbox, bytes, sha256).ok()?;
        let provider = LoadedProvider::new(
            sandbox,
            pre,
            self.source.clone(),
            sha256.to_owned(),
            &self.name,
            policy,
        )
        .ok()?;
        Some(provider.info.id)
    }

    fn failure(self, error: String) -> LoadFailure {
        LoadFailure {
            name: self.name,
            source: self.source,
            error,
        }
    }
}

/// Compiles (or loads from the cache) a component and links it as a
/// `mining-provider` of the contract version it exports; the error says
/// what the bytes are instead.
pub(crate) fn link(sandbox: &Sandbox, bytes: &[u8], sha256: &str) -> Result<ProviderPre, String> {
    let component = sandbox
        .compile(bytes, sha256)
        .map_err(|err| describe_compile_error(bytes, &err))?;
    sandbox.prepare(&component).map_err(|err| {
        format!(
            "does not implement the openjarvis:mining/mining-provider world: {}",
            first_line(&format!("{err:#}"))
        )
    })
}

fn installed_files(dir: &HomePath) -> std::io::Result<Vec<HomePath>> {
    let entries = match dir.read_dir() {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files: Vec<HomePath> = entries
        .into_iter()
        .map(|entry| entry.path)
        .filter(|path| path.relative().extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    files.sort_by(|a, b| a.relative().cmp(b.relative()));
    Ok(files)
}

/// A component file the user names (`providers install FILE`).
pub(crate) fn read_component_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    bounded_read::read_bytes(path, &COMPONENT_FILE)
}

/// An installed component, under the home.
pub(crate) fn read_installed_component(path: &HomePath) -> Result<Vec<u8>, ReadError> {
    bounded_read::read_home_bytes(path, &COMPONENT_FILE)
}

/// Says what the first bytes are when they do not start a component.
fn component_header(head: &[u8]) -> Result<(), String> {
    const CORE_MODULE: [u8; 8] = *b"\0asm\x01\0\0\0";
    if head.starts_with(&COMPONENT_PREAMBLE) {
        Ok(())
    } else if !head.starts_with(b"\0asm") {
        Err("not a WebAssembly file".to_owned())
    } else if head.starts_with(&CORE_MODULE) {
        Err("a core WebAssembly module, not a component: encode it as a component (see docs/providers.md)".to_owned())
    } else {
        Err(format!(
            "not a component this host reads: version and layer bytes {:02x?}, expected [0d, 00, 01, 00]",
            head.get(4..).unwrap_or_default()
        ))
    }
}

/// Explains a compile failure by what the bytes are.
fn describe_compile_error(bytes: &[u8], err: &anyhow::Error) -> String {
    component_header(bytes)
        .err()
        .unwrap_or_else(|| format!("invalid component: {}", first_line(&format!("{err:#}"))))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
