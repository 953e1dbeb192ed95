//! Per-GPU telemetry through NVML (nvml-wrapper): power, the energy counter,
//! temperatures, fan, utilisation, memory, clocks, throttle reasons, ECC and
//! the performance state, for `status` and the `gpu-telemetry` import.
//!
//! A sample never fails. Every reading is optional: one the GPU answers
//! `NotSupported` (real SKUs do: the fan of a passive H100 SXM, the memory
//! temperature of a GeForce) or with any other error is `None` and the others
//! are still read. Without a usable NVML the sample has no GPUs and a `note`
//! saying "no telemetry (why)".
//!
//! | Field | NVML (nvml-wrapper 0.13 `Device` method) | DCGM field |
//! |---|---|---|
//! | `power_w` | `nvmlDeviceGetPowerUsage` (`power_usage`, mW) | `DCGM_FI_DEV_POWER_USAGE` |
//! | `energy_mj` | `nvmlDeviceGetTotalEnergyConsumption` (`total_energy_consumption`) | `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` |
//! | `gpu_temp_c` | `nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)` (`temperature`) | `DCGM_FI_DEV_GPU_TEMP` |
//! | `memory_temp_c` | `nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)` (`field_values_for`) | `DCGM_FI_DEV_MEMORY_TEMP` |
//! | `fan_percent` | `nvmlDeviceGetFanSpeed_v2`, fan 0 (`fan_speed(0)`) | `DCGM_FI_DEV_FAN_SPEED` |
//! | `gpu_util_percent`, `memory_util_percent` | `nvmlDeviceGetUtilizationRates` (`utilization_rates`) | `DCGM_FI_DEV_GPU_UTIL`, `DCGM_FI_DEV_MEM_COPY_UTIL` |
//! | `memory_used_mib`, `memory_total_mib` | `nvmlDeviceGetMemoryInfo_v2` (`memory_info`, bytes) | `DCGM_FI_DEV_FB_USED`, `FB_USED + FB_FREE + FB_RESERVED` |
//! | `sm_clock_mhz`, `memory_clock_mhz` | `nvmlDeviceGetClockInfo(NVML_CLOCK_SM / _MEM)` (`clock_info`) | `DCGM_FI_DEV_SM_CLOCK`, `DCGM_FI_DEV_MEM_CLOCK` |
//! | `throttle_reasons` | `nvmlDeviceGetCurrentClocksThrottleReasons` (`current_throttle_reasons_strict`) | `DCGM_FI_DEV_CLOCKS_EVENT_REASONS` |
//! | `ecc_volatile_corrected`, `_uncorrected` | `nvmlDeviceGetTotalEccErrors(…, NVML_VOLATILE_ECC)` (`total_ecc_errors`) | `DCGM_FI_DEV_ECC_SBE_VOL_TOTAL`, `DCGM_FI_DEV_ECC_DBE_VOL_TOTAL` |
//! | `performance_state` | `nvmlDeviceGetPerformanceState` (`performance_state`) | `DCGM_FI_DEV_PSTATE` |
//!
//! Throttle reasons are named as nvidia-smi's `clocks_event_reasons.*` query
//! fields are; see [`THROTTLE_REASONS`].

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PerformanceState, TemperatureSensor,
};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::{Bits, NvmlError};
use nvml_wrapper::struct_wrappers::device::MemoryInfo;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use nvml_wrapper::{Device, Nvml};
use serde::{Deserialize, Serialize};

/// One telemetry sample of the host's (selected) NVIDIA GPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// When the sample was taken, in seconds since the Unix epoch.
    pub sampled_at: f64,
    /// The selected GPUs NVML could open, in NVML index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuTelemetry>,
    /// "no telemetry (why)" without a usable NVML; otherwise which GPUs could
    /// not be opened and which selected GPUs do not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One GPU's readings. `None` is a reading this GPU did not give (not
/// supported on the SKU, or an error); absent from JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuTelemetry {
    /// NVML index (the order `nvidia-smi` lists).
    pub index: u32,
    /// "GPU-…".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// "NVIDIA H100 80GB HBM3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Board power draw, watts (NVML reports milliwatts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Energy used since the driver was last loaded, millijoules (Volta and
    /// newer). A decrease between samples is a reset: see [`energy_since`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_mj: Option<u64>,
    /// GPU die temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_temp_c: Option<u32>,
    /// Memory (HBM) temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_temp_c: Option<u32>,
    /// Fan 0's speed as a percentage of its maximum (passive boards: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_percent: Option<u32>,
    /// Share of the last sample period a kernel ran, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util_percent: Option<u32>,
    /// Share of the last sample period memory was read or written, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_util_percent: Option<u32>,
    /// Memory allocated, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_mib: Option<u64>,
    /// Memory installed, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_mib: Option<u64>,
    /// Current SM clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    /// Current memory clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
    /// Why clocks are held down now, by name ([`THROTTLE_REASONS`]); empty is
    /// "not held down".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<Vec<String>>,
    /// Corrected (single-bit) ECC errors since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_corrected: Option<u64>,
    /// Uncorrected (double-bit) ECC errors since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_uncorrected: Option<u64>,
    /// "P0" (maximum performance) to "P15" (minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_state: Option<String>,
}

/// NVML's clocks-event (throttle) reason bits and their names, as nvidia-smi's
/// `--query-gpu=clocks_event_reasons.<name>` fields and DCGM's
/// `DCGM_FI_DEV_CLOCKS_EVENT_REASONS` bits (`nvmlClocksEventReason*`).
/// `applications_clocks_setting` is also NVML's `UserDefinedClocks`. A bit not
/// listed is named `unknown_0x…`.
pub const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// The names of the reasons set in an NVML clocks-event bitmask, lowest bit
/// first.
pub fn throttle_reason_names(bits: u64) -> Vec<String> {
    (0..u64::BITS)
        .map(|shift| 1u64 << shift)
        .filter(|bit| bits & bit != 0)
        .map(
            |bit| match THROTTLE_REASONS.iter().find(|(known, _)| *known == bit) {
                Some((_, name)) => (*name).to_owned(),
                None => format!("unknown_{bit:#x}"),
            },
        )
        .collect()
}

/// "P0".."P15" for NVML's performance states 0 to 15; `None` for
/// `NVML_PSTATE_UNKNOWN` (32) or anything else.
pub fn pstate_name(state: u32) -> Option<String> {
    (state <= 15).then(|| format!("P{state}"))
}

/// The energy used between two readings of the energy counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnergyDelta {
    /// Millijoules used. After a reset this is what was counted since the
    /// reset, a lower bound: what was used before it, since `previous`, is lost.
    pub used_mj: u64,
    /// The counter went down: the driver was reloaded between the readings.
    pub reset: bool,
}

impl EnergyDelta {
    pub fn joules(&self) -> f64 {
        self.used_mj as f64 / 1000.0
    }

    pub fn kwh(&self) -> f64 {
        self.used_mj as f64 / 3.6e9
    }
}

/// The energy used from `previous_mj` to `now_mj`, two readings of one GPU's
/// `energy_mj`. A decrease is a counter reset (the driver was reloaded, which
/// starts the counter at zero), so the energy since is `now_mj`.
pub fn energy_since(previous_mj: u64, now_mj: u64) -> EnergyDelta {
    match now_mj.checked_sub(previous_mj) {
        Some(used_mj) => EnergyDelta {
            used_mj,
            reset: false,
        },
        None => EnergyDelta {
            used_mj: now_mj,
            reset: true,
        },
    }
}

/// A telemetry source holding one initialised NVML, for repeated samples.
#[derive(Debug)]
pub struct Sampler {
    nvml: Result<Nvml, String>,
}

impl Sampler {
    /// Loads NVML from `lib_path`, else `$JARVIS_NVML_LIBRARY`, else the
    /// system's library. Never fails: without NVML every sample says why.
    pub fn open(lib_path: Option<&Path>) -> Sampler {
        Sampler {
            nvml: crate::nvml::open(lib_path),
        }
    }

    /// Samples the GPUs in `selection` (NVML indexes or UUIDs, as
    /// `cuda_visible_devices` takes them), or every GPU for `None`.
    pub fn sample(&self, selection: Option<&[String]>) -> Telemetry {
        self.nvml
            .as_ref()
            .map_err(String::clone)
            .and_then(|nvml| sample_with(nvml, selection))
            .unwrap_or_else(|reason| no_telemetry(&reason))
    }
}

/// Samples the GPUs in `selection` (NVML indexes or UUIDs), or every GPU for
/// `None`, through one NVML kept for the life of the process: it is loaded
/// (from `$JARVIS_NVML_LIBRARY`, else the system's library) by the first call
/// that succeeds, so repeated samples pay for loading NVML once; a failure is
/// not kept, and the next call tries again.
pub fn sample(selection: Option<&[String]>) -> Telemetry {
    try_sample(selection).unwrap_or_else(|reason| no_telemetry(&reason))
}

/// [`sample`], with "no usable NVML" as the error (why: the library could not
/// be loaded or initialised, or could not count GPUs) instead of a sample
/// whose note says so. The `gpu-telemetry` import tells the two apart.
pub fn try_sample(selection: Option<&[String]>) -> Result<Telemetry, String> {
    sample_with(shared_nvml()?, selection)
}

fn shared_nvml() -> Result<&'static Nvml, String> {
    static NVML: OnceLock<Nvml> = OnceLock::new();
    static OPENING: Mutex<()> = Mutex::new(());
    if let Some(nvml) = NVML.get() {
        return Ok(nvml);
    }
    let _one_at_a_time = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(nvml) = NVML.get() {
        return Ok(nvml);
    }
    let nvml = crate::nvml::open(None)?;
    Ok(NVML.get_or_init(|| nvml))
}

fn no_telemetry(reason: &str) -> Telemetry {
    Telemetry {
        sampled_at: now(),
        gpus: Vec::new(),
        note: Some(format!("no telemetry ({reason})")),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// One entry of a selection: an index, else a UUID.
enum Wanted<'a> {
    Index(u32),
    Uuid(&'a str),
}

impl Wanted<'_> {
    fn is(&self, index: u32, uuid: Option<&str>) -> bool {
        match self {
            Wanted::Index(wanted) => *wanted == index,
            Wanted::Uuid(wanted) => uuid.is_some_and(|uuid| uuid.eq_ignore_ascii_case(wanted)),
        }
    }
}

/// The sample, or why NVML is not usable (it cannot count GPUs).
fn sample_with(nvml: &Nvml, selection: Option<&[String]>) -> Result<Telemetry, String> {
    let sampled_at = now();
    let wanted: Option<Vec<(&str, Wanted)>> = selection.map(|ids| {
        ids.iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
            .map(|id| match id.parse() {
                Ok(index) => (id, Wanted::Index(index)),
                Err(_) => (id, Wanted::Uuid(id)),
            })
            .collect()
    });
    let count = nvml
        .device_count()
        .map_err(|error| format!("NVML could not count GPUs: {error}"))?;
    let mut matched = vec![false; wanted.as_ref().map_or(0, Vec::len)];
    let needs_uuid = wanted
        .iter()
        .flatten()
        .any(|(_, wanted)| matches!(wanted, Wanted::Uuid(_)));
    let mut gpus = Vec::new();
    let mut lost = Vec::new();
    for index in 0..count {
        let by_index = wanted.as_ref().is_none_or(|wanted| {
            wanted
                .iter()
                .any(|(_, wanted)| matches!(wanted, Wanted::Index(i) if *i == index))
        });
        if !by_index && !needs_uuid {
            continue;
        }
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                lost.push((index, error));
                continue;
            }
        };
        let uuid = device.uuid().ok();
        if let Some(wanted) = &wanted {
            let mut selected = false;
            for (seen, (_, wanted)) in matched.iter_mut().zip(wanted) {
                if wanted.is(index, uuid.as_deref()) {
                    *seen = true;
                    selected = true;
                }
            }
            if !selected {
                continue;
            }
        }
        gpus.push(read_gpu(index, uuid, &device));
    }
    let mut notes = Vec::new();
    // A GPU that could not be opened matters if it was (or may have been,
    // by a UUID no GPU answered to) selected.
    let unmatched_uuid = wanted
        .iter()
        .flatten()
        .zip(&matched)
        .any(|((_, wanted), seen)| !seen && matches!(wanted, Wanted::Uuid(_)));
    let lost: Vec<String> = lost
        .into_iter()
        .filter(|(index, _)| {
            unmatched_uuid
                || wanted.as_ref().is_none_or(|wanted| {
                    wanted
                        .iter()
                        .any(|(_, w)| matches!(w, Wanted::Index(i) if i == index))
                })
        })
        .map(|(index, error)| format!("GPU {index}: {error}"))
        .collect();
    if !lost.is_empty() {
        notes.push(format!("NVML could not open {}", lost.join("; ")));
    }
    let missing: Vec<&str> = wanted
        .iter()
        .flatten()
        .zip(&matched)
        .filter(|((_, wanted), seen)| match wanted {
            // An index NVML could not open is already in the note.
            Wanted::Index(index) => *index >= count,
            Wanted::Uuid(_) => !**seen,
        })
        .map(|((id, _), _)| *id)
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "no GPU {} among the {count} NVML lists",
            missing.join(", ")
        ));
    }
    Ok(Telemetry {
        sampled_at,
        gpus,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// Every reading of one GPU, each query made once; a failed query is `None`.
fn read_gpu(index: u32, uuid: Option<String>, device: &Device) -> GpuTelemetry {
    let utilization = device.utilization_rates().ok();
    let memory = device.memory_info().ok();
    let mib = |bytes: u64| bytes / (1024 * 1024);
    GpuTelemetry {
        index,
        uuid,
        name: device.name().ok(),
        power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
        energy_mj: device.total_energy_consumption().ok(),
        gpu_temp_c: device.temperature(TemperatureSensor::Gpu).ok(),
        memory_temp_c: memory_temperature(device),
        fan_percent: device.fan_speed(0).ok(),
        gpu_util_percent: utilization.as_ref().map(|u| u.gpu),
        memory_util_percent: utilization.as_ref().map(|u| u.memory),
        memory_used_mib: memory.as_ref().map(|m: &MemoryInfo| mib(m.used)),
        memory_total_mib: memory.as_ref().map(|m| mib(m.total)),
        sm_clock_mhz: device.clock_info(Clock::SM).ok(),
        memory_clock_mhz: device.clock_info(Clock::Memory).ok(),
        throttle_reasons: throttle_bits(device).map(throttle_reason_names),
        ecc_volatile_corrected: device
            .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
            .ok(),
        ecc_volatile_uncorrected: device
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .ok(),
        performance_state: device
            .performance_state()
            .ok()
            .and_then(|state| pstate_name(performance_state_number(state))),
    }
}

/// The raw clocks-event bitmask, unknown bits included (nvml-wrapper's
/// non-strict method drops them; the strict one hands them back in its error).
fn throttle_bits(device: &Device) -> Option<u64> {
    match device.current_throttle_reasons_strict() {
        Ok(reasons) => Some(reasons.bits()),
        Err(NvmlError::IncorrectBits(Bits::U64(bits))) => Some(bits),
        Err(_) => None,
    }
}

/// `NVML_FI_DEV_MEMORY_TEMP` through `nvmlDeviceGetFieldValues`, in °C.
fn memory_temperature(device: &Device) -> Option<u32> {
    let mut samples = device
        .field_values_for(&[FieldId(NVML_FI_DEV_MEMORY_TEMP)])
        .ok()?;
    match samples.pop()?.ok()?.value.ok()? {
        SampleValue::U32(celsius) => Some(celsius),
        SampleValue::U64(celsius) => u32::try_from(celsius).ok(),
        SampleValue::I64(celsius) => u32::try_from(celsius).ok(),
        SampleValue::F64(celsius) if celsius.is_finite() && celsius >= 0.0 => {
            Some(celsius.round() as u32)
        }
        SampleValue::F64(_) => None,
    }
}

fn performance_state_number(state: PerformanceState) -> u32 {
    use PerformanceState::*;
    match state {
        Zero => 0,
        One => 1,
        Two => 2,
        Three => 3,
        Four => 4,
        Five => 5,
        Six => 6,
        Seven => 7,
        Eight => 8,
        Nine => 9,
        Ten => 10,
        Eleven => 11,
        Twelve => 12,
        Thirteen => 13,
        Fourteen => 14,
        Fifteen => 15,
        Unknown => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_bits_become_names_lowest_first() {
        assert!(throttle_reason_names(0).is_empty());
        assert_eq!(throttle_reason_names(0x1), ["gpu_idle"]);
        assert_eq!(
            throttle_reason_names(0x4 | 0x20 | 0x40),
            ["sw_power_cap", "sw_thermal_slowdown", "hw_thermal_slowdown"]
        );
        assert_eq!(
            throttle_reason_names(0x1ff),
            [
                "gpu_idle",
                "applications_clocks_setting",
                "sw_power_cap",
                "hw_slowdown",
                "sync_boost",
                "sw_thermal_slowdown",
                "hw_thermal_slowdown",
                "hw_power_brake_slowdown",
                "display_clock_setting",
            ]
        );
    }

    #[test]
    fn unknown_throttle_bits_keep_their_value() {
        assert_eq!(
            throttle_reason_names(0x8 | 0x200 | (1 << 63)),
            ["hw_slowdown", "unknown_0x200", "unknown_0x8000000000000000"]
        );
    }

    #[test]
    fn throttle_names_match_nvml_wrapper_bits() {
        use nvml_wrapper::bitmasks::device::ThrottleReasons as R;
        let pairs = [
            (R::GPU_IDLE, "gpu_idle"),
            (
                R::APPLICATIONS_CLOCKS_SETTING,
                "applications_clocks_setting",
            ),
            (R::SW_POWER_CAP, "sw_power_cap"),
            (R::HW_SLOWDOWN, "hw_slowdown"),
            (R::SYNC_BOOST, "sync_boost"),
            (R::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
            (R::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
            (R::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
            (R::DISPLAY_CLOCK_SETTING, "display_clock_setting"),
        ];
        for (reason, name) in pairs {
            assert_eq!(throttle_reason_names(reason.bits()), [name]);
        }
    }

    #[test]
    fn pstates_are_p0_to_p15() {
        assert_eq!(pstate_name(0).as_deref(), Some("P0"));
        assert_eq!(pstate_name(8).as_deref(), Some("P8"));
        assert_eq!(pstate_name(15).as_deref(), Some("P15"));
        assert_eq!(pstate_name(16), None);
        assert_eq!(pstate_name(32), None);
        assert_eq!(performance_state_number(PerformanceState::Fifteen), 15);
        assert_eq!(
            pstate_name(performance_state_number(PerformanceState::Unknown)),
            None
        );
    }

    #[test]
    fn energy_counts_up_and_a_decrease_is_a_reset() {
        assert_eq!(
            energy_since(1_000, 4_500),
            EnergyDelta {
                used_mj: 3_500,
                reset: false
            }
        );
        assert_eq!(
            energy_since(7_000, 7_000),
            EnergyDelta {
                used_mj: 0,
                reset: false
            }
        );
        // Driver reloaded: the counter restarted from zero and now reads 250.
        assert_eq!(
            energy_since(9_000_000, 250),
            EnergyDelta {
                used_mj: 250,
                reset: true
            }
        );
        assert_eq!(energy_since(u64::MAX, 0).used_mj, 0);
        assert_eq!(energy_since(0, u64::MAX).used_mj, u64::MAX);
    }

    #[test]
    fn energy_units() {
        let delta = energy_since(0, 3_600_000_000);
        assert_eq!(delta.joules(), 3_600_000.0);
        assert_eq!(delta.kwh(), 1.0);
    }

    #[test]
    fn absent_readings_are_absent_from_json() {
        let telemetry = Telemetry {
            sampled_at: 1.5,
            gpus: vec![GpuTelemetry {
                index: 3,
                power_w: Some(412.5),
                throttle_reasons: Some(vec![]),
                ..GpuTelemetry::default()
            }],
            note: None,
        };
        let json = serde_json::to_string(&telemetry).unwrap();
        assert_eq!(
            json,
            r#"{"sampled_at":1.5,"gpus":[{"index":3,"power_w":412.5,"throttle_reasons":[]}]}"#
        );
        assert_eq!(serde_json::from_str::<Telemetry>(&json).unwrap(), telemetry);
    }

    #[test]
    fn a_missing_library_is_no_telemetry_with_the_reason() {
        let telemetry =
            Sampler::open(Some(Path::new("/nonexistent/libnvidia-ml.so.1"))).sample(None);
        assert!(telemetry.gpus.is_empty());
        let note = telemetry.note.unwrap();
        assert!(
            note.starts_with(
                "no telemetry (NVIDIA driver library /nonexistent/libnvidia-ml.so.1 could not be loaded ("
            ) && note.ends_with("))"),
            "{note}"
        );
        assert!(telemetry.sampled_at > 1.7e9);
    }
}
