//! The `[mining]` config parser: `Config::parse` (runtime/src/config/).
//!
//! Properties: never panics; a syntax error and an invalid `[mining]` value
//! (config/validate.rs) both name a line and column inside the input
//! (1-based, the column at most one past the end of that line, in
//! characters) and read `PATH:LINE:COLUMN: …`; every warning reads
//! `PATH:LINE:COLUMN: warning: …` the same way; a parsed `[mining]` answers
//! every accessor and converts to what a provider receives without panicking.
#![no_main]

use jarvis_mine::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const PATH: &str = "fuzz/config.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new(PATH)) {
        Ok(config) => {
            for warning in &config.warnings {
                let rest = warning
                    .strip_prefix(&format!("{PATH}:"))
                    .unwrap_or_else(|| panic!("{warning:?}"));
                let mut parts = rest.splitn(3, ':');
                let line: usize = parts.next().unwrap().parse().unwrap();
                let column: usize = parts.next().unwrap().parse().unwrap();
                assert!(parts.next().unwrap().starts_with(" warning: "), "{warning:?}");
                assert_inside(text, line, column, warning);
            }
            if let Some(mining) = &config.mining {
                let _ = mining.model();
                let _ = mining.cuda_visible_devices();
                let _ = mining.pearld_rpc_url();
                let _ = mining.pearld_rpc_user();
                let _ = mining.pearld_password_env();
                // A config that loaded has a workers setting the host can hand over.
                let _ = mining.workers();
                let guest = mining.to_guest(Vec::new());
                assert_eq!(guest.provider, mining.provider);
                assert_eq!(guest.wallet_address, mining.wallet_address);
                assert_eq!(guest.fee_bps, mining.fee_bps);
            }
        }
        Err(
            ref err @ (ConfigError::Syntax {
                line,
                column,
                ref message,
                ..
            }
            | ConfigError::Invalid {
                line,
                column,
                ref message,
                ..
            }),
        ) => {
            assert_inside(text, line, column, &err.to_string());
            assert!(!message.is_empty(), "empty message: {err}");
            let shown = err.to_string();
            let prefix = format!("{PATH}:{line}:{column}: ");
            assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
        }
        Err(err @ ConfigError::Read { .. }) => panic!("parse never reads a file: {err}"),
    }
});

/// `line:column` (1-based, in characters) lies in `text`, the column at most
/// one past the end of its line.
fn assert_inside(text: &str, line: usize, column: usize, shown: &str) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} outside 1..={}: {shown}",
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&column),
        "column {column} outside 1..={} on line {line}: {shown}",
        width + 1
    );
}
