//! What Pearl offers and needs, shared by the jarvis-mine host and by guest
//! providers: the model registry and the Pearl tools a host must have.
//!
//! Plain static data with no dependencies, so it compiles unchanged for the
//! host and for `wasm32-unknown-unknown`.

pub mod models;
pub mod tools;

pub use models::*;
