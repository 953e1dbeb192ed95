//! Model enablement evidence (reference §5.1 `inspect-model` and
//! `validate-model`, §8.2's checklist):
//!
//! - [`inspect`]: is a Pearl artifact complete before GPU time is spent on
//!   it? A local directory or a Hugging Face model: registry status, Pearl
//!   quantization, file list, `config.json`, tokenizer, weights, and Gemma4's
//!   processor metadata.
//! - [`validate`]: does the running miner serve the model, answer a prompt,
//!   and mine? Registry, session record, vLLM `/models`, a chat completion,
//!   and share evidence from the gateway's metrics, else the miner
//!   container's log, else vLLM's metrics.
//!
//! Both produce named checks, pass when there is at least one and every one
//! is ok, and can write a JSON artifact (`schema_version` 1, keys sorted).

pub mod artifacts;
pub mod hf_api;
pub mod http;
pub mod inspect;
pub mod report;
pub mod validate;

pub use report::{Check, Line};

use pearl_catalog::{ModelStatus, PEARL_MODELS};

/// What the Pearl model registry says of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    Validated,
    Planned,
    /// A raw base model; the registry's planned Pearl variant of it.
    Raw(&'static str),
    Unknown,
    /// A local directory: not a registered id.
    Local,
}

impl Registry {
    /// The registry's word on `model`, a Pearl model id or a raw base id.
    pub fn of(model: &str) -> Registry {
        if let Some(spec) = PEARL_MODELS.iter().find(|spec| spec.model_id == model) {
            return match spec.status {
                ModelStatus::Validated => Registry::Validated,
                ModelStatus::Planned => Registry::Planned,
            };
        }
        match pearl_catalog::pearl_variant_for_base_model(model) {
            Some(variant) => Registry::Raw(variant),
            None => Registry::Unknown,
        }
    }

    /// The `Model registry` check: a planned model passes only when
    /// `allow_planned`.
    pub fn check(self, model: &str, allow_planned: bool) -> Check {
        const NAME: &str = "Model registry";
        match self {
            Registry::Validated => Check::pass(NAME, format!("validated: {model}")),
            Registry::Planned => Check::new(NAME, allow_planned, format!("planned: {model}")),
            Registry::Raw(variant) => {
                Check::fail(NAME, format!("raw model; planned Pearl variant {variant}"))
            }
            Registry::Unknown => Check::fail(NAME, "unknown"),
            Registry::Local => Check::pass(NAME, "local artifact (not registered)"),
        }
    }

    /// Why `model` is not a Pearl model the registry knows (exit 5), if it
    /// is not.
    pub fn not_a_pearl_model(self, model: &str) -> Option<String> {
        match self {
            Registry::Raw(variant) => Some(format!(
                "'{model}' is a raw base model, which cannot mine: its Pearl variant is {variant} (see `jarvis mine models`)"
            )),
            Registry::Unknown => Some(format!(
                "'{model}' is not a Pearl model the registry knows: `jarvis mine models` lists them; a converted checkpoint on disk is inspected with --model DIR"
            )),
            _ => None,
        }
    }
}

/// Bad input: a model that is neither a directory nor a model id, a URL
/// that is not one (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_rows_say_what_the_reference_says() {
        let default = pearl_catalog::DEFAULT_PEARL_MODEL;
        assert_eq!(
            Registry::of(default).check(default, false),
            Check::pass("Model registry", format!("validated: {default}"))
        );
        let gemma = "pearl-ai/Gemma-4-31B-it-pearl";
        assert_eq!(Registry::of(gemma), Registry::Planned);
        assert!(!Registry::of(gemma).check(gemma, false).ok);
        assert!(Registry::of(gemma).check(gemma, true).ok);
        assert_eq!(
            Registry::of("google/gemma-4-31B-it")
                .check("google/gemma-4-31B-it", true)
                .info,
            "raw model; planned Pearl variant pearl-ai/Gemma-4-31B-it-pearl"
        );
        assert_eq!(
            Registry::of("acme/other").check("acme/other", true).info,
            "unknown"
        );
        assert!(
            Registry::of("acme/other")
                .not_a_pearl_model("acme/other")
                .is_some()
        );
        assert!(Registry::Planned.not_a_pearl_model(gemma).is_none());
    }
}
