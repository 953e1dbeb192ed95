//! The files that describe a mining session (reference §1.6, §7, §11.2).
//!
//! - [`sidecar`]: `<home>/runtime/mining.json`, the record OpenJarvis's engine
//!   discovery reads to route inference to the mining vLLM.
//! - [`lock`]: `<home>/runtime/mining.lock`, so only one `start`/`stop`/
//!   `attach` runs at a time (the reference defines the path but never locks it).
//! - [`history`]: `<home>/runtime/mining-last-session.json`, the host's record
//!   that a session ended here.
//! - [`state`]: the lifecycle state `status` prints, derived by a pure function
//!   from what is observed (config, sidecar, containers, history), and the
//!   reconciliation a stale session needs.

pub mod history;
pub mod lock;
pub mod sidecar;
pub mod state;

pub use lock::{LockError, LockHolder, SessionLock};
pub use sidecar::{ProcessSession, SessionRecord, SidecarError, ValidationError, WorkerRecord};
pub use state::{
    ContainerState, Lifecycle, Observation, ObservedContainer, Operation, Reconciliation,
    SidecarState,
};
