//! What went wrong inside a provider, in words a user can act on.

use super::limits::{SandboxLimits, Tripped};
use std::fmt;
use std::time::Duration;

/// A provider call that did not produce a result. Never fatal to the host.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("timed out after {}", human_duration(*.0))]
    Timeout(Duration),
    #[error("exceeded memory limit {}", human_bytes(*.0))]
    MemoryLimit(usize),
    #[error("exceeded table limit of {0} elements")]
    TableLimit(usize),
    #[error("stack overflow")]
    StackOverflow,
    #[error("provider panicked{}", .0.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Panicked(Option<String>),
    #[error("returned {} of text; the limit is {}", human_bytes(*.returned), human_bytes(*.limit))]
    OutputTooLarge { returned: usize, limit: usize },
    #[error("wrote more than {} to stdout/stderr", human_bytes(*.0))]
    StdioLimit(usize),
    #[error("provider exited with status {0}")]
    Exited(i32),
    #[error("provider trapped: {0}")]
    Trapped(String),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("{0}")]
    Invalid(String),
}

/// What the store observed during the call, to explain a failure.
pub struct CallEvidence<'a> {
    pub tripped: Option<Tripped>,
    pub panic_message: Option<&'a str>,
    pub stdio_overflowed: bool,
}

impl ProviderError {
    /// Turns a failed call into the limit or fault that caused it.
    pub fn classify(err: &wasmtime::Error, evidence: CallEvidence, limits: &SandboxLimits) -> Self {
        match evidence.tripped {
            Some(Tripped::Memory) => return ProviderError::MemoryLimit(limits.memory_bytes),
            Some(Tripped::Table) => return ProviderError::TableLimit(limits.table_elements),
            None => {}
        }
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return ProviderError::Exited(exit.0);
        }
        if evidence.stdio_overflowed {
            return ProviderError::StdioLimit(limits.log_bytes);
        }
        match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => ProviderError::Timeout(limits.call_timeout),
            Some(wasmtime::Trap::StackOverflow) => ProviderError::StackOverflow,
            Some(wasmtime::Trap::UnreachableCodeReached) => {
                ProviderError::Panicked(evidence.panic_message.map(str::to_owned))
            }
            Some(trap) => ProviderError::Trapped(trap.to_string()),
            None if evidence.panic_message.is_some() => {
                ProviderError::Panicked(evidence.panic_message.map(str::to_owned))
            }
            // The root cause names what failed (e.g. a full resource table);
            // the outer context is only "error while executing".
            None => ProviderError::Trapped(first_line(&err.root_cause().to_string())),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// "2 s", "250 ms", "1.5 s".
pub fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis} ms")
    } else if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// "64 MiB", "64 KiB", "100.0 MiB", "17 bytes".
pub fn human_bytes(bytes: usize) -> String {
    HumanBytes(bytes).to_string()
}

struct HumanBytes(usize);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in UNITS {
            if self.0 >= size {
                return if self.0.is_multiple_of(size) {
                    write!(f, "{} {unit}", self.0 / size)
                } else {
                    write!(f, "{:.1} {unit}", self.0 as f64 / size as f64)
                };
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        assert_eq!(
            ProviderError::Timeout(Duration::from_secs(2)).to_string(),
            "timed out after 2 s"
        );
        assert_eq!(
            ProviderError::MemoryLimit(64 << 20).to_string(),
            "exceeded memory limit 64 MiB"
        );
        assert_eq!(
            ProviderError::Panicked(Some("boom".into())).to_string(),
            "provider panicked: boom"
        );
        assert_eq!(
            ProviderError::Panicked(None).to_string(),
            "provider panicked"
        );
        assert_eq!(
            ProviderError::OutputTooLarge {
                returned: 100 << 20,
                limit: 64 << 10
            }
            .to_string(),
            "returned 100 MiB of text; the limit is 64 KiB"
        );
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
