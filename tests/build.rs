//! Builds the test guests in tests/guests, and the provider template, into
//! components and tells the tests where they are (`GUEST_<NAME>` or
//! `PROVIDER_TEMPLATE` environment variables at compile time).

use provider_build::{Guest, GuestTarget, build_components};
use std::path::Path;

const GUESTS: [(&str, GuestTarget); 8] = [
    ("guest-hostile", GuestTarget::Bare),
    ("guest-terminal", GuestTarget::Bare),
    ("guest-escape", GuestTarget::Bare),
    ("guest-teardown", GuestTarget::Bare),
    ("guest-contract-0-1", GuestTarget::Bare),
    ("guest-contract-0-2", GuestTarget::Bare),
    ("guest-impure", GuestTarget::Wasi),
    ("provider-template", GuestTarget::Bare),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let workspace = Path::new(&manifest_dir)
        .parent()
        .expect("tests/ is in the workspace");
    for watched in [
        "tests/guests",
        "providers/sdk",
        "providers/examples/rust-template",
        "wit",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let guests: Vec<Guest> = GUESTS
        .iter()
        .map(|(package, target)| Guest {
            package: package.to_string(),
            target: *target,
        })
        .collect();
    match build_components(workspace, &workspace.join("target/guest"), &guests) {
        Ok(built) => {
            for component in built {
                let var = component.package.to_uppercase().replace('-', "_");
                println!("cargo:rustc-env={var}={}", component.path.display());
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
