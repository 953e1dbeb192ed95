//! The `[mining]` config parser: `Config::parse` (runtime/src/config.rs).
//!
//! Properties: never panics; a syntax error names a line and column inside
//! the input (1-based, the column at most one past the end of that line, in
//! characters) and its message is `PATH:LINE:COLUMN: …`; any other error is
//! `PATH: …`; a parsed `[mining]` answers every accessor and converts to
//! what a provider receives without panicking.
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
            if let Some(mining) = &config.mining {
                let _ = mining.model();
                let _ = mining.cuda_visible_devices();
                let _ = mining.pearld_rpc_url();
                let _ = mining.pearld_rpc_user();
                let _ = mining.pearld_password_env();
                let guest = mining.to_guest();
                assert_eq!(guest.provider, mining.provider);
                assert_eq!(guest.wallet_address, mining.wallet_address);
                assert_eq!(guest.fee_bps, mining.fee_bps);
            }
        }
        Err(
            ref err @ ConfigError::Syntax {
                line,
                column,
                ref message,
                ..
            },
        ) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                (1..=lines.len()).contains(&line),
                "line {line} outside 1..={}: {err}",
                lines.len()
            );
            let width = lines[line - 1].chars().count();
            assert!(
                (1..=width + 1).contains(&column),
                "column {column} outside 1..={} on line {line}: {err}",
                width + 1
            );
            assert!(!message.is_empty(), "empty syntax message");
            let shown = err.to_string();
            let prefix = format!("{PATH}:{line}:{column}: ");
            assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
        }
        Err(err @ ConfigError::Invalid { .. }) => {
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("{PATH}: ")), "{shown:?}");
        }
        Err(err @ ConfigError::Read { .. }) => panic!("parse never reads a file: {err}"),
    }
});
