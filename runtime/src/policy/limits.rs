//! The `limits` keys: a policy narrows the sandbox's per-call limits.

use super::ProviderPolicy;
use super::values::Bounded;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRules {
    pub memory_mib: Option<Bounded<1, 4096>>,
    pub call_timeout_ms: Option<Bounded<10, 600_000>>,
    /// Wall time one lifecycle call may spend in host calls (image
    /// acquisition excepted, it has its own progress and can be interrupted).
    pub host_time_ms: Option<Bounded<10, 3_600_000>>,
    pub output_kib: Option<Bounded<1, 65_536>>,
}

/// What the policy asks of the sandbox's limits: each `Some` is a ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCeilings {
    pub memory_bytes: Option<usize>,
    pub call_timeout: Option<Duration>,
    pub host_time: Option<Duration>,
    pub output_bytes: Option<usize>,
}

impl ProviderPolicy {
    /// The smallest value every view sets for each limit.
    pub fn limit_ceilings(&self) -> LimitCeilings {
        fn lower<T: Ord>(current: Option<T>, new: Option<T>) -> Option<T> {
            match (current, new) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        let mut ceilings = LimitCeilings::default();
        for rules in self.views.iter().filter_map(|v| v.grant.as_ref()?.limits) {
            ceilings.memory_bytes = lower(
                ceilings.memory_bytes,
                rules.memory_mib.map(|m| (m.0 as usize) << 20),
            );
            ceilings.call_timeout = lower(
                ceilings.call_timeout,
                rules.call_timeout_ms.map(|ms| Duration::from_millis(ms.0)),
            );
            ceilings.host_time = lower(
                ceilings.host_time,
                rules.host_time_ms.map(|ms| Duration::from_millis(ms.0)),
            );
            ceilings.output_bytes = lower(
                ceilings.output_bytes,
                rules.output_kib.map(|k| (k.0 as usize) << 10),
            );
        }
        ceilings
    }
}
