//! The cost of the pure checks this host adds around a container launch and
//! an install: parsing and matching image references against patterns,
//! checking a spec's texts for foreign Pearl addresses, and scanning a
//! component's bytes for embedded addresses and pool URLs.
//!
//! Run with `cargo bench -p jarvis-mine --bench spec_checks`; figures are in
//! docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jarvis_mine::image_reference::{ImagePattern, ImageRef};
use jarvis_mine::rewards::{check_payout_addresses, scan_component};
use std::hint::black_box;

const WALLET: &str = "prl1pq4x0u9sr8y2hgz3k7n6f5wj4c2dm0tlvy8xe3ah9qkz0s7lgnfrsz5yqw";

fn image_patterns(c: &mut Criterion) {
    let patterns: Vec<ImagePattern> = [
        "registry.corp.example/pearl/miner:*",
        "ghcr.io/acme/miner-*:1.*",
        "openjarvis/pearl-miner:*",
    ]
    .iter()
    .map(|p| ImagePattern::parse(p).unwrap())
    .collect();
    c.bench_function("image: parse a reference", |b| {
        b.iter(|| ImageRef::parse(black_box("ghcr.io/acme/miner-cuda:1.4.2")).unwrap())
    });
    c.bench_function("image: parse a pattern", |b| {
        b.iter(|| ImagePattern::parse(black_box("ghcr.io/acme/miner-*:1.*")).unwrap())
    });
    let image = ImageRef::parse("ghcr.io/acme/miner-cuda:1.4.2").unwrap();
    c.bench_function("image: match against 3 patterns", |b| {
        b.iter(|| {
            black_box(&patterns)
                .iter()
                .any(|p| p.matches(black_box(&image)))
        })
    });
}

/// A spec like the vLLM miner's: a dozen env values and a dozen args.
fn payout_check(c: &mut Criterion) {
    let wallet_env = format!("PEARL_WALLET_ADDRESS={WALLET}");
    let texts: Vec<&str> = vec![
        &wallet_env,
        "MINER_RPC_TRANSPORT=tcp",
        "PEARLD_RPC_URL=http://127.0.0.1:44107",
        "PEARLD_RPC_USER=rpcuser",
        "NVIDIA_VISIBLE_DEVICES=0,1,2,3",
        "HF_HOME=/root/.cache/huggingface",
        "PEARL_MAX_MODEL_LEN=8192",
        "VLLM_PORT=8000",
        "GATEWAY_PORT=8337",
        "GATEWAY_METRICS_PORT=8339",
        "TZ=UTC",
        "LANG=C.UTF-8",
        "serve",
        "pearl-ai/Llama-3.3-70B-Instruct-pearl",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "4",
        "--gpu-memory-utilization",
        "0.9",
        "--max-model-len",
        "8192",
    ];
    c.bench_function("rewards: check a 24-value spec", |b| {
        b.iter(|| check_payout_addresses(black_box(&texts).iter().copied(), WALLET).unwrap())
    });
}

/// 18 MiB, the size of the Python example provider, with one address and
/// one pool URL in it.
fn component_scan(c: &mut Criterion) {
    let mut bytes: Vec<u8> = (0..18usize << 20).map(|i| (i * 7919 % 251) as u8).collect();
    bytes[1000..1000 + WALLET.len()].copy_from_slice(WALLET.as_bytes());
    let pool = b"stratum+tcp://pool.pearlhash.xyz:5566";
    bytes[9 << 20..(9 << 20) + pool.len()].copy_from_slice(pool);
    let mut group = c.benchmark_group("rewards");
    group.sample_size(10);
    group.bench_function("scan an 18 MiB component", |b| {
        b.iter(|| scan_component(black_box(&bytes)))
    });
    group.finish();
}

criterion_group!(benches, image_patterns, payout_check, component_scan);
criterion_main!(benches);
