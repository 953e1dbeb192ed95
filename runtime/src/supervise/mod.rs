//! `jarvis mine supervise`: a foreground process that keeps a session's
//! workers mining for weeks. One file per responsibility:
//!
//! - `idle_fill.rs`: synthetic prefill-heavy requests for a worker whose
//!   own traffic is too low to mine, backing off when real requests arrive.

pub mod idle_fill;
