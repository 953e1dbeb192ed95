//! The Python example provider (`providers/examples/python`), built with
//! componentize-py into `target/guest/python-example.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The version `scripts/setup-guest-toolchain` installs.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

const MISSING: &str = "componentize-py missing: run scripts/setup-guest-toolchain \
    (looked at $JARVIS_COMPONENTIZE_PY, then PATH, then $JARVIS_PYENV or ~/.cache/jarvis-mine/pyenv)";

/// The Python example as a component, built on first use in this process.
///
/// - Rebuilt only when `app.py` or `wit/*.wit` is newer than the output.
/// - Test binaries running in parallel serialise on the file lock
///   `target/guest/python-example.lock`; the component is written to a
///   temporary name and renamed, so a reader never sees half a file.
/// - componentize-py is `$JARVIS_COMPONENTIZE_PY`, else on `PATH`, else in
///   the virtualenv `scripts/setup-guest-toolchain` made; panics when none
///   of them is there.
pub fn python_example_component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build().unwrap_or_else(|error| panic!("{error}")))
        .clone()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn build() -> Result<PathBuf, String> {
    let root = workspace_root();
    let app = root.join("providers/examples/python/app.py");
    let wit = root.join("wit");
    let guest_dir = root.join("target/guest");
    let output = guest_dir.join("python-example.wasm");

    std::fs::create_dir_all(&guest_dir)
        .map_err(|e| format!("creating {}: {e}", guest_dir.display()))?;
    let lock_path = guest_dir.join("python-example.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

    let mut sources = vec![app.clone()];
    sources.extend(wit_files(&wit)?);
    if is_fresh(&output, &sources)? {
        return Ok(output);
    }

    let componentize_py = componentize_py().ok_or_else(|| MISSING.to_owned())?;
    // Build from a copy: importing app.py writes __pycache__ next to it.
    let staging = guest_dir.join("python-example-src");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("creating {}: {e}", staging.display()))?;
    std::fs::copy(&app, staging.join("app.py"))
        .map_err(|e| format!("copying {}: {e}", app.display()))?;
    let partial = guest_dir.join(format!("python-example.wasm.{}.tmp", std::process::id()));
    let run = Command::new(&componentize_py)
        .current_dir(&staging)
        .arg("-d")
        .arg(&wit)
        // No --stub-wasi: its 25 stub instances (38 core instances in all)
        // exceed the sandbox's 32, and with the host's WASI, which sees
        // nothing, a Python traceback reaches the host's log.
        .args(["-w", "mining-provider", "componentize", "app"])
        .arg("-p")
        .arg(&staging)
        .arg("-o")
        .arg(&partial)
        .output()
        .map_err(|e| format!("running {}: {e}", componentize_py.display()))?;
    if !run.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "componentize-py failed ({}):\n{}{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    std::fs::rename(&partial, &output)
        .map_err(|e| format!("renaming {} into place: {e}", partial.display()))?;
    Ok(output)
}

fn wit_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    Ok(entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wit"))
        .collect())
}

/// Whether `output` exists and no source is newer.
fn is_fresh(output: &Path, sources: &[PathBuf]) -> Result<bool, String> {
    let modified = |path: &Path| -> Result<SystemTime, String> {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("reading {}: {e}", path.display()))
    };
    if !output.exists() {
        return Ok(false);
    }
    let built = modified(output)?;
    for source in sources {
        if modified(source)? > built {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The componentize-py of the pinned version: `$JARVIS_COMPONENTIZE_PY`,
/// else on `PATH`, else in the setup script's virtualenv.
pub fn componentize_py() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("JARVIS_COMPONENTIZE_PY") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("componentize-py"));
    let pyenv = std::env::var_os("JARVIS_PYENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/jarvis-mine/pyenv"))
        })
        .map(|dir| dir.join("bin/componentize-py"));
    on_path.chain(pyenv).find(|candidate| is_pinned(candidate))
}

fn is_pinned(candidate: &Path) -> bool {
    Command::new(candidate)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim()
                    == format!("componentize-py {COMPONENTIZE_PY_VERSION}")
        })
}
