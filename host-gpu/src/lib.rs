//! Native hardware facts for jarvis-mine. No WebAssembly here: this crate runs
//! in the host, and its output is passed to providers' `detect` as data.

pub mod facts;

pub use facts::*;
