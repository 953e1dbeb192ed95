//! The host's rows (reference §5.1), each tagged with what it establishes
//! ([`Need`]) so that [`super::judge`] can tell a blocking failure from
//! information. Every failing row that a user can act on carries a `fix`.

use super::needs::Need;
use super::units::{gib, gpu_memory};
use super::{Check, Outcome, pearld};
use crate::config::{MiningConfig, SubmitTarget};
use crate::facts::GpuSelection;
use crate::paths::Paths;
use crate::policy::Policy;
use crate::redact::Redactor;
use host_gpu::{GpuFacts, HardwareFacts};
use pearl_catalog::tools::{GATEWAY_EXECUTABLE, INSTALL_HINT, missing_python_packages};
use pearl_catalog::{FALLBACK_MIN_VRAM_GB, REQUIRED_COMPUTE_CAPABILITY, gb_to_mib};
use std::path::Path;

/// Free space the reference asks for (model weights and their cache), GiB.
pub const MIN_FREE_DISK_GIB: u64 = 200;

/// Where the facts came from, for how an unknown fact reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsSource {
    Probed,
    File,
}

impl FactsSource {
    pub fn unknown(self) -> &'static str {
        match self {
            FactsSource::Probed => "unknown (not probed)",
            FactsSource::File => "unknown (not in the facts file)",
        }
    }
}

/// The facts every hardware row reads, and how an absent one reads.
pub struct HostFacts<'a> {
    pub facts: &'a HardwareFacts,
    pub source: FactsSource,
    pub selection: &'a GpuSelection,
    pub config_file: &'a Path,
}

/// The GPUs the configuration selects.
pub fn selected_gpus<'a>(host: &HostFacts<'a>) -> Vec<&'a GpuFacts> {
    host.facts
        .gpus
        .iter()
        .filter(|gpu| host.selection.selects(gpu))
        .collect()
}

/// Whether `gpu` can mine `model` with vllm-pearl (Hopper, enough memory).
pub fn gpu_qualifies(gpu: &GpuFacts, model: &str) -> bool {
    gpu.vendor == "nvidia"
        && gpu
            .compute_capability
            .as_deref()
            .is_some_and(|cc| cc.starts_with(REQUIRED_COMPUTE_CAPABILITY))
        && gpu
            .memory_total_mib
            .is_some_and(|mib| mib >= gb_to_mib(min_vram_gb(model)))
}

fn min_vram_gb(model: &str) -> f64 {
    pearl_catalog::find(model).map_or(FALLBACK_MIN_VRAM_GB, |spec| spec.min_vram_gb)
}

pub fn hardware(checks: &mut Vec<Check>, host: &HostFacts, vendor: Option<&str>, model: &str) {
    const HW: &str = "Hardware";
    let facts = host.facts;
    let unknown = host.source.unknown();
    let parts = [
        facts.os.clone(),
        facts.arch.clone(),
        facts.cpu_cores.map(|n| format!("{n} cores")),
        facts.ram_mib.map(|mib| format!("{} RAM", gib(mib))),
    ];
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    checks.push(if parts.is_empty() {
        Check::new(HW, "Host", None, Outcome::Unknown, unknown)
    } else {
        Check::new(HW, "Host", None, Outcome::Pass, parts.join(", "))
    });
    if let Some(cpu) = &facts.cpu_model {
        checks.push(Check::new(HW, "CPU", None, Outcome::Pass, cpu.clone()));
    }
    let nvidia_host = facts.gpus.iter().any(|gpu| gpu.vendor == "nvidia");
    if let Some(driver) = &facts.nvidia_driver_version {
        let cuda = facts
            .cuda_version
            .as_deref()
            .map(|v| format!(" (CUDA {v})"))
            .unwrap_or_default();
        checks.push(Check::new(
            HW,
            "NVIDIA driver",
            Some(Need::NvidiaGpu),
            Outcome::Pass,
            format!("{driver}{cuda}"),
        ));
    } else if nvidia_host && host.source == FactsSource::File {
        checks.push(Check::new(
            HW,
            "NVIDIA driver",
            Some(Need::NvidiaGpu),
            Outcome::Unknown,
            unknown,
        ));
    }
    let gpu_need = match vendor {
        Some("apple") => Need::AppleGpu,
        _ => Need::NvidiaGpu,
    };
    let gpus = selected_gpus(host);
    if let Some(spec) = host.selection.spec() {
        let known: Vec<String> = facts.gpus.iter().map(|g| g.index.to_string()).collect();
        checks.push(
            Check::new(
                HW,
                "GPU selection",
                Some(gpu_need),
                Outcome::from(!gpus.is_empty()),
                format!(
                    "cuda_visible_devices = {spec} ({} of {} GPUs)",
                    gpus.len(),
                    facts.gpus.len()
                ),
            )
            .fix(format!(
                "set [mining.extra].cuda_visible_devices in {} to GPU indexes or UUIDs this host has ({}), or to \"\" for all",
                host.config_file.display(),
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )),
        );
    }
    if gpus.is_empty() {
        let none = match &facts.gpu_note {
            Some(note) => format!("none ({note})"),
            None if host.source == FactsSource::File => "none in the facts file".into(),
            None => "none".into(),
        };
        checks.push(
            Check::new(HW, "GPU", Some(gpu_need), Outcome::Fail, none).fix(match vendor {
                Some("apple") => "apple-mps-pearl mines on Apple Silicon's GPU".to_owned(),
                _ => "vllm-pearl mines on NVIDIA H100/H200 GPUs: install the NVIDIA driver and check that `nvidia-smi` lists them".to_owned(),
            }),
        );
        return;
    }
    let min_gb = min_vram_gb(model);
    // On a mixed host the fix for a GPU that cannot mine is to leave it out.
    let qualifying: Vec<String> = gpus
        .iter()
        .filter(|gpu| gpu_qualifies(gpu, model))
        .map(|gpu| gpu.index.to_string())
        .collect();
    // With no selection, `start` plans workers on the GPUs that qualify
    // (`[mining.extra].workers = "auto"`): the others are left out, which
    // is information, not a problem.
    let planned_around = |gpu: &GpuFacts| {
        vendor == Some("nvidia")
            && host.selection.spec().is_none()
            && !qualifying.is_empty()
            && !gpu_qualifies(gpu, model)
    };
    let need = |gpu: &GpuFacts, need: Need| (!planned_around(gpu)).then_some(need);
    let leave_out = |gpu: &GpuFacts, fix: String| {
        if planned_around(gpu) {
            format!(
                "left out: `jarvis mine start` runs a worker on each GPU that qualifies ({}) ([mining.extra].workers = \"auto\")",
                qualifying.join(",")
            )
        } else if vendor == Some("nvidia") && !qualifying.is_empty() && !gpu_qualifies(gpu, model) {
            format!(
                "leave GPU {} out: set [mining.extra].cuda_visible_devices = \"{}\" (the GPUs that qualify) in {}",
                gpu.index,
                qualifying.join(","),
                host.config_file.display()
            )
        } else {
            fix
        }
    };
    // One GPU keeps the reference's row names; several are prefixed.
    let label = |gpu: &GpuFacts, many: &str, one: &str| {
        if gpus.len() > 1 {
            format!("GPU {} {many}", gpu.index)
        } else {
            one.to_owned()
        }
    };
    for gpu in &gpus {
        let vendor_ok = vendor.is_none_or(|wanted| gpu.vendor == wanted);
        checks.push(
            Check::new(
                HW,
                label(gpu, "vendor", "GPU vendor"),
                need(gpu, gpu_need),
                Outcome::from(vendor_ok),
                format!("{} ({})", gpu.vendor, gpu.name),
            )
            .fix(leave_out(
                gpu,
                match vendor {
                    Some("apple") => "apple-mps-pearl mines on Apple Silicon only",
                    _ => "vllm-pearl mines on NVIDIA H100/H200 GPUs only",
                }
                .to_owned(),
            )),
        );
        if gpu.vendor != "nvidia" {
            if let Some(mib) = gpu.memory_total_mib {
                checks.push(Check::new(
                    HW,
                    label(gpu, "memory", "Memory"),
                    None,
                    Outcome::Pass,
                    format!("{} (shared with the CPU)", gib(mib)),
                ));
            }
            continue;
        }
        let cc = gpu.compute_capability.as_deref();
        checks.push(
            Check::new(
                HW,
                label(gpu, "compute cap.", "Compute capability"),
                need(gpu, Need::NvidiaGpu),
                match cc {
                    None => Outcome::Unknown,
                    Some(cc) => Outcome::from(cc.starts_with(REQUIRED_COMPUTE_CAPABILITY)),
                },
                cc.map_or_else(|| unknown.to_owned(), str::to_owned),
            )
            .fix(leave_out(
                gpu,
                format!(
                    "Pearl's kernels need compute capability {REQUIRED_COMPUTE_CAPABILITY} (Hopper: H100, H200); this GPU cannot mine with vllm-pearl"
                ),
            )),
        );
        let needed_mib = gb_to_mib(min_gb);
        checks.push(match gpu.memory_total_mib {
            Some(mib) => Check::new(
                HW,
                label(gpu, "VRAM", "VRAM"),
                need(gpu, Need::NvidiaGpu),
                Outcome::from(mib >= needed_mib),
                format!(
                    "{}; the model needs {} ({min_gb:.0} GB)",
                    gpu_memory(mib),
                    gib(needed_mib)
                ),
            )
            .fix(leave_out(
                gpu,
                "choose a smaller model (`jarvis mine models`) with `--model`, or mine on a larger GPU".to_owned(),
            )),
            None => Check::new(
                HW,
                label(gpu, "VRAM", "VRAM"),
                Some(Need::NvidiaGpu),
                Outcome::Unknown,
                unknown,
            ),
        });
    }
}

pub fn docker(checks: &mut Vec<Check>, host: &HostFacts) {
    let docker = host.facts.docker.clone().unwrap_or_default();
    let row =
        |outcome, info: String| Check::new("Docker", "Daemon", Some(Need::Docker), outcome, info);
    checks.push(match docker.reachable {
        Some(true) => row(
            Outcome::Pass,
            format!("running {}", docker.version.as_deref().unwrap_or("(version unknown)")),
        ),
        Some(false) => row(
            Outcome::Fail,
            docker.error.unwrap_or_else(|| "not reachable".into()),
        )
        .fix("start Docker (`sudo systemctl start docker`) and check that `docker info` works for this user (the docker group, or DOCKER_HOST)"),
        None => row(Outcome::Unknown, host.source.unknown().to_owned()),
    });
}

pub fn disk(checks: &mut Vec<Check>, host: &HostFacts) {
    let disk = host.facts.disk.clone().unwrap_or_default();
    let row = |outcome, info: String| {
        Check::new("Disk", "Free space", Some(Need::ModelDisk), outcome, info)
    };
    checks.push(match disk.free_mib {
        Some(mib) => {
            let at = disk.path.as_deref().map(|p| format!(" at {p}")).unwrap_or_default();
            if mib / 1024 >= MIN_FREE_DISK_GIB {
                row(Outcome::Pass, format!("{} free{at}", gib(mib)))
            } else {
                row(
                    Outcome::Fail,
                    format!("only {} free{at} (need ≥ {MIN_FREE_DISK_GIB} GiB)", gib(mib)),
                )
                .fix("free space there, or point HF_HOME at a disk with room for the model's weights")
            }
        }
        None => row(Outcome::Unknown, host.source.unknown().to_owned()),
    });
}

pub fn pearl_tools(checks: &mut Vec<Check>, host: &HostFacts, apple: bool) {
    const SECTION: &str = "Pearl tools";
    let pearl = host.facts.pearl.clone().unwrap_or_default();
    let unknown = host.source.unknown();
    checks.push(match &pearl.python_packages {
        None => Check::new(
            SECTION,
            "Python packages",
            Some(Need::PearlPython),
            Outcome::Unknown,
            unknown,
        ),
        Some(installed) => match missing_python_packages(Some(installed)).as_slice() {
            [] => Check::new(
                SECTION,
                "Python packages",
                Some(Need::PearlPython),
                Outcome::Pass,
                "all importable",
            ),
            missing => Check::new(
                SECTION,
                "Python packages",
                Some(Need::PearlPython),
                Outcome::Fail,
                format!("missing {}", missing.join(", ")),
            )
            .fix(format!("install {}: {INSTALL_HINT}", missing.join(", "))),
        },
    });
    checks.push(match pearl.gateway_on_path {
        Some(true) => Check::new(SECTION, GATEWAY_EXECUTABLE, Some(Need::PearlGateway), Outcome::Pass, "on PATH"),
        Some(false) => Check::new(SECTION, GATEWAY_EXECUTABLE, Some(Need::PearlGateway), Outcome::Fail, "not on PATH")
            .fix("install the pearl-gateway package (miner/pearl-gateway in a Pearl checkout) into the Python environment on PATH (docs/user-guide.md#pearl-packages)"),
        None => Check::new(SECTION, GATEWAY_EXECUTABLE, Some(Need::PearlGateway), Outcome::Unknown, unknown),
    });
    if apple || host.facts.os.as_deref() == Some("darwin") {
        let (outcome, info) = match (pearl.torch_installed, pearl.torch_mps_available) {
            (Some(true), Some(true)) => (Outcome::Pass, "installed, MPS available".to_owned()),
            (Some(true), _) => (
                Outcome::Fail,
                "installed, but MPS is not available".to_owned(),
            ),
            (Some(false), _) => (Outcome::Fail, "not installed".to_owned()),
            (None, _) => (Outcome::Unknown, unknown.to_owned()),
        };
        checks.push(
            Check::new(SECTION, "PyTorch MPS", Some(Need::TorchMps), outcome, info)
                .fix("install PyTorch for macOS on Apple Silicon (`python3 -m pip install torch`) and check `torch.backends.mps.is_available()`"),
        );
    }
}

pub fn pearld(mining: Option<&MiningConfig>, config_file: &Path) -> Check {
    const SECTION: &str = "Pearl node";
    let Some(mining) = mining else {
        return not_configured(SECTION, "RPC", Need::PearlNode, config_file);
    };
    if let SubmitTarget::Pool { .. } = mining.submit_target {
        return Check::new(
            SECTION,
            "RPC",
            Some(Need::PearlNode),
            Outcome::Pass,
            "not needed: work goes to a pool",
        );
    }
    let password_env = mining.pearld_password_env();
    let password = std::env::var(&password_env).ok();
    let credentials = pearld::RpcCredentials {
        user: mining.pearld_rpc_user(),
        password_set: password.is_some(),
        password: password.unwrap_or_default(),
        password_env,
    };
    let url = mining.pearld_rpc_url();
    let answer = pearld::probe(&url, &credentials);
    // The node's own words and the URL come back; the password never does.
    let redactor = Redactor::new([credentials.password.as_str()]);
    let check = Check::new(
        SECTION,
        "RPC",
        Some(Need::PearlNode),
        Outcome::from(answer.ok),
        redactor.redact_owned(&answer.info),
    );
    match answer.fix {
        Some(fix) => check.fix(fix),
        None => check,
    }
}

pub fn wallet(mining: Option<&MiningConfig>, config_file: &Path) -> Check {
    let Some(mining) = mining else {
        return not_configured("Wallet", "Address format", Need::Wallet, config_file);
    };
    match super::check_address(&mining.wallet_address) {
        Ok(()) => Check::new(
            "Wallet",
            "Address format",
            Some(Need::Wallet),
            Outcome::Pass,
            "format ok",
        ),
        Err(why) => Check::new(
            "Wallet",
            "Address format",
            Some(Need::Wallet),
            Outcome::Fail,
            why,
        )
        .fix(format!(
            "set [mining].wallet_address in {} to your Pearl address (prl1q… or prl1p…)",
            config_file.display()
        )),
    }
}

/// A row that cannot be checked without `[mining]`; its fix is the same
/// for every such row, so the verdict names it once.
fn not_configured(section: &'static str, name: &str, need: Need, config_file: &Path) -> Check {
    Check::new(
        section,
        name,
        Some(need),
        Outcome::Fail,
        format!("no [mining] config in {}", config_file.display()),
    )
    .fix(init_hint())
}

pub fn init_hint() -> String {
    "run `jarvis mine init` (it picks a provider for this host and writes [mining])".to_owned()
}

pub fn model_registry(model: &str) -> Check {
    const SECTION: &str = "Provider capability";
    let row = |outcome, info: String| {
        Check::new(SECTION, "Model registry", Some(Need::Model), outcome, info)
    };
    if let Some(variant) = pearl_catalog::pearl_variant_for_base_model(model) {
        return row(
            Outcome::Fail,
            format!("raw model; planned Pearl variant {variant}"),
        )
        .fix("mine with a converted Pearl model: see `jarvis mine models`");
    }
    match pearl_catalog::find(model) {
        Some(spec) => row(
            Outcome::from(spec.is_validated()),
            format!("{}: {}", spec.status.as_str(), spec.model_id),
        )
        .fix("choose a validated model from `jarvis mine models` (set [mining.extra].model)"),
        None => row(Outcome::Fail, format!("unknown: {model}"))
            .fix("choose a model from `jarvis mine models` (set [mining.extra].model), or serve a converted checkpoint with `jarvis mine init --local-model-path DIR`"),
    }
}

pub fn session(checks: &mut Vec<Check>, paths: &Paths) {
    let sidecar = paths.sidecar();
    // Regular files only, capped: a FIFO planted there is "absent", never a hang.
    let record: Option<serde_json::Value> = crate::bounded_read::open_home_regular(&sidecar)
        .ok()
        .and_then(|file| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, crate::session::sidecar::MAX_FILE_BYTES),
                &mut bytes,
            )
            .ok()?;
            serde_json::from_slice(&bytes).ok()
        });
    match record {
        None => checks.push(Check::new(
            "Session",
            "Sidecar",
            None,
            Outcome::Pass,
            "absent (not running)",
        )),
        Some(record) => {
            checks.push(Check::new(
                "Session",
                "Sidecar",
                None,
                Outcome::Pass,
                format!("present ({})", sidecar.display()),
            ));
            let container = record["container_id"].as_str().unwrap_or("?").to_owned();
            checks.push(Check::new(
                "Session",
                "Container",
                None,
                Outcome::Pass,
                container,
            ));
        }
    }
}

/// Which policy files apply; a broken system policy blocks every provider
/// (everything privileged is denied until it is fixed).
pub fn policy(checks: &mut Vec<Check>, policy: &Policy) {
    let system = policy.system_file();
    checks.push(match policy.system_problem() {
        Some(problem) => Check::new(
            "Policy",
            "system policy",
            Some(Need::Policy),
            Outcome::Fail,
            problem,
        )
        .fix(format!(
            "fix or remove {} (ask whoever manages this host)",
            system.display()
        )),
        None => Check::new(
            "Policy",
            "system policy",
            Some(Need::Policy),
            Outcome::Pass,
            if system.exists() {
                system.display().to_string()
            } else {
                format!("none ({} does not exist)", system.display())
            },
        ),
    });
    let user = policy.user_path();
    checks.push(Check::new(
        "Policy",
        "user policy",
        None,
        Outcome::Pass,
        if user.exists() {
            user.display().to_string()
        } else {
            format!(
                "none: installed providers get no capabilities until {} grants them",
                user.display()
            )
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_at_the_sidecar_path_reads_as_absent_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::with_home(dir.path());
        std::fs::create_dir_all(dir.path().join("runtime")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(paths.sidecar().absolute())
            .status()
            .unwrap();
        assert!(status.success());
        let mut checks = Vec::new();
        session(&mut checks, &paths);
        assert_eq!(checks[0].info, "absent (not running)");
    }
}
