//! The `clock` import: real time for lifecycle calls, none for pure ones.

use crate::bindings::openjarvis::mining::clock::Host;
use crate::bindings::openjarvis::mining::types::Error;
use crate::sandbox::CallState;
use std::time::{SystemTime, UNIX_EPOCH};

impl Host for CallState {
    fn now(&mut self) -> Result<f64, Error> {
        if self.host.is_none() {
            return Err(Error::Denied(
                "clock.now is not available here: info() and detect() are pure".into(),
            ));
        }
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()))
    }
}
