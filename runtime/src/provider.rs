//! A provider loaded into the sandbox: its self-description and its calls.

use crate::bindings::{self, Contract, HardwareFacts};
use crate::host::HostContext;
use crate::policy::{Policy, ProviderPolicy};
use crate::sandbox::{Caller, ProviderError, ProviderPre, Sandbox};
use serde::Serialize;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a provider came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSource {
    Builtin,
    Installed(PathBuf),
}

impl ProviderSource {
    pub fn label(&self) -> &'static str {
        match self {
            ProviderSource::Builtin => "builtin",
            ProviderSource::Installed(_) => "installed",
        }
    }
}

/// What `info` returned, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    pub id: String,
    pub version: String,
    pub description: String,
    pub capabilities: Vec<String>,
}

/// `detect`'s verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub supported: bool,
    pub reason: Option<String>,
    pub estimated_hashrate: Option<f64>,
    /// Lines for `doctor` under the verdict (GPUs a plan leaves out).
    pub notes: Vec<String>,
}

pub struct LoadedProvider {
    pub info: ProviderInfo,
    pub source: ProviderSource,
    pub sha256: String,
    /// What `info()` asked for, as the host's policy gate sees it.
    requested: Vec<bindings::Capability>,
    /// What the policy grants it, and its identity and limits for calls.
    policy: Arc<ProviderPolicy>,
    caller: Caller,
    pre: ProviderPre,
}

impl LoadedProvider {
    /// Calls `info` once in a fresh instance, validates what it says, and
    /// takes the policy's grant for the id it reports.
    pub fn new(
        sandbox: &Sandbox,
        pre: ProviderPre,
        source: ProviderSource,
        sha256: String,
        label: &str,
        policy: &Policy,
    ) -> Result<Self, ProviderError> {
        let loading = sandbox.loading_caller(label, &sha256);
        let raw = sandbox.call(&pre, &loading, None, |instance, store| {
            let raw = instance.info(store)?;
            // The call's records name the provider by its id, never its file.
            if validate_id(&raw.id).is_ok() {
                store.data_mut().identify(&raw.id);
            }
            Ok(raw)
        })?;
        let returned = raw.id.len() + raw.version.len() + raw.description.len();
        check_output(returned, &loading)?;
        let info = ProviderInfo {
            id: raw.id,
            version: raw.version,
            description: raw.description,
            capabilities: raw
                .capabilities
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
        };
        validate_id(&info.id)?;
        let policy = policy.for_provider(&info.id, source == ProviderSource::Builtin);
        let caller = Caller {
            provider: info.id.clone(),
            component: sha256.clone(),
            limits: sandbox.limits().narrowed(&policy.limit_ceilings()),
            loading: false,
        };
        Ok(LoadedProvider {
            info,
            source,
            sha256,
            requested: raw.capabilities,
            policy: Arc::new(policy),
            caller,
            pre,
        })
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The contract version the component implements (what it exports).
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    pub fn policy(&self) -> &ProviderPolicy {
        &self.policy
    }

    /// The capabilities `info()` requested.
    pub fn requested(&self) -> &[bindings::Capability] {
        &self.requested
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> &crate::sandbox::SandboxLimits {
        &self.caller.limits
    }

    /// `facts` without the GPUs the policy does not let this provider use.
    fn visible<'a>(&self, facts: &'a HardwareFacts) -> Cow<'a, HardwareFacts> {
        if facts.gpus.iter().all(|gpu| self.sees(gpu)) {
            return Cow::Borrowed(facts);
        }
        let mut narrowed = facts.clone();
        narrowed.gpus.retain(|gpu| self.sees(gpu));
        Cow::Owned(narrowed)
    }

    /// `gpus` without those the policy does not let this provider use.
    pub fn visible_gpus(&self, mut gpus: Vec<bindings::Gpu>) -> Vec<bindings::Gpu> {
        gpus.retain(|gpu| self.sees(gpu));
        gpus
    }

    fn sees(&self, gpu: &bindings::Gpu) -> bool {
        self.policy.gpu_visible(gpu.index, gpu.uuid.as_deref())
    }

    /// Runs the provider's pure `detect` on the facts the policy lets it see.
    pub fn detect(
        &self,
        sandbox: &Sandbox,
        facts: &HardwareFacts,
        engine_id: &str,
        model: &str,
    ) -> Result<Verdict, ProviderError> {
        let facts = self.visible(facts);
        let caps: bindings::Capabilities =
            sandbox.call(&self.pre, &self.caller, None, |instance, store| {
                instance.detect(store, &facts, engine_id, model)
            })?;
        let returned = caps.reason.as_ref().map_or(0, String::len)
            + caps.notes.iter().map(String::len).sum::<usize>();
        check_output(returned, &self.caller)?;
        Ok(Verdict {
            supported: caps.supported,
            reason: caps.reason,
            estimated_hashrate: caps.estimated_hashrate.filter(|rate| rate.is_finite()),
            notes: caps.notes,
        })
    }
}

impl LoadedProvider {
    /// The host context for a lifecycle call of this provider.
    pub fn host_context(&self, session: crate::host::Session) -> HostContext {
        HostContext::new(
            self.id(),
            &self.sha256,
            self.source == ProviderSource::Builtin,
            self.requested.clone(),
            Arc::clone(&self.policy),
            session,
        )
    }

    pub fn start(
        &self,
        sandbox: &Sandbox,
        host: HostContext,
        config: &bindings::MiningConfig,
    ) -> Result<Result<(), bindings::Error>, ProviderError> {
        sandbox.call(&self.pre, &self.caller, Some(host), |instance, store| {
            instance.start(store, config)
        })
    }

    pub fn stop(
        &self,
        sandbox: &Sandbox,
        host: HostContext,
    ) -> Result<Result<(), bindings::Error>, ProviderError> {
        sandbox.call(&self.pre, &self.caller, Some(host), |instance, store| {
            instance.stop(store)
        })
    }

    pub fn stats(
        &self,
        sandbox: &Sandbox,
        host: HostContext,
    ) -> Result<bindings::MiningStats, ProviderError> {
        let stats = sandbox.call(&self.pre, &self.caller, Some(host), |instance, store| {
            instance.stats(store)
        })?;
        check_output(
            stats.last_error.as_ref().map_or(0, String::len),
            &self.caller,
        )?;
        Ok(stats)
    }
}

fn check_output(returned: usize, caller: &Caller) -> Result<(), ProviderError> {
    let limit = caller.limits.output_bytes;
    if returned > limit {
        return Err(ProviderError::OutputTooLarge { returned, limit });
    }
    Ok(())
}

/// Ids are registry keys, config values and file names: keep them plain.
fn validate_id(id: &str) -> Result<(), ProviderError> {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if plain {
        Ok(())
    } else {
        Err(ProviderError::Invalid(format!(
            "provider id {id:?} is invalid: use 1-64 lower-case letters, digits and '-', starting with a letter"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn ids_are_plain() {
        assert!(validate_id("vllm-pearl").is_ok());
        assert!(validate_id("x2").is_ok());
        for bad in ["", "Vllm", "-x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
