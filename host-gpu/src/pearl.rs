//! Pearl's tools on this host: the gateway executable on PATH, and which Pearl
//! packages (and, on macOS, PyTorch with MPS) `python3` can import.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pearl_catalog::tools::{GATEWAY_EXECUTABLE, REQUIRED_PYTHON_PACKAGES};

use crate::facts::PearlFacts;

/// Python start-up is tens of milliseconds, importing torch (macOS only) a
/// second or two; past this the interpreter is stuck and its answer unknown.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(5);
const PYTHON_POLL: Duration = Duration::from_millis(5);

/// Prints, as JSON in the shape of [`PearlFacts`], which of the import names in
/// argv `find_spec` finds (without importing them), and on macOS whether torch
/// imports and has MPS. Torch is not imported elsewhere: it takes seconds and
/// only the Apple provider asks.
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
print(json.dumps(facts))
"#;

/// Looks for `pearl-gateway` on PATH and, when `probe_python`, runs `python3`
/// once. Without `python3` (or when it fails or hangs) the Python fields are
/// `None`.
pub fn pearl_facts(probe_python: bool) -> PearlFacts {
    let mut facts = if probe_python {
        python_probe().unwrap_or_default()
    } else {
        PearlFacts::default()
    };
    facts.gateway_on_path = Some(which::which(GATEWAY_EXECUTABLE).is_ok());
    facts
}

fn python_probe() -> Option<PearlFacts> {
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
    let deadline = Instant::now() + PYTHON_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(PYTHON_POLL),
            _ => {
                // Best effort: the child may have exited in between.
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    // The output is a few hundred bytes, so it fit in the pipe while we waited.
    let mut output = String::new();
    child.stdout.take()?.read_to_string(&mut output).ok()?;
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
        let facts = python_probe().expect("python3 runs the probe");
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
    fn skipping_python_still_looks_for_the_gateway() {
        let facts = pearl_facts(false);
        assert!(facts.gateway_on_path.is_some());
        assert_eq!(facts.python_packages, None);
    }
}
