//! The `gpu-telemetry` import: NVML readings (host-gpu's sampler) of the
//! GPUs this provider may see, and of no other. Those are the GPUs `detect`'s
//! facts list: the policy's `gpus` grant, narrowed by the user's
//! `[mining.extra].cuda_visible_devices`. What the answer may carry, bit by
//! bit, is listed in docs/security.md ("GPU telemetry").
//!
//! - NVML is asked only about the GPUs the grant or the selection names
//!   (every GPU only when neither names any, and then every GPU is
//!   visible); what it answers is narrowed again, GPU by GPU, by the same
//!   two checks `detect`'s facts pass.
//! - A GPU outside the grant, one that does not exist and one NVML cannot
//!   open all read the same: absent from the list. No count, note or error
//!   names them.
//! - A provider whose grant (or the user's selection) names no GPU gets an
//!   empty list without NVML being asked, so it cannot tell a host with
//!   NVML from one without.
//! - No usable NVML is `unavailable` with [`NO_NVML`], the same words
//!   whatever the cause: no library path, driver message or GPU number.

use super::CallHost;
use super::context::GpuTelemetry;
use crate::bindings::openjarvis::mining::gpu_telemetry::{GpuReading, Host};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::Request;

/// What a provider is told when the host has no usable NVML.
pub const NO_NVML: &str = "no GPU telemetry on this host: NVIDIA's NVML library is missing or did not start (`jarvis mine doctor` shows why)";

impl Host for CallHost {
    fn sample(&mut self) -> Result<Vec<GpuReading>, Error> {
        self.privileged::<GpuTelemetry, _>("gpu-telemetry.sample", |gate| {
            let wanted = gate.gpus_to_read();
            let target = match wanted.as_deref() {
                None => "gpus=all".to_owned(),
                Some([]) => "gpus=none".to_owned(),
                Some(ids) => format!("gpus={}", ids.join(",")),
            };
            let view = gate.permit(Request::Own { target: &target })?;
            if wanted.as_ref().is_some_and(Vec::is_empty) {
                return Ok(Vec::new());
            }
            let telemetry =
                host_gpu::telemetry::try_sample(wanted.as_deref()).map_err(|reason| {
                    tracing::debug!("gpu-telemetry.sample: no NVML: {reason}");
                    Error::Unavailable(NO_NVML.to_owned())
                })?;
            Ok(telemetry
                .gpus
                .into_iter()
                .filter(|gpu| view.sees(gpu.index, gpu.uuid.as_deref()))
                .map(reading)
                .collect())
        })
    }
}

/// One GPU's readings as the guest receives them.
fn reading(gpu: host_gpu::telemetry::GpuTelemetry) -> GpuReading {
    GpuReading {
        index: gpu.index,
        uuid: gpu.uuid,
        name: gpu.name,
        power_w: gpu.power_w,
        energy_mj: gpu.energy_mj,
        gpu_temp_c: gpu.gpu_temp_c,
        memory_temp_c: gpu.memory_temp_c,
        fan_percent: gpu.fan_percent,
        gpu_util_percent: gpu.gpu_util_percent,
        memory_util_percent: gpu.memory_util_percent,
        memory_used_mib: gpu.memory_used_mib,
        memory_total_mib: gpu.memory_total_mib,
        sm_clock_mhz: gpu.sm_clock_mhz,
        memory_clock_mhz: gpu.memory_clock_mhz,
        throttle_reasons: gpu.throttle_reasons,
        ecc_volatile_corrected: gpu.ecc_volatile_corrected,
        ecc_volatile_uncorrected: gpu.ecc_volatile_uncorrected,
        performance_state: gpu.performance_state,
    }
}
