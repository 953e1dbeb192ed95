//! The policy file format (docs/policy.md), parsed strictly: an unknown key,
//! a bad pattern, a value out of range or a type error is an error naming the
//! file, line and column. Every value type validates itself while it is
//! deserialized, so the TOML parser attaches the position for free.

use super::capabilities::CapabilityName;
use super::containers::ContainerRules;
use super::gpus::GpuId;
use super::installed::InstalledRules;
use super::limits::LimitRules;
use super::metrics::MetricsRules;
use super::processes::ProcessRules;
use super::quotas::QuotaRules;
use crate::home::HomePath;
use crate::text_position::{line_column, span_start};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One policy file: rules for installed providers, a grant for providers the
/// file does not name, and grants per provider id.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub installed: InstalledRules,
    pub default: Option<Grant>,
    #[serde(default)]
    pub providers: BTreeMap<String, Grant>,
}

/// What one file grants one provider. An absent key is "not constrained by
/// this file" for built-ins and in the system file, and "nothing" where the
/// file is what grants an installed provider (see `policy::View`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub capabilities: Option<Vec<CapabilityName>>,
    /// GPUs by NVML index or UUID; `"*"` for any.
    pub gpus: Option<Vec<GpuId>>,
    pub containers: Option<ContainerRules>,
    pub metrics: Option<MetricsRules>,
    pub processes: Option<ProcessRules>,
    pub limits: Option<LimitRules>,
    pub quotas: Option<QuotaRules>,
}

/// A policy file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl PolicyFile {
    /// Parses policy text; `origin` is only used in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<PolicyFile, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|err: toml::de::Error| {
            let (line, column) = span_start(text, err.span());
            PolicyError::Invalid {
                path: origin.to_owned(),
                line,
                column,
                message: err.message().trim_end().to_owned(),
            }
        })?;
        if let Some(id) = file.providers.keys().find(|id| !valid_provider_id(id)) {
            let offset = text.find(id.as_str()).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            return Err(PolicyError::Invalid {
                path: origin.to_owned(),
                line,
                column,
                message: format!("provider id {id:?} must be lower-case letters, digits and '-'"),
            });
        }
        Ok(file)
    }

    /// Reads and parses `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<PolicyFile>, PolicyError> {
        // Regular files only, capped while reading: a FIFO or /dev/zero as
        // a policy file is an error, never a hang.
        let read = crate::bounded_read::read_text(path, &crate::bounded_read::POLICY_FILE);
        PolicyFile::from_read(path, read)
    }

    /// [`load`](Self::load) of the user's file, under the home.
    pub fn load_home(path: &HomePath) -> Result<Option<PolicyFile>, PolicyError> {
        let read = crate::bounded_read::read_home_text(path, &crate::bounded_read::POLICY_FILE);
        PolicyFile::from_read(&path.absolute(), read)
    }

    fn from_read(
        path: &Path,
        read: Result<String, crate::bounded_read::ReadError>,
    ) -> Result<Option<PolicyFile>, PolicyError> {
        let read_error = |message: String| PolicyError::Read {
            path: path.to_owned(),
            message,
        };
        let text = match read {
            Ok(text) => text,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(read_error(err.to_string())),
        };
        PolicyFile::parse(&text, path).map(Some)
    }
}

pub fn valid_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::super::containers::PortRange;
    use super::super::values::FromPolicyText;
    use super::*;

    fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        PolicyFile::parse(text, Path::new("policy.toml"))
    }

    fn error_at(text: &str) -> (usize, usize, String) {
        match parse(text).unwrap_err() {
            PolicyError::Invalid {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_enterprise_file_parses() {
        let file = parse(
            r#"
[installed]
allow = true
sha256 = ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]

[default]
capabilities = []

[providers.vllm-pearl]
capabilities = ["containers", "sidecar", "metrics"]
gpus = ["0", "GPU-1234abcd-0000"]

[providers.vllm-pearl.containers]
images = ["openjarvis/pearl-miner:*"]
digests = ["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
mounts = [{ path = "hf-cache" }, { path = "/data/models", read_only = true }]
network_modes = ["host"]
ports = [8000, "8337-8339"]
env = ["MINER_*", "HF_TOKEN", "NVIDIA_VISIBLE_DEVICES"]
secrets = ["PEARLD_RPC_PASSWORD", "HF_TOKEN"]

[providers.vllm-pearl.metrics]
endpoints = ["session", "http://10.0.0.5:9100", "http://*.metrics.internal:*"]

[providers.vllm-pearl.limits]
memory_mib = 64
call_timeout_ms = 2000
host_time_ms = 60000
output_kib = 64
"#,
        )
        .unwrap();
        let grant = &file.providers["vllm-pearl"];
        let containers = grant.containers.as_ref().unwrap();
        assert!(
            containers.images.as_ref().unwrap()[0]
                .matches(&"openjarvis/pearl-miner:master".parse().unwrap())
        );
        assert!(
            !containers.images.as_ref().unwrap()[0].matches(&"evil/miner:latest".parse().unwrap())
        );
        assert_eq!(
            containers.ports.as_ref().unwrap()[1],
            PortRange {
                low: 8337,
                high: 8339
            }
        );
        let endpoints = grant.metrics.as_ref().unwrap().endpoints.as_ref().unwrap();
        assert!(endpoints[0].is_session());
        assert!(endpoints[1].matches("10.0.0.5", 9100));
        assert!(!endpoints[1].matches("10.0.0.5", 9101));
        assert!(endpoints[2].matches("a.metrics.internal", 1));
        assert!(!endpoints[2].matches("metrics.internal.evil", 1));
        assert_eq!(file.default.unwrap().capabilities, Some(vec![]));
    }

    #[test]
    fn errors_name_line_and_column() {
        let (line, column, message) = error_at("[providers.x]\ncapabilties = []\n");
        assert_eq!((line, column), (2, 1), "{message}");
        assert!(message.contains("unknown field `capabilties`"), "{message}");

        let (line, _, message) = error_at("[providers.x.containers]\nimages = [\"a[\"]\n");
        assert_eq!(line, 2);
        assert!(message.contains("'a['"), "{message}");

        let (line, _, message) = error_at("[providers.x]\ncapabilities = [\"root\"]\n");
        assert_eq!(line, 2);
        assert!(message.contains("unknown variant `root`"), "{message}");

        let (line, _, message) = error_at("[providers.x.limits]\nmemory_mib = 0\n");
        assert_eq!(line, 2);
        assert!(message.contains("not in 1..=4096"), "{message}");

        let (_, _, message) = error_at("[providers.x.containers]\nports = [\"9-1\"]\n");
        assert!(message.contains("LOW-HIGH"), "{message}");

        let (_, _, message) =
            error_at("[providers.x.containers]\nmounts = [{ path = \"/a/../etc\" }]\n");
        assert!(message.contains("no \"..\""), "{message}");

        let (_, _, message) = error_at("[providers.x.metrics]\nendpoints = [\"*\"]\n");
        assert!(message.contains("http://*:*"), "{message}");

        let (_, _, message) = error_at("[installed]\nallow = \"yes\"\n");
        assert!(message.contains("invalid type"), "{message}");

        let (line, _, message) = error_at("\n[providers.Bad_Id]\n");
        assert_eq!(line, 2);
        assert!(message.contains("lower-case"), "{message}");
    }

    #[test]
    fn every_example_in_the_policy_docs_parses() {
        let docs = include_str!("../../../docs/policy.md");
        let blocks: Vec<&str> = docs
            .split("```toml\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap())
            .collect();
        assert!(blocks.len() >= 4, "{}", blocks.len());
        for block in blocks {
            // The reference block abbreviates digests; give them their length.
            let block = block
                .replace("<64 hex>", &"a".repeat(64))
                .replace("\"ID\"", "\"some-provider\"");
            if let Err(err) = parse(&block) {
                panic!("{err}\n{block}");
            }
        }
    }

    #[test]
    fn gpu_ids_match_by_index_or_uuid() {
        let by_index = GpuId::from_text("1").unwrap();
        let by_uuid = GpuId::from_text("GPU-abc").unwrap();
        assert!(by_index.names("1", Some("GPU-x")));
        assert!(!by_index.names("10", None));
        assert!(by_uuid.names("3", Some("GPU-ABC")));
        assert!(GpuId::from_text("*").unwrap().names("7", None));
        assert!(GpuId::from_text("all").is_err());
    }

    #[test]
    fn a_missing_file_is_no_layer_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            PolicyFile::load(&dir.path().join("absent.toml"))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            PolicyFile::load(dir.path()),
            Err(PolicyError::Read { .. })
        ));
    }
}
