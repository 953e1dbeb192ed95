//! `jarvis mine doctor`: one row per check (reference §5.1), with every
//! provider's verdict coming from its sandboxed, pure `detect`.

mod pearld;
mod wallet;

pub use wallet::check_address;

use crate::config::{Config, MiningConfig};
use crate::facts::{GpuSelection, default_provider, to_guest};
use crate::paths::Paths;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use host_gpu::HardwareFacts;
use pearl_catalog::tools::{GATEWAY_EXECUTABLE, missing_python_packages};
use pearl_catalog::{FALLBACK_MIN_VRAM_GB, REQUIRED_COMPUTE_CAPABILITY, gb_to_mib, mib_to_gb};
use serde::Serialize;

/// Free space the reference asks for, in GiB.
const MIN_FREE_DISK_GB: u64 = 200;

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub section: &'static str,
    pub name: String,
    pub ok: bool,
    pub info: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderRow {
    pub id: String,
    pub source: &'static str,
    pub supported: bool,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The configured provider (or the default when nothing is configured).
    pub selected: bool,
    /// GPUs of this host the policy keeps this provider from seeing.
    #[serde(skip_serializing_if = "is_zero")]
    pub hidden_gpus: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoctorReport {
    pub model: String,
    pub engine: String,
    /// `[mining].provider`, or the provider chosen for these facts when unset.
    pub selected_provider: String,
    pub configured: bool,
    /// The facts every verdict was made from (reusable as a `--facts` file).
    pub facts: HardwareFacts,
    pub checks: Vec<Check>,
    pub providers: Vec<ProviderRow>,
}

impl DoctorReport {
    /// For `--strict`: is the selected provider supported here?
    pub fn selected_supported(&self) -> bool {
        self.providers.iter().any(|p| p.selected && p.supported)
    }
}

pub struct DoctorInput<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub facts: &'a HardwareFacts,
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
    let selected_provider = mining.map_or_else(
        || default_provider(input.facts).to_owned(),
        |m| m.provider.clone(),
    );

    let mut checks = Vec::new();
    hardware_checks(&mut checks, input.facts, &selection, &model);
    docker_check(&mut checks, input.facts);
    disk_check(&mut checks, input.facts);
    pearl_tool_checks(&mut checks, input.facts);
    checks.push(pearld_check(mining));
    checks.push(wallet_check(mining));
    policy_checks(&mut checks, input.policy);
    checks.push(model_registry_check(&model));
    session_checks(&mut checks, input.paths);

    let guest_facts = to_guest(input.facts, &selection);
    let mut providers: Vec<ProviderRow> = registry
        .providers
        .iter()
        .map(|provider| {
            let (supported, reason, error) =
                match provider.detect(sandbox, &guest_facts, &engine, &model) {
                    Ok(verdict) => (verdict.supported, verdict.reason, None),
                    Err(err) => (false, None, Some(err.to_string())),
                };
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
                selected: provider.id() == selected_provider,
                id: provider.id().to_owned(),
                source: provider.source.label(),
                supported,
                reason,
                error,
                hidden_gpus,
            }
        })
        .collect();
    providers.extend(registry.failures.iter().map(|failure| ProviderRow {
        id: failure.name.clone(),
        source: failure.source.label(),
        supported: false,
        reason: None,
        error: Some(failure.error.clone()),
        selected: false,
        hidden_gpus: 0,
    }));
    DoctorReport {
        model,
        engine,
        selected_provider,
        configured: mining.is_some(),
        facts: input.facts.clone(),
        checks,
        providers,
    }
}

fn check(
    section: &'static str,
    name: impl Into<String>,
    ok: bool,
    info: impl Into<String>,
) -> Check {
    Check {
        section,
        name: name.into(),
        ok,
        info: info.into(),
    }
}

fn hardware_checks(
    checks: &mut Vec<Check>,
    facts: &HardwareFacts,
    selection: &GpuSelection,
    model: &str,
) {
    const HW: &str = "Hardware";
    let host = [
        facts.os.clone(),
        facts.arch.clone(),
        facts.cpu_cores.map(|n| format!("{n} cores")),
        facts.ram_mib.map(|mib| format!("{} GiB RAM", mib / 1024)),
    ];
    let host: Vec<String> = host.into_iter().flatten().collect();
    checks.push(check(
        HW,
        "Host",
        facts.os.is_some(),
        if host.is_empty() {
            "unknown".into()
        } else {
            host.join(", ")
        },
    ));
    if let Some(cpu) = &facts.cpu_model {
        checks.push(check(HW, "CPU", true, cpu.clone()));
    }
    if let Some(driver) = &facts.nvidia_driver_version {
        let cuda = facts
            .cuda_version
            .as_deref()
            .map(|v| format!(" (CUDA {v})"))
            .unwrap_or_default();
        checks.push(check(HW, "NVIDIA driver", true, format!("{driver}{cuda}")));
    }
    let gpus: Vec<_> = facts
        .gpus
        .iter()
        .filter(|gpu| selection.selects(gpu))
        .collect();
    if let Some(spec) = selection.spec() {
        checks.push(check(
            HW,
            "GPU selection",
            !gpus.is_empty(),
            format!(
                "cuda_visible_devices = {spec} ({} of {} GPUs)",
                gpus.len(),
                facts.gpus.len()
            ),
        ));
    }
    if gpus.is_empty() {
        let none = facts
            .gpu_note
            .as_deref()
            .map_or("none".to_owned(), |note| format!("none ({note})"));
        checks.push(check(HW, "GPU vendor", false, none));
        checks.push(check(HW, "Compute capability", false, "n/a"));
        checks.push(check(HW, "VRAM", false, "0 GB"));
        return;
    }
    let min_vram_gb = pearl_catalog::find(model).map_or(FALLBACK_MIN_VRAM_GB, |s| s.min_vram_gb);
    for gpu in &gpus {
        let prefix = if gpus.len() > 1 {
            format!("GPU {} ", gpu.index)
        } else {
            String::new()
        };
        let label = |name: &str, single: &str| {
            if prefix.is_empty() {
                single.to_owned()
            } else {
                format!("{prefix}{name}")
            }
        };
        checks.push(check(
            HW,
            label("vendor", "GPU vendor"),
            gpu.vendor == "nvidia",
            format!("{} ({})", gpu.vendor, gpu.name),
        ));
        let cc = gpu.compute_capability.as_deref();
        checks.push(check(
            HW,
            label("compute cap.", "Compute capability"),
            cc.is_some_and(|cc| cc.starts_with(REQUIRED_COMPUTE_CAPABILITY)),
            cc.unwrap_or("n/a"),
        ));
        let (ok, info) = match gpu.memory_total_mib {
            Some(mib) => (
                mib >= gb_to_mib(min_vram_gb),
                format!(
                    "{:.0} GB ({mib} MiB); model needs {min_vram_gb:.0} GB",
                    mib_to_gb(mib)
                ),
            ),
            None => (false, "unknown".to_owned()),
        };
        checks.push(check(HW, label("VRAM", "VRAM"), ok, info));
    }
}

fn docker_check(checks: &mut Vec<Check>, facts: &HardwareFacts) {
    let docker = facts.docker.clone().unwrap_or_default();
    let (ok, info) = match docker.reachable {
        Some(true) => (
            true,
            format!("running {}", docker.version.as_deref().unwrap_or("unknown")),
        ),
        Some(false) => (
            false,
            docker.error.unwrap_or_else(|| "not reachable".into()),
        ),
        None => (false, "unknown (not probed)".into()),
    };
    checks.push(check("Docker", "Daemon", ok, info));
}

fn disk_check(checks: &mut Vec<Check>, facts: &HardwareFacts) {
    let disk = facts.disk.clone().unwrap_or_default();
    let (ok, info) = match disk.free_mib {
        Some(mib) => {
            let gb = mib / 1024;
            let at = disk.path.map(|p| format!(" at {p}")).unwrap_or_default();
            if gb >= MIN_FREE_DISK_GB {
                (true, format!("{gb} GB free{at}"))
            } else {
                (
                    false,
                    format!("only {gb} GB free{at} (need ≥{MIN_FREE_DISK_GB} GB)"),
                )
            }
        }
        None => (false, "unknown (not probed)".into()),
    };
    checks.push(check("Disk", "Free space", ok, info));
}

fn pearl_tool_checks(checks: &mut Vec<Check>, facts: &HardwareFacts) {
    let pearl = facts.pearl.clone().unwrap_or_default();
    let (ok, info) = match &pearl.python_packages {
        None => (false, "unknown (python3 not probed)".to_owned()),
        Some(installed) => match missing_python_packages(Some(installed)).as_slice() {
            [] => (true, "all importable".to_owned()),
            missing => (false, format!("missing {}", missing.join(", "))),
        },
    };
    checks.push(check("Pearl tools", "Python packages", ok, info));
    let (ok, info) = match pearl.gateway_on_path {
        Some(true) => (true, "on PATH"),
        Some(false) => (false, "not on PATH"),
        None => (false, "unknown (not probed)"),
    };
    checks.push(check("Pearl tools", GATEWAY_EXECUTABLE, ok, info));
}

fn pearld_check(mining: Option<&MiningConfig>) -> Check {
    let Some(mining) = mining else {
        return check(
            "Pearl node",
            "RPC",
            false,
            "no [mining] config - run `jarvis mine init`",
        );
    };
    let password_env = mining.pearld_password_env();
    let password = std::env::var(&password_env).ok();
    let credentials = pearld::RpcCredentials {
        user: mining.pearld_rpc_user(),
        password_set: password.is_some(),
        password: password.unwrap_or_default(),
        password_env,
    };
    let (ok, info) = pearld::probe(&mining.pearld_rpc_url(), &credentials);
    check("Pearl node", "RPC", ok, info)
}

fn wallet_check(mining: Option<&MiningConfig>) -> Check {
    let Some(mining) = mining else {
        return check("Wallet", "Address format", false, "no [mining] config");
    };
    match check_address(&mining.wallet_address) {
        Ok(()) => check("Wallet", "Address format", true, "format ok"),
        Err(why) => check("Wallet", "Address format", false, why),
    }
}

fn model_registry_check(model: &str) -> Check {
    const SECTION: &str = "Provider capability";
    if let Some(variant) = pearl_catalog::pearl_variant_for_base_model(model) {
        return check(
            SECTION,
            "Model registry",
            false,
            format!("raw model; planned Pearl variant {variant}"),
        );
    }
    match pearl_catalog::find(model) {
        Some(spec) => check(
            SECTION,
            "Model registry",
            spec.is_validated(),
            format!("{}: {}", spec.status.as_str(), spec.model_id),
        ),
        None => check(
            SECTION,
            "Model registry",
            false,
            format!("unknown: {model}"),
        ),
    }
}

fn session_checks(checks: &mut Vec<Check>, paths: &Paths) {
    let sidecar = paths.sidecar();
    let record: Option<serde_json::Value> = std::fs::read(&sidecar)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match record {
        None => checks.push(check("Session", "Sidecar", true, "absent (not running)")),
        Some(record) => {
            checks.push(check(
                "Session",
                "Sidecar",
                true,
                format!("present ({})", sidecar.display()),
            ));
            let container = record["container_id"].as_str().unwrap_or("?").to_owned();
            checks.push(check("Session", "Container", true, container));
        }
    }
}

/// Which policy files apply; a broken system policy is a failed check
/// (everything privileged is denied until it is fixed).
fn policy_checks(checks: &mut Vec<Check>, policy: &Policy) {
    let system = policy.system_file();
    checks.push(match policy.system_problem() {
        Some(problem) => Check {
            section: "Policy",
            name: "system policy".into(),
            ok: false,
            info: problem,
        },
        None => Check {
            section: "Policy",
            name: "system policy".into(),
            ok: true,
            info: if system.exists() {
                system.display().to_string()
            } else {
                format!("none ({} does not exist)", system.display())
            },
        },
    });
    let user = policy.user_path();
    checks.push(Check {
        section: "Policy",
        name: "user policy".into(),
        ok: true,
        info: if user.exists() {
            user.display().to_string()
        } else {
            format!(
                "none: installed providers get no capabilities until {} grants them",
                user.display()
            )
        },
    });
}
