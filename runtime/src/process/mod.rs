//! Host programs a provider runs outside the sandbox (the `processes`
//! capability): which programs exist and what they may be given
//! (`programs.rs`), how a process is started detached with its log
//! (`spawn.rs`), how the host recognises its own processes across commands
//! (`identity.rs`: PID, start time and the labels in its environment), the
//! host's record of what it started (`table.rs`), signals (`signal.rs`) and
//! the log files (`logs.rs`).
//!
//! Processes carry their ownership labels in their environment, as
//! containers carry Docker labels: a process started by a command that was
//! then killed, before any record was written, is still found and removed.

pub mod identity;
pub mod logs;
pub mod programs;
pub mod signal;
pub mod spawn;
pub mod table;

pub use identity::{Liveness, liveness};
pub use programs::Program;
pub use table::ProcessRecord;

/// Environment labels the host gives every process it starts. A provider
/// may not set any variable with this prefix.
pub const LABEL_PREFIX: &str = "OPENJARVIS_MINING_";
pub const LABEL_HOME: &str = "OPENJARVIS_MINING_HOME";
pub const LABEL_SESSION: &str = "OPENJARVIS_MINING_SESSION";
pub const LABEL_PROVIDER: &str = "OPENJARVIS_MINING_PROVIDER";
pub const LABEL_NAME: &str = "OPENJARVIS_MINING_PROCESS";
