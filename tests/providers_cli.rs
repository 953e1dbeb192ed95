//! `jarvis mine providers list|inspect|install|remove` end to end: the real
//! binary, a temporary home, the test guests as community providers, and
//! system policies that forbid or pin installs.

use jarvis_mine::install::grant_advice;
use jarvis_mine::paths::Paths;
use jarvis_mine::policy::{Policy, PolicyFile};
use jarvis_mine::provider::{LoadedProvider, ProviderSource};
use jarvis_mine::registry::BUILTIN_COMPONENTS;
use jarvis_mine::sandbox::{Sandbox, SandboxLimits};
use jarvis_mine_tests::{hostile_component, impure_component};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const WIT: &str = "openjarvis:mining@0.2.0";

struct Home {
    dir: tempfile::TempDir,
    /// `OPENJARVIS_MINING_POLICY`: absent unless a test writes it.
    system_policy: PathBuf,
}

/// A home whose cache holds the compiled code of the built-ins and the test
/// guests (debug builds of the compiler are slow), shared by every test and
/// refreshed by installing the guests there: cache writes are atomic, so
/// concurrent runs are safe. Tests that watch the cache for a component use
/// [`with_custom_section`] for one it cannot hold.
fn warm_cache() -> &'static Path {
    static WARM: OnceLock<PathBuf> = OnceLock::new();
    WARM.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("providers-cli-warm");
        std::fs::create_dir_all(&home).unwrap();
        for (name, bytes) in [
            ("hostile.wasm", hostile_component()),
            ("impure.wasm", impure_component()),
        ] {
            let file = home.join(name);
            std::fs::write(&file, bytes).unwrap();
            let out = Command::new(JARVIS)
                .args(["mine", "providers", "install", "--yes", "--replace"])
                .arg(&file)
                .env_clear()
                .env("OPENJARVIS_HOME", &home)
                .env(
                    "OPENJARVIS_MINING_POLICY",
                    home.join("no-system-policy.toml"),
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        home.join("cache/mining/components")
    })
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let system_policy = dir.path().join("system-policy.toml");
        let cache = dir.path().join("cache/mining/components");
        std::fs::create_dir_all(&cache).unwrap();
        for entry in std::fs::read_dir(warm_cache()).unwrap().flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".cwasm") {
                std::fs::copy(entry.path(), cache.join(name)).unwrap();
            }
        }
        Home { dir, system_policy }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(JARVIS);
        command
            .args(["mine", "providers"])
            .args(args)
            .env_clear()
            .env("OPENJARVIS_HOME", self.path())
            .env("OPENJARVIS_MINING_POLICY", &self.system_policy)
            .env("PATH", std::env::var_os("PATH").unwrap())
            .stdin(Stdio::null());
        command
    }

    fn jarvis(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.jarvis(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects this exit code; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.jarvis(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// A file outside the providers directory, for `install` to copy.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path().join("downloads").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn providers_dir(&self) -> PathBuf {
        self.path().join("mining/providers")
    }

    fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.providers_dir())
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Compiled-code cache entries of the component with this sha256.
    fn cache_entries(&self, sha256: &str) -> Vec<String> {
        std::fs::read_dir(self.path().join("cache/mining/components"))
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(&format!("{sha256}-")))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path().join("logs/mining-audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn write_policy(&self, system: &str) {
        std::fs::write(&self.system_policy, system).unwrap();
    }

    fn write_user_policy(&self, text: &str) {
        let path = self.path().join("mining/policy.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// `sha256sum FILE`'s digest.
fn sha256sum(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The same component with a custom section appended: another sha256, the
/// same provider.
fn with_custom_section(component: &[u8], tag: &str) -> Vec<u8> {
    let name = b"jarvis-test";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(tag.as_bytes());
    assert!(content.len() < 128, "one-byte LEB128 size");
    let mut bytes = component.to_vec();
    bytes.extend_from_slice(&[0, content.len() as u8]);
    bytes.extend_from_slice(&content);
    bytes
}

fn provider<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no provider {id} in {listing:#}"))
}

#[test]
fn install_list_inspect_and_remove() {
    let home = Home::new();
    let hostile = home.file("hostile.wasm", &hostile_component());
    let impure = home.file("impure-provider.wasm", &impure_component());
    let hostile_sha = sha256sum(&hostile);
    let impure_sha = sha256sum(&impure);

    let out = home.ok(&["install", "--yes", &hostile]);
    assert!(out.contains("Installed hostile"), "{out}");
    assert!(out.contains("Nothing was granted automatically"), "{out}");
    home.ok(&["install", "-y", &impure]);
    assert_eq!(home.installed(), ["hostile.wasm", "impure.wasm"]);
    let copied = home.providers_dir().join("hostile.wasm");
    assert_eq!(std::fs::read(&copied).unwrap(), hostile_component());
    let mode = std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert_eq!(home.cache_entries(&hostile_sha).len(), 1);
    assert_eq!(home.cache_entries(&impure_sha).len(), 1);

    let listing = home.json(&["list", "--json"]);
    for builtin in BUILTIN_COMPONENTS {
        assert_eq!(provider(&listing, builtin.id)["source"], "builtin");
    }
    let row = provider(&listing, "hostile");
    assert_eq!(row["source"], "installed");
    assert_eq!(row["sha256"], hostile_sha.as_str());
    assert_eq!(row["file"], copied.display().to_string());
    assert_eq!(row["capabilities"], serde_json::json!([]));
    assert_eq!(provider(&listing, "impure")["sha256"], impure_sha.as_str());
    assert_eq!(listing["failures"], serde_json::json!([]));
    let text = home.ok(&["list"]);
    assert!(text.contains("installed (hostile.wasm)"), "{text}");
    assert!(text.contains(&hostile_sha[..12]), "{text}");
    assert!(text.contains("none requested"), "{text}");

    // By id and by file: the same component, judged as installed.
    let by_id = home.json(&["inspect", "hostile", "--json"]);
    assert_eq!(by_id["id"], "hostile");
    assert_eq!(by_id["source"], "installed");
    assert_eq!(by_id["wit"], WIT);
    assert_eq!(by_id["contract"], "0.2.0");
    assert_eq!(by_id["sha256"], hostile_sha.as_str());
    assert_eq!(by_id["size"], hostile_component().len());
    assert!(
        by_id["exports"]
            .as_array()
            .unwrap()
            .contains(&Value::from("openjarvis:mining/provider@0.2.0")),
        "{by_id:#}"
    );
    assert_eq!(by_id["policy"][0]["key"], "providers.\"hostile\"");
    assert_eq!(by_id["policy"][0]["present"], false);
    assert_eq!(by_id["limits"]["memory_bytes"], 64 << 20);
    let by_file = home.json(&["inspect", &hostile, "--json"]);
    assert_eq!(by_file["source"], "file");
    assert_eq!(by_file["sha256"], hostile_sha.as_str());
    assert_eq!(by_file["wit"], WIT);
    let wasi = home.json(&["inspect", "impure", "--json"]);
    let imports: Vec<&str> = wasi["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:cli/")),
        "{imports:?}"
    );
    let text = home.ok(&["inspect", "impure"]);
    assert!(text.contains(&format!("WIT           {WIT}")), "{text}");
    assert!(text.contains(&impure_sha), "{text}");

    let out = home.ok(&["remove", "hostile", "--yes"]);
    assert!(out.contains("Removed hostile"), "{out}");
    assert_eq!(home.installed(), ["impure.wasm"]);
    assert!(home.cache_entries(&hostile_sha).is_empty());
    assert_eq!(home.cache_entries(&impure_sha).len(), 1);
    let listing = home.json(&["list", "--json"]);
    assert!(
        listing["providers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != "hostile")
    );

    let audit = home.audit();
    let ops: Vec<(&str, &str, &str)> = audit
        .iter()
        .filter(|r| r["capability"] == "install" || r["capability"] == "remove")
        .map(|r| {
            (
                r["capability"].as_str().unwrap(),
                r["provider"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("install", "hostile", "allow"),
            ("install", "impure", "allow"),
            ("remove", "hostile", "allow")
        ]
    );
    assert_eq!(audit[0]["component"], hostile_sha.as_str());
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_installed_or_removed() {
    let home = Home::new();
    let hostile = home.file(
        "hostile.wasm",
        &with_custom_section(&hostile_component(), "uncached"),
    );
    let stderr = home.fails(&["install", &hostile], 2);
    assert!(
        stderr.contains("pass --yes to install without a prompt"),
        "{stderr}"
    );
    assert!(home.installed().is_empty());
    // Validation compiled it; an install that did not happen leaves no cache entry.
    assert!(home.cache_entries(&sha256sum(&hostile)).is_empty());
    assert!(home.audit().iter().all(|r| r["capability"] != "install"));

    // One that did leaves its compiled code: the next run is warm.
    home.ok(&["install", "--yes", &hostile]);
    assert_eq!(home.cache_entries(&sha256sum(&hostile)).len(), 1);
    let stderr = home.fails(&["remove", "hostile"], 2);
    assert!(stderr.contains("pass --yes to remove"), "{stderr}");
    assert_eq!(home.installed(), ["hostile.wasm"]);
}

/// On a terminal the user is asked; only "y" installs.
#[test]
fn on_a_terminal_install_asks_first() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    }
    let home = Home::new();
    let hostile = home.file("hostile.wasm", &hostile_component());
    let on_terminal = |answer: &str| {
        let mut child = Command::new("script")
            .args([
                "-qec",
                &format!("{JARVIS} mine providers install {hostile}"),
                "/dev/null",
            ])
            .env_clear()
            .env("OPENJARVIS_HOME", home.path())
            .env("OPENJARVIS_MINING_POLICY", &home.system_policy)
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let declined = on_terminal("n\n");
    assert!(
        declined.contains("Install provider 'hostile'? [y/N]"),
        "{declined}"
    );
    assert!(declined.contains("you declined"), "{declined}");
    assert!(home.installed().is_empty());
    let accepted = on_terminal("y\n");
    assert!(accepted.contains("Installed hostile"), "{accepted}");
    assert_eq!(home.installed(), ["hostile.wasm"]);
}

#[test]
fn built_in_ids_cannot_be_installed_or_removed() {
    let home = Home::new();
    let builtin = &BUILTIN_COMPONENTS[0];
    let copy = home.file("my-vllm.wasm", builtin.bytes);
    let stderr = home.fails(&["install", "--yes", &copy], 2);
    assert!(
        stderr.contains(&format!(
            "provider id '{}' belongs to a built-in provider",
            builtin.id
        )),
        "{stderr}"
    );
    assert!(home.installed().is_empty());
    // Inspecting the file says so too, and still describes it.
    let inspection = home.json(&["inspect", &copy, "--json"]);
    assert_eq!(inspection["id"], builtin.id);
    assert!(
        inspection["notes"][0]
            .as_str()
            .unwrap()
            .contains("built-in"),
        "{inspection:#}"
    );

    let stderr = home.fails(&["remove", builtin.id, "--yes"], 2);
    assert!(
        stderr.contains("built-in providers cannot be removed; revoke them in the policy"),
        "{stderr}"
    );

    home.ok(&[
        "install",
        "--yes",
        &home.file("h.wasm", &hostile_component()),
    ]);
    let stderr = home.fails(&["remove", "nonesuch", "--yes"], 2);
    assert!(
        stderr.contains("no installed provider 'nonesuch'; installed: hostile"),
        "{stderr}"
    );
}

#[test]
fn an_installed_id_is_replaced_only_when_asked() {
    let home = Home::new();
    let v1 = home.file("hostile-1.wasm", &hostile_component());
    let v2 = home.file(
        "hostile-2.wasm",
        &with_custom_section(&hostile_component(), "v2"),
    );
    let (sha1, sha2) = (sha256sum(&v1), sha256sum(&v2));
    home.ok(&["install", "--yes", &v1]);

    // The same component again: nothing to do.
    let out = home.ok(&["install", "--yes", &v1]);
    assert!(out.contains("already installed"), "{out}");

    let stderr = home.fails(&["install", "--yes", &v2], 2);
    assert!(
        stderr.contains("provider 'hostile' is already installed from"),
        "{stderr}"
    );
    assert!(stderr.contains("--replace"), "{stderr}");
    assert_eq!(
        std::fs::read(home.providers_dir().join("hostile.wasm")).unwrap(),
        hostile_component()
    );
    assert!(home.cache_entries(&sha2).is_empty());

    let out = home.ok(&["install", "--yes", "--replace", &v2]);
    assert!(out.contains("Replaced version 0.0.1"), "{out}");
    assert_eq!(home.installed(), ["hostile.wasm"]);
    assert_eq!(
        sha256sum(
            &home
                .providers_dir()
                .join("hostile.wasm")
                .display()
                .to_string()
        ),
        sha2
    );
    assert!(
        home.cache_entries(&sha1).is_empty(),
        "the replaced component's code is gone"
    );
    assert_eq!(home.cache_entries(&sha2).len(), 1);

    // A file a user dropped in under another name is found by its id.
    std::fs::rename(
        home.providers_dir().join("hostile.wasm"),
        home.providers_dir().join("a-hostile.wasm"),
    )
    .unwrap();
    home.ok(&["install", "--yes", "--replace", &v1]);
    assert_eq!(home.installed(), ["hostile.wasm"]);

    // `<id>.wasm` holding another provider is not overwritten silently.
    std::fs::write(
        home.providers_dir().join("impure.wasm"),
        hostile_component(),
    )
    .unwrap();
    let impure = home.file("impure.wasm", &impure_component());
    let stderr = home.fails(&["install", "--yes", &impure], 2);
    assert!(stderr.contains("is not provider 'impure'"), "{stderr}");
}

#[test]
fn the_system_policy_can_forbid_installs() {
    let home = Home::new();
    let hostile = home.file(
        "hostile.wasm",
        &with_custom_section(&hostile_component(), "denied"),
    );
    let impure = home.file("impure.wasm", &impure_component());
    home.write_policy("[installed]\nallow = false\n");
    let stderr = home.fails(&["install", "--yes", &hostile], 9);
    assert!(stderr.contains("hostile: denied:"), "{stderr}");
    assert!(stderr.contains("installed.allow"), "{stderr}");
    assert!(home.installed().is_empty());
    assert!(home.cache_entries(&sha256sum(&hostile)).is_empty());
    let installs: Vec<Value> = home
        .audit()
        .into_iter()
        .filter(|r| r["capability"] == "install")
        .collect();
    assert_eq!(installs.len(), 1, "{installs:#?}");
    let record = &installs[0];
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["provider"], "hostile");

    // A pin admits exactly that component.
    home.write_policy(&format!(
        "[installed]\nsha256 = [\"{}\"]\n",
        sha256sum(&hostile)
    ));
    home.ok(&["install", "--yes", &hostile]);
    let stderr = home.fails(&["install", "--yes", &impure], 9);
    assert!(stderr.contains("is not in installed.sha256"), "{stderr}");
    assert_eq!(home.installed(), ["hostile.wasm"]);
}

#[test]
fn what_is_not_a_provider_is_refused_with_the_reason() {
    let home = Home::new();
    let cases = [
        (
            "junk.wasm",
            b"this is not webassembly".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "core.wasm",
            wat::parse_str("(module)").unwrap(),
            "a core WebAssembly module, not a component",
        ),
        (
            "other-world.wasm",
            wat::parse_str("(component)").unwrap(),
            "this host supports contract versions 0.2.0 and 0.1.0",
        ),
    ];
    for (name, bytes, reason) in cases {
        let file = home.file(name, &bytes);
        for args in [vec!["install", "--yes", &file], vec!["inspect", &file]] {
            let stderr = home.fails(&args, 2);
            assert!(stderr.contains(reason), "{args:?}: {stderr}");
        }
    }
    assert!(home.installed().is_empty());
    let stderr = home.fails(&["inspect", "./missing.wasm"], 2);
    assert!(stderr.contains("no such file"), "{stderr}");
    let stderr = home.fails(&["inspect", "nonesuch"], 2);
    assert!(stderr.contains("no provider 'nonesuch'"), "{stderr}");
}

#[test]
fn inspect_shows_requested_against_granted() {
    let home = Home::new();
    home.write_user_policy("[providers.\"vllm-pearl\"]\ncapabilities = [\"sidecar\"]\n");
    let inspection = home.json(&["inspect", "vllm-pearl", "--json"]);
    let capabilities = inspection["capabilities"].as_array().unwrap();
    let get = |name: &str| {
        capabilities
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not requested: {inspection:#}"))
    };
    assert_eq!(get("sidecar")["granted"], true);
    assert_eq!(get("containers")["granted"], false);
    assert!(
        get("containers")["reason"]
            .as_str()
            .unwrap()
            .contains("is not in providers.\"vllm-pearl\".capabilities"),
        "{inspection:#}"
    );
    let text = home.ok(&["inspect", "vllm-pearl"]);
    assert!(
        text.contains("✗ withheld: capability 'containers'"),
        "{text}"
    );
    assert!(text.contains("✓ granted"), "{text}");
    let list = home.ok(&["list"]);
    assert!(list.contains("containers ✗  sidecar ✓"), "{list}");
}

#[test]
fn remove_leaves_the_provider_of_a_running_session_alone() {
    let home = Home::new();
    home.ok(&[
        "install",
        "--yes",
        &home.file("h.wasm", &hostile_component()),
    ]);
    let sidecar = home.path().join("runtime/mining.json");
    std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
    std::fs::write(
        &sidecar,
        r#"{"provider":"hostile","vllm_endpoint":"http://127.0.0.1:8000/v1","model":"m","gateway_url":"http://127.0.0.1:8337","gateway_metrics_url":"http://127.0.0.1:8339","container_id":"external","wallet_address":"w","started_at":1}"#,
    )
    .unwrap();
    let stderr = home.fails(&["remove", "hostile", "--yes"], 1);
    assert!(
        stderr.contains("stop it first with `jarvis mine stop`"),
        "{stderr}"
    );
    assert_eq!(home.installed(), ["hostile.wasm"]);
}

/// The TOML `install` prints grants what the provider requests, once added
/// to the user's policy: as a new table, or as a line in the existing one.
#[test]
fn grant_advice_grants_what_is_requested() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::with_home(home.path());
    let nowhere = home.path().join("no-system-policy.toml");
    let user_policy = |text: &str| {
        paths
            .user_policy()
            .parent()
            .unwrap()
            .create_dir_all()
            .unwrap();
        std::fs::write(paths.user_policy().absolute(), text).unwrap();
        let user = PolicyFile::load_home(&paths.user_policy()).unwrap();
        Policy::with_files(
            (nowhere.clone(), None),
            (paths.user_policy().absolute(), user),
        )
    };
    let cache = jarvis_mine::home::root(warm_cache());
    let sandbox = Sandbox::new(SandboxLimits::default(), Some(cache)).unwrap();
    // A built-in's component, loaded as if installed: it requests capabilities.
    let builtin = &BUILTIN_COMPONENTS[0];
    let load = |policy: &Policy| {
        let component = sandbox.compile(builtin.bytes, builtin.sha256).unwrap();
        LoadedProvider::new(
            &sandbox,
            sandbox.prepare(&component).unwrap(),
            ProviderSource::Installed(home.path().join("vllm.wasm")),
            builtin.sha256.to_owned(),
            "vllm.wasm",
            policy,
        )
        .unwrap()
    };

    let none = Policy::with_files(
        (nowhere.clone(), None),
        (paths.user_policy().absolute(), None),
    );
    let provider = load(&none);
    assert!(!provider.requested().is_empty());
    assert!(provider.policy().granted(provider.requested()).is_empty());
    let advice = grant_advice(&provider, &none).expect("installed providers get nothing");
    assert!(!advice.table_exists);
    let table = format!("[providers.\"{}\"]\n", provider.id());
    assert!(advice.snippet.starts_with(&table), "{}", advice.snippet);
    let granted = user_policy(&advice.snippet);
    let provider = load(&granted);
    assert_eq!(
        provider.policy().granted(provider.requested()),
        provider.requested()
    );
    assert!(grant_advice(&provider, &granted).is_none());

    // A table that exists gets a line, not a second table (a TOML error).
    let existing = format!("{table}gpus = [\"*\"]\n");
    let partial = user_policy(&existing);
    let advice = grant_advice(&load(&partial), &partial).unwrap();
    assert!(advice.table_exists);
    assert!(
        advice.snippet.starts_with("capabilities = ["),
        "{}",
        advice.snippet
    );
    let granted = user_policy(&format!("{existing}{}", advice.snippet));
    let provider = load(&granted);
    assert_eq!(
        provider.policy().granted(provider.requested()),
        provider.requested()
    );
}

/// What the hostile guest embeds for its `author-payout` attack.
const AUTHOR_WALLET: &str = "prl1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";
const AUTHOR_POOL: &str = "stratum+tcp://pool.pearlhash.xyz:5566";

#[test]
fn inspect_and_install_warn_about_an_embedded_wallet_and_pool() {
    let home = Home::new();
    let hostile = home.file("hostile.wasm", &hostile_component());

    let inspection = home.json(&["inspect", &hostile, "--json"]);
    let findings = inspection["warnings"]["findings"].as_array().unwrap();
    let found = |kind: &str, text: &str| {
        findings
            .iter()
            .find(|f| f["kind"] == kind && f["text"].as_str().unwrap().starts_with(text))
            .unwrap_or_else(|| panic!("no {kind} {text} in {inspection:#}"))
    };
    let address = found("pearl-address", AUTHOR_WALLET);
    let pool = found("pool-url", AUTHOR_POOL);
    let bytes = hostile_component();
    for finding in [address, pool] {
        let offset = finding["offset"].as_u64().unwrap() as usize;
        let text = finding["text"].as_str().unwrap();
        assert_eq!(&bytes[offset..offset + text.len()], text.as_bytes());
    }
    assert_eq!(inspection["warnings"]["omitted"], 0);

    let text = home.ok(&["inspect", &hostile]);
    let warnings: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("warning"))
        .collect();
    assert!(
        warnings[0].contains(&format!(
            "warning       embeds Pearl address '{AUTHOR_WALLET}"
        )),
        "{text}"
    );
    assert!(
        warnings
            .iter()
            .any(|line| line.contains(&format!("embeds pool URL '{AUTHOR_POOL}"))),
        "{text}"
    );
    assert!(
        text.contains("Mining rewards go only to [mining].wallet_address"),
        "{text}"
    );

    let installed = home.ok(&["install", "--yes", &hostile]);
    assert!(
        installed.contains(&format!("embeds Pearl address '{AUTHOR_WALLET}")),
        "{installed}"
    );
    assert!(
        installed.contains(&format!("embeds pool URL '{AUTHOR_POOL}")),
        "{installed}"
    );
    assert!(installed.contains("Installed hostile"), "{installed}");
    let by_id = home.json(&["inspect", "hostile", "--json"]);
    assert_eq!(by_id["warnings"], inspection["warnings"]);

    // A component that embeds neither gets no warning.
    let impure = home.file("impure.wasm", &impure_component());
    let clean = home.json(&["inspect", &impure, "--json"]);
    assert_eq!(
        clean["warnings"],
        serde_json::json!({"findings": [], "omitted": 0})
    );
    assert!(!home.ok(&["inspect", &impure]).contains("warning"));
}
