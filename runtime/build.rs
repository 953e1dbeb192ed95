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
