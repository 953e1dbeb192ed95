//! An ABI-compatible fake `libnvidia-ml.so.1`, so NVML fact gathering can be
//! tested through the real nvml-wrapper on machines without a GPU.
//!
//! Build it (`cargo build -p fake-nvml`), copy or link `libfake_nvml.so` to a
//! file named `libnvidia-ml.so.1`, and point `JARVIS_NVML_LIBRARY` (or
//! nvml-wrapper's `lib_path`) at it.
//!
//! # Configuration (environment, read at `nvmlInit_v2`)
//!
//! - `FAKE_NVML_GPUS`: the GPUs, `;`-separated, each `name,cc,mib[,uuid]`,
//!   e.g. `NVIDIA L4,8.9,23034;NVIDIA A100-SXM4-80GB,8.0,81920,GPU-1234`.
//!   A field written `?` makes its query fail with `NVML_ERROR_NOT_SUPPORTED`;
//!   an entry written `lost` makes getting that GPU's handle fail with
//!   `NVML_ERROR_GPU_IS_LOST`. A missing uuid becomes
//!   `GPU-fa4e0000-0000-4000-8000-<index, 12 digits>`. An empty value means no
//!   GPUs. Unset: two "NVIDIA H100 80GB HBM3" (cc 9.0, 81559 MiB) then one
//!   "NVIDIA GeForce RTX 4090" (cc 8.9, 24564 MiB).
//! - `FAKE_NVML_DRIVER_VERSION`: default `550.54.15`.
//! - `FAKE_NVML_CUDA_VERSION`: the integer NVML reports, default `12040` (12.4).
//! - `FAKE_NVML_INIT_FAIL=1`: `nvmlInit_v2` returns
//!   `NVML_ERROR_DRIVER_NOT_LOADED`.
//!
//! An unparsable configuration makes `nvmlInit_v2` print why to stderr and
//! return `NVML_ERROR_UNKNOWN`. Until init succeeds every query returns
//! `NVML_ERROR_UNINITIALIZED`, as the real library does.
//!
//! # Exported symbols
//!
//! nvml-wrapper's `NvmlLib::new` looks up every NVML symbol when it loads the
//! library but keeps a missing one as an error: calling a wrapper method whose
//! symbol is absent returns `NvmlError::FailedToLoadSymbol`, except
//! `nvmlShutdown`, which `Drop for Nvml` calls unconditionally (it panics if
//! absent). So this fake exports only what host-gpu's path needs: init,
//! shutdown, the system versions, count, handle by index, name, UUID, compute
//! capability and memory info.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::{Mutex, PoisonError};

/// `nvmlReturn_t`.
type NvmlReturn = c_uint;
/// `nvmlDevice_t`, an opaque handle; here, the GPU index plus one.
type DeviceHandle = *mut c_void;

const SUCCESS: NvmlReturn = 0;
const ERROR_UNINITIALIZED: NvmlReturn = 1;
const ERROR_INVALID_ARGUMENT: NvmlReturn = 2;
const ERROR_NOT_SUPPORTED: NvmlReturn = 3;
const ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
const ERROR_DRIVER_NOT_LOADED: NvmlReturn = 9;
const ERROR_GPU_IS_LOST: NvmlReturn = 15;
const ERROR_ARGUMENT_VERSION_MISMATCH: NvmlReturn = 25;
const ERROR_UNKNOWN: NvmlReturn = 999;

const DEFAULT_GPUS: &str = "NVIDIA H100 80GB HBM3,9.0,81559;\
                            NVIDIA H100 80GB HBM3,9.0,81559;\
                            NVIDIA GeForce RTX 4090,8.9,24564";
const DEFAULT_DRIVER_VERSION: &str = "550.54.15";
const DEFAULT_CUDA_VERSION: c_int = 12040;

/// One configured GPU; a `None` field is "not supported" on it.
struct Gpu {
    name: Option<String>,
    compute_capability: Option<(c_int, c_int)>,
    memory_mib: Option<u64>,
    uuid: Option<String>,
}

struct Config {
    /// `None` is a GPU that has fallen off the bus.
    gpus: Vec<Option<Gpu>>,
    driver_version: String,
    cuda_version: c_int,
}

/// NVML counts `nvmlInit` calls; the configuration lives until the last
/// `nvmlShutdown`.
struct State {
    inits: u32,
    config: Option<Config>,
}

static STATE: Mutex<State> = Mutex::new(State {
    inits: 0,
    config: None,
});

fn lock_state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn config_from_env() -> Result<Config, String> {
    let var = |name: &str| std::env::var(name).ok();
    let gpus = match var("FAKE_NVML_GPUS") {
        Some(spec) => parse_gpus(&spec)?,
        None => parse_gpus(DEFAULT_GPUS).expect("the default GPU list parses"),
    };
    let cuda_version = match var("FAKE_NVML_CUDA_VERSION") {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("FAKE_NVML_CUDA_VERSION {text:?} is not an integer"))?,
        None => DEFAULT_CUDA_VERSION,
    };
    Ok(Config {
        gpus,
        driver_version: var("FAKE_NVML_DRIVER_VERSION")
            .unwrap_or_else(|| DEFAULT_DRIVER_VERSION.into()),
        cuda_version,
    })
}

fn parse_gpus(spec: &str) -> Result<Vec<Option<Gpu>>, String> {
    spec.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| parse_gpu(index, entry))
        .collect()
}

fn parse_gpu(index: usize, entry: &str) -> Result<Option<Gpu>, String> {
    if entry == "lost" {
        return Ok(None);
    }
    let fields: Vec<&str> = entry.split(',').map(str::trim).collect();
    let (name, cc, mib, uuid) = match fields[..] {
        [name, cc, mib] => (name, cc, mib, None),
        [name, cc, mib, uuid] => (name, cc, mib, Some(uuid)),
        _ => {
            return Err(format!(
                "FAKE_NVML_GPUS entry {entry:?} is not name,cc,mib[,uuid]"
            ));
        }
    };
    let bad = |what: &str| format!("FAKE_NVML_GPUS entry {entry:?}: bad {what}");
    let compute_capability = supported(cc)
        .map(|cc| {
            let (major, minor) = cc.split_once('.').ok_or_else(|| bad("cc"))?;
            Ok::<_, String>((
                major.parse().map_err(|_| bad("cc"))?,
                minor.parse().map_err(|_| bad("cc"))?,
            ))
        })
        .transpose()?;
    let memory_mib = supported(mib)
        .map(|mib| mib.parse().map_err(|_| bad("mib")))
        .transpose()?;
    let uuid = match uuid {
        Some(uuid) => supported(uuid).map(str::to_owned),
        None => Some(format!("GPU-fa4e0000-0000-4000-8000-{index:012}")),
    };
    Ok(Some(Gpu {
        name: supported(name).map(str::to_owned),
        compute_capability,
        memory_mib,
        uuid,
    }))
}

/// `?` marks a field whose query the fake reports as not supported.
fn supported(field: &str) -> Option<&str> {
    (field != "?").then_some(field)
}

/// Runs `query` against the configuration, or fails as uninitialised NVML does.
fn with_config(query: impl FnOnce(&Config) -> NvmlReturn) -> NvmlReturn {
    match &lock_state().config {
        Some(config) => query(config),
        None => ERROR_UNINITIALIZED,
    }
}

/// Runs `query` against the GPU behind `device`.
fn with_gpu(device: DeviceHandle, query: impl FnOnce(&Gpu) -> NvmlReturn) -> NvmlReturn {
    with_config(|config| {
        let gpu = device
            .addr()
            .checked_sub(1)
            .and_then(|i| config.gpus.get(i));
        match gpu {
            Some(Some(gpu)) => query(gpu),
            Some(None) => ERROR_GPU_IS_LOST,
            None => ERROR_INVALID_ARGUMENT,
        }
    })
}

/// Copies `value` and a NUL into the caller's `length`-byte buffer.
///
/// # Safety
/// `buffer` must be null or valid for `length` bytes of writes.
unsafe fn write_c_string(value: Option<&str>, buffer: *mut c_char, length: c_uint) -> NvmlReturn {
    let Some(value) = value else {
        return ERROR_NOT_SUPPORTED;
    };
    if buffer.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    if value.len() >= length as usize {
        return ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: the caller vouches for `length` bytes; value.len() + 1 <= length.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr().cast(), buffer, value.len());
        buffer.add(value.len()).write(0);
    }
    SUCCESS
}

/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn write_out<T>(out: *mut T, value: T) -> NvmlReturn {
    if out.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and the caller vouches for it.
    unsafe { out.write(value) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    if std::env::var_os("FAKE_NVML_INIT_FAIL").is_some_and(|v| v == "1") {
        return ERROR_DRIVER_NOT_LOADED;
    }
    let mut state = lock_state();
    if state.config.is_none() {
        match config_from_env() {
            Ok(config) => state.config = Some(config),
            Err(reason) => {
                eprintln!("fake-nvml: {reason}");
                return ERROR_UNKNOWN;
            }
        }
    }
    state.inits += 1;
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    let mut state = lock_state();
    if state.inits == 0 {
        return ERROR_UNINITIALIZED;
    }
    state.inits -= 1;
    if state.inits == 0 {
        state.config = None;
    }
    SUCCESS
}

/// # Safety
/// `version` must be null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_config(|config| unsafe { write_c_string(Some(&config.driver_version), version, length) })
}

/// # Safety
/// `cuda_driver_version` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(
    cuda_driver_version: *mut c_int,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_config(|config| unsafe { write_out(cuda_driver_version, config.cuda_version) })
}

/// # Safety
/// `device_count` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(device_count: *mut c_uint) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_config(|config| unsafe { write_out(device_count, config.gpus.len() as c_uint) })
}

/// # Safety
/// `device` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut DeviceHandle,
) -> NvmlReturn {
    with_config(|config| match config.gpus.get(index as usize) {
        // SAFETY: forwarded from the caller.
        Some(Some(_)) => unsafe {
            write_out(device, std::ptr::without_provenance_mut(index as usize + 1))
        },
        Some(None) => ERROR_GPU_IS_LOST,
        None => ERROR_INVALID_ARGUMENT,
    })
}

/// # Safety
/// `name` must be null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: DeviceHandle,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |gpu| unsafe {
        write_c_string(gpu.name.as_deref(), name, length)
    })
}

/// # Safety
/// `uuid` must be null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: DeviceHandle,
    uuid: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |gpu| unsafe {
        write_c_string(gpu.uuid.as_deref(), uuid, length)
    })
}

/// # Safety
/// `major` and `minor` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: DeviceHandle,
    major: *mut c_int,
    minor: *mut c_int,
) -> NvmlReturn {
    with_gpu(device, |gpu| match gpu.compute_capability {
        None => ERROR_NOT_SUPPORTED,
        _ if major.is_null() || minor.is_null() => ERROR_INVALID_ARGUMENT,
        // SAFETY: non-null, and the caller vouches for them.
        Some((cc_major, cc_minor)) => unsafe {
            major.write(cc_major);
            minor.write(cc_minor);
            SUCCESS
        },
    })
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

/// `NVML_STRUCT_VERSION(Memory, 2)`: the struct size with the version in the top byte.
const MEMORY_V2_VERSION: c_uint = (size_of::<MemoryV2>() | (2 << 24)) as c_uint;

/// # Safety
/// `memory` must be null or valid for reads and writes of `nvmlMemory_v2_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: DeviceHandle,
    memory: *mut MemoryV2,
) -> NvmlReturn {
    with_gpu(device, |gpu| {
        let Some(mib) = gpu.memory_mib else {
            return ERROR_NOT_SUPPORTED;
        };
        if memory.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: non-null, and the caller vouches for it.
        let memory = unsafe { &mut *memory };
        // Real NVML rejects a struct whose version field it does not know.
        if memory.version != MEMORY_V2_VERSION {
            return ERROR_ARGUMENT_VERSION_MISMATCH;
        }
        let total = mib * 1024 * 1024;
        *memory = MemoryV2 {
            version: MEMORY_V2_VERSION,
            total,
            reserved: 0,
            free: total,
            used: 0,
        };
        SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_is_two_h100s_and_a_4090() {
        let gpus = parse_gpus(DEFAULT_GPUS).unwrap();
        let names: Vec<_> = gpus
            .iter()
            .map(|g| g.as_ref().unwrap().name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "NVIDIA H100 80GB HBM3",
                "NVIDIA H100 80GB HBM3",
                "NVIDIA GeForce RTX 4090"
            ]
        );
        let rtx = gpus[2].as_ref().unwrap();
        assert_eq!(rtx.compute_capability, Some((8, 9)));
        assert_eq!(rtx.memory_mib, Some(24_564));
        assert_eq!(
            rtx.uuid.as_deref(),
            Some("GPU-fa4e0000-0000-4000-8000-000000000002")
        );
    }

    #[test]
    fn question_marks_and_lost_entries() {
        let gpus = parse_gpus("lost; T4,?,15360,?").unwrap();
        assert!(gpus[0].is_none());
        let t4 = gpus[1].as_ref().unwrap();
        assert_eq!((t4.compute_capability, t4.memory_mib), (None, Some(15_360)));
        assert!(t4.uuid.is_none());
    }

    #[test]
    fn malformed_entries_are_rejected() {
        assert!(parse_gpus("T4,7.5").is_err());
        assert!(parse_gpus("T4,75,15360").is_err());
        assert!(parse_gpus("T4,7.5,lots").is_err());
        assert!(parse_gpus("").unwrap().is_empty());
    }
}
