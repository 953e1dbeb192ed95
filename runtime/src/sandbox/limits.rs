//! Per-call resource limits and the limiter that enforces them.

use std::time::Duration;

/// Limits applied to every call into a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock budget of one call; a spinning guest is killed at this deadline.
    pub call_timeout: Duration,
    /// Wall time one lifecycle call may spend inside host calls (image
    /// acquisition excepted): host calls are clamped to what is left.
    pub host_time: Duration,
    /// Linear memory a single instance may grow to.
    pub memory_bytes: usize,
    /// Bytes a guest may log (log import plus stdout/stderr) in one call.
    pub log_bytes: usize,
    /// Bytes of strings a guest may return from one call.
    pub output_bytes: usize,
    /// Core instances, tables and memories one component may create.
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Elements one table may grow to.
    pub table_elements: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            call_timeout: Duration::from_secs(2),
            host_time: Duration::from_secs(300),
            memory_bytes: 64 << 20,
            log_bytes: 64 << 10,
            output_bytes: 64 << 10,
            instances: 32,
            tables: 32,
            memories: 8,
            table_elements: 100_000,
        }
    }
}

impl SandboxLimits {
    /// These limits lowered to a policy's ceilings.
    pub fn narrowed(&self, ceilings: &crate::policy::LimitCeilings) -> SandboxLimits {
        let mut limits = *self;
        if let Some(bytes) = ceilings.memory_bytes {
            limits.memory_bytes = limits.memory_bytes.min(bytes);
        }
        if let Some(timeout) = ceilings.call_timeout {
            limits.call_timeout = limits.call_timeout.min(timeout);
        }
        if let Some(time) = ceilings.host_time {
            limits.host_time = limits.host_time.min(time);
        }
        if let Some(bytes) = ceilings.output_bytes {
            limits.output_bytes = limits.output_bytes.min(bytes);
        }
        limits
    }
}

/// Enforces [`SandboxLimits`] on one store, remembering which limit tripped so
/// the resulting trap can be reported as that limit rather than a bare trap.
pub struct Limiter {
    limits: SandboxLimits,
    instances: usize,
    tables: usize,
    memories: usize,
    pub tripped: Option<Tripped>,
}

/// A limit the guest ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    Memory,
    Table,
}

impl Limiter {
    pub fn new(limits: SandboxLimits) -> Self {
        Limiter {
            limits,
            instances: limits.instances,
            tables: limits.tables,
            memories: limits.memories,
            tripped: None,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.tripped = Some(Tripped::Memory);
            wasmtime::bail!("memory limit exceeded");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.table_elements {
            self.tripped = Some(Tripped::Table);
            wasmtime::bail!("table limit exceeded");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_past_a_cap_fails_and_is_remembered() {
        let limits = SandboxLimits {
            memory_bytes: 1 << 20,
            table_elements: 10,
            ..SandboxLimits::default()
        };
        let mut limiter = Limiter::new(limits);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert_eq!(limiter.tripped, None);
        assert!(limiter.table_growing(10, 11, None).is_err());
        assert_eq!(limiter.tripped, Some(Tripped::Table));
        assert!(
            limiter
                .memory_growing(1 << 20, (1 << 20) + 65536, None)
                .is_err()
        );
        assert_eq!(limiter.tripped, Some(Tripped::Memory));
        assert_eq!(
            (limiter.instances(), limiter.tables(), limiter.memories()),
            (32, 32, 8)
        );
    }
}
