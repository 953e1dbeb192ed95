use super::*;
use mining_provider_sdk::types::Gpu;
use pearl_catalog::DEFAULT_PEARL_MODEL;

fn gpu(index: u32, name: &str, vendor: &str, cc: &str, mib: u64) -> Gpu {
    Gpu {
        index,
        uuid: None,
        name: name.into(),
        vendor: vendor.into(),
        compute_capability: Some(cc.into()),
        memory_total_mib: Some(mib),
    }
}

fn h100(index: u32) -> Gpu {
    gpu(index, "NVIDIA H100 80GB HBM3", "nvidia", "9.0", 81_559)
}

fn facts(gpus: Vec<Gpu>) -> HardwareFacts {
    HardwareFacts {
        os: Some("linux".into()),
        arch: Some("x86_64".into()),
        gpus,
        ..HardwareFacts::unknown()
    }
}

fn reason(facts: &HardwareFacts, engine: &str, model: &str) -> Option<String> {
    check(facts, engine, model).err()
}

#[test]
fn h100_with_default_model_is_supported() {
    assert_eq!(
        reason(&facts(vec![h100(0)]), "vllm", DEFAULT_PEARL_MODEL),
        None
    );
}

#[test]
fn reference_reasons_in_order() {
    let one = facts(vec![h100(0)]);
    assert_eq!(
        reason(&one, "ollama", DEFAULT_PEARL_MODEL).unwrap(),
        "engine 'ollama' has no Pearl plugin: Pearl mines through vllm (use --engine vllm)"
    );
    assert_eq!(
        reason(&facts(vec![]), "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        "no GPU detected"
    );
    let apple = facts(vec![gpu(0, "Apple M3 Max", "apple", "", 131_072)]);
    assert_eq!(
        reason(&apple, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        "vllm-pearl requires NVIDIA Hopper (H100/H200); detected 'apple'"
    );
    let ada = facts(vec![gpu(
        0,
        "NVIDIA GeForce RTX 4090",
        "nvidia",
        "8.9",
        24_564,
    )]);
    assert_eq!(
        reason(&ada, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        "needs compute_capability 9.0 (sm_90a / H100/H200); detected '8.9' (NVIDIA GeForce RTX 4090)"
    );
    let small = facts(vec![gpu(
        0,
        "NVIDIA H100 PCIe 48GB",
        "nvidia",
        "9.0",
        49_152,
    )]);
    assert_eq!(
        reason(&small, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        format!("needs ≥70 GB VRAM for {DEFAULT_PEARL_MODEL}; detected 52 GB (49152 MiB)")
    );
    assert_eq!(
        reason(&one, "vllm", "meta-llama/Llama-3.3-70B-Instruct").unwrap(),
        "model 'meta-llama/Llama-3.3-70B-Instruct' is a raw base model; planned Pearl variant is 'pearl-ai/Llama-3.3-70B-Instruct-pearl'"
    );
    assert_eq!(
        reason(&one, "vllm", "Qwen/Qwen3.5-9B").unwrap(),
        "model 'Qwen/Qwen3.5-9B' is not in OpenJarvis' Pearl model registry"
    );
    assert_eq!(
        reason(&one, "vllm", "pearl-ai/Gemma-4-31B-it-pearl").unwrap(),
        "model 'pearl-ai/Gemma-4-31B-it-pearl' is planned; it needs Pearl quantization and H100/H200 validation before mining is enabled"
    );
}

#[test]
fn a_real_80_gb_h100_meets_an_80_gb_model() {
    // Gemma-4-31B's card says 80 GB; it fails only on its planned status, not VRAM.
    let why = reason(
        &facts(vec![h100(0)]),
        "vllm",
        "pearl-ai/Gemma-4-31B-it-pearl",
    )
    .unwrap();
    assert!(why.contains("is planned"), "{why}");
}

#[test]
fn every_gpu_is_considered_and_one_that_cannot_mine_is_left_out() {
    let mut mixed = facts(vec![
        h100(0),
        h100(1),
        gpu(2, "NVIDIA GeForce RTX 4090", "nvidia", "8.9", 24_564),
    ]);
    assert_eq!(
        check(&mixed, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        [
            "GPU 2: needs compute_capability 9.0 (sm_90a / H100/H200); detected '8.9' (NVIDIA GeForce RTX 4090); left out: `jarvis mine start` runs a worker on each GPU that qualifies (0,1) ([mining.extra].workers = \"auto\")"
        ]
    );
    assert_eq!(
        check(&facts(vec![h100(0), h100(1)]), "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        Vec::<String>::new()
    );
    // A GPU the user selected must be able to mine.
    mixed.visible_devices = Some("0,1,2".into());
    assert_eq!(
        reason(&mixed, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        "GPU 2: needs compute_capability 9.0 (sm_90a / H100/H200); detected '8.9' (NVIDIA GeForce RTX 4090); remove it from [mining.extra].cuda_visible_devices"
    );
}

#[test]
fn an_empty_selection_says_so() {
    let mut none = facts(vec![]);
    none.visible_devices = Some("5".into());
    assert_eq!(
        reason(&none, "vllm", DEFAULT_PEARL_MODEL).unwrap(),
        "no GPU detected ([mining.extra].cuda_visible_devices = '5' matches no GPU)"
    );
}
