//! The policy file format (docs/policy.md), parsed strictly: an unknown key,
//! a bad pattern, a value out of range or a type error is an error naming the
//! file, line and column. Every value type validates itself while it is
//! deserialized, so the TOML parser attaches the position for free.

use crate::bindings::Capability;
use crate::text_position::line_column;
use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// `[installed]`: may community providers load at all, and which ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledRules {
    pub allow: Option<bool>,
    /// Only components with one of these sha256 digests load.
    pub sha256: Option<Vec<Sha256>>,
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
    pub limits: Option<LimitRules>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRules {
    /// Image reference patterns (`*` matches any run of characters).
    pub images: Option<Vec<Pattern>>,
    /// When set, the image's id or repo digest must be one of these.
    pub digests: Option<Vec<ImageDigest>>,
    pub mounts: Option<Vec<MountRule>>,
    pub network_modes: Option<Vec<NetworkMode>>,
    /// Host ports a container may publish: numbers or `"low-high"` ranges.
    pub ports: Option<Vec<PortRange>>,
    /// Environment variable names (patterns) a container may be given.
    pub env: Option<Vec<Pattern>>,
    /// Host environment variables (patterns) a provider may reference as secrets.
    pub secrets: Option<Vec<Pattern>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsRules {
    /// `"session"` (the provider's own loopback endpoints) or
    /// `http://HOST:PORT` patterns, `*` allowed for HOST, a `*.` prefix, or PORT.
    pub endpoints: Option<Vec<Endpoint>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRules {
    pub memory_mib: Option<Bounded<1, 4096>>,
    pub call_timeout_ms: Option<Bounded<10, 600_000>>,
    /// Wall time one lifecycle call may spend in host calls (image
    /// acquisition excepted, it has its own progress and can be interrupted).
    pub host_time_ms: Option<Bounded<10, 3_600_000>>,
    pub output_kib: Option<Bounded<1, 65_536>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountRule {
    pub path: MountPath,
    /// Mounts of this path must be read-only.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Host,
    Bridge,
    None,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Host => "host",
            NetworkMode::Bridge => "bridge",
            NetworkMode::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityName {
    Containers,
    Sidecar,
    Metrics,
    GpuTelemetry,
    Processes,
}

impl CapabilityName {
    pub fn of(capability: Capability) -> CapabilityName {
        match capability {
            Capability::Containers => CapabilityName::Containers,
            Capability::Sidecar => CapabilityName::Sidecar,
            Capability::Metrics => CapabilityName::Metrics,
            Capability::GpuTelemetry => CapabilityName::GpuTelemetry,
            Capability::Processes => CapabilityName::Processes,
        }
    }
}

/// Builds a value from its text form, or says what is wrong with it.
trait FromPolicyText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
    fn text(&self) -> &str;
}

/// Implements Deserialize/Serialize through `FromPolicyText`.
macro_rules! text_value {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$ty>::from_text(&text).map_err(de::Error::custom)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.text())
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text())
            }
        }
    };
}

/// A glob over names or image references: `*` any run, `?` one character,
/// `[..]` a class. An exact name is a pattern that matches only itself.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    glob: Glob,
    /// Compiled on first use: a large policy names many patterns, and a
    /// command consults only the few of the providers it runs.
    matcher: OnceLock<GlobMatcher>,
}

impl Pattern {
    pub fn matches(&self, value: &str) -> bool {
        self.matcher
            .get_or_init(|| self.glob.compile_matcher())
            .is_match(value)
    }
}

impl FromPolicyText for Pattern {
    fn from_text(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 255 {
            return Err(format!("pattern {text:?} must be 1 to 255 characters long"));
        }
        if let Some(bad) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("pattern {text:?} contains {bad:?}"));
        }
        let glob = GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|err| format!("bad pattern {text:?}: {}", err.kind()))?;
        Ok(Pattern {
            text: text.to_owned(),
            glob,
            matcher: OnceLock::new(),
        })
    }
    fn text(&self) -> &str {
        &self.text
    }
}
text_value!(Pattern);

/// `sha256:<64 hex>`: an image id or repo digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigest(String);

impl FromPolicyText for ImageDigest {
    fn from_text(text: &str) -> Result<Self, String> {
        match text.strip_prefix("sha256:") {
            Some(hex) if is_sha256_hex(hex) => Ok(ImageDigest(text.to_ascii_lowercase())),
            _ => Err(format!(
                "image digest {text:?} must be \"sha256:\" followed by 64 hex digits"
            )),
        }
    }
    fn text(&self) -> &str {
        &self.0
    }
}
text_value!(ImageDigest);

/// A component's sha256, 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

impl FromPolicyText for Sha256 {
    fn from_text(text: &str) -> Result<Self, String> {
        if is_sha256_hex(text) {
            Ok(Sha256(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "{text:?} is not a sha256: expected 64 hex digits (`jarvis mine providers inspect FILE` prints it)"
            ))
        }
    }
    fn text(&self) -> &str {
        &self.0
    }
}
text_value!(Sha256);

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// A GPU: `"*"`, an NVML index, or a UUID (`GPU-...`, `MIG-...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuId(String);

impl GpuId {
    pub fn is_any(&self) -> bool {
        self.0 == "*"
    }

    /// Whether this names the GPU with `index` and `uuid`.
    pub fn names(&self, index: &str, uuid: Option<&str>) -> bool {
        self.is_any() || self.0 == index || uuid.is_some_and(|u| u.eq_ignore_ascii_case(&self.0))
    }
}

impl FromPolicyText for GpuId {
    fn from_text(text: &str) -> Result<Self, String> {
        let index = !text.is_empty() && text.len() <= 4 && text.chars().all(|c| c.is_ascii_digit());
        let uuid = (text.starts_with("GPU-") || text.starts_with("MIG-"))
            && text.len() <= 96
            && text[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/');
        if text == "*" || index || uuid {
            Ok(GpuId(text.to_owned()))
        } else {
            Err(format!(
                "GPU {text:?} must be \"*\", an NVML index such as \"0\", or a UUID such as \"GPU-...\""
            ))
        }
    }
    fn text(&self) -> &str {
        &self.0
    }
}
text_value!(GpuId);

/// A host path a container may mount: absolute, `~/...`, or `hf-cache` (the
/// Hugging Face cache). No patterns: a path grants itself and what is below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(String);

pub const HF_CACHE: &str = "hf-cache";

impl MountPath {
    /// The path on this host (`~` and `hf-cache` resolved), if it resolves.
    pub fn resolve(&self) -> Option<PathBuf> {
        let path = if self.0 == HF_CACHE {
            host_gpu::disk::hf_home()?
        } else if let Some(rest) = self.0.strip_prefix("~/") {
            std::env::home_dir()?.join(rest)
        } else {
            PathBuf::from(&self.0)
        };
        // A granted path that does not exist grants nothing; one that exists
        // is compared in its canonical form, as requested mounts are.
        Some(path.canonicalize().unwrap_or(path))
    }
}

impl FromPolicyText for MountPath {
    fn from_text(text: &str) -> Result<Self, String> {
        let shaped = text == HF_CACHE || text.starts_with('/') || text.starts_with("~/");
        let dotted = Path::new(text)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        if !shaped || dotted || text.contains('*') {
            return Err(format!(
                "mount path {text:?} must be absolute, start with \"~/\", or be \"hf-cache\" (no \"..\", no patterns)"
            ));
        }
        Ok(MountPath(text.to_owned()))
    }
    fn text(&self) -> &str {
        &self.0
    }
}
text_value!(MountPath);

/// `"session"`, or `http://HOST:PORT` where HOST is a name, an IP, `*` or
/// `*.suffix`, and PORT a number or `*`. Only http is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    text: String,
    kind: EndpointKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EndpointKind {
    Session,
    Http { host: String, port: Option<u16> },
}

pub const SESSION_ENDPOINTS: &str = "session";

impl Endpoint {
    pub fn is_session(&self) -> bool {
        self.kind == EndpointKind::Session
    }

    /// Whether an http URL's host and port match this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let EndpointKind::Http {
            host: pattern,
            port: want,
        } = &self.kind
        else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = pattern == "*"
            || *pattern == host
            || pattern
                .strip_prefix("*.")
                .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
        host_ok && want.is_none_or(|p| p == port)
    }
}

impl FromPolicyText for Endpoint {
    fn from_text(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "endpoint {text:?} must be \"session\" or \"http://HOST:PORT\" (HOST may be \"*\" or \"*.domain\", PORT may be \"*\"; \"http://*:*\" allows every http endpoint)"
            )
        };
        if text == SESSION_ENDPOINTS {
            return Ok(Endpoint {
                text: text.to_owned(),
                kind: EndpointKind::Session,
            });
        }
        let rest = text.strip_prefix("http://").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && (host == "*"
                || host
                    .strip_prefix("*.")
                    .unwrap_or(host)
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)));
        let port = match port {
            "*" => None,
            number => Some(number.parse::<u16>().map_err(|_| bad())?),
        };
        if !host_ok || port == Some(0) {
            return Err(bad());
        }
        Ok(Endpoint {
            text: text.to_owned(),
            kind: EndpointKind::Http {
                host: host.to_ascii_lowercase(),
                port,
            },
        })
    }
    fn text(&self) -> &str {
        &self.text
    }
}
text_value!(Endpoint);

/// A host port or an inclusive range of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (1-65535) or a range \"LOW-HIGH\"")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<PortRange, E> {
                let port = u16::try_from(value)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| E::custom(format!("port {value} is not in 1-65535")))?;
                Ok(PortRange {
                    low: port,
                    high: port,
                })
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<PortRange, E> {
                self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<PortRange, E> {
                let bad = || {
                    E::custom(format!(
                        "port range {value:?} must be \"LOW-HIGH\" with 1 <= LOW <= HIGH <= 65535"
                    ))
                };
                let (low, high) = value.split_once('-').ok_or_else(bad)?;
                let low: u16 = low.trim().parse().map_err(|_| bad())?;
                let high: u16 = high.trim().parse().map_err(|_| bad())?;
                if low == 0 || low > high {
                    return Err(bad());
                }
                Ok(PortRange { low, high })
            }
        }
        deserializer.deserialize_any(PortVisitor)
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            serializer.serialize_u16(self.low)
        } else {
            serializer.collect_str(self)
        }
    }
}

/// An integer limit that must lie in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u64::try_from(value)
            .ok()
            .filter(|v| (MIN..=MAX).contains(v))
            .map(Bounded)
            .ok_or_else(|| de::Error::custom(format!("{value} is not in {MIN}..={MAX}")))
    }
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

/// The largest policy file read (a generous enterprise file is tens of KiB).
const MAX_POLICY_BYTES: u64 = 4 << 20;

impl PolicyFile {
    /// Parses policy text; `origin` is only used in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<PolicyFile, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|err: toml::de::Error| {
            let (line, column) = err
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
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
        let read_error = |message: String| PolicyError::Read {
            path: path.to_owned(),
            message,
        };
        let text = match std::fs::metadata(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(read_error(err.to_string())),
            Ok(meta) if meta.len() > MAX_POLICY_BYTES => {
                return Err(read_error(format!(
                    "{} bytes is larger than the {MAX_POLICY_BYTES}-byte limit",
                    meta.len()
                )));
            }
            Ok(_) => std::fs::read_to_string(path).map_err(|err| read_error(err.to_string()))?,
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
        assert!(containers.images.as_ref().unwrap()[0].matches("openjarvis/pearl-miner:master"));
        assert!(!containers.images.as_ref().unwrap()[0].matches("evil/miner:latest"));
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
        assert!(message.contains("bad pattern \"a[\""), "{message}");

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
