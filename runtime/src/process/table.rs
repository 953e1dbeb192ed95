//! The host's record of the processes it started, `<home>/runtime/processes.json`:
//! written only by the host (a provider has no file access), atomically,
//! under the session lock. It is what `status` reports a process against
//! ("the gateway died") and what teardown signals; the labels in each
//! process's environment cover the moment before a record exists.

use crate::atomic_file::Mode;
use crate::bounded_read::{self, InputFile};
use crate::home::HomePath;
use serde::{Deserialize, Serialize};

/// One process the host started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub provider: String,
    /// The sha256 of the provider's component, for audit records.
    pub component: String,
    pub session: String,
    /// The provider's name for it (its handle).
    pub name: String,
    pub program: String,
    pub pid: u32,
    /// Seconds since the Unix epoch, as `identity` reads it.
    pub start_time: u64,
    /// Loopback ports it was declared to serve (checked free before it started).
    pub ports: Vec<u16>,
    /// Names (never values) of the variables resolved as secrets for it,
    /// so that reads of its log redact them.
    pub secrets: Vec<String>,
    /// Its log file's name under `<home>/logs/mining/`.
    pub log: String,
}

#[cfg(test)]
impl ProcessRecord {
    pub fn example() -> ProcessRecord {
        ProcessRecord {
            provider: "cpu-pearl".into(),
            component: "0".repeat(64),
            session: "s1".into(),
            name: "gateway".into(),
            program: "pearl-gateway".into(),
            pid: 1,
            start_time: 1,
            ports: vec![8337],
            secrets: vec![],
            log: "pearl-gateway.log".into(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    processes: Vec<ProcessRecord>,
}

/// The table is small: a session holds a few processes.
const TABLE_FILE: InputFile = InputFile {
    noun: "the process table",
    expected: "the JSON table the host writes",
    max_bytes: 1 << 20,
    header: None,
};

/// The recorded processes; none when the table does not exist. A table
/// that is not valid is reported, never guessed at: teardown then relies
/// on the processes' labels alone.
pub fn read(path: &HomePath) -> Result<Vec<ProcessRecord>, String> {
    match bounded_read::read_home_bytes(path, &TABLE_FILE) {
        Ok(bytes) => serde_json::from_slice::<Table>(&bytes)
            .map(|t| t.processes)
            .map_err(|err| format!("the process table {path} is not valid: {err}")),
        Err(err) if err.is_not_found() => Ok(Vec::new()),
        Err(err) => Err(err.to_string()),
    }
}

/// Replaces the table (removes it when `records` is empty).
pub fn write(path: &HomePath, records: &[ProcessRecord]) -> std::io::Result<()> {
    if records.is_empty() {
        return path.remove_file_if_present();
    }
    if let Some(dir) = path.parent() {
        dir.create_dir_all_with_mode(0o700)?;
    }
    let table = Table {
        processes: records.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&table).map_err(std::io::Error::other)?;
    path.write_atomically(Mode::Fixed(0o600), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_an_empty_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/processes.json");
        assert_eq!(read(&path).unwrap(), vec![]);
        let records = vec![ProcessRecord::example()];
        write(&path, &records).unwrap();
        assert_eq!(read(&path).unwrap(), records);
        write(&path, &[]).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_table_that_is_not_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("processes.json");
        std::fs::write(path.absolute(), "{").unwrap();
        assert!(read(&path).unwrap_err().contains("not valid"));
    }
}
