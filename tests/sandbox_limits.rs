//! Hostile providers are contained: every limit trips with a clear error,
//! the host survives, and the next call on a fresh instance works.

use jarvis_mine::sandbox::{ProviderError, SandboxLimits};
use jarvis_mine_tests::{
    guest_facts, hostile_component, impure_component, linux_with_gpus, load, load_with_policy,
    no_policy, sandbox, user_policy,
};
use std::time::{Duration, Instant};

fn detect(
    limits: SandboxLimits,
    attack: &str,
) -> (
    Result<jarvis_mine::provider::Verdict, ProviderError>,
    Duration,
) {
    let sandbox = sandbox(limits);
    let provider = load(&sandbox, &hostile_component());
    let facts = guest_facts(&linux_with_gpus(&[]));
    let start = Instant::now();
    let result = provider.detect(&sandbox, &facts, "vllm", attack);
    (result, start.elapsed())
}

fn with_memory(memory_bytes: usize) -> SandboxLimits {
    SandboxLimits {
        memory_bytes,
        ..SandboxLimits::default()
    }
}

#[test]
fn a_spinning_guest_is_killed_at_the_default_deadline() {
    let (result, elapsed) = detect(SandboxLimits::default(), "spin");
    assert_eq!(result.unwrap_err().to_string(), "timed out after 2 s");
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    // Killed, not waited for: generous, as a loaded CI machine delays threads.
    assert!(elapsed < Duration::from_millis(4000), "{elapsed:?}");
}

#[test]
fn the_deadline_is_configurable() {
    let limits = SandboxLimits {
        call_timeout: Duration::from_millis(200),
        ..SandboxLimits::default()
    };
    let (result, elapsed) = detect(limits, "spin");
    assert_eq!(
        result.unwrap_err(),
        ProviderError::Timeout(Duration::from_millis(200))
    );
    assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let (result, _) = detect(SandboxLimits::default(), "memory-bomb");
    assert_eq!(
        result.unwrap_err().to_string(),
        "exceeded memory limit 64 MiB"
    );
}

#[test]
fn the_memory_cap_is_configurable() {
    let (result, _) = detect(with_memory(16 << 20), "memory-bomb");
    assert_eq!(
        result.unwrap_err().to_string(),
        "exceeded memory limit 16 MiB"
    );
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let (result, _) = detect(SandboxLimits::default(), "recurse");
    assert_eq!(result.unwrap_err(), ProviderError::StackOverflow);
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let (result, _) = detect(SandboxLimits::default(), "panic");
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with("provider panicked: boom (tests/guests/hostile/src/lib.rs:"),
        "{message}"
    );
}

#[test]
fn a_100_mb_string_is_stopped_by_memory_then_by_the_output_cap() {
    let (result, _) = detect(SandboxLimits::default(), "huge-output:104857600");
    assert_eq!(
        result.unwrap_err().to_string(),
        "exceeded memory limit 64 MiB"
    );

    let (result, _) = detect(with_memory(512 << 20), "huge-output:104857600");
    assert_eq!(
        result.unwrap_err().to_string(),
        "returned 100 MiB of text; the limit is 64 KiB"
    );
}

#[test]
fn a_log_flood_is_capped_and_the_call_completes() {
    // 100 MB of log lines; the host keeps 64 KiB and drops the rest.
    let (result, elapsed) = detect(SandboxLimits::default(), "log-flood:100000");
    assert!(result.unwrap().supported);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn after_a_trap_the_next_call_gets_a_fresh_instance() {
    let sandbox = sandbox(SandboxLimits::default());
    // An installed provider sees only the GPUs its grant names.
    let policy = user_policy("[providers.hostile]\ngpus = [\"*\"]\n");
    let provider = load_with_policy(&sandbox, &hostile_component(), &policy);
    let facts = guest_facts(&linux_with_gpus(&[(
        "NVIDIA H100 80GB HBM3",
        "9.0",
        81_559,
    )]));
    for attack in ["panic", "memory-bomb", "recurse"] {
        assert!(provider.detect(&sandbox, &facts, "vllm", attack).is_err());
        let verdict = provider.detect(&sandbox, &facts, "vllm", "ok").unwrap();
        assert_eq!(
            verdict.reason.as_deref(),
            Some("gpus=[0] os=Some(\"linux\")")
        );
    }
}

#[test]
fn detect_cannot_reach_anything_impure_and_is_deterministic() {
    let sandbox = sandbox(SandboxLimits::default());
    let provider = load(&sandbox, &impure_component());
    let facts = guest_facts(&linux_with_gpus(&[]));
    let first = provider
        .detect(&sandbox, &facts, "vllm", "m")
        .unwrap()
        .reason
        .unwrap();
    for expected in [
        "env=[] ",
        "args=0 ",
        "passwd=Err(",
        "cwd=Err(",
        "root=Err(",
        "write=Err(",
        "tcp=Err(",
        // The frozen clock: 2026-01-01T00:00:00Z, and no time passes.
        "wall=1767225600 ",
        "elapsed_ns=0 ",
    ] {
        assert!(first.contains(expected), "{expected} not in {first}");
    }
    assert!(!std::path::Path::new("/tmp/jarvis-impure-was-here").exists());
    for _ in 0..5 {
        let again = provider
            .detect(&sandbox, &facts, "vllm", "m")
            .unwrap()
            .reason
            .unwrap();
        assert_eq!(again, first, "same inputs must give the same answer");
    }
    // A second sandbox (another process, in effect) agrees too.
    let other = jarvis_mine_tests::sandbox(SandboxLimits::default());
    let provider = load(&other, &impure_component());
    assert_eq!(
        provider
            .detect(&other, &facts, "vllm", "m")
            .unwrap()
            .reason
            .unwrap(),
        first
    );
}

#[test]
fn builtin_detect_is_deterministic() {
    let sandbox = sandbox(SandboxLimits::default());
    let registry = jarvis_mine::registry::Registry::load(&sandbox, None, &no_policy());
    assert!(registry.failures.is_empty(), "{:?}", registry.failures);
    let facts = guest_facts(&linux_with_gpus(&[(
        "NVIDIA GeForce RTX 4090",
        "8.9",
        24_564,
    )]));
    for provider in &registry.providers {
        let first = provider
            .detect(
                &sandbox,
                &facts,
                "vllm",
                "pearl-ai/Llama-3.3-70B-Instruct-pearl",
            )
            .unwrap();
        for _ in 0..20 {
            let again = provider
                .detect(
                    &sandbox,
                    &facts,
                    "vllm",
                    "pearl-ai/Llama-3.3-70B-Instruct-pearl",
                )
                .unwrap();
            assert_eq!(again, first);
        }
    }
}
