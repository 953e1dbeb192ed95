//! jarvis-mine: a WebAssembly-sandboxed runtime for Pearl mining providers.
//!
//! Providers are WASI components implementing the `openjarvis:mining`
//! `mining-provider` world. The host gathers hardware facts natively
//! (`host-gpu`), passes them to each provider's pure `detect`, and runs every
//! call in a fresh, limited instance ([`sandbox`]). The `jarvis` binary is a
//! thin CLI over this library.

pub mod atomic_file;
pub mod audit;
pub mod bindings;
pub mod bounded_read;
pub mod cli;
pub mod config;
pub mod config_edit;
pub mod docker;
pub mod doctor;
pub mod facts;
pub mod history;
pub mod home;
pub mod host;
pub mod image_reference;
pub mod install;
pub mod lifecycle;
pub mod model_check;
pub mod paths;
pub mod pearl_tools;
pub mod policy;
pub mod process;
pub mod provider;
pub mod redact;
pub mod registry;
pub mod release_gate;
pub mod rewards;
pub mod sandbox;
pub mod session;
pub mod supervise;
pub mod telemetry;
pub mod text_position;
pub mod top;
