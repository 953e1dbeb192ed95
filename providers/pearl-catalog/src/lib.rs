//! What Pearl offers and needs, shared by the jarvis-mine host and by guest
//! providers: the model registry, the Pearl tools a host must have, and the
//! plan of which GPUs each miner gets ([`workers`]).
//!
//! Plain data and pure functions with no dependencies, so it compiles
//! unchanged for the host and for `wasm32-unknown-unknown`.

pub mod models;
pub mod tools;
pub mod workers;

pub use models::*;
