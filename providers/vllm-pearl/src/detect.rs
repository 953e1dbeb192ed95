//! `detect`: the reference's capability checks (§2.1), in its order and
//! wording, over every GPU the host lets this provider see.

use mining_provider_sdk::types::{Gpu, HardwareFacts};
use pearl_catalog::{
    FALLBACK_MIN_VRAM_GB, REQUIRED_COMPUTE_CAPABILITY, gb_to_mib, mib_to_gb,
    pearl_variant_for_base_model,
};

const SUPPORTED_ENGINE: &str = "vllm";

/// The reference's checks, in its order; the first failure is the reason.
/// `Ok` carries notes for `doctor`: the GPUs `start` leaves out.
pub fn check(facts: &HardwareFacts, engine_id: &str, model: &str) -> Result<Vec<String>, String> {
    if engine_id != SUPPORTED_ENGINE {
        return Err(format!(
            "engine '{engine_id}' has no Pearl plugin: Pearl mines through {SUPPORTED_ENGINE} (use --engine {SUPPORTED_ENGINE})"
        ));
    }
    if facts.gpus.is_empty() {
        return Err(no_gpu_reason(facts));
    }
    let spec = pearl_catalog::find(model);
    let min_vram_gb = spec.map_or(FALLBACK_MIN_VRAM_GB, |s| s.min_vram_gb);
    let notes = check_gpus(facts, model, min_vram_gb)?;
    if let Some(variant) = pearl_variant_for_base_model(model) {
        return Err(format!(
            "model '{model}' is a raw base model; planned Pearl variant is '{variant}'"
        ));
    }
    match spec {
        None => Err(format!(
            "model '{model}' is not in OpenJarvis' Pearl model registry"
        )),
        Some(spec) if !spec.is_validated() => Err(format!(
            "model '{model}' is {}; it needs Pearl quantization and H100/H200 validation before mining is enabled",
            spec.status.as_str()
        )),
        Some(_) => Ok(notes),
    }
}

fn no_gpu_reason(facts: &HardwareFacts) -> String {
    match (&facts.visible_devices, &facts.gpu_note) {
        (Some(selection), _) => format!(
            "no GPU detected ([mining.extra].cuda_visible_devices = '{selection}' matches no GPU)"
        ),
        (None, Some(note)) => format!("no GPU detected ({note})"),
        (None, None) => "no GPU detected".into(),
    }
}

/// With no `cuda_visible_devices`, `start` runs a worker on each GPU that
/// qualifies (`[mining.extra].workers = "auto"`), so the others are notes,
/// not problems, as long as one qualifies. A GPU the user selected must
/// pass. Checks run in the reference's order (vendor, compute capability,
/// VRAM) across all GPUs, so the reason names the most basic problem first.
/// One per-GPU check: the problem, if the GPU fails it.
type GpuCheck<'a> = &'a dyn Fn(&Gpu) -> Option<String>;

fn check_gpus(facts: &HardwareFacts, model: &str, min_vram_gb: f64) -> Result<Vec<String>, String> {
    let checks: [GpuCheck; 3] = [&vendor_problem, &compute_capability_problem, &|gpu| {
        vram_problem(gpu, model, min_vram_gb)
    }];
    let qualifying: Vec<&Gpu> = facts
        .gpus
        .iter()
        .filter(|gpu| checks.iter().all(|check| check(gpu).is_none()))
        .collect();
    if facts.visible_devices.is_none() && !qualifying.is_empty() {
        let ids: Vec<String> = qualifying.iter().map(|g| g.index.to_string()).collect();
        return Ok(facts
            .gpus
            .iter()
            .filter_map(|gpu| {
                let problem = checks.iter().find_map(|check| check(gpu))?;
                Some(format!(
                    "GPU {}: {problem}; left out: `jarvis mine start` runs a worker on each GPU that qualifies ({}) ([mining.extra].workers = \"auto\")",
                    gpu.index,
                    ids.join(",")
                ))
            })
            .collect());
    }
    for check in checks {
        for gpu in &facts.gpus {
            if let Some(problem) = check(gpu) {
                return Err(if facts.gpus.len() == 1 {
                    problem
                } else {
                    multi_gpu_reason(facts, gpu, &problem, &qualifying)
                });
            }
        }
    }
    Ok(Vec::new())
}

fn vendor_problem(gpu: &Gpu) -> Option<String> {
    (gpu.vendor != "nvidia").then(|| {
        format!(
            "vllm-pearl requires NVIDIA Hopper (H100/H200); detected '{}'",
            gpu.vendor
        )
    })
}

fn compute_capability_problem(gpu: &Gpu) -> Option<String> {
    let cc = gpu.compute_capability.as_deref().unwrap_or("unknown");
    (!cc.starts_with(REQUIRED_COMPUTE_CAPABILITY)).then(|| {
        format!(
            "needs compute_capability {REQUIRED_COMPUTE_CAPABILITY} (sm_90a / H100/H200); detected '{cc}' ({})",
            gpu.name
        )
    })
}

fn vram_problem(gpu: &Gpu, model: &str, min_vram_gb: f64) -> Option<String> {
    match gpu.memory_total_mib {
        Some(mib) if mib >= gb_to_mib(min_vram_gb) => None,
        Some(mib) => Some(format!(
            "needs ≥{min_vram_gb:.0} GB VRAM for {model}; detected {:.0} GB ({mib} MiB)",
            mib_to_gb(mib)
        )),
        None => Some(format!(
            "needs ≥{min_vram_gb:.0} GB VRAM for {model}; detected unknown memory ({})",
            gpu.name
        )),
    }
}

fn multi_gpu_reason(
    facts: &HardwareFacts,
    gpu: &Gpu,
    problem: &str,
    qualifying: &[&Gpu],
) -> String {
    let mut reason = format!("GPU {}: {problem}", gpu.index);
    if facts.visible_devices.is_some() {
        reason.push_str("; remove it from [mining.extra].cuda_visible_devices");
    } else if !qualifying.is_empty() {
        let ids: Vec<String> = qualifying.iter().map(|g| g.index.to_string()).collect();
        reason.push_str(&format!(
            "; set [mining.extra].cuda_visible_devices = \"{}\" to mine on the GPUs that qualify",
            ids.join(",")
        ));
    }
    reason
}

#[cfg(test)]
mod tests;
