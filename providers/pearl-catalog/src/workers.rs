//! Which GPUs each Pearl miner ("worker") gets: one worker per GPU, or per
//! tensor-parallel group when the model needs more memory than one GPU has.
//!
//! # Why
//!
//! Pearl mines inside vLLM. vLLM's `--tensor-parallel-size` defaults to 1, so
//! a container that sees every GPU of an 8-GPU server loads the model on GPU 0
//! and the other seven idle (vLLM issue #3525). Pearl's own stance is that
//! every vLLM CUDA worker mines its own process-local shard, so both "one
//! vLLM per GPU" and "one vLLM per tensor-parallel group" mine; the plan
//! prefers the first (no cross-GPU traffic, one GPU failing stops one worker)
//! and falls back to the second only when the model does not fit one GPU.
//! See `reference/miners-and-gpus-2026.md` §1.3.
//!
//! # Inputs
//!
//! * The candidate GPUs ([`GpuCandidate`]), already narrowed by the user's
//!   `[mining.extra].cuda_visible_devices`. Callers convert from their own
//!   (WIT) GPU records.
//! * The model: its requirement is the registry's `min_vram_gb`
//!   ([`crate::find`]), or [`FALLBACK_MIN_VRAM_GB`] for a model the registry
//!   does not know, in MiB ([`gb_to_mib`]). [`plan_workers_needing`] takes the
//!   requirement directly.
//! * `[mining.extra].workers`, parsed by [`WorkersSetting::parse`] from a
//!   [`SettingValue`]: `"auto"` (the default), `"single"`, or a list of GPU
//!   groups.
//!
//! # Rules
//!
//! A GPU **qualifies** when its vendor is NVIDIA, its compute capability is
//! [`REQUIRED_COMPUTE_CAPABILITY`] or newer (compared as numbers: "10.0" is
//! newer than "9.0"; Pearl's kernels target Hopper's sm_90a), and its memory
//! is known. A group of GPUs holds `size × its smallest member's memory`,
//! because tensor parallelism splits the model evenly across its ranks.
//!
//! **`auto`.** Only qualifying GPUs are used; every other GPU is left out with
//! a reason. Qualifying GPUs are split by name (an H100 is never grouped with
//! an H200: the group would run at the smaller card's pace and memory), and
//! each kind is planned on its own, in index order:
//!
//! * the tensor-parallel size is the smallest of 1, 2, 4, 8 for which some
//!   index-order group of that size holds the model. Sizes are powers of two
//!   because vLLM needs a size that divides the model's attention heads, and
//!   every Pearl model's head count is divisible by 8; 8 is the most one
//!   server holds. With size 1 that is one worker per GPU;
//! * GPUs are taken in index order in groups of that size; a group too small
//!   (a member with less memory) is left out, and so are the GPUs left over
//!   after the last full group;
//! * a kind with too few GPUs for the size the model needs, or whose 8 GPUs
//!   together would still be too small, is left out entirely.
//!
//! Workers are numbered from 0 in the order of their first GPU's index. No
//! qualifying GPU is [`PlanError::NoQualifyingGpu`]; qualifying GPUs but no
//! group that holds the model is [`PlanError::ModelDoesNotFit`].
//!
//! **`single`** is the behaviour before workers existed: one worker with every
//! candidate GPU and no tensor-parallel flag (vLLM then uses the first GPU),
//! judged as `detect` judges it: every GPU must qualify and hold the model on
//! its own, otherwise [`PlanError::SingleGpuCannotMine`] names the most basic
//! problem first (vendor, then compute capability, then memory).
//!
//! **Explicit groups** (`[["0", "1"], ["GPU-…", "3"]]`): one worker per group,
//! in the order written. Members are NVML indexes or UUIDs (compared without
//! case); an index and a UUID naming the same GPU are the same GPU. Every
//! member must be a candidate ([`PlanError::UnknownGpu`]), no GPU may be named
//! twice ([`PlanError::DuplicateGpu`]), a group's size must be a power of two
//! ([`PlanError::GroupSizeNotPowerOfTwo`]), its members must qualify
//! ([`PlanError::GroupGpuDoesNotQualify`]) and together hold the model
//! ([`PlanError::GroupTooSmall`]). Groups may mix GPU kinds: the user chose
//! them. Candidates named in no group are left out.
//!
//! # Output
//!
//! A [`WorkerPlan`]: the workers, each with its GPUs' NVML indexes (sorted)
//! and UUIDs and its tensor-parallel size, plus every GPU left out and why
//! ([`LeftOut`]'s `Display` is a sentence `doctor` can show). [`Worker`] gives
//! what a launcher needs: the device ids to request from Docker, the
//! container's `NVIDIA_VISIBLE_DEVICES` (host ids) and `CUDA_VISIBLE_DEVICES`
//! (ordinals inside the container), the vLLM flag, and its port
//! ([`worker_port`]: `base + worker`, an error past 65535).
//!
//! Pure and dependency-free, like the rest of the crate, so that the host and
//! wasm32 guests share it.

mod setting;

pub use setting::{SettingValue, WORKERS_KEY, WorkersSetting, WorkersSettingError};

use crate::models::{
    FALLBACK_MIN_VRAM_GB, REQUIRED_COMPUTE_CAPABILITY, find, gb_to_mib, mib_to_gb,
};
use std::fmt;

/// Tensor-parallel sizes `auto` tries, smallest first.
pub const TENSOR_PARALLEL_SIZES: [u32; 4] = [1, 2, 4, 8];

/// The vendor Pearl's kernels run on, as the facts spell it.
pub const REQUIRED_VENDOR: &str = "nvidia";

/// One GPU the planner may use, as the caller's facts describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuCandidate {
    /// NVML index: the host id for Docker and `NVIDIA_VISIBLE_DEVICES`.
    pub index: u32,
    pub uuid: Option<String>,
    pub name: String,
    /// Lower-case vendor: "nvidia", "amd", "apple", ...
    pub vendor: String,
    /// `"<major>.<minor>"`, e.g. "9.0" for Hopper.
    pub compute_capability: Option<String>,
    /// Total memory in MiB, as NVML reports it.
    pub memory_total_mib: Option<u64>,
}

/// One miner: one vLLM (and its gateway) on a set of GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The worker's number, from 0; it offsets the worker's ports.
    pub index: u32,
    /// NVML indexes of its GPUs, ascending.
    pub gpus: Vec<u32>,
    /// The UUIDs of `gpus`, in the same order (`None` where unknown).
    pub uuids: Vec<Option<String>>,
    /// vLLM's `--tensor-parallel-size`: the number of GPUs, except in
    /// `single` mode, where it is 1 (vLLM's default; no flag is passed).
    pub tensor_parallel_size: u32,
}

impl Worker {
    /// The device ids to request from Docker: the GPUs' NVML indexes.
    pub fn docker_device_ids(&self) -> Vec<String> {
        self.gpus.iter().map(u32::to_string).collect()
    }

    /// `NVIDIA_VISIBLE_DEVICES` for the container: host ids, e.g. "2,3".
    pub fn nvidia_visible_devices(&self) -> String {
        self.docker_device_ids().join(",")
    }

    /// `CUDA_VISIBLE_DEVICES` inside the container, where the worker's GPUs
    /// are renumbered from 0: e.g. "0,1".
    pub fn cuda_visible_devices(&self) -> String {
        (0..self.gpus.len())
            .map(|ordinal| ordinal.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// vLLM arguments for tensor parallelism: none for a size of 1.
    pub fn vllm_args(&self) -> Vec<String> {
        if self.tensor_parallel_size > 1 {
            vec![
                "--tensor-parallel-size".to_owned(),
                self.tensor_parallel_size.to_string(),
            ]
        } else {
            Vec::new()
        }
    }

    /// This worker's vLLM port: `base + index`.
    pub fn port(&self, base: u16) -> Result<u16, PortError> {
        worker_port(base, self.index)
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.gpus.len() == 1 { "GPU" } else { "GPUs" };
        write!(
            f,
            "worker {}: {noun} {}",
            self.index,
            self.nvidia_visible_devices()
        )?;
        if self.tensor_parallel_size > 1 {
            write!(f, " (tensor parallel {})", self.tensor_parallel_size)?;
        }
        Ok(())
    }
}

/// Which workers to run, and which GPUs mine in none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Never empty in a plan that was made.
    pub workers: Vec<Worker>,
    /// By GPU index.
    pub left_out: Vec<LeftOut>,
}

impl WorkerPlan {
    /// Every worker's vLLM port, in worker order; an error if the last one
    /// would pass 65535.
    pub fn ports(&self, base: u16) -> Result<Vec<u16>, PortError> {
        self.workers
            .iter()
            .map(|worker| worker.port(base))
            .collect()
    }
}

/// A GPU that mines in no worker, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub gpu: u32,
    pub name: String,
    pub reason: LeftOutReason,
}

impl LeftOut {
    fn new(gpu: &GpuCandidate, reason: LeftOutReason) -> Self {
        LeftOut {
            gpu: gpu.index,
            name: gpu.name.clone(),
            reason,
        }
    }

    /// "GPU 1 (NVIDIA GeForce RTX 4090)".
    fn label(&self) -> String {
        format!("GPU {} ({})", self.gpu, self.name)
    }
}

/// "GPU 1 (NVIDIA GeForce RTX 4090) is left out: compute capability 8.9,
/// Pearl needs 9.0 or newer".
impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is left out: {}", self.label(), self.reason)
    }
}

/// Why a GPU mines in no worker. The `Display` is the part after
/// "GPU 1 (…) is left out: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOutReason {
    /// Not an NVIDIA GPU.
    NotNvidia { vendor: String },
    /// Compute capability older than required, unknown (`None`) or not a
    /// version.
    ComputeCapability { found: Option<String> },
    /// NVML did not report the GPU's memory.
    MemoryUnknown,
    /// Alone, the GPU does not hold the model.
    TooSmall { memory_mib: u64, needs_mib: u64 },
    /// In its index-order tensor-parallel group, the group does not hold the
    /// model (a member has less memory than the others).
    GroupTooSmall {
        group_size: u32,
        group_memory_mib: u64,
        needs_mib: u64,
    },
    /// The model needs a group of `group_size` GPUs of this kind and only
    /// `available` are usable.
    NotEnoughForGroup {
        group_size: u32,
        available: u32,
        needs_mib: u64,
    },
    /// Even the largest group of GPUs of this kind does not hold the model.
    BeyondLargestGroup {
        memory_mib: u64,
        largest_group: u32,
        needs_mib: u64,
    },
    /// Left over after the last full tensor-parallel group of its kind.
    LeftOver { group_size: u32, needs_mib: u64 },
    /// Explicit `[mining.extra].workers` groups do not name it.
    NotInGroups,
}

/// A GPU's memory in the unit of model cards, e.g. "85.5 GB".
fn gb(mib: u64) -> String {
    format!("{:.1} GB", mib_to_gb(mib))
}

impl fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOutReason::NotNvidia { vendor } => {
                let vendor = if vendor.is_empty() { "unknown" } else { vendor };
                write!(
                    f,
                    "vendor {vendor}, Pearl mines on NVIDIA GPUs with compute capability {REQUIRED_COMPUTE_CAPABILITY} or newer (H100/H200)"
                )
            }
            LeftOutReason::ComputeCapability { found } => match found {
                Some(cc) if parse_compute_capability(cc).is_some() => write!(
                    f,
                    "compute capability {}, Pearl needs {REQUIRED_COMPUTE_CAPABILITY} or newer",
                    cc.trim()
                ),
                Some(cc) => write!(
                    f,
                    "compute capability {cc:?} is not a version, Pearl needs {REQUIRED_COMPUTE_CAPABILITY} or newer"
                ),
                None => write!(
                    f,
                    "compute capability unknown, Pearl needs {REQUIRED_COMPUTE_CAPABILITY} or newer"
                ),
            },
            LeftOutReason::MemoryUnknown => write!(
                f,
                "its memory is unknown, so whether it holds the model cannot be judged"
            ),
            LeftOutReason::TooSmall {
                memory_mib,
                needs_mib,
            } => write!(f, "{}, the model needs {}", gb(*memory_mib), gb(*needs_mib)),
            LeftOutReason::GroupTooSmall {
                group_size,
                group_memory_mib,
                needs_mib,
            } => write!(
                f,
                "its tensor-parallel group of {group_size} holds {} ({group_size} × the group's smallest GPU), the model needs {}",
                gb(*group_memory_mib),
                gb(*needs_mib)
            ),
            LeftOutReason::NotEnoughForGroup {
                group_size,
                available,
                needs_mib,
            } => write!(
                f,
                "the model needs {}, a tensor-parallel group of {group_size} GPUs of this kind, and only {available} {} usable (GPUs of different kinds are not grouped)",
                gb(*needs_mib),
                if *available == 1 { "is" } else { "are" }
            ),
            LeftOutReason::BeyondLargestGroup {
                memory_mib,
                largest_group,
                needs_mib,
            } => write!(
                f,
                "{}, the model needs {}, more than {largest_group} such GPUs hold together",
                gb(*memory_mib),
                gb(*needs_mib)
            ),
            LeftOutReason::LeftOver {
                group_size,
                needs_mib,
            } => write!(
                f,
                "the model needs {}, tensor-parallel groups of {group_size} GPUs of this kind, and this one is left over after the last full group",
                gb(*needs_mib)
            ),
            LeftOutReason::NotInGroups => {
                write!(f, "no group in {WORKERS_KEY} names it")
            }
        }
    }
}

/// Why no plan could be made. Each `Display` says what is wrong and what to
/// do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The provider sees no GPU at all.
    NoGpu,
    /// `auto`: no GPU qualifies; every GPU's reason.
    NoQualifyingGpu { left_out: Vec<LeftOut> },
    /// `auto`: GPUs qualify, but neither one nor a tensor-parallel group of
    /// them holds the model; every GPU's reason.
    ModelDoesNotFit {
        model: String,
        needs_mib: u64,
        left_out: Vec<LeftOut>,
    },
    /// `single`: a GPU that cannot mine alone (the first in check order),
    /// and the GPUs that could.
    SingleGpuCannotMine { problem: LeftOut, usable: Vec<u32> },
    /// Explicit groups: the setting lists no group.
    NoGroups,
    /// Explicit groups: group `group` (from 1) is empty.
    EmptyGroup { group: usize },
    /// Explicit groups: `id` names no candidate GPU. `known` lists the
    /// candidates as "index (uuid)".
    UnknownGpu { id: String, known: Vec<String> },
    /// Explicit groups: GPU `gpu` is named twice, as `first` and `second`.
    DuplicateGpu {
        gpu: u32,
        first: String,
        second: String,
    },
    /// Explicit groups: a group whose size is not a power of two.
    GroupSizeNotPowerOfTwo { group: Vec<String>, size: usize },
    /// Explicit groups: a member that does not qualify.
    GroupGpuDoesNotQualify {
        group: Vec<String>,
        problem: LeftOut,
    },
    /// Explicit groups: a group that does not hold the model.
    GroupTooSmall {
        group: Vec<String>,
        model: String,
        group_memory_mib: u64,
        needs_mib: u64,
    },
}

fn join_reasons(left_out: &[LeftOut]) -> String {
    left_out
        .iter()
        .map(LeftOut::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn group_text(group: &[String]) -> String {
    let members: Vec<String> = group.iter().map(|id| format!("{id:?}")).collect();
    format!("[{}]", members.join(", "))
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoGpu => write!(
                f,
                "no GPU to mine on: Pearl mines on NVIDIA H100/H200 GPUs; check that `nvidia-smi` lists them and that [mining.extra].cuda_visible_devices selects them"
            ),
            PlanError::NoQualifyingGpu { left_out } => write!(
                f,
                "no GPU can mine Pearl: {}; Pearl mines on NVIDIA GPUs with compute capability {REQUIRED_COMPUTE_CAPABILITY} or newer (H100/H200)",
                join_reasons(left_out)
            ),
            PlanError::ModelDoesNotFit {
                model,
                needs_mib,
                left_out,
            } => write!(
                f,
                "no GPU, and no tensor-parallel group of up to {} GPUs of one kind, holds {model} (needs {}): {}; use GPUs with more memory or a smaller model",
                TENSOR_PARALLEL_SIZES[TENSOR_PARALLEL_SIZES.len() - 1],
                gb(*needs_mib),
                join_reasons(left_out)
            ),
            PlanError::SingleGpuCannotMine { problem, usable } => {
                write!(
                    f,
                    "{WORKERS_KEY} = \"single\" gives every GPU to one vLLM, so every GPU must mine on its own: {}: {}; ",
                    problem.label(),
                    problem.reason
                )?;
                if usable.is_empty() {
                    write!(f, "no GPU here qualifies")
                } else {
                    let ids: Vec<String> = usable.iter().map(u32::to_string).collect();
                    write!(
                        f,
                        "leave it out with [mining.extra].cuda_visible_devices = \"{}\" (the GPUs that qualify), or set {WORKERS_KEY} = \"auto\" to leave such GPUs out by themselves",
                        ids.join(",")
                    )
                }
            }
            PlanError::NoGroups => write!(
                f,
                "{WORKERS_KEY} lists no group: list at least one, e.g. [[\"0\"], [\"1\"]], or set it to \"auto\""
            ),
            PlanError::EmptyGroup { group } => write!(
                f,
                "{WORKERS_KEY}: group {group} is empty: name its GPUs by NVML index or UUID, or remove it"
            ),
            PlanError::UnknownGpu { id, known } => write!(
                f,
                "{WORKERS_KEY} names GPU {id:?}, which is not among the GPUs this provider may use ({}): name GPUs by NVML index or UUID from that list, or add it to [mining.extra].cuda_visible_devices",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            PlanError::DuplicateGpu { gpu, first, second } => {
                if first == second {
                    write!(f, "{WORKERS_KEY} names GPU {first:?} twice")?;
                } else {
                    write!(
                        f,
                        "{WORKERS_KEY} names GPU {gpu} twice, as {first:?} and as {second:?}"
                    )?;
                }
                write!(f, ": a GPU can be in one group only")
            }
            PlanError::GroupSizeNotPowerOfTwo { group, size } => write!(
                f,
                "{WORKERS_KEY}: group {} has {size} GPUs; vLLM's tensor parallelism needs a power of two (1, 2, 4 or 8): split it or drop GPUs from it",
                group_text(group)
            ),
            PlanError::GroupGpuDoesNotQualify { group, problem } => write!(
                f,
                "{WORKERS_KEY}: group {} has {}, which cannot mine: {}; remove it from the group",
                group_text(group),
                problem.label(),
                problem.reason
            ),
            PlanError::GroupTooSmall {
                group,
                model,
                group_memory_mib,
                needs_mib,
            } => write!(
                f,
                "{WORKERS_KEY}: group {} holds {} ({} × its smallest GPU), and {model} needs {}: make the group larger (2, 4 or 8 GPUs) or use GPUs with more memory",
                group_text(group),
                gb(*group_memory_mib),
                group.len(),
                gb(*needs_mib)
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// A worker whose port would pass 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortError {
    pub base: u16,
    pub worker: u32,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = u64::from(self.base) + u64::from(self.worker);
        write!(
            f,
            "the vLLM port of worker {} would be {} + {} = {sum}, past the last port, 65535: ",
            self.worker, self.base, self.worker
        )?;
        match u16::MAX.checked_sub(u16::try_from(self.worker).unwrap_or(u16::MAX)) {
            Some(highest) if highest > 0 => write!(
                f,
                "set [mining.extra].vllm_port to {highest} or lower (each worker takes the next port)"
            ),
            _ => write!(f, "run fewer workers"),
        }
    }
}

impl std::error::Error for PortError {}

/// The vLLM port of worker `worker`: `base + worker`.
pub fn worker_port(base: u16, worker: u32) -> Result<u16, PortError> {
    u32::from(base)
        .checked_add(worker)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or(PortError { base, worker })
}

/// The memory a model needs, in MiB: the registry's figure, or
/// [`FALLBACK_MIN_VRAM_GB`] for a model it does not know.
pub fn model_requirement_mib(model: &str) -> u64 {
    gb_to_mib(find(model).map_or(FALLBACK_MIN_VRAM_GB, |spec| spec.min_vram_gb))
}

/// Plans the workers for `model` on `candidates` (see the module docs).
pub fn plan_workers(
    candidates: &[GpuCandidate],
    model: &str,
    setting: &WorkersSetting,
) -> Result<WorkerPlan, PlanError> {
    plan_workers_needing(candidates, model, model_requirement_mib(model), setting)
}

/// [`plan_workers`] for a model that needs `needs_mib` MiB; `model` only
/// names it in messages.
pub fn plan_workers_needing(
    candidates: &[GpuCandidate],
    model: &str,
    needs_mib: u64,
    setting: &WorkersSetting,
) -> Result<WorkerPlan, PlanError> {
    let mut gpus: Vec<&GpuCandidate> = candidates.iter().collect();
    gpus.sort_by_key(|gpu| gpu.index);
    gpus.dedup_by_key(|gpu| gpu.index);
    if gpus.is_empty() {
        return Err(PlanError::NoGpu);
    }
    match setting {
        WorkersSetting::Auto => plan_auto(&gpus, model, needs_mib),
        WorkersSetting::Single => plan_single(&gpus, needs_mib),
        WorkersSetting::Groups(groups) => plan_groups(&gpus, model, needs_mib, groups),
    }
}

/// "9.0" → (9, 0); "10" → (10, 0); anything else → `None`.
fn parse_compute_capability(text: &str) -> Option<(u32, u32)> {
    let text = text.trim();
    let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
    let number = |part: &str| {
        (!part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    Some((number(major)?, number(minor)?))
}

/// Why `gpu` does not qualify, with the order of the check that failed
/// (vendor 0, compute capability 1, memory 2), or `None` if it qualifies.
fn disqualification(gpu: &GpuCandidate) -> Option<(u8, LeftOutReason)> {
    if !gpu.vendor.eq_ignore_ascii_case(REQUIRED_VENDOR) {
        return Some((
            0,
            LeftOutReason::NotNvidia {
                vendor: gpu.vendor.clone(),
            },
        ));
    }
    let required = parse_compute_capability(REQUIRED_COMPUTE_CAPABILITY).unwrap_or((9, 0));
    let cc = gpu
        .compute_capability
        .as_deref()
        .and_then(parse_compute_capability);
    if cc.is_none_or(|cc| cc < required) {
        return Some((
            1,
            LeftOutReason::ComputeCapability {
                found: gpu.compute_capability.clone(),
            },
        ));
    }
    gpu.memory_total_mib
        .is_none()
        .then_some((2, LeftOutReason::MemoryUnknown))
}

/// A qualifying GPU's memory (0 if unknown, which disqualification rules out).
fn memory(gpu: &GpuCandidate) -> u64 {
    gpu.memory_total_mib.unwrap_or(0)
}

/// What a group holds: its size × its smallest member's memory.
fn group_memory(group: &[&GpuCandidate]) -> u64 {
    let smallest = group.iter().map(|gpu| memory(gpu)).min().unwrap_or(0);
    smallest.saturating_mul(group.len() as u64)
}

fn worker(index: usize, group: &[&GpuCandidate], tensor_parallel_size: u32) -> Worker {
    let mut group = group.to_vec();
    group.sort_by_key(|gpu| gpu.index);
    Worker {
        index: index as u32,
        gpus: group.iter().map(|gpu| gpu.index).collect(),
        uuids: group.iter().map(|gpu| gpu.uuid.clone()).collect(),
        tensor_parallel_size,
    }
}

fn plan_auto(gpus: &[&GpuCandidate], model: &str, needs_mib: u64) -> Result<WorkerPlan, PlanError> {
    let mut left_out = Vec::new();
    // Qualifying GPUs by kind (name), kinds in order of their first index.
    let mut kinds: Vec<Vec<&GpuCandidate>> = Vec::new();
    for &gpu in gpus {
        if let Some((_, reason)) = disqualification(gpu) {
            left_out.push(LeftOut::new(gpu, reason));
        } else if let Some(kind) = kinds.iter_mut().find(|kind| kind[0].name == gpu.name) {
            kind.push(gpu);
        } else {
            kinds.push(vec![gpu]);
        }
    }
    if kinds.is_empty() {
        return Err(PlanError::NoQualifyingGpu { left_out });
    }
    let mut groups: Vec<(Vec<&GpuCandidate>, u32)> = Vec::new();
    for kind in &kinds {
        plan_kind(kind, needs_mib, &mut groups, &mut left_out);
    }
    left_out.sort_by_key(|gone| gone.gpu);
    if groups.is_empty() {
        return Err(PlanError::ModelDoesNotFit {
            model: model.to_owned(),
            needs_mib,
            left_out,
        });
    }
    groups.sort_by_key(|(group, _)| group[0].index);
    Ok(WorkerPlan {
        workers: groups
            .iter()
            .enumerate()
            .map(|(i, (group, size))| worker(i, group, *size))
            .collect(),
        left_out,
    })
}

/// Plans one kind of qualifying GPU, sorted by index.
fn plan_kind<'a>(
    kind: &[&'a GpuCandidate],
    needs_mib: u64,
    groups: &mut Vec<(Vec<&'a GpuCandidate>, u32)>,
    left_out: &mut Vec<LeftOut>,
) {
    let fits = |group: &[&GpuCandidate]| group_memory(group) >= needs_mib;
    let chosen = TENSOR_PARALLEL_SIZES
        .into_iter()
        .find(|&size| size as usize <= kind.len() && kind.chunks_exact(size as usize).any(fits));
    let Some(size) = chosen else {
        let smallest = kind.iter().map(|gpu| memory(gpu)).min().unwrap_or(0);
        let needed = TENSOR_PARALLEL_SIZES
            .into_iter()
            .find(|&size| smallest.saturating_mul(u64::from(size)) >= needs_mib);
        for &gpu in kind {
            let reason = match needed {
                Some(group_size) => LeftOutReason::NotEnoughForGroup {
                    group_size,
                    available: kind.len() as u32,
                    needs_mib,
                },
                None => LeftOutReason::BeyondLargestGroup {
                    memory_mib: memory(gpu),
                    largest_group: TENSOR_PARALLEL_SIZES[TENSOR_PARALLEL_SIZES.len() - 1],
                    needs_mib,
                },
            };
            left_out.push(LeftOut::new(gpu, reason));
        }
        return;
    };
    let chunks = kind.chunks_exact(size as usize);
    for &gpu in chunks.remainder() {
        left_out.push(LeftOut::new(
            gpu,
            LeftOutReason::LeftOver {
                group_size: size,
                needs_mib,
            },
        ));
    }
    for group in chunks {
        if fits(group) {
            groups.push((group.to_vec(), size));
            continue;
        }
        for &gpu in group {
            let reason = if size == 1 {
                LeftOutReason::TooSmall {
                    memory_mib: memory(gpu),
                    needs_mib,
                }
            } else {
                LeftOutReason::GroupTooSmall {
                    group_size: size,
                    group_memory_mib: group_memory(group),
                    needs_mib,
                }
            };
            left_out.push(LeftOut::new(gpu, reason));
        }
    }
}

/// Why `gpu` cannot mine alone, with the order of the check that failed.
fn single_problem(gpu: &GpuCandidate, needs_mib: u64) -> Option<(u8, LeftOutReason)> {
    disqualification(gpu).or_else(|| {
        (memory(gpu) < needs_mib).then(|| {
            (
                2,
                LeftOutReason::TooSmall {
                    memory_mib: memory(gpu),
                    needs_mib,
                },
            )
        })
    })
}

fn plan_single(gpus: &[&GpuCandidate], needs_mib: u64) -> Result<WorkerPlan, PlanError> {
    let problems: Vec<(u8, &GpuCandidate, LeftOutReason)> = gpus
        .iter()
        .filter_map(|&gpu| single_problem(gpu, needs_mib).map(|(order, why)| (order, gpu, why)))
        .collect();
    // The most basic problem first, as `detect` reports it; among equals,
    // the lowest index (`min_by_key` keeps the first of equals).
    if let Some((_, gpu, reason)) = problems
        .into_iter()
        .min_by_key(|(order, gpu, _)| (*order, gpu.index))
    {
        return Err(PlanError::SingleGpuCannotMine {
            problem: LeftOut::new(gpu, reason),
            usable: gpus
                .iter()
                .filter(|gpu| single_problem(gpu, needs_mib).is_none())
                .map(|gpu| gpu.index)
                .collect(),
        });
    }
    Ok(WorkerPlan {
        workers: vec![worker(0, gpus, 1)],
        left_out: Vec::new(),
    })
}

/// The candidate an id names: an NVML index, or a UUID compared without case.
fn resolve<'a>(gpus: &[&'a GpuCandidate], id: &str) -> Option<&'a GpuCandidate> {
    let id = id.trim();
    let index = (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .then(|| id.parse::<u32>().ok())
        .flatten();
    gpus.iter().copied().find(|gpu| match index {
        Some(index) => gpu.index == index,
        None => gpu
            .uuid
            .as_deref()
            .is_some_and(|uuid| uuid.eq_ignore_ascii_case(id)),
    })
}

fn plan_groups(
    gpus: &[&GpuCandidate],
    model: &str,
    needs_mib: u64,
    groups: &[Vec<String>],
) -> Result<WorkerPlan, PlanError> {
    if groups.is_empty() {
        return Err(PlanError::NoGroups);
    }
    // Resolve every member first: unknown and repeated GPUs are reported
    // before anything is judged.
    let mut named: Vec<(u32, &str)> = Vec::new();
    let mut resolved: Vec<Vec<&GpuCandidate>> = Vec::new();
    for (number, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(PlanError::EmptyGroup { group: number + 1 });
        }
        let mut members = Vec::new();
        for id in group {
            let gpu = resolve(gpus, id).ok_or_else(|| PlanError::UnknownGpu {
                id: id.trim().to_owned(),
                known: gpus
                    .iter()
                    .map(|gpu| match &gpu.uuid {
                        Some(uuid) => format!("{} ({uuid})", gpu.index),
                        None => gpu.index.to_string(),
                    })
                    .collect(),
            })?;
            if let Some((_, first)) = named.iter().find(|(index, _)| *index == gpu.index) {
                return Err(PlanError::DuplicateGpu {
                    gpu: gpu.index,
                    first: first.trim().to_owned(),
                    second: id.trim().to_owned(),
                });
            }
            named.push((gpu.index, id));
            members.push(gpu);
        }
        resolved.push(members);
    }
    let mut workers = Vec::new();
    for (i, (group, members)) in groups.iter().zip(&resolved).enumerate() {
        let size = members.len();
        if !size.is_power_of_two() {
            return Err(PlanError::GroupSizeNotPowerOfTwo {
                group: group.clone(),
                size,
            });
        }
        let mut sorted = members.clone();
        sorted.sort_by_key(|gpu| gpu.index);
        if let Some((gpu, (_, reason))) = sorted
            .iter()
            .find_map(|gpu| disqualification(gpu).map(|why| (gpu, why)))
        {
            return Err(PlanError::GroupGpuDoesNotQualify {
                group: group.clone(),
                problem: LeftOut::new(gpu, reason),
            });
        }
        let group_memory_mib = group_memory(members);
        if group_memory_mib < needs_mib {
            return Err(PlanError::GroupTooSmall {
                group: group.clone(),
                model: model.to_owned(),
                group_memory_mib,
                needs_mib,
            });
        }
        workers.push(worker(i, members, size as u32));
    }
    let left_out = gpus
        .iter()
        .filter(|gpu| !named.iter().any(|(index, _)| *index == gpu.index))
        .map(|gpu| LeftOut::new(gpu, LeftOutReason::NotInGroups))
        .collect();
    Ok(WorkerPlan { workers, left_out })
}

#[cfg(test)]
mod tests;
