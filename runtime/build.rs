//! Compiles the built-in providers in `providers/` into WebAssembly components
//! and generates `builtin_components.rs`, which embeds them in `jarvis`.

use provider_build::{Guest, GuestTarget, build_components};
use std::fmt::Write as _;
use std::path::Path;

/// Built-in providers in registration order (the order `doctor` shows them).
const BUILTINS: [&str; 3] = ["vllm-pearl", "cpu-pearl", "apple-mps-pearl"];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let workspace = Path::new(&manifest_dir)
        .parent()
        .expect("runtime/ is in the workspace");
    let out_dir = std::env::var("OUT_DIR").expect("set by cargo");
    order_supervise_code(Path::new(&manifest_dir));
    for watched in ["providers", "wit", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    for var in [
        "JARVIS_GUEST_CARGO",
        "JARVIS_GUEST_RUSTC",
        "JARVIS_GUEST_LINKER",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let guests: Vec<Guest> = BUILTINS
        .iter()
        .map(|package| Guest {
            package: package.to_string(),
            target: GuestTarget::Bare,
        })
        .collect();
    let built = match build_components(workspace, &workspace.join("target/guest"), &guests) {
        Ok(built) => built,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    };
    let mut source = String::from(
        "/// Built-in provider components, in registration order.\npub const BUILTIN_COMPONENTS: [BuiltinComponent; 3] = [\n",
    );
    for component in &built {
        writeln!(
            source,
            "    BuiltinComponent {{ id: {:?}, bytes: include_bytes!({:?}), sha256: {:?} }},",
            component.package,
            component.path.display().to_string(),
            component.sha256
        )
        .expect("writing to a String");
    }
    source.push_str("];\n");
    std::fs::write(Path::new(&out_dir).join("builtin_components.rs"), source)
        .expect("writing builtin_components.rs");
}

/// Places the functions `jarvis mine supervise` runs after start-up
/// together in the binary (`supervise.order`, written by
/// scripts/order-supervise): the kernel reads code around each page
/// faulted in and maps 64 KiB around each page run, so the looks' 4.8 MiB
/// of code, spread over the whole 28 MB text, kept 12.7 MiB resident
/// (docs/benchmarks.md, "The looks' code together"). Only in a release
/// build with rust-lld, x86-64 Linux's default linker, which knows the
/// option, and only when the build sets no linker or link flags of its
/// own; a name the build lacks is skipped. `JARVIS_LINK_MAP=FILE` also writes the linker's map,
/// where scripts/order-supervise finds each function's address.
fn order_supervise_code(manifest_dir: &Path) {
    let order = manifest_dir.join("supervise.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=JARVIS_LINK_MAP");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_link_settings = std::env::var_os("RUSTC_LINKER").is_some() || flags.contains("link");
    // A debug build's names differ (its own metadata hash): nothing to order.
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if target != "x86_64-unknown-linux-gnu" || own_link_settings || !release {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    if let Some(map) = std::env::var_os("JARVIS_LINK_MAP") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-Map={}",
            Path::new(&map).display()
        );
    }
}
