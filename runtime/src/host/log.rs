//! The `log` import: guest messages into the host's `tracing` log, capped.

use super::CallHost;
use crate::bindings::openjarvis::mining::log::{Host, Level};

/// Per-call log budget and what the guest said about a panic.
pub struct GuestLog {
    provider: String,
    remaining: usize,
    dropped: usize,
    panic_message: Option<String>,
}

impl GuestLog {
    pub fn new(provider: &str, budget: usize) -> Self {
        GuestLog {
            provider: provider.to_owned(),
            remaining: budget,
            dropped: 0,
            panic_message: None,
        }
    }

    pub fn panic_message(&self) -> Option<&str> {
        self.panic_message.as_deref()
    }

    /// Takes `bytes` from the budget; false when the budget is spent.
    pub fn charge(&mut self, bytes: usize) -> bool {
        if bytes > self.remaining {
            self.remaining = 0;
            self.dropped += bytes;
            return false;
        }
        self.remaining -= bytes;
        true
    }

    /// Records a line written by the guest (log import, stdout or stderr).
    pub fn emit(&mut self, level: Level, stream: &str, message: &str) {
        // Rust's panic message ("panicked at src/lib.rs:1:2:\nboom") arrives
        // through the SDK's panic hook, or on stderr from a WASI guest.
        if let Some(panic) = parse_panic(message) {
            self.panic_message = Some(panic);
        }
        if !self.charge(message.len()) {
            return;
        }
        let provider = self.provider.as_str();
        match level {
            Level::Trace => tracing::trace!(provider, stream, "{message}"),
            Level::Debug => tracing::debug!(provider, stream, "{message}"),
            Level::Info => tracing::info!(provider, stream, "{message}"),
            Level::Warn => tracing::warn!(provider, stream, "{message}"),
            Level::Error => tracing::error!(provider, stream, "{message}"),
        }
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                provider = self.provider,
                "dropped {} bytes of provider log output over the per-call limit",
                self.dropped
            );
        }
    }
}

/// "panicked at src/lib.rs:5:9:\nboom" → "boom (src/lib.rs:5:9)".
fn parse_panic(text: &str) -> Option<String> {
    let start = text.find("panicked at ")?;
    let rest = &text[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message = message.lines().next().unwrap_or("").trim();
    Some(if message.is_empty() {
        format!("at {}", location.trim())
    } else {
        format!("{message} ({})", location.trim())
    })
}

impl Host for CallHost {
    fn log(&mut self, level: Level, message: String) {
        self.log().emit(level, "log", &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        assert_eq!(
            parse_panic("panicked at src/lib.rs:5:9:\nboom").as_deref(),
            Some("boom (src/lib.rs:5:9)")
        );
        assert_eq!(
            parse_panic("thread '<unnamed>' panicked at src/lib.rs:1:1:\nbad input\nnote: run with RUST_BACKTRACE").as_deref(),
            Some("bad input (src/lib.rs:1:1)")
        );
        assert_eq!(parse_panic("all good"), None);
    }

    #[test]
    fn budget_is_enforced() {
        let mut log = GuestLog::new("p", 10);
        assert!(log.charge(6));
        assert!(!log.charge(6));
        assert!(!log.charge(1));
        assert_eq!(log.dropped, 7);
        log.dropped = 0;
    }
}
