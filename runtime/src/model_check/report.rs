//! What the model checks produce: named checks, the pass rule, and the JSON
//! artifact (`schema_version` 1, keys sorted, indent 2, trailing newline)
//! written atomically.

use crate::atomic_file;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The artifacts' schema version (reference §5.1).
pub const SCHEMA_VERSION: u64 = 1;

/// One recorded check, as the artifact lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub info: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, info: impl Into<String>) -> Self {
        Check {
            name: name.to_owned(),
            ok,
            info: info.into(),
        }
    }

    pub fn pass(name: &str, info: impl Into<String>) -> Self {
        Check::new(name, true, info)
    }

    pub fn fail(name: &str, info: impl Into<String>) -> Self {
        Check::new(name, false, info)
    }
}

/// A printed line: a recorded check, or a note that is shown in its place
/// but not recorded (`Chat completion  skipped (pass --prompt to run)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Check(Check),
    Note { name: String, info: String },
}

/// The pass rule: at least one check, and every check ok.
pub fn passed<'a>(checks: impl IntoIterator<Item = &'a Check>) -> bool {
    let mut any = false;
    for check in checks {
        if !check.ok {
            return false;
        }
        any = true;
    }
    any
}

/// `"passed"` or `"failed"`, as the artifact says it.
pub fn status_word(passed: bool) -> &'static str {
    if passed { "passed" } else { "failed" }
}

/// The artifact's text: indent 2, keys sorted, a trailing newline.
pub fn artifact_text(value: &impl Serialize) -> String {
    let value = serde_json::to_value(value).expect("artifacts serialize");
    let mut text = to_sorted_string(&value);
    text.push('\n');
    text
}

/// Pretty JSON with every object's keys sorted, whatever order serde_json's
/// map keeps (another crate in the build may turn on `preserve_order`).
fn to_sorted_string(value: &Value) -> String {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Sorted<'a> {
        Object(BTreeMap<&'a str, Sorted<'a>>),
        Array(Vec<Sorted<'a>>),
        Leaf(&'a Value),
    }
    fn wrap(value: &Value) -> Sorted<'_> {
        match value {
            Value::Object(map) => {
                Sorted::Object(map.iter().map(|(k, v)| (k.as_str(), wrap(v))).collect())
            }
            Value::Array(items) => Sorted::Array(items.iter().map(wrap).collect()),
            leaf => Sorted::Leaf(leaf),
        }
    }
    serde_json::to_string_pretty(&wrap(value)).expect("JSON values serialize")
}

/// Writes `text` to `path` atomically (parent directories created), mode
/// 0644: an artifact holds no secret and is meant to be attached to a PR.
pub fn write_artifact(path: &Path, text: &str) -> std::io::Result<()> {
    atomic_file::write_path(path, atomic_file::Mode::Fixed(0o644), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_rule_needs_a_check_and_no_failure() {
        assert!(!passed(&[]));
        assert!(passed(&[Check::pass("a", "")]));
        assert!(!passed(&[Check::pass("a", ""), Check::fail("b", "")]));
    }

    #[test]
    fn artifacts_have_sorted_keys_indent_2_and_a_newline() {
        let value = serde_json::json!({
            "zeta": 1,
            "alpha": {"b": true, "a": [ {"name": "x", "info": "y", "ok": true} ]},
        });
        let text = artifact_text(&value);
        assert_eq!(
            text,
            "{\n  \"alpha\": {\n    \"a\": [\n      {\n        \"info\": \"y\",\n        \"name\": \"x\",\n        \"ok\": true\n      }\n    ],\n    \"b\": true\n  },\n  \"zeta\": 1\n}\n"
        );
    }

    #[test]
    fn artifacts_are_written_whole_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/artifact.json");
        write_artifact(&path, "{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
