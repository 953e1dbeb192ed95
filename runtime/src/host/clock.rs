//! The `clock` import: real time for lifecycle calls, none for pure ones.
//! It needs no capability, but goes through the same host context: a pure
//! call has none, so it sees no time at all.

use super::CallHost;
use crate::bindings::openjarvis::mining::clock::Host;
use crate::bindings::openjarvis::mining::types::Error;
use std::time::{SystemTime, UNIX_EPOCH};

impl Host for CallHost {
    fn now(&mut self) -> Result<f64, Error> {
        self.lifecycle_only("clock.now", || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        })
    }
}
