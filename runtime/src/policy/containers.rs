//! The `containers` capability's keys (`[providers.ID.containers]`) and
//! checks: which images, digests, host paths, network modes, ports, env
//! names and secrets a provider's containers may use.

use super::values::{FromPolicyText, Pattern, is_sha256_hex, text_value};
use super::{Denial, ProviderPolicy};
use crate::image_reference::{ImagePattern, ImageRef};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::path::{Component, Path, PathBuf};

const CAPABILITY: Option<&str> = Some("containers");

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRules {
    /// Image patterns, matched on the parsed parts of a reference
    /// (docs/policy.md#image-patterns).
    pub images: Option<Vec<ImagePatternValue>>,
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

/// An image pattern as a policy file writes it.
#[derive(Debug, Clone)]
pub struct ImagePatternValue(ImagePattern);

impl ImagePatternValue {
    pub fn matches(&self, image: &ImageRef) -> bool {
        self.0.matches(image)
    }
}

impl FromPolicyText for ImagePatternValue {
    fn from_text(text: &str) -> Result<Self, String> {
        ImagePattern::parse(text)
            .map(ImagePatternValue)
            .map_err(|err| err.to_string())
    }
    fn text(&self) -> &str {
        self.0.as_str()
    }
}
text_value!(ImagePatternValue);

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

/// A host path a container may mount: absolute, `~/...`, or `hf-cache` (the
/// Hugging Face cache). No patterns: a path grants itself and what is below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(String);

pub const HF_CACHE: &str = "hf-cache";

impl MountPath {
    /// The granted path as written, `~` and `hf-cache` expanded.
    pub fn expand(&self) -> Option<PathBuf> {
        if self.0 == HF_CACHE {
            host_gpu::disk::hf_home()
        } else if let Some(rest) = self.0.strip_prefix("~/") {
            Some(std::env::home_dir()?.join(rest))
        } else {
            Some(PathBuf::from(&self.0))
        }
    }

    /// Whether a requested host path lies at or below this grant, compared
    /// with the grant as written and as it resolves on this host (a granted
    /// `/data` that is a link to `/mnt/data` grants both spellings). Only
    /// the *granted* path is resolved here: the request is compared as given
    /// (lexically normalised before the decision, canonical after it).
    pub fn covers(&self, requested: &Path) -> bool {
        let Some(granted) = self.expand() else {
            return false;
        };
        let canonical = granted.canonicalize().ok();
        requested.starts_with(&granted) || canonical.is_some_and(|c| requested.starts_with(c))
    }
}

/// `path` with `.` and `..` resolved as text, never touching the file
/// system: `None` unless absolute. `..` above `/` stays at `/`, as the
/// kernel does.
pub fn lexically_normal(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut normal = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::Normal(part) => normal.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(normal)
}

impl FromPolicyText for MountPath {
    fn from_text(text: &str) -> Result<Self, String> {
        let shaped = text == HF_CACHE || text.starts_with('/') || text.starts_with("~/");
        let dotted = Path::new(text)
            .components()
            .any(|c| matches!(c, Component::ParentDir));
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

/// A container launch as the policy sees it: host paths (lexically normal
/// before the decision, canonical when re-checked after resolving), the
/// names (never the values) of env variables and secrets.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The Docker name the host gives the container (namespaced).
    pub name: String,
    pub image: String,
    /// The local image's id and repo digests (looked up only when a policy
    /// pins digests, and only once the image itself is granted).
    pub image_digests: Option<Vec<String>>,
    pub gpus: GpuAsk,
    /// Host paths and whether each is mounted read-only.
    pub mounts: Vec<(PathBuf, bool)>,
    pub network: String,
    pub host_ports: Vec<u16>,
    pub env_names: Vec<String>,
    pub secrets: Vec<String>,
    pub shm_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GpuAsk {
    #[default]
    None,
    All,
    Count(u32),
    Ids(Vec<String>),
}

fn rules(grant: &super::Grant) -> Option<&ContainerRules> {
    grant.containers.as_ref()
}

impl ProviderPolicy {
    pub(super) fn image(&self, image: &str, digests: Option<&[String]>) -> Result<(), Denial> {
        // The host validated the reference; one that does not parse matches
        // no pattern.
        let parsed = ImageRef::parse(image).ok();
        self.each(
            CAPABILITY,
            "containers.images",
            |g| g.containers.as_ref()?.images.as_ref(),
            |patterns| {
                parsed
                    .as_ref()
                    .is_some_and(|image| patterns.iter().any(|p| p.matches(image)))
            },
            || format!("image '{image}'"),
        )?;
        let Some(digests) = digests else {
            return Ok(());
        };
        self.each(
            CAPABILITY,
            "containers.digests",
            |g| g.containers.as_ref()?.digests.as_ref(),
            |pinned| {
                pinned
                    .iter()
                    .any(|want| digests.iter().any(|have| have.ends_with(&want.to_string())))
            },
            || match digests.first() {
                Some(id) => format!("image '{image}' ({id})"),
                None => format!("image '{image}' (not present locally, digest unknown)"),
            },
        )
    }

    /// Whether any view pins image digests (the caller then looks them up,
    /// once the image itself is granted).
    pub fn pins_digests(&self) -> bool {
        self.views.iter().any(|v| {
            v.grant
                .as_ref()
                .and_then(|g| g.containers.as_ref())
                .is_some_and(|c| c.digests.is_some())
        })
    }

    pub(super) fn run(&self, run: &RunRequest) -> Result<(), Denial> {
        self.image(&run.image, run.image_digests.as_deref())?;
        self.gpus(&run.gpus)?;
        for (path, read_only) in &run.mounts {
            self.each(
                CAPABILITY,
                "containers.mounts",
                |g| g.containers.as_ref()?.mounts.as_ref(),
                |rules| {
                    rules
                        .iter()
                        .any(|rule| (*read_only || !rule.read_only) && rule.path.covers(path))
                },
                || {
                    format!(
                        "mount of {} ({})",
                        path.display(),
                        if *read_only {
                            "read-only"
                        } else {
                            "read-write"
                        }
                    )
                },
            )?;
        }
        self.each(
            CAPABILITY,
            "containers.network_modes",
            |g| g.containers.as_ref()?.network_modes.as_ref(),
            |modes| modes.iter().any(|m| m.as_str() == run.network),
            || format!("network mode '{}'", run.network),
        )?;
        self.ports_granted(
            CAPABILITY,
            "containers.ports",
            |g| rules(g)?.ports.as_ref(),
            &run.host_ports,
        )?;
        self.names_granted(
            CAPABILITY,
            "containers.env",
            |g| rules(g)?.env.as_ref(),
            &run.env_names,
            "environment variable",
        )?;
        self.names_granted(
            CAPABILITY,
            "containers.secrets",
            |g| rules(g)?.secrets.as_ref(),
            &run.secrets,
            "secret",
        )?;
        self.container_quotas(run)
    }
}
