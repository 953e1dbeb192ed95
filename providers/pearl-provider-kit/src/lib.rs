//! What the built-in Pearl providers share on the guest side: reading the
//! gateway's metrics (`gateway_metrics`), and the session of processes
//! that cpu-pearl and apple-mps-pearl run (`subprocess`: Pearl's gateway,
//! then our miner loop).

pub mod gateway_metrics;
pub mod subprocess;

/// The SDK, for [`subprocess_lifecycle!`]'s expansion.
pub use mining_provider_sdk as sdk;
