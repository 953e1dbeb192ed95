//! The registry: built-ins first, then installed files by name; a broken,
//! foreign or clashing file is reported and never affects the others.

use jarvis_mine::provider::ProviderSource;
use jarvis_mine::registry::{BUILTIN_COMPONENTS, Registry};
use jarvis_mine::sandbox::SandboxLimits;
use jarvis_mine_tests::{hostile_component, impure_component, no_policy, sandbox};

#[test]
fn builtins_then_installed_with_each_failure_explained() {
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    put("a-clash.wasm", BUILTIN_COMPONENTS[0].bytes);
    put("b-core-module.wasm", &wat::parse_str("(module)").unwrap());
    put(
        "c-wrong-world.wasm",
        &wat::parse_str("(component)").unwrap(),
    );
    put("d-hostile.wasm", &hostile_component());
    put("e-impure.wasm", &impure_component());
    put("f-junk.wasm", b"this is not webassembly");
    put("g-hostile-again.wasm", &hostile_component());
    put("notes.txt", b"ignored: not a .wasm file");

    let sandbox = sandbox(SandboxLimits::default());
    let registry = Registry::load(
        &sandbox,
        Some(&jarvis_mine::home::root(dir.path())),
        &no_policy(),
    );

    let ids: Vec<&str> = registry.providers.iter().map(|p| p.id()).collect();
    assert_eq!(
        ids,
        [
            "vllm-pearl",
            "cpu-pearl",
            "apple-mps-pearl",
            "hostile",
            "impure"
        ]
    );
    assert_eq!(registry.providers[0].source, ProviderSource::Builtin);
    assert_eq!(
        registry.providers[3].source,
        ProviderSource::Installed(dir.path().join("d-hostile.wasm"))
    );

    let failures: Vec<(String, String)> = registry
        .failures
        .iter()
        .map(|f| (f.name.clone(), f.error.clone()))
        .collect();
    let expect = [
        (
            "b-core-module.wasm",
            "a core WebAssembly module, not a component",
        ),
        (
            "c-wrong-world.wasm",
            "does not implement the openjarvis:mining/mining-provider world: it exports none of \
             openjarvis:mining/provider@0.2.0, openjarvis:mining/provider@0.1.0: this host supports \
             contract versions 0.2.0 and 0.1.0",
        ),
        ("f-junk.wasm", "not a WebAssembly file"),
        (
            "vllm-pearl",
            "provider id 'vllm-pearl' is already taken by the built-in provider, which wins",
        ),
        (
            "hostile",
            "provider id 'hostile' is already taken by d-hostile.wasm, which wins",
        ),
    ];
    assert_eq!(failures.len(), expect.len(), "{failures:#?}");
    for (name, error) in expect {
        assert!(
            failures.iter().any(|(n, e)| n == name && e.contains(error)),
            "no failure {name}: {error}… in {failures:#?}"
        );
    }
}

#[test]
fn a_missing_providers_directory_is_just_empty() {
    let sandbox = sandbox(SandboxLimits::default());
    let registry = Registry::load(
        &sandbox,
        Some(&jarvis_mine::home::root("/nonexistent/providers")),
        &no_policy(),
    );
    assert_eq!(registry.providers.len(), 3);
    assert!(registry.failures.is_empty());
}

#[test]
fn compiled_components_are_cached_and_bad_entries_are_misses() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = hostile_component();
    let compile = || {
        let sandbox = jarvis_mine::sandbox::Sandbox::new(
            SandboxLimits::default(),
            Some(jarvis_mine::home::root(cache.path())),
        )
        .unwrap();
        sandbox.compile(&bytes, "feedface").unwrap();
    };
    compile();
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one entry, no temp files left");
    let entry = entries[0].path();
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("feedface-")
    );
    let written = std::fs::read(&entry).unwrap();

    // A hit leaves the entry alone.
    let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
    compile();
    assert_eq!(
        std::fs::metadata(&entry).unwrap().modified().unwrap(),
        modified
    );

    // Corrupt, truncated and foreign entries are misses, then rewritten.
    let mut flipped = written.clone();
    let last = flipped.len() - 100;
    flipped[last] ^= 0xff;
    for bad in [
        flipped,
        written[..written.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        std::fs::write(&entry, &bad).unwrap();
        compile();
        assert_eq!(std::fs::read(&entry).unwrap(), written);
    }
}
