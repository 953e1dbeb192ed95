//! `jarvis mine supervise`: a foreground process that keeps a session's
//! workers mining for weeks. One file per responsibility:
//!
//! - `snapshot.rs`: what one look saw (session, workers, GPUs).
//! - `watchdog.rs`: when a worker is restarted, or left failed.
//! - `supervisor.rs`: the loop: look, decide, act, publish.
//! - `containers.rs`: the workers' containers at each look, inspected only
//!   when they changed.
//! - `exporter.rs`: the Prometheus `/metrics` endpoint.
//! - `systemd.rs`: the notify protocol and the unit `service install` writes.
//! - `recording.rs`: each look kept in the mining history (`crate::history`).
//! - `resident.rs`: start-up code paged out once the first look is taken.
//! - `idle_fill.rs`: synthetic prefill-heavy requests for a worker whose
//!   own traffic is too low to mine, backing off when real requests arrive.

pub mod containers;
pub mod exporter;
pub mod idle_fill;
pub mod recording;
pub mod resident;
pub mod snapshot;
pub mod supervisor;
pub mod systemd;
pub mod watchdog;
