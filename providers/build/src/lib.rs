//! Compiles provider crates to WebAssembly components with the guest toolchain
//! described in `shared/guest-toolchain.md`: Debian's `rustc-web` (whose std
//! sources match it exactly) with `-Zbuild-std`, linked by `wasm-ld-19`, then
//! encoded as a component by `wit-component`.
//!
//! Build scripts call [`build_components`]; nothing here runs at `jarvis` run time.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The script that installs the guest toolchain; named in every toolchain error.
pub const SETUP_SCRIPT: &str = "scripts/setup-guest-toolchain";

/// Which core-module target a guest crate compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestTarget {
    /// No WASI imports at all: the smallest, fastest-to-instantiate components.
    Bare,
    /// WASI preview 1, adapted to preview 2 (for guests that use std's I/O, clocks, env...).
    Wasi,
}

impl GuestTarget {
    fn triple(self) -> &'static str {
        match self {
            GuestTarget::Bare => "wasm32-unknown-unknown",
            GuestTarget::Wasi => "wasm32-wasip1",
        }
    }
}

/// A guest crate of the workspace to build.
#[derive(Debug, Clone)]
pub struct Guest {
    pub package: String,
    pub target: GuestTarget,
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Component {
    pub package: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// Paths of the guest toolchain, overridable for unusual installs.
struct Toolchain {
    cargo: PathBuf,
    rustc: PathBuf,
    linker: PathBuf,
    wasi_libc: PathBuf,
}

impl Toolchain {
    fn locate() -> Result<Self> {
        Self::locate_with(|var| std::env::var_os(var))
    }

    /// Resolves each tool from `lookup` (the environment) or its Debian default.
    fn locate_with(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self> {
        let pick = |var: &str, default: &str| {
            lookup(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        let toolchain = Toolchain {
            cargo: pick("JARVIS_GUEST_CARGO", "/usr/bin/cargo"),
            rustc: pick("JARVIS_GUEST_RUSTC", "/usr/bin/rustc"),
            linker: pick("JARVIS_GUEST_LINKER", "/usr/bin/wasm-ld-19"),
            wasi_libc: pick("JARVIS_GUEST_WASI_LIBC", "/usr/lib/wasm32-wasi"),
        };
        for tool in [&toolchain.cargo, &toolchain.rustc, &toolchain.linker] {
            if !tool.exists() {
                bail!(missing(&format!("{} not found", tool.display())));
            }
        }
        Ok(toolchain)
    }

    fn check_std_sources(&self) -> Result<()> {
        let out = Command::new(&self.rustc)
            .args(["--print", "sysroot"])
            .output()
            .with_context(|| missing(&format!("cannot run {}", self.rustc.display())))?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let library = sysroot.join("lib/rustlib/src/rust/library/Cargo.lock");
        if !library.exists() {
            bail!(missing(&format!(
                "std sources for {} not found at {}",
                self.rustc.display(),
                library.display()
            )));
        }
        Ok(())
    }
}

fn missing(what: &str) -> String {
    format!("guest toolchain missing ({what}): run {SETUP_SCRIPT}")
}

/// Builds `guests` (packages of the workspace at `workspace`) into components
/// under `target_dir`. Guest crates are plain libraries (so their unit tests
/// run natively); each is linked here as a `cdylib` with `cargo rustc`.
pub fn build_components(
    workspace: &Path,
    target_dir: &Path,
    guests: &[Guest],
) -> Result<Vec<Component>> {
    let toolchain = Toolchain::locate()?;
    toolchain.check_std_sources()?;
    for target in [GuestTarget::Bare, GuestTarget::Wasi] {
        let packages: Vec<&str> = guests
            .iter()
            .filter(|g| g.target == target)
            .map(|g| g.package.as_str())
            .collect();
        for package in packages {
            cargo_build(&toolchain, workspace, target_dir, target, package)?;
        }
    }
    guests
        .iter()
        .map(|guest| componentize(target_dir, guest))
        .collect()
}

fn cargo_build(
    toolchain: &Toolchain,
    workspace: &Path,
    target_dir: &Path,
    target: GuestTarget,
    package: &str,
) -> Result<()> {
    if target == GuestTarget::Wasi && !toolchain.wasi_libc.exists() {
        bail!(missing(&format!(
            "wasi-libc not found at {}",
            toolchain.wasi_libc.display()
        )));
    }
    let mut cmd = Command::new(&toolchain.cargo);
    // The outer cargo's environment (its rustc, flags, jobserver, target dir)
    // belongs to the host build; the guest build must not inherit it.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let inherited = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTUP")
            || matches!(
                &*key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "LD_LIBRARY_PATH"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if inherited {
            cmd.env_remove(&*key);
        }
    }
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.triple().to_uppercase().replace('-', "_")
    );
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", &toolchain.rustc)
        .env(linker_var, &toolchain.linker)
        .current_dir(workspace)
        .args([
            "rustc",
            "--quiet",
            "--profile",
            "guest",
            "--crate-type",
            "cdylib",
        ])
        .args(["-p", package])
        .args(["-Zbuild-std=std,panic_abort", "--target", target.triple()])
        .arg("--target-dir")
        .arg(target_dir);
    if target == GuestTarget::Wasi {
        let flags = format!(
            "-C link-self-contained=no -L {}",
            toolchain.wasi_libc.display()
        );
        cmd.env("RUSTFLAGS", flags);
    }
    let status = cmd
        .status()
        .with_context(|| missing(&format!("cannot run {}", toolchain.cargo.display())))?;
    if !status.success() {
        bail!("guest build of {package} failed ({status})");
    }
    Ok(())
}

fn componentize(target_dir: &Path, guest: &Guest) -> Result<Component> {
    let dir = target_dir.join(guest.target.triple()).join("guest");
    let file = guest.package.replace('-', "_");
    let core_path = dir.join(format!("{file}.wasm"));
    let core = std::fs::read(&core_path)
        .with_context(|| format!("reading guest module {}", core_path.display()))?;
    let mut encoder = wit_component::ComponentEncoder::default()
        .module(&core)?
        .validate(true);
    if guest.target == GuestTarget::Wasi {
        encoder = encoder.adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?;
    }
    let bytes = encoder
        .encode()
        .with_context(|| format!("encoding {} as a component", guest.package))?;
    let path = dir.join(format!("{}.component.wasm", guest.package));
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(Component {
        package: guest.package.clone(),
        path,
        sha256: format!("{:x}", Sha256::digest(&bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_the_setup_script() {
        let err = Toolchain::locate_with(|var| {
            (var == "JARVIS_GUEST_RUSTC").then(|| "/nonexistent/rustc".into())
        })
        .err()
        .expect("a missing rustc is an error");
        assert_eq!(
            err.to_string(),
            "guest toolchain missing (/nonexistent/rustc not found): run scripts/setup-guest-toolchain"
        );
    }
}
