//! The cost of the policy gate's parts: parsing a large policy file and one
//! decision for a container launch under it (the audit append is in
//! benches/audit.rs).
//!
//! Run with `cargo bench -p jarvis-mine --bench policy` (or `scripts/bench-policy`,
//! which also times whole commands); figures are in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jarvis_mine::bindings::Capability;
use jarvis_mine::policy::{GpuAsk, Policy, PolicyFile, Request, RunRequest};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `providers` tables with every key set, like scripts/bench-policy writes.
fn large_policy(providers: usize) -> String {
    let mut text = String::from(
        "[installed]\nallow = true\n\n[default]\ncapabilities = [\"sidecar\"]\ngpus = [\"*\"]\n",
    );
    for i in 0..providers {
        let p = format!("provider-{i:04}");
        text.push_str(&format!(
            r#"
[providers.{p}]
capabilities = ["containers", "sidecar", "metrics"]
gpus = ["0", "1", "GPU-8d1c2f3a-0b1c-4d5e-8f90-123456789abc"]
[providers.{p}.containers]
images = ["registry.corp.example/{p}/miner:*", "ghcr.io/acme/{p}:1.*"]
mounts = [{{ path = "hf-cache", read_only = true }}, {{ path = "/srv/models" }}]
network_modes = ["host", "bridge"]
ports = [8000, "8337-8339"]
env = ["MINER_*", "PEARLD_*", "HF_TOKEN", "NVIDIA_VISIBLE_DEVICES"]
secrets = ["PEARLD_RPC_PASSWORD", "HF_TOKEN"]
[providers.{p}.metrics]
endpoints = ["session", "http://10.0.0.5:9100"]
[providers.{p}.limits]
memory_mib = 64
call_timeout_ms = 2000
"#
        ));
    }
    text
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_parse");
    for providers in [10, 100, 1000] {
        let text = large_policy(providers);
        group.bench_function(
            format!("{providers}_providers_{}_kib", text.len() >> 10),
            |b| {
                b.iter(|| {
                    PolicyFile::parse(black_box(&text), Path::new("bench.toml")).expect("parses")
                })
            },
        );
        group.bench_function(format!("{providers}_toml_table_only"), |b| {
            b.iter(|| black_box(&text).parse::<toml::Table>().expect("parses"))
        });
        group.bench_function(format!("{providers}_toml_edit_only"), |b| {
            b.iter(|| {
                black_box(&text)
                    .parse::<toml_edit::DocumentMut>()
                    .expect("parses")
            })
        });
    }
    group.finish();
}

fn decide(c: &mut Criterion) {
    let path = PathBuf::from("/etc/openjarvis/mining-policy.toml");
    let file = PolicyFile::parse(&large_policy(1000), &path).expect("parses");
    let policy = Policy::with_files((path, Some(file)), ("/home/u/policy.toml".into(), None));
    let provider = policy.for_provider("provider-0500", false);
    let run = RunRequest {
        image: "registry.corp.example/provider-0500/miner:2.1".into(),
        gpus: GpuAsk::Ids(vec!["0".into()]),
        network: "host".into(),
        env_names: vec!["MINER_A".into(), "PEARLD_RPC_URL".into(), "HF_TOKEN".into()],
        secrets: vec!["PEARLD_RPC_PASSWORD".into()],
        ..RunRequest::default()
    };
    provider
        .check(Capability::Containers, &Request::RunContainer(&run))
        .expect("allowed");
    c.bench_function("policy_check/run_container", |b| {
        b.iter(|| {
            provider.check(
                Capability::Containers,
                black_box(&Request::RunContainer(&run)),
            )
        })
    });
    c.bench_function("policy_for_provider", |b| {
        b.iter(|| policy.for_provider(black_box("provider-0500"), false))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parse, decide
}
criterion_main!(benches);
