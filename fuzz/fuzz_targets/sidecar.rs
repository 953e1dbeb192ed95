//! The session sidecar, `<home>/runtime/mining.json`: `sidecar::read`,
//! `validate`, `to_json` and `write` (runtime/src/session/sidecar.rs).
//!
//! The input is written to a file and read through the real `read` (size
//! cap, empty-file check, JSON, object, record). Properties: never panics;
//! an existing file never reads as "no sidecar"; anything `read` refuses is
//! `Corrupt` ("stale or corrupt sidecar …") or, for OpenJarvis's process
//! shape (a pid key and no `vllm_endpoint`), `OpenJarvisProcesses`, never
//! an I/O error; a record
//! that reads serialises as sorted, two-space-indented JSON without a
//! trailing newline, and `write` then `read` gives the same record back
//! (unknown keys dropped, float times truncated: the record is what counts);
//! a record that passes `validate` is written, and still validates when
//! read back.
#![no_main]

use jarvis_mine::session::sidecar::{self, MAX_FILE_BYTES};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One scratch directory per fuzzing process, on tmpfs when there is one
/// (every input is a file write and `write` fsyncs).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = &mut tempfile::Builder::new();
        builder.prefix("jarvis-fuzz-sidecar-");
        if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        }
        .expect("a scratch directory")
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let file: PathBuf = scratch().join("mining.json");
    std::fs::write(&file, data).expect("writing the input");
    let path = jarvis_mine::home::root(scratch()).join("mining.json");
    let record = match sidecar::read(&path) {
        Ok(Some(record)) => record,
        Ok(None) => panic!("an existing file read as no sidecar"),
        Err(
            err @ (sidecar::SidecarError::OpenJarvisProcesses { .. }
            | sidecar::SidecarError::Processes { .. }),
        ) => {
            let value: serde_json::Value = serde_json::from_slice(data).expect("read parsed it");
            let object = value.as_object().expect("read saw an object");
            assert!(
                !object.contains_key("vllm_endpoint")
                    && (object.contains_key("gateway_pid") || object.contains_key("miner_loop_pid")),
                "process shape reported for {value}: {err}"
            );
            assert_eq!(
                matches!(err, sidecar::SidecarError::Processes { .. }),
                object.contains_key("session_id"),
                "ours exactly when it carries a session id: {value}"
            );
            // A session of processes reads as one, or is corrupt: never a panic.
            if let Err(err) = sidecar::read_processes(&path) {
                assert!(err.is_corrupt(), "not reported as corrupt: {err}");
            }
            return;
        }
        Err(err) => {
            assert!(err.is_corrupt(), "not reported as corrupt: {err}");
            assert!(
                err.to_string().starts_with("stale or corrupt sidecar "),
                "{err}"
            );
            return;
        }
    };

    let text = sidecar::to_json(&record);
    assert!(text.starts_with("{\n  \"") && text.ends_with('}'), "{text}");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("  \"")?.split('"').next())
        .collect();
    assert!(keys.is_sorted(), "keys not sorted: {keys:?}");

    let valid = sidecar::validate(&record);
    match sidecar::write(&path, &record) {
        Ok(()) => {
            let again = sidecar::read(&path)
                .unwrap_or_else(|err| panic!("own output rejected: {err}\n{text}"))
                .expect("just written");
            assert_eq!(again, record, "write → read changed the record");
            assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
            assert_eq!(sidecar::validate(&again), valid);
        }
        Err(err) => {
            // Only a record too large for readers is refused (the input
            // was at most MAX_FILE_BYTES, but pretty-printing adds spaces).
            assert!(
                text.len() as u64 > MAX_FILE_BYTES,
                "write refused a {}-byte record: {err}",
                text.len()
            );
        }
    }
});
