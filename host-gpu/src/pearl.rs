//! Pearl's tools on this host: the gateway executable on PATH, and which Pearl
//! packages (and, on macOS, PyTorch with MPS) `python3` can import.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pearl_catalog::tools::{GATEWAY_EXECUTABLE, REQUIRED_PYTHON_PACKAGES};
use serde::Deserialize;

use crate::facts::PearlFacts;
use crate::probe_cache::CacheDir;
use crate::python_cache::{self, Entry, Key};

/// Python start-up is tens of milliseconds, importing torch (macOS only) a
/// second or two; past this the interpreter is stuck and its answer unknown.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints, as JSON, [`PearlFacts`] (which of the import names in argv
/// `find_spec` finds, without importing them, and on macOS whether torch
/// imports and has MPS; torch is not imported elsewhere: it takes seconds and
/// only the Apple provider asks), and the interpreter and import path the
/// answer came from (the cache's dependencies, python_cache.rs).
const PROBE_SCRIPT: &str = r#"
import importlib.util, json, sys
found = []
for name in sys.argv[1:]:
    try:
        if importlib.util.find_spec(name) is not None:
            found.append(name)
    except Exception:
        pass
facts = {"python_packages": found}
if sys.platform == "darwin":
    try:
        import torch
    except Exception:
        facts["torch_installed"] = False
    else:
        facts["torch_installed"] = True
        try:
            facts["torch_mps_built"] = bool(torch.backends.mps.is_built())
            facts["torch_mps_available"] = bool(torch.backends.mps.is_available())
        except Exception:
            pass
print(json.dumps({"facts": facts, "executable": sys.executable, "path": [p for p in sys.path if p]}))
"#;

/// What [`PROBE_SCRIPT`] prints.
#[derive(Deserialize)]
struct ProbeOutput {
    facts: PearlFacts,
    executable: PathBuf,
    path: Vec<PathBuf>,
}

/// How the Python fields are learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PythonProbe {
    /// Run `python3` once.
    #[default]
    Run,
    /// Reuse the answer cached in this directory while the interpreter and
    /// its import path are unchanged (python_cache.rs); run it otherwise.
    Cached(CacheDir),
    /// Leave them unknown.
    Skip,
}

/// Looks for `pearl-gateway` on PATH and asks `python3` (see [`PythonProbe`]).
/// Without `python3` (or when it fails or hangs) the Python fields are
/// `None`.
pub fn pearl_facts(python: &PythonProbe) -> PearlFacts {
    let mut facts = match python {
        PythonProbe::Run => python_probe().map(|out| out.facts).unwrap_or_default(),
        PythonProbe::Cached(dir) => cached_probe(dir).unwrap_or_default(),
        PythonProbe::Skip => PearlFacts::default(),
    };
    facts.gateway_on_path = Some(which::which(GATEWAY_EXECUTABLE).is_ok());
    facts
}

fn cached_probe(dir: &CacheDir) -> Option<PearlFacts> {
    let key = Key::here()?;
    if let Some(facts) = python_cache::lookup(dir, &key) {
        return Some(facts);
    }
    let out = python_probe()?;
    python_cache::store(
        dir,
        &Entry::new(key, &out.executable, &out.path, out.facts.clone()),
    );
    Some(out.facts)
}

fn python_probe() -> Option<ProbeOutput> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PROBE_SCRIPT)
        .args(REQUIRED_PYTHON_PACKAGES)
        // Keep the working directory off sys.path (Python 3.11+), so a source
        // checkout in the current directory does not count as installed.
        .env("PYTHONSAFEPATH", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // The output arrives when the interpreter exits (its end closes the
    // pipe); a reader thread lets us stop waiting at the deadline.
    let mut stdout = child.stdout.take()?;
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = stdout.read_to_string(&mut text).map(|_| text);
        let _ = sender.send(read);
    });
    let output = match output.recv_timeout(PYTHON_TIMEOUT) {
        Ok(Ok(text)) => text,
        _ => {
            // Best effort: the child may have exited in between.
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
    };
    let status = child.wait().ok()?;
    if !status.success() {
        return None;
    }
    serde_json::from_str(&output).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_probe_lists_only_the_asked_names() {
        if Command::new("python3").arg("-V").output().is_err() {
            return;
        }
        let out = python_probe().expect("python3 runs the probe");
        assert!(out.executable.is_absolute(), "{:?}", out.executable);
        assert!(!out.path.is_empty(), "the import path is reported");
        let facts = out.facts;
        let found = facts.python_packages.expect("the probe lists packages");
        assert!(
            found
                .iter()
                .all(|name| REQUIRED_PYTHON_PACKAGES.contains(&name.as_str()))
        );
        if !cfg!(target_os = "macos") {
            assert_eq!(facts.torch_installed, None);
        }
    }

    #[test]
    fn the_cached_probe_answers_like_the_probe_and_then_from_the_file() {
        if Command::new("python3").arg("-V").output().is_err() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = CacheDir::open_ambient(dir.path()).unwrap();
        let probed = pearl_facts(&PythonProbe::Run);
        let first = pearl_facts(&PythonProbe::Cached(cache_dir.clone()));
        assert_eq!(first, probed);
        let cache = dir.path().join(python_cache::FILE_NAME);
        let written = std::fs::read_to_string(&cache).expect("the answer was cached");
        // A forged answer in the cache is what a hit returns: proof that the
        // second call read the file instead of running python3.
        let mut entry: serde_json::Value = serde_json::from_str(&written).unwrap();
        entry["facts"]["python_packages"] = serde_json::json!(["forged"]);
        std::fs::write(&cache, entry.to_string()).unwrap();
        let second = pearl_facts(&PythonProbe::Cached(cache_dir));
        assert_eq!(second.python_packages, Some(vec!["forged".to_owned()]));
    }

    #[test]
    fn skipping_python_still_looks_for_the_gateway() {
        let facts = pearl_facts(&PythonProbe::Skip);
        assert!(facts.gateway_on_path.is_some());
        assert_eq!(facts.python_packages, None);
    }
}
