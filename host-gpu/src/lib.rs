//! Native hardware facts for jarvis-mine. No WebAssembly here: this crate runs
//! in the host, and its output is passed to providers' `detect` as data.
//!
//! [`gather`] runs every probe concurrently and returns a [`HardwareFacts`];
//! each probe module can also be used alone.

pub mod disk;
pub mod docker;
pub mod facts;
pub mod gather;
pub mod nvml;
pub mod pearl;
pub mod probe_cache;
pub mod python_cache;
pub mod system;
pub mod telemetry;

pub use facts::*;
pub use gather::{GatherOptions, gather};
pub use nvml::{LIBRARY_ENV as NVML_LIBRARY_ENV, NvmlReport};
pub use pearl::PythonProbe;
pub use probe_cache::CacheDir;
pub use telemetry::{EnergyDelta, GpuTelemetry, Telemetry, energy_since};
