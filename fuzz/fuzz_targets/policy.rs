//! The capability policy file: `PolicyFile::parse` (runtime/src/policy/file.rs).
//!
//! Properties: never panics; an error names a line and column inside the
//! input and reads `PATH:LINE:COLUMN: …`; every `[providers.ID]` of a parsed
//! file has a valid provider id; a parsed file serialises to TOML that parses
//! again to the same file (compared through that serialisation, as
//! `PolicyFile` has no `PartialEq`): what `doctor` shows of a policy is what
//! the host enforces.
#![no_main]

use jarvis_mine::policy::{PolicyError, PolicyFile, file::valid_provider_id};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const PATH: &str = "fuzz/policy.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PolicyFile::parse(text, Path::new(PATH)) {
        Ok(file) => {
            for id in file.providers.keys() {
                assert!(valid_provider_id(id), "accepted provider id {id:?}");
            }
            let shown = toml::to_string(&file).expect("a policy file serialises");
            let again = PolicyFile::parse(&shown, Path::new(PATH))
                .unwrap_or_else(|err| panic!("own serialisation rejected: {err}\n{shown}"));
            let shown_again = toml::to_string(&again).expect("a policy file serialises");
            assert_eq!(shown_again, shown, "serialise → parse changed the policy");
        }
        Err(
            ref err @ PolicyError::Invalid {
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
            assert!(!message.is_empty(), "empty message");
            let shown = err.to_string();
            let prefix = format!("{PATH}:{line}:{column}: ");
            assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
        }
        Err(err @ PolicyError::Read { .. }) => panic!("parse never reads a file: {err}"),
    }
});
