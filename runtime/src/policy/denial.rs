//! A "no" as data. Every refusal of a privileged call, by the policy or by
//! one of the host's own invariants, is a [`Denial`]: the capability, the
//! rule that refused (a policy key in a file, or a host rule documented in
//! docs/security.md), and a reason that names that rule. The guest reads the
//! text, the audit log records the parts, the CLI picks its exit code by type.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The capability the refused call needed; `None` for calls that need
    /// none (the clock) or were refused before one applied.
    pub capability: Option<&'static str>,
    pub rule: Rule,
    /// What was refused and what to change; names the rule.
    pub reason: String,
}

/// What refused a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rule {
    /// A key of a policy file, e.g. `providers."x".containers.images`.
    PolicyKey { key: String, file: PathBuf },
    /// An invariant the host keeps whatever a policy says.
    Host { rule: HostRule },
}

/// The host's own rules, each a section of docs/security.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRule {
    /// `info` and `detect` are pure: no privileged import, no clock.
    PureCalls,
    /// A capability must be declared in `info()` to be used.
    DeclaredCapabilities,
    /// `/`, `/proc`, `/sys`, `/dev` and the container runtime's sockets are never mounted.
    ForbiddenMounts,
    /// A container may act only on what its provider's session created.
    Ownership,
    /// Every Pearl address in a container's env and args is the user's wallet.
    PayoutAddress,
    /// The host-time budget of one lifecycle call.
    HostTime,
    /// Privileged calls are refused while the audit log cannot record them.
    AuditLog,
    /// `start --dry-run` changes nothing: imports that would are refused.
    DryRun,
}

impl HostRule {
    /// The rule's name and its section in docs/security.md.
    pub fn name(self) -> &'static str {
        match self {
            HostRule::PureCalls => "pure-calls",
            HostRule::DeclaredCapabilities => "declared-capabilities",
            HostRule::ForbiddenMounts => "forbidden-mounts",
            HostRule::Ownership => "ownership",
            HostRule::PayoutAddress => "payout-address",
            HostRule::HostTime => "host-time",
            HostRule::AuditLog => "audit-log",
            HostRule::DryRun => "dry-run",
        }
    }
}

impl Denial {
    /// A denial by a policy key; `reason` already names the key and file.
    pub fn key(
        capability: Option<&'static str>,
        key: impl Into<String>,
        file: impl Into<PathBuf>,
        reason: impl Into<String>,
    ) -> Denial {
        Denial {
            capability,
            rule: Rule::PolicyKey {
                key: key.into(),
                file: file.into(),
            },
            reason: reason.into(),
        }
    }

    /// A denial by a host rule; the reason gets the rule and its section.
    pub fn host(
        capability: Option<&'static str>,
        rule: HostRule,
        reason: impl fmt::Display,
    ) -> Denial {
        Denial {
            capability,
            rule: Rule::Host { rule },
            reason: format!(
                "{reason} (host rule {0}, docs/security.md#{0})",
                rule.name()
            ),
        }
    }

    /// The rule's name as the audit log records it: the policy key, or `host:<rule>`.
    pub fn rule_name(&self) -> String {
        match &self.rule {
            Rule::PolicyKey { key, .. } => key.clone(),
            Rule::Host { rule } => format!("host:{}", rule.name()),
        }
    }

    /// The policy file the rule lives in, if it is a key.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.rule {
            Rule::PolicyKey { file, .. } => Some(file),
            Rule::Host { .. } => None,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Denial {}
