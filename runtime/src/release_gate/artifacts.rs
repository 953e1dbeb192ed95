//! The gate's artifacts (reference §8.3: "record runtime, status
//! before/after, metrics snapshot, log tail"): each file written atomically
//! into the output directory, and never with a secret in it.
//!
//! Secrets are known by the names of the variables that hold them
//! (`PEARLD_RPC_PASSWORD`, `HF_TOKEN`, the config's `pearld_rpc_password_env`
//! and `hf_token_env`, a container's secrets label): their current values
//! are replaced wherever they appear, as are the name patterns of
//! [`crate::redact`]. JSON is redacted value by value (a secret inside a
//! JSON string may be escaped there), and a container's environment keeps
//! its secret variables' names but not their values.

use crate::model_check::report;
use crate::redact::{REDACTED, Redactor};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const SUMMARY: &str = "summary.json";
pub const DOCTOR: &str = "doctor.json";
pub const STATUS_BEFORE: &str = "status-before.json";
pub const STATUS_AFTER: &str = "status-after.json";
pub const METRICS: &str = "metrics.txt";
pub const LOG_TAIL: &str = "log-tail.txt";
pub const DOCKER_INSPECT: &str = "docker-inspect.json";

/// Every artifact, in the order a reader would open them.
pub const ALL: [&str; 7] = [
    SUMMARY,
    DOCTOR,
    STATUS_BEFORE,
    STATUS_AFTER,
    METRICS,
    LOG_TAIL,
    DOCKER_INSPECT,
];

/// What `artifacts` in the summary says of a file that was written.
pub const WRITTEN: &str = "written";

/// The variables whose values are secrets wherever this tool runs.
pub const SECRET_VARIABLES: [&str; 2] = ["PEARLD_RPC_PASSWORD", "HF_TOKEN"];

/// The output directory and what has been written to it.
pub struct Artifacts {
    dir: PathBuf,
    secret_names: BTreeSet<String>,
    redactor: Redactor,
    /// File name → `written`, or why not.
    outcomes: BTreeMap<String, String>,
}

impl Artifacts {
    /// Artifacts in `dir` (created on the first write), hiding the values
    /// of [`SECRET_VARIABLES`] and of `secret_names`.
    pub fn new(dir: &Path, secret_names: impl IntoIterator<Item = String>) -> Artifacts {
        let mut names: BTreeSet<String> = SECRET_VARIABLES.iter().map(|n| n.to_string()).collect();
        names.extend(secret_names.into_iter().filter(|n| !n.is_empty()));
        let redactor = Redactor::for_variables(names.iter().map(String::as_str));
        Artifacts {
            dir: dir.to_owned(),
            secret_names: names,
            redactor,
            outcomes: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Also hide these variables' values (a container's secrets label).
    pub fn add_secret_names<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let before = self.secret_names.len();
        self.secret_names.extend(
            names
                .into_iter()
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        );
        if self.secret_names.len() != before {
            self.redactor = Redactor::for_variables(self.secret_names.iter().map(String::as_str));
        }
    }

    /// `text` with every known secret hidden.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact_owned(text)
    }

    /// Writes `value` as JSON (keys sorted, indent 2, a trailing newline),
    /// every string in it redacted; returns that text.
    pub fn write_json(&mut self, name: &str, value: &impl Serialize) -> Option<String> {
        let mut value = match serde_json::to_value(value) {
            Ok(value) => value,
            Err(err) => {
                self.outcomes
                    .insert(name.to_owned(), format!("not written: {err}"));
                return None;
            }
        };
        redact_strings(&mut value, &self.redactor);
        let text = report::artifact_text(&value);
        self.write(name, &text);
        Some(text)
    }

    /// Writes `text`, redacted.
    pub fn write_text(&mut self, name: &str, text: &str) {
        let text = self.redact(text);
        self.write(name, &text);
    }

    /// Writes `docker inspect`'s JSON with the values of secret variables
    /// in `Config.Env` removed, then every string redacted.
    pub fn write_inspect(&mut self, name: &str, mut inspect: Value) {
        hide_secret_env(&mut inspect, &self.secret_names);
        self.write_json(name, &inspect);
    }

    /// Records why `name` was not written.
    pub fn not_written(&mut self, name: &str, why: impl Into<String>) {
        let why = self.redact(&why.into());
        self.outcomes
            .insert(name.to_owned(), format!("not written: {why}"));
    }

    /// File name → `written`, or why not.
    pub fn outcomes(&self) -> &BTreeMap<String, String> {
        &self.outcomes
    }

    /// Whether `name` was written.
    pub fn was_written(&self, name: &str) -> bool {
        self.outcomes.get(name).map(String::as_str) == Some(WRITTEN)
    }

    fn write(&mut self, name: &str, text: &str) {
        let outcome = match report::write_artifact(&self.dir.join(name), text) {
            Ok(()) => WRITTEN.to_owned(),
            Err(err) => format!("not written: {err}"),
        };
        tracing::info!("{name}: {outcome}");
        self.outcomes.insert(name.to_owned(), outcome);
    }
}

/// Every string in `value`, keys included, redacted.
pub fn redact_strings(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(text) => {
            if let std::borrow::Cow::Owned(hidden) = redactor.redact(text) {
                *text = hidden;
            }
        }
        Value::Array(items) => {
            for item in items {
                redact_strings(item, redactor);
            }
        }
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                redact_strings(&mut item, redactor);
                map.insert(redactor.redact_owned(&key), item);
            }
        }
        _ => {}
    }
}

/// `NAME=value` entries of `Config.Env` whose name is a secret's become
/// `NAME=[REDACTED]`.
pub fn hide_secret_env(inspect: &mut Value, secret_names: &BTreeSet<String>) {
    let Some(env) = inspect
        .pointer_mut("/Config/Env")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for entry in env {
        let Some(text) = entry.as_str() else {
            continue;
        };
        if let Some((name, value)) = text.split_once('=')
            && secret_names.contains(name)
            && !value.is_empty()
        {
            *entry = Value::String(format!("{name}={REDACTED}"));
        }
    }
}

/// UTC now as RFC 3339 (seconds), for the summary.
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The default output directory's name: `validate-host-20260512T101500Z`.
pub fn default_dir_name(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "validate-host-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_env_values_go_and_their_names_stay() {
        let mut inspect = serde_json::json!({
            "Config": {"Env": [
                "PEARLD_RPC_PASSWORD=hunter2secret",
                "MY_TOKEN=abcdef",
                "PEARLD_RPC_USER=rpcuser",
                "HF_TOKEN=",
            ]}
        });
        let names: BTreeSet<String> = ["PEARLD_RPC_PASSWORD", "MY_TOKEN", "HF_TOKEN"]
            .map(String::from)
            .into();
        hide_secret_env(&mut inspect, &names);
        assert_eq!(
            inspect["Config"]["Env"],
            serde_json::json!([
                "PEARLD_RPC_PASSWORD=[REDACTED]",
                "MY_TOKEN=[REDACTED]",
                "PEARLD_RPC_USER=rpcuser",
                "HF_TOKEN=",
            ])
        );
    }

    #[test]
    fn json_is_redacted_string_by_string_even_where_a_secret_is_escaped() {
        let secret = "pa\"ss\\word";
        let redactor = Redactor::new([secret]);
        let mut value = serde_json::json!({
            "log": [format!("connecting with {secret}")],
            secret: 1,
            "n": 3,
        });
        redact_strings(&mut value, &redactor);
        let text = serde_json::to_string(&value).unwrap();
        assert!(!text.contains("pa\\\"ss"), "{text}");
        assert_eq!(value["log"][0], "connecting with [REDACTED]");
        assert_eq!(value["[REDACTED]"], 1);
        assert_eq!(value["n"], 3);
    }

    #[test]
    fn artifacts_are_written_redacted_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gate");
        let mut artifacts = Artifacts::new(&out, []);
        artifacts.write_text(
            LOG_TAIL,
            "gateway config: PEARLD_RPC_PASSWORD=hunter2secret\n",
        );
        artifacts.write_json(
            STATUS_AFTER,
            &serde_json::json!({"b": 1, "a": "HF_TOKEN=x1234"}),
        );
        artifacts.not_written(METRICS, "no miner ran");
        assert_eq!(
            std::fs::read_to_string(out.join(LOG_TAIL)).unwrap(),
            "gateway config: PEARLD_RPC_PASSWORD=[REDACTED]\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(STATUS_AFTER)).unwrap(),
            "{\n  \"a\": \"HF_TOKEN=[REDACTED]\",\n  \"b\": 1\n}\n"
        );
        assert!(artifacts.was_written(LOG_TAIL));
        assert_eq!(
            artifacts.outcomes()[METRICS],
            "not written: no miner ran".to_owned()
        );
    }

    #[test]
    fn the_default_directory_is_named_by_utc_time() {
        let at = time::Date::from_calendar_date(2026, time::Month::May, 12)
            .unwrap()
            .with_hms(10, 15, 2)
            .unwrap()
            .assume_utc();
        assert_eq!(default_dir_name(at), "validate-host-20260512T101502Z");
    }
}
