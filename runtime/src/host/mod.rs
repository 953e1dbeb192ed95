//! Host implementations of the world's imports, one file per interface.

pub mod log;
