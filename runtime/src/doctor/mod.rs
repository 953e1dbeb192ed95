//! `jarvis mine doctor`: one row per check (reference §5.1), every
//! provider's verdict from its sandboxed, pure `detect`, and a verdict for
//! the provider that would run, with the next steps.
//!
//! Rows are judged for that provider (the configured one, else the one
//! `init --provider auto` would pick, see [`needs`]): a failing check it
//! does not need is information, not a failure.

mod checks;
mod needs;
mod pearld;
mod units;
mod verdict;
mod wallet;

pub use checks::{FactsSource, MIN_FREE_DISK_GIB, gpu_qualifies, init_hint, pearld as probe_node};
pub use needs::Need;
pub use pearld::PROBE_TIMEOUT as PEARLD_TIMEOUT;
pub use units::{gib, gpu_memory};
pub use verdict::{Problem, Verdict};
pub use wallet::check_address;

use crate::config::{Config, MiningConfig, SubmitTarget};
use crate::facts::{GpuSelection, auto_provider, to_guest};
use crate::paths::Paths;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use checks::HostFacts;
use host_gpu::HardwareFacts;
use serde::Serialize;

/// The engine the reference always detects against.
pub const DEFAULT_ENGINE: &str = "vllm";

pub const SECTIONS: [&str; 9] = [
    "Hardware",
    "Docker",
    "Disk",
    "Pearl tools",
    "Pearl node",
    "Wallet",
    "Policy",
    "Provider capability",
    "Session",
];

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not known: not in the facts file, or not probed.
    Unknown,
}

impl From<bool> for Outcome {
    fn from(pass: bool) -> Self {
        if pass { Outcome::Pass } else { Outcome::Fail }
    }
}

/// How a row reads for the provider being judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Failed, and the provider needs it: a problem that blocks mining.
    Fail,
    /// Failed, but the provider does not need it.
    Info,
    /// Not known; counts as neither OK nor FAIL.
    Unknown,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Fail => "FAIL",
            Status::Info => "INFO",
            Status::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub section: &'static str,
    pub name: String,
    pub status: Status,
    /// True for OK rows only (the reference's report shape).
    pub ok: bool,
    /// What the check establishes; absent for purely informational rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need: Option<Need>,
    /// Whether the provider being judged needs it.
    pub needed: bool,
    pub info: String,
    /// What to do when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip)]
    outcome: Outcome,
}

impl Check {
    fn new(
        section: &'static str,
        name: impl Into<String>,
        need: Option<Need>,
        outcome: Outcome,
        info: impl Into<String>,
    ) -> Check {
        Check {
            section,
            name: name.into(),
            status: Status::Unknown,
            ok: false,
            need,
            needed: false,
            info: info.into(),
            fix: None,
            outcome,
        }
    }

    /// What the check found, whoever it is judged for (a row straight from
    /// [`probe_node`] has not been judged yet).
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The fix, kept only where the check failed.
    fn fix(mut self, fix: impl Into<String>) -> Check {
        if self.outcome == Outcome::Fail {
            self.fix = Some(fix.into());
        }
        self
    }

    fn judge(&mut self, needs: &[Need]) {
        self.needed = self.need.is_some_and(|need| needs.contains(&need));
        self.status = match (self.outcome, self.needed) {
            (Outcome::Pass, _) => Status::Ok,
            (Outcome::Fail, true) => Status::Fail,
            (Outcome::Fail, false) => Status::Info,
            (Outcome::Unknown, _) => Status::Unknown,
        };
        self.ok = self.status == Status::Ok;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderRow {
    pub id: String,
    pub source: &'static str,
    pub supported: bool,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The provider the report is judged for.
    pub selected: bool,
    /// GPUs of this host the policy keeps this provider from seeing.
    #[serde(skip_serializing_if = "is_zero")]
    pub hidden_gpus: usize,
    /// What the provider noted beside its verdict (GPUs its plan leaves out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why the judged provider is the one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectedBy {
    /// `[mining].provider`.
    Configured,
    /// What `init --provider auto` would pick here.
    Auto,
    /// None can start here; the one this hardware suggests.
    Hardware,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoctorReport {
    pub model: String,
    pub engine: String,
    /// The provider the rows are judged for.
    pub selected_provider: String,
    pub selected_by: SelectedBy,
    pub configured: bool,
    /// The facts every verdict was made from (reusable as a `--facts` file).
    pub facts: HardwareFacts,
    pub checks: Vec<Check>,
    pub providers: Vec<ProviderRow>,
    pub verdict: Verdict,
    pub next_steps: Vec<String>,
}

impl DoctorReport {
    pub fn ready(&self) -> bool {
        self.verdict.ready
    }
}

pub struct DoctorInput<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub facts: &'a HardwareFacts,
    pub facts_source: FactsSource,
    /// The pearld row, from [`probe_node`] (run beside the host probes).
    pub node: Check,
    pub policy: &'a Policy,
    pub model: Option<String>,
    pub engine: Option<String>,
}

pub fn run(sandbox: &Sandbox, registry: &Registry, input: &DoctorInput) -> DoctorReport {
    let mining = input.config.mining.as_ref();
    let model = input
        .model
        .clone()
        .or_else(|| mining.map(MiningConfig::model))
        .unwrap_or_else(|| pearl_catalog::DEFAULT_PEARL_MODEL.to_owned());
    let engine = input
        .engine
        .clone()
        .unwrap_or_else(|| DEFAULT_ENGINE.to_owned());
    let selection = GpuSelection::new(
        mining
            .and_then(MiningConfig::cuda_visible_devices)
            .as_deref(),
    );
    let host = HostFacts {
        facts: input.facts,
        source: input.facts_source,
        selection: &selection,
        config_file: input.paths.config_file(),
    };

    let mut providers = provider_rows(sandbox, registry, input.facts, &selection, &engine, &model);
    let (selected_provider, selected_by) = match mining {
        Some(mining) => (mining.provider.clone(), SelectedBy::Configured),
        None => {
            let supported = |id: &str| providers.iter().any(|p| p.id == id && p.supported);
            match auto_provider(input.facts, supported) {
                Ok(id) => (id.to_owned(), SelectedBy::Auto),
                Err(id) => (id.to_owned(), SelectedBy::Hardware),
            }
        }
    };
    for row in &mut providers {
        row.selected = row.id == selected_provider;
    }
    let solo = !matches!(
        mining.map(|m| &m.submit_target),
        Some(SubmitTarget::Pool { .. })
    );
    let needs = needs::needs(&selected_provider, solo);

    let mut checks = Vec::new();
    checks::hardware(&mut checks, &host, needs::gpu_vendor(&needs), &model);
    checks::docker(&mut checks, &host);
    checks::disk(&mut checks, &host);
    checks::pearl_tools(&mut checks, &host, selected_provider == "apple-mps-pearl");
    checks.push(input.node.clone());
    checks.push(checks::wallet(mining, host.config_file));
    checks::policy(&mut checks, input.policy);
    if !providers.iter().any(|p| p.id == selected_provider) {
        // First, so that it is the first problem named.
        checks.insert(
            0,
            unknown_provider(&selected_provider, &providers, host.config_file),
        );
    }
    checks.push(checks::model_registry(&model));
    checks::session(&mut checks, input.paths);
    for check in &mut checks {
        check.judge(&needs);
    }

    let verdict = Verdict::new(&verdict::Judged {
        provider: &selected_provider,
        selected_by,
        checks: &checks,
        row: providers.iter().find(|p| p.id == selected_provider),
        host: &host,
        model: &model,
    });
    let next_steps = verdict.next_steps();
    DoctorReport {
        model,
        engine,
        selected_provider,
        selected_by,
        configured: mining.is_some(),
        facts: input.facts.clone(),
        checks,
        providers,
        verdict,
        next_steps,
    }
}

/// Every provider's sandboxed `detect`, and the providers that failed to load.
fn provider_rows(
    sandbox: &Sandbox,
    registry: &Registry,
    facts: &HardwareFacts,
    selection: &GpuSelection,
    engine: &str,
    model: &str,
) -> Vec<ProviderRow> {
    let guest_facts = to_guest(facts, selection);
    let mut rows: Vec<ProviderRow> = registry
        .providers
        .iter()
        .map(|provider| {
            let started = std::time::Instant::now();
            let (supported, reason, notes, error) =
                match provider.detect(sandbox, &guest_facts, engine, model) {
                    Ok(verdict) => (verdict.supported, verdict.reason, verdict.notes, None),
                    Err(err) => (false, None, Vec::new(), Some(err.to_string())),
                };
            tracing::info!(
                "detect: {} {} in {:?}",
                provider.id(),
                if supported {
                    "supported"
                } else {
                    "unsupported"
                },
                started.elapsed()
            );
            let hidden_gpus = guest_facts
                .gpus
                .iter()
                .filter(|gpu| {
                    !provider
                        .policy()
                        .gpu_visible(gpu.index, gpu.uuid.as_deref())
                })
                .count();
            ProviderRow {
                selected: false,
                id: provider.id().to_owned(),
                source: provider.source.label(),
                supported,
                reason,
                error,
                hidden_gpus,
                notes,
            }
        })
        .collect();
    rows.extend(registry.failures.iter().map(|failure| ProviderRow {
        id: failure.name.clone(),
        source: failure.source.label(),
        supported: false,
        reason: None,
        error: Some(failure.error.clone()),
        selected: false,
        hidden_gpus: 0,
        notes: Vec::new(),
    }));
    rows
}

/// `[mining].provider` names no provider this host has.
fn unknown_provider(id: &str, providers: &[ProviderRow], config_file: &std::path::Path) -> Check {
    let known: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
    Check::new(
        "Provider capability",
        "Configured provider",
        Some(Need::Config),
        Outcome::Fail,
        format!("unknown provider '{id}'; known: {}", known.join(", ")),
    )
    .fix(format!(
        "set [mining].provider in {} to one of: {}; or install it with `jarvis mine providers install FILE`",
        config_file.display(),
        known.join(", ")
    ))
}
