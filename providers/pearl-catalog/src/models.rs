//! The Pearl model registry (OpenJarvis `mining/_models.py`).

/// Whether a Pearl model may be mined with today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    Validated,
    Planned,
}

impl ModelStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Validated => "validated",
            ModelStatus::Planned => "planned",
        }
    }
}

/// One Pearl-quantized model and what it needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PearlModelSpec {
    pub model_id: &'static str,
    pub base_model_id: &'static str,
    pub status: ModelStatus,
    pub provider: &'static str,
    /// Minimum GPU memory as the model card states it, in decimal gigabytes.
    pub min_vram_gb: f64,
    pub default_max_model_len: u32,
    pub default_gpu_memory_utilization: f64,
    pub notes: &'static str,
}

impl PearlModelSpec {
    pub fn is_validated(&self) -> bool {
        self.status == ModelStatus::Validated
    }

    /// The card's requirement in MiB, the unit NVML reports.
    pub fn min_vram_mib(&self) -> u64 {
        gb_to_mib(self.min_vram_gb)
    }
}

/// The default mining model.
pub const DEFAULT_PEARL_MODEL: &str = "pearl-ai/Llama-3.3-70B-Instruct-pearl";

/// Requirement used for a model that is not in the registry, in decimal GB.
pub const FALLBACK_MIN_VRAM_GB: f64 = 70.0;

/// Pearl's vLLM kernels need Hopper (sm_90a).
pub const REQUIRED_COMPUTE_CAPABILITY: &str = "9.0";

const PLANNED_NOTE: &str = "Public pearl-ai artifact; needs H100/H200 validation in OpenJarvis before mining is enabled by default.";

/// Display order is registry order.
pub const PEARL_MODELS: [PearlModelSpec; 3] = [
    PearlModelSpec {
        model_id: DEFAULT_PEARL_MODEL,
        base_model_id: "meta-llama/Llama-3.3-70B-Instruct",
        status: ModelStatus::Validated,
        provider: "vllm-pearl",
        min_vram_gb: 70.0,
        default_max_model_len: 8192,
        default_gpu_memory_utilization: 0.96,
        notes: "Default Pearl-blessed vLLM mining model.",
    },
    PearlModelSpec {
        model_id: "pearl-ai/Gemma-4-31B-it-pearl",
        base_model_id: "google/gemma-4-31B-it",
        status: ModelStatus::Planned,
        provider: "vllm-pearl",
        min_vram_gb: 80.0,
        default_max_model_len: 8192,
        default_gpu_memory_utilization: 0.96,
        notes: PLANNED_NOTE,
    },
    PearlModelSpec {
        model_id: "pearl-ai/Llama-3.1-8B-Instruct-pearl",
        base_model_id: "meta-llama/Llama-3.1-8B-Instruct",
        status: ModelStatus::Planned,
        provider: "vllm-pearl",
        min_vram_gb: 24.0,
        default_max_model_len: 8192,
        default_gpu_memory_utilization: 0.96,
        notes: PLANNED_NOTE,
    },
];

/// The spec for a Pearl model id or for its raw base model id.
pub fn find(id: &str) -> Option<&'static PearlModelSpec> {
    PEARL_MODELS
        .iter()
        .find(|spec| spec.model_id == id || spec.base_model_id == id)
}

/// The planned Pearl variant of a raw base model, if there is one.
pub fn pearl_variant_for_base_model(base_id: &str) -> Option<&'static str> {
    PEARL_MODELS
        .iter()
        .find(|spec| spec.base_model_id == base_id)
        .map(|spec| spec.model_id)
}

/// Model cards and GPU datasheets say "80 GB" for a card NVML reports as
/// 81559 MiB, so a card figure is read as decimal gigabytes (10^9 bytes).
pub fn gb_to_mib(gb: f64) -> u64 {
    // Round up so that a card figure is never weakened by the conversion.
    let mib = gb * 1_000_000_000.0 / 1_048_576.0;
    let whole = mib as u64;
    if (whole as f64) < mib {
        whole + 1
    } else {
        whole
    }
}

/// MiB as decimal gigabytes, for messages in the same unit as model cards.
pub fn mib_to_gb(mib: u64) -> f64 {
    mib as f64 * 1_048_576.0 / 1_000_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_model_or_base_id() {
        assert_eq!(find(DEFAULT_PEARL_MODEL).unwrap().min_vram_gb, 70.0);
        assert_eq!(
            find("meta-llama/Llama-3.3-70B-Instruct").unwrap().model_id,
            DEFAULT_PEARL_MODEL
        );
        assert!(find("Qwen/Qwen3.5-9B").is_none());
        assert_eq!(
            pearl_variant_for_base_model("google/gemma-4-31B-it"),
            Some("pearl-ai/Gemma-4-31B-it-pearl")
        );
        assert_eq!(pearl_variant_for_base_model("google/gemma-4-E4B-it"), None);
        assert_eq!(pearl_variant_for_base_model(DEFAULT_PEARL_MODEL), None);
    }

    #[test]
    fn an_80_gb_h100_meets_an_80_gb_card() {
        let h100_mib = 81_559;
        assert!(h100_mib >= gb_to_mib(80.0));
        // A 40 GB A100 does not meet the 70 GB default.
        assert!(40_960 < gb_to_mib(70.0));
        // An RTX 4090 (24564 MiB) meets a 24 GB card.
        assert!(24_564 >= gb_to_mib(24.0));
        assert_eq!(gb_to_mib(80.0), 76_294);
    }

    #[test]
    fn registry_order_and_statuses() {
        let ids: [&str; 3] = PEARL_MODELS.map(|s| s.model_id);
        assert_eq!(ids[0], DEFAULT_PEARL_MODEL);
        assert!(PEARL_MODELS[0].is_validated());
        assert!(!PEARL_MODELS[1].is_validated() && !PEARL_MODELS[2].is_validated());
    }
}
