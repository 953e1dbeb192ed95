//! The `capabilities` key: which privileged capabilities a provider may use.

use super::{Denial, ProviderPolicy};
use crate::bindings::Capability;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityName {
    Containers,
    Sidecar,
    Metrics,
    GpuTelemetry,
    Processes,
}

impl CapabilityName {
    pub fn of(capability: Capability) -> CapabilityName {
        match capability {
            Capability::Containers => CapabilityName::Containers,
            Capability::Sidecar => CapabilityName::Sidecar,
            Capability::Metrics => CapabilityName::Metrics,
            Capability::GpuTelemetry => CapabilityName::GpuTelemetry,
            Capability::Processes => CapabilityName::Processes,
        }
    }
}

impl ProviderPolicy {
    pub(super) fn capability(&self, capability: Capability) -> Result<(), Denial> {
        let wanted = CapabilityName::of(capability);
        let name = capability.name();
        self.each(
            Some(name),
            "capabilities",
            |g| g.capabilities.as_ref(),
            |granted| granted.contains(&wanted),
            || format!("capability '{name}'"),
        )
    }

    /// The capabilities of `declared` that the policy grants.
    pub fn granted(&self, declared: &[Capability]) -> Vec<Capability> {
        declared
            .iter()
            .copied()
            .filter(|c| self.broken.is_none() && self.capability(*c).is_ok())
            .collect()
    }

    /// Why a capability is withheld, if it is.
    pub fn withheld(&self, capability: Capability) -> Option<Denial> {
        self.broken_denial(Some(capability.name()))
            .or_else(|| self.capability(capability).err())
    }
}
