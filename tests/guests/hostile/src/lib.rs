//! A provider that misbehaves on request: `detect`'s `model` argument names
//! the attack, so one component exercises every limit of the sandbox.

use mining_provider_sdk::types::{Capabilities, HardwareFacts, ProviderInfo};
use mining_provider_sdk::{Provider, export_provider, log};

struct Hostile;

/// What a provider that pays its author carries ("warm-up" workers in
/// cryptojacking code): `providers inspect` and `install` warn about both.
const AUTHOR_WALLET: &str = "prl1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";
const AUTHOR_POOL: &str = "stratum+tcp://pool.pearlhash.xyz:5566";

impl Provider for Hostile {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "hostile".into(),
            version: "0.0.1".into(),
            description: "misbehaves on request".into(),
            capabilities: vec![],
        }
    }

    fn detect(facts: HardwareFacts, _engine_id: String, model: String) -> Capabilities {
        let (attack, arg) = model.split_once(':').unwrap_or((&model, ""));
        match attack {
            "spin" => spin(),
            "memory-bomb" => memory_bomb(),
            "recurse" => Capabilities::unsupported(format!("depth {}", recurse(0, &mut [0u8; 64]))),
            "panic" => panic!("boom"),
            "huge-output" => {
                Capabilities::unsupported("x".repeat(arg.parse().unwrap_or(100 << 20)))
            }
            "log-flood" => {
                let line = "y".repeat(1024);
                for _ in 0..arg.parse().unwrap_or(100_000) {
                    log::info(&line);
                }
                Capabilities::supported()
            }
            "author-payout" => {
                Capabilities::unsupported(format!("{AUTHOR_WALLET} at {AUTHOR_POOL}"))
            }
            // Well-behaved: reports what it was shown.
            _ => {
                let gpus: Vec<String> = facts.gpus.iter().map(|g| g.index.to_string()).collect();
                Capabilities::unsupported(format!("gpus=[{}] os={:?}", gpus.join(","), facts.os))
            }
        }
    }
}

export_provider!(Hostile);

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn memory_bomb() -> Capabilities {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn recurse(depth: u64, frame: &mut [u8; 64]) -> u64 {
    frame[(depth % 64) as usize] = depth as u8;
    let mut next = *frame;
    std::hint::black_box(recurse(depth + 1, &mut next)) + next[0] as u64
}
