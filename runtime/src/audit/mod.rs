//! The audit log: one JSON line per privileged call and per policy decision,
//! appended to `<home>/logs/mining-audit.jsonl`, rotated by size into
//! `mining-audit.jsonl.<n>` and pruned by age.
//!
//! Records hold names, never values: an action summary lists env variable
//! and secret names, not what they hold. The log is tamper-evident: each
//! record carries the sha256 of the line before it (`chain.rs`), and
//! `verify` walks the chain. What a provider can make the host write is
//! bounded per call (`call.rs`) and per UTC day (`appender.rs`), so it
//! cannot flood the log; rotation never deletes a record younger than the
//! retention, so it cannot push earlier records out either.

mod appender;
mod call;
mod chain;
mod reader;
mod record;
mod segments;
mod state;
#[cfg(test)]
mod testing;
mod verify;

pub use appender::{
    AuditLimits, AuditLog, DAILY_BYTES, DAILY_RECORDS, RETENTION_DAYS, ROTATE_BYTES,
};
pub use call::{CallAudit, MAX_CALL_RECORDS};
pub use chain::GENESIS;
pub use reader::{Filter, follow, read};
pub use record::{Decision, MAX_RECORD_TEXT, Record, WIT_VERSION};
pub use state::Usage;
pub use verify::{Break, BreakKind, Place, Verification, verify};
