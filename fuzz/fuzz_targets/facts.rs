//! `--facts FILE`: `HardwareFacts::from_json` (host-gpu/src/facts.rs).
//!
//! Properties: never panics; whatever parses serialises, and reading that
//! back gives the same value (parse → serialise → parse is the identity, in
//! both the compact and the pretty form `doctor --json` prints); a
//! rejected input's error points at a line of the input.
#![no_main]

use host_gpu::HardwareFacts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match HardwareFacts::from_json(text) {
        Ok(facts) => {
            for gpu in &facts.gpus {
                assert!(
                    !gpu.vendor.bytes().any(|b| b.is_ascii_uppercase()),
                    "vendor not lower-cased: {:?}",
                    gpu.vendor
                );
            }
            let compact = serde_json::to_string(&facts).expect("facts serialise");
            let again = HardwareFacts::from_json(&compact)
                .unwrap_or_else(|err| panic!("own output rejected: {err}\n{compact}"));
            assert_eq!(again, facts, "compact round trip changed the facts");
            let pretty = serde_json::to_string_pretty(&facts).expect("facts serialise");
            let again = HardwareFacts::from_json(&pretty)
                .unwrap_or_else(|err| panic!("own output rejected: {err}\n{pretty}"));
            assert_eq!(again, facts, "pretty round trip changed the facts");
        }
        Err(err) => {
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&err.line()),
                "error line {} outside 1..={lines}: {err}",
                err.line()
            );
        }
    }
});
