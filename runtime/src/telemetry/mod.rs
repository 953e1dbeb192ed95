//! GPU telemetry and energy for `jarvis mine status`, on top of host-gpu's
//! NVML sampler (`host_gpu::telemetry`).
//!
//! - [`gpus`]: which GPUs a session uses, from what Docker recorded of the
//!   host's create request for each of the session's containers.
//! - [`baseline`]: `<home>/runtime/mining-energy-baseline.json`, each session
//!   GPU's energy counter and the time when `start` ran the session's
//!   containers. The host writes it, reads it and removes it; no provider
//!   import reaches it.
//! - [`energy`]: the energy used since that baseline and what it means per
//!   share and per block, as an estimate over the measured window.
//! - [`section`]: the GPU section `status` prints, put together once per
//!   refresh from one sample.

pub mod baseline;
pub mod energy;
pub mod gpus;
pub mod section;

pub use baseline::Baseline;
pub use energy::{EnergyReport, GpuEnergy};
pub use gpus::{GpuSource, SessionGpus, session_gpus};
pub use section::{GpuSection, Sampling, price_per_kwh};
