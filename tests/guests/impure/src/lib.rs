//! A WASI provider whose `detect` reaches for everything impure: environment,
//! files, directories, sockets, clocks, randomness, stdout. It reports what it
//! observed as its reason, so tests can check each was denied or frozen.

use mining_provider_sdk::types::{Capabilities, HardwareFacts, ProviderInfo};
use mining_provider_sdk::{Provider, export_provider};
use std::hash::{BuildHasher, RandomState};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Impure;

impl Provider for Impure {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "impure".into(),
            version: "0.0.1".into(),
            description: "tries every impure thing WASI allows".into(),
            capabilities: vec![],
        }
    }

    fn detect(_facts: HardwareFacts, _engine_id: String, _model: String) -> Capabilities {
        println!("impure provider writing to stdout");
        eprintln!("impure provider writing to stderr");
        let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let args = std::env::args().count();
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map(|s| s.len())
            .map_err(|e| e.kind());
        let cwd = std::fs::read_dir(".")
            .map(|d| d.count())
            .map_err(|e| e.kind());
        let root = std::fs::read_dir("/")
            .map(|d| d.count())
            .map_err(|e| e.kind());
        let write = std::fs::write("/tmp/jarvis-impure-was-here", b"x").map_err(|e| e.kind());
        let tcp = std::net::TcpStream::connect("127.0.0.1:22")
            .map(|_| ())
            .map_err(|e| e.kind());
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let start = Instant::now();
        let mut spin = 0u64;
        for i in 0..2_000_000u64 {
            spin = std::hint::black_box(spin.wrapping_add(i));
        }
        let elapsed = start.elapsed().as_nanos();
        let random = RandomState::new().hash_one(42u64);
        Capabilities::unsupported(format!(
            "env={env:?} args={args} passwd={passwd:?} cwd={cwd:?} root={root:?} write={write:?} tcp={tcp:?} wall={wall} elapsed_ns={elapsed} random={random}"
        ))
    }
}

export_provider!(Impure);
