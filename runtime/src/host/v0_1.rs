//! The imports of the frozen contract `openjarvis:mining@0.1.0`, each a shim
//! over its current twin: it converts the arguments up, calls the current
//! import (which goes through the gate, the policy, the quotas and the
//! audit log like any call) and converts the answer down. A shim holds no
//! logic of its own and reaches the host no other way, so what a 0.1
//! component may do is exactly what a current one may (tests/contract_versions.rs).

use super::CallHost;
use crate::bindings::v0_1::Twin;
use crate::bindings::v0_1::openjarvis::mining::{
    clock, containers, log, metrics, processes, sidecar, types,
};
use crate::bindings::v0_2::openjarvis::mining as current;
use types::Error;

impl types::Host for CallHost {}

impl log::Host for CallHost {
    fn log(&mut self, level: log::Level, message: String) {
        current::log::Host::log(self, level.twin(), message)
    }
}

impl clock::Host for CallHost {
    fn now(&mut self) -> Result<f64, Error> {
        current::clock::Host::now(self).twin()
    }
}

impl containers::Host for CallHost {
    fn ensure_image(&mut self, image: String) -> Result<(), Error> {
        current::containers::Host::ensure_image(self, image).twin()
    }

    fn run(&mut self, spec: containers::ContainerSpec) -> Result<String, Error> {
        current::containers::Host::run(self, spec.twin()).twin()
    }

    fn stop(&mut self, id: String, timeout_seconds: u32) -> Result<(), Error> {
        current::containers::Host::stop(self, id, timeout_seconds).twin()
    }

    fn remove(&mut self, id: String) -> Result<(), Error> {
        current::containers::Host::remove(self, id).twin()
    }

    fn inspect(&mut self, id: String) -> Result<Option<containers::ContainerState>, Error> {
        current::containers::Host::inspect(self, id).twin()
    }

    fn grep_logs(
        &mut self,
        id: String,
        patterns: Vec<String>,
        limit: u32,
    ) -> Result<Vec<String>, Error> {
        current::containers::Host::grep_logs(self, id, patterns, limit).twin()
    }
}

impl sidecar::Host for CallHost {
    fn write(&mut self, session: sidecar::Session) -> Result<(), Error> {
        current::sidecar::Host::write(self, session.twin()).twin()
    }

    fn write_processes(&mut self, session: sidecar::ProcessSession) -> Result<(), Error> {
        current::sidecar::Host::write_processes(self, session.twin()).twin()
    }

    fn read_processes(&mut self) -> Result<Option<sidecar::ProcessSession>, Error> {
        current::sidecar::Host::read_processes(self).twin()
    }

    fn read(&mut self) -> Result<Option<sidecar::Session>, Error> {
        current::sidecar::Host::read(self).twin()
    }

    fn remove(&mut self) -> Result<(), Error> {
        current::sidecar::Host::remove(self).twin()
    }
}

impl metrics::Host for CallHost {
    fn scrape(&mut self, url: String) -> Result<Vec<metrics::Sample>, Error> {
        current::metrics::Host::scrape(self, url).twin()
    }
}

impl processes::Host for CallHost {
    fn spawn(&mut self, spec: processes::ProcessSpec) -> Result<String, Error> {
        current::processes::Host::spawn(self, spec.twin()).twin()
    }

    fn wait_listening(&mut self, handle: String, port: u16, timeout_ms: u32) -> Result<(), Error> {
        current::processes::Host::wait_listening(self, handle, port, timeout_ms).twin()
    }

    fn stop(&mut self, handle: String, grace_ms: u32) -> Result<(), Error> {
        current::processes::Host::stop(self, handle, grace_ms).twin()
    }

    fn inspect(&mut self, handle: String) -> Result<Option<processes::ProcessState>, Error> {
        current::processes::Host::inspect(self, handle).twin()
    }

    fn tail_log(&mut self, handle: String, limit: u32) -> Result<Vec<String>, Error> {
        current::processes::Host::tail_log(self, handle, limit).twin()
    }
}
