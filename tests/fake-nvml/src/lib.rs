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
//! - `FAKE_NVML_TELEMETRY`: the GPUs' telemetry readings, `;`-separated
//!   entries in GPU index order (a `lost` GPU still takes its slot; a missing
//!   or empty entry is all defaults; more entries than GPUs is an error). Each
//!   entry is `key=value` pairs separated by `,` or spaces, e.g.
//!   `power_mw=412000 energy_mj=5000/7000/100 fan_percent=?`. A value is an
//!   integer (decimal or `0x` hex); `?` makes the query fail with
//!   `NVML_ERROR_NOT_SUPPORTED`, `!` with `NVML_ERROR_UNKNOWN`; `a/b/c` answers
//!   `a`, then `b`, then `c` on every later read (a counter that goes down is
//!   a driver reload). Keys, their symbols, and defaults:
//!
//!   | key | symbol | default |
//!   |---|---|---|
//!   | `power_mw` | `nvmlDeviceGetPowerUsage` | 70000 |
//!   | `energy_mj` | `nvmlDeviceGetTotalEnergyConsumption` | 1000000 |
//!   | `gpu_temp_c` | `nvmlDeviceGetTemperature` (`NVML_TEMPERATURE_GPU`) | 33 |
//!   | `memory_temp_c` | `nvmlDeviceGetFieldValues` (`NVML_FI_DEV_MEMORY_TEMP`) | 38 |
//!   | `fan_percent` | `nvmlDeviceGetFanSpeed_v2` (fan 0; others invalid) | 30 |
//!   | `gpu_util_percent`, `memory_util_percent` | `nvmlDeviceGetUtilizationRates` | 0, 0 |
//!   | `memory_used_mib` | `nvmlDeviceGetMemoryInfo_v2` (`used`; `free` = total − used) | 0 |
//!   | `sm_clock_mhz`, `memory_clock_mhz` | `nvmlDeviceGetClockInfo` (`NVML_CLOCK_SM`, `_MEM`; others not supported) | 345, 1593 |
//!   | `clocks_event_reasons` | `nvmlDeviceGetCurrentClocksThrottleReasons` (and its new name `…ClocksEventReasons`), a bitmask | 0x1 (idle) |
//!   | `ecc_corrected`, `ecc_uncorrected` | `nvmlDeviceGetTotalEccErrors` (`NVML_VOLATILE_ECC`; aggregate not supported) | 0, 0 |
//!   | `pstate` | `nvmlDeviceGetPerformanceState` (0–15, 32 unknown) | 0 |
//!
//!   Readings that one call returns together fail together: `?` on either
//!   utilisation fails `nvmlDeviceGetUtilizationRates`, and on
//!   `memory_used_mib` fails `nvmlDeviceGetMemoryInfo_v2` (total included).
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
//! absent). So this fake exports only what host-gpu's paths need: init,
//! shutdown, the system versions, count, handle by index, name, UUID, compute
//! capability and memory info for the facts, and the telemetry symbols above.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    telemetry: Readings,
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
    let mut gpus = match var("FAKE_NVML_GPUS") {
        Some(spec) => parse_gpus(&spec)?,
        None => parse_gpus(DEFAULT_GPUS).expect("the default GPU list parses"),
    };
    if let Some(spec) = var("FAKE_NVML_TELEMETRY") {
        set_telemetry(&mut gpus, &spec)?;
    }
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
        telemetry: Readings::default(),
    }))
}

/// The telemetry readings, in [`KEYS`] order.
const KEYS: [&str; 14] = [
    "power_mw",
    "energy_mj",
    "gpu_temp_c",
    "memory_temp_c",
    "fan_percent",
    "gpu_util_percent",
    "memory_util_percent",
    "memory_used_mib",
    "sm_clock_mhz",
    "memory_clock_mhz",
    "clocks_event_reasons",
    "ecc_corrected",
    "ecc_uncorrected",
    "pstate",
];
const DEFAULTS: [u64; 14] = [
    70_000, 1_000_000, 33, 38, 30, 0, 0, 0, 345, 1593, 0x1, 0, 0, 0,
];

/// Positions in [`KEYS`].
#[derive(Clone, Copy)]
enum Key {
    PowerMw,
    EnergyMj,
    GpuTempC,
    MemoryTempC,
    FanPercent,
    GpuUtilPercent,
    MemoryUtilPercent,
    MemoryUsedMib,
    SmClockMhz,
    MemoryClockMhz,
    ClocksEventReasons,
    EccCorrected,
    EccUncorrected,
    Pstate,
}

/// What one query answers: values in turn (the last one repeated), or an error.
struct Reading {
    answers: Result<Vec<u64>, NvmlReturn>,
    reads: AtomicUsize,
}

impl Reading {
    fn new(answers: Result<Vec<u64>, NvmlReturn>) -> Self {
        Reading {
            answers,
            reads: AtomicUsize::new(0),
        }
    }

    /// The next answer; each call is one read.
    fn next(&self) -> Result<u64, NvmlReturn> {
        let answers = self.answers.as_ref().map_err(|error| *error)?;
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(answers[read.min(answers.len() - 1)])
    }
}

/// One GPU's telemetry readings, indexed by [`Key`].
struct Readings([Reading; 14]);

impl Default for Readings {
    fn default() -> Self {
        Readings(DEFAULTS.map(|value| Reading::new(Ok(vec![value]))))
    }
}

impl Readings {
    fn next(&self, key: Key) -> Result<u64, NvmlReturn> {
        self.0[key as usize].next()
    }
}

/// Gives each GPU its entry of `FAKE_NVML_TELEMETRY`.
fn set_telemetry(gpus: &mut [Option<Gpu>], spec: &str) -> Result<(), String> {
    let entries: Vec<&str> = spec.split(';').collect();
    if entries.len() > gpus.len() {
        return Err(format!(
            "FAKE_NVML_TELEMETRY has {} entries for {} GPUs",
            entries.len(),
            gpus.len()
        ));
    }
    for (gpu, entry) in gpus.iter_mut().zip(entries) {
        let readings = parse_readings(entry)?;
        if let Some(gpu) = gpu {
            gpu.telemetry = readings;
        }
    }
    Ok(())
}

fn parse_readings(entry: &str) -> Result<Readings, String> {
    let mut readings = Readings::default();
    let pairs = entry
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|pair| !pair.is_empty());
    for pair in pairs {
        let bad = || format!("FAKE_NVML_TELEMETRY: bad reading {pair:?}");
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let position = KEYS.iter().position(|k| *k == key).ok_or_else(bad)?;
        let answers = match value {
            "?" => Err(ERROR_NOT_SUPPORTED),
            "!" => Err(ERROR_UNKNOWN),
            values => Ok(values
                .split('/')
                .map(parse_integer)
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(bad)?),
        };
        readings.0[position] = Reading::new(answers);
    }
    Ok(readings)
}

/// A decimal or `0x` hexadecimal integer.
fn parse_integer(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
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
        let used_mib = match gpu.telemetry.next(Key::MemoryUsedMib) {
            Ok(used) => used.min(mib),
            Err(error) => return error,
        };
        let total = mib * 1024 * 1024;
        let used = used_mib * 1024 * 1024;
        *memory = MemoryV2 {
            version: MEMORY_V2_VERSION,
            total,
            reserved: 0,
            free: total - used,
            used,
        };
        SUCCESS
    })
}

/// Writes `key`'s next reading on `device` to `out`, or fails as configured.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn write_reading<T: TryFrom<u64>>(
    device: DeviceHandle,
    key: Key,
    out: *mut T,
) -> NvmlReturn {
    with_gpu(device, |gpu| match gpu.telemetry.next(key) {
        Err(error) => error,
        // SAFETY: forwarded from the caller.
        Ok(value) => match T::try_from(value) {
            Ok(value) => unsafe { write_out(out, value) },
            Err(_) => ERROR_UNKNOWN,
        },
    })
}

/// # Safety
/// `power` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: DeviceHandle,
    power: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::PowerMw, power) }
}

/// # Safety
/// `energy` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: DeviceHandle,
    energy: *mut c_ulonglong,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::EnergyMj, energy) }
}

/// `NVML_TEMPERATURE_GPU`, the only sensor NVML has.
const TEMPERATURE_GPU: c_uint = 0;

/// # Safety
/// `temp` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: DeviceHandle,
    sensor_type: c_uint,
    temp: *mut c_uint,
) -> NvmlReturn {
    if sensor_type != TEMPERATURE_GPU {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::GpuTempC, temp) }
}

/// # Safety
/// `speed` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: DeviceHandle,
    fan: c_uint,
    speed: *mut c_uint,
) -> NvmlReturn {
    if fan != 0 {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::FanPercent, speed) }
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// # Safety
/// `utilization` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: DeviceHandle,
    utilization: *mut Utilization,
) -> NvmlReturn {
    with_gpu(device, |gpu| {
        let percent = |key| {
            let value = gpu.telemetry.next(key)?;
            c_uint::try_from(value).map_err(|_| ERROR_UNKNOWN)
        };
        match (
            percent(Key::GpuUtilPercent),
            percent(Key::MemoryUtilPercent),
        ) {
            // SAFETY: forwarded from the caller.
            (Ok(gpu), Ok(memory)) => unsafe { write_out(utilization, Utilization { gpu, memory }) },
            (Err(error), _) | (_, Err(error)) => error,
        }
    })
}

/// `nvmlClockType_t`: `NVML_CLOCK_SM` and `NVML_CLOCK_MEM`.
const CLOCK_SM: c_uint = 1;
const CLOCK_MEM: c_uint = 2;

/// # Safety
/// `clock` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: DeviceHandle,
    clock_type: c_uint,
    clock: *mut c_uint,
) -> NvmlReturn {
    let key = match clock_type {
        CLOCK_SM => Key::SmClockMhz,
        CLOCK_MEM => Key::MemoryClockMhz,
        // Graphics and video: configured on no fake GPU.
        0 | 3 => return with_gpu(device, |_| ERROR_NOT_SUPPORTED),
        _ => return ERROR_INVALID_ARGUMENT,
    };
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, key, clock) }
}

/// The name nvml-wrapper 0.13 calls (deprecated in NVML 12.2, still exported).
///
/// # Safety
/// `reasons` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: DeviceHandle,
    reasons: *mut c_ulonglong,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::ClocksEventReasons, reasons) }
}

/// The current name of the same query.
///
/// # Safety
/// `reasons` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    device: DeviceHandle,
    reasons: *mut c_ulonglong,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::ClocksEventReasons, reasons) }
}

/// `nvmlMemoryErrorType_t` and `nvmlEccCounterType_t`.
const MEMORY_ERROR_CORRECTED: c_uint = 0;
const MEMORY_ERROR_UNCORRECTED: c_uint = 1;
const VOLATILE_ECC: c_uint = 0;
const AGGREGATE_ECC: c_uint = 1;

/// # Safety
/// `ecc_counts` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: DeviceHandle,
    error_type: c_uint,
    counter_type: c_uint,
    ecc_counts: *mut c_ulonglong,
) -> NvmlReturn {
    let key = match (error_type, counter_type) {
        (MEMORY_ERROR_CORRECTED, VOLATILE_ECC) => Key::EccCorrected,
        (MEMORY_ERROR_UNCORRECTED, VOLATILE_ECC) => Key::EccUncorrected,
        (MEMORY_ERROR_CORRECTED | MEMORY_ERROR_UNCORRECTED, AGGREGATE_ECC) => {
            return with_gpu(device, |_| ERROR_NOT_SUPPORTED);
        }
        _ => return ERROR_INVALID_ARGUMENT,
    };
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, key, ecc_counts) }
}

/// # Safety
/// `p_state` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPerformanceState(
    device: DeviceHandle,
    p_state: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { write_reading(device, Key::Pstate, p_state) }
}

/// `nvmlValue_t`, the union of a field value (the fake writes only `uiVal`).
#[repr(C)]
pub union Value {
    d_val: f64,
    ui_val: c_uint,
    ull_val: c_ulonglong,
}

/// `nvmlFieldValue_t`.
#[repr(C)]
pub struct FieldValue {
    field_id: c_uint,
    scope_id: c_uint,
    timestamp: i64,
    latency_usec: i64,
    value_type: c_uint,
    nvml_return: NvmlReturn,
    value: Value,
}

/// `NVML_FI_DEV_MEMORY_TEMP`, the one field this fake knows.
const FI_DEV_MEMORY_TEMP: c_uint = 82;
/// `NVML_VALUE_TYPE_UNSIGNED_INT`.
const VALUE_TYPE_UNSIGNED_INT: c_uint = 1;

/// Each requested field gets its own `nvmlReturn`: the memory temperature
/// from the configuration, any other field `NVML_ERROR_NOT_SUPPORTED`.
///
/// # Safety
/// `values` must be null or valid for reads and writes of `values_count`
/// `nvmlFieldValue_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: DeviceHandle,
    values_count: c_int,
    values: *mut FieldValue,
) -> NvmlReturn {
    with_gpu(device, |gpu| {
        let Ok(count) = usize::try_from(values_count) else {
            return ERROR_INVALID_ARGUMENT;
        };
        if values.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: non-null, and the caller vouches for `count` of them.
        let values = unsafe { std::slice::from_raw_parts_mut(values, count) };
        for value in values {
            value.timestamp = 1_700_000_000_000_000;
            value.latency_usec = 0;
            let reading = match value.field_id {
                FI_DEV_MEMORY_TEMP => gpu.telemetry.next(Key::MemoryTempC),
                _ => Err(ERROR_NOT_SUPPORTED),
            };
            match reading.and_then(|v| c_uint::try_from(v).map_err(|_| ERROR_UNKNOWN)) {
                Ok(reading) => {
                    value.value_type = VALUE_TYPE_UNSIGNED_INT;
                    value.nvml_return = SUCCESS;
                    value.value = Value { ui_val: reading };
                }
                Err(error) => value.nvml_return = error,
            }
        }
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
    fn readings_default_parse_and_run_in_turn() {
        let readings =
            parse_readings("power_mw=412000, energy_mj=5/9/2 fan_percent=? pstate=!").unwrap();
        assert_eq!(readings.next(Key::PowerMw), Ok(412_000));
        assert_eq!(readings.next(Key::PowerMw), Ok(412_000));
        let energy: Vec<_> = (0..4).map(|_| readings.next(Key::EnergyMj)).collect();
        assert_eq!(energy, [Ok(5), Ok(9), Ok(2), Ok(2)]);
        assert_eq!(readings.next(Key::FanPercent), Err(ERROR_NOT_SUPPORTED));
        assert_eq!(readings.next(Key::Pstate), Err(ERROR_UNKNOWN));
        assert_eq!(readings.next(Key::ClocksEventReasons), Ok(0x1));
        let hex = parse_readings("clocks_event_reasons=0x244").unwrap();
        assert_eq!(hex.next(Key::ClocksEventReasons), Ok(0x244));
        assert_eq!(parse_readings("").unwrap().next(Key::SmClockMhz), Ok(345));
    }

    #[test]
    fn telemetry_entries_go_to_gpus_in_order() {
        let mut gpus = parse_gpus("A,9.0,1; lost; C,9.0,1").unwrap();
        set_telemetry(&mut gpus, "power_mw=1;power_mw=2").unwrap();
        let power = |i: usize| gpus[i].as_ref().unwrap().telemetry.next(Key::PowerMw);
        assert_eq!((power(0), power(2)), (Ok(1), Ok(70_000)));
        assert!(set_telemetry(&mut gpus, ";;;").is_err());
        assert!(set_telemetry(&mut gpus, "power_mw=x").is_err());
    }

    #[test]
    fn malformed_readings_are_rejected() {
        for entry in [
            "power_mw",
            "watts=3",
            "power_mw=",
            "power_mw=1//2",
            "power_mw=-1",
            "fan_percent=0xzz",
        ] {
            assert!(parse_readings(entry).is_err(), "{entry}");
        }
    }

    #[test]
    fn malformed_entries_are_rejected() {
        assert!(parse_gpus("T4,7.5").is_err());
        assert!(parse_gpus("T4,75,15360").is_err());
        assert!(parse_gpus("T4,7.5,lots").is_err());
        assert!(parse_gpus("").unwrap().is_empty());
    }
}
