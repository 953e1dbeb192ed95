//! Docker image references, parsed as Docker parses them, and the policy's
//! image patterns, which match on the parsed parts.
//!
//! A glob over the raw string cannot tell the parts apart: `pearl-sim:*`
//! matched `pearl-sim:5000/alpine:latest`, an image from another registry.
//! Here both sides are split and normalised first, and a wildcard stands for
//! one part only, so it never crosses `/`, `:` or `@`.
//!
//! The grammar and the normalisation follow Docker's own parser,
//! github.com/distribution/reference (`regexp.go`, `normalize.go`,
//! `reference.go`, commit 0965666a): the first path component is a registry
//! when it contains `.` or `:`, is `localhost`, or has an upper-case letter;
//! otherwise the registry is `docker.io`, and a one-component name there
//! gets `library/`; `index.docker.io` is `docker.io`; a reference with
//! neither tag nor digest means `:latest`. Where that parser accepts a name
//! it cannot resolve (a first component with `.` that is no host name, such
//! as `foo_bar.com/x`, comes back with no registry at all) this one refuses.
//! A crate was considered: `oci-spec`'s `Reference` ports an older version
//! of the same grammar (no upper-case registry rule, no IPv6, upper-case hex
//! digests accepted) and brings four proc-macro crates; neither it nor any
//! other parses patterns, which need the same grammar with wildcards. The
//! grammar's regular expressions are checked by hand, byte by byte: a policy
//! is parsed on every command, and this keeps a pattern to well under a
//! microsecond.

use globset::{GlobBuilder, GlobMatcher};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Longest reference or pattern accepted, in bytes: a 255-byte registry, a
/// 255-byte repository, a 128-byte tag and a sha512 digest fit.
pub const MAX_REFERENCE_LEN: usize = 1024;
/// Docker's limit on the repository path (`RepositoryNameTotalLengthMax`).
pub const MAX_REPOSITORY_LEN: usize = 255;

const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// Why a reference or a pattern is not valid. Each message says what is
/// wrong and shows a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error(
        "the image reference is empty; write one such as 'ghcr.io/pearl-research-labs/pearl-miner:latest'"
    )]
    Empty,
    #[error("the image reference is {length} bytes long; the limit is {MAX_REFERENCE_LEN}")]
    TooLong { length: usize },
    #[error(
        "the image reference has a character that is not ASCII or is a space or control character (at byte {at}); references are written in ASCII, such as 'pearl-sim:latest'"
    )]
    BadCharacter { at: usize },
    #[error(
        "'{0}' is an image id, not a reference; pin an image by digest instead, such as 'pearl-sim@sha256:<64 hex>'"
    )]
    ImageId(String),
    #[error("there is nothing {0}; write a name, such as 'pearl-sim:latest'")]
    EmptyPart(&'static str),
    #[error(
        "the image reference has more than one '@'; a digest follows the name once, such as 'pearl-sim@sha256:<64 hex>'"
    )]
    TwoDigests,
    #[error(
        "registry '{0}' is not a host name, IPv4 address or [IPv6] address with an optional :port, such as 'ghcr.io' or 'localhost:5000'"
    )]
    Registry(String),
    #[error(
        "repository path component '{0}' is not valid: components are lower-case letters and digits joined by '.', '_', '__' or dashes, such as 'pearl-research-labs/pearl-miner'"
    )]
    Component(String),
    #[error("repository name '{0}' must be lower-case, such as '{lower}'", lower = .0.to_ascii_lowercase())]
    Uppercase(String),
    #[error(
        "the repository path is {length} characters long; Docker's limit is {MAX_REPOSITORY_LEN}"
    )]
    RepositoryTooLong { length: usize },
    #[error(
        "tag '{0}' is not valid: a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-', such as '1.4.2'"
    )]
    Tag(String),
    #[error(
        "digest '{0}' is not valid: write 'sha256:' and 64 lower-case hex digits (or sha384 with 96, sha512 with 128)"
    )]
    Digest(String),
    #[error(
        "the registry '{0}' cannot be a wildcard: name it, such as 'ghcr.io/pearl-research-labs/*:*', or write '*' alone for any image"
    )]
    WildcardRegistry(String),
    #[error(
        "only the last path component may be a wildcard, not '{0}': write, for example, 'ghcr.io/pearl-research-labs/*:*'"
    )]
    WildcardNotLast(String),
    #[error(
        "a digest cannot be a wildcard: pin one, such as 'pearl-sim@sha256:<64 hex>', or allow any version with 'pearl-sim:*'"
    )]
    WildcardDigest,
    #[error(
        "give a tag or a digest, not both: Docker ignores the tag of 'name:tag@digest', so write 'pearl-sim@sha256:<64 hex>' to pin a digest"
    )]
    TagAndDigest,
    #[error(
        "'*' as a name means only Docker Hub's official images (docker.io/library/*); write '*' alone for any image, or 'docker.io/library/*:*' if that is what you mean"
    )]
    BareWildcardName,
}

/// A parsed, normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses `text` as Docker does (see the module's documentation).
    pub fn parse(text: &str) -> Result<ImageRef, ImageRefError> {
        check_text(text)?;
        if is_image_id(text) {
            return Err(ImageRefError::ImageId(text.to_owned()));
        }
        let parts = Parts::split(text)?;
        let (registry, repository) = split_registry(parts.name);
        check_registry(&registry)?;
        check_repository(&repository, parts.name, Wildcards::None)?;
        let tag = match parts.tag {
            Some(tag) => Some(check_tag(tag)?.to_owned()),
            None if parts.digest.is_none() => Some(DEFAULT_TAG.to_owned()),
            None => None,
        };
        let digest = parts.digest.map(check_digest).transpose()?;
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// `docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`, as written
    /// (host names compare case-insensitively; see [`ImagePattern::matches`]).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path within the registry: `library/pearl-sim`, `pearl-research-labs/pearl-miner`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when neither tag nor digest was given, `None` for
    /// `name@digest`.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:<64 hex>` and the like, when the reference pins one. Docker
    /// then pulls and runs that digest, whatever the tag says.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl fmt::Display for ImageRef {
    /// The canonical form, which parses back to the same reference:
    /// `docker.io/library/pearl-sim:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(text)
    }
}

/// A policy's image pattern: a reference in which the tag, and the last
/// repository path component, may hold the wildcards `*` (any run of
/// characters) and `?` (one character), or `*` alone for any image.
///
/// - `pearl-sim:*`: registry `docker.io`, repository `library/pearl-sim`,
///   any tag or digest.
/// - `ghcr.io/pearl-research-labs/*:1.*`: any repository directly under
///   `pearl-research-labs` on ghcr.io, tags starting `1.`, no digest.
/// - `acme/miner`: `docker.io/acme/miner:latest`, as Docker reads it.
/// - `acme/miner@sha256:<64 hex>`: exactly that digest, under any tag.
///
/// A reference that carries a digest is the digest (Docker ignores its
/// tag), so only `:*` and a pattern pinning that digest match it.
#[derive(Debug, Clone)]
pub struct ImagePattern {
    /// The canonical form, for messages and `policy show`.
    canonical: String,
    /// `None`: any image.
    scope: Option<Scope>,
}

#[derive(Debug, Clone)]
struct Scope {
    registry: String,
    /// The repository path up to its last `/` (`library`, `pearl-research-labs`, or empty).
    parent: String,
    /// The last path component.
    name: Segment,
    version: Version,
}

#[derive(Debug, Clone)]
enum Version {
    /// `:*`: any tag, any digest.
    Any,
    /// A tag (glob); matches references without a digest.
    Tag(Segment),
    /// `@digest`: that digest, whatever the tag.
    Digest(String),
}

/// One part of a pattern: literal, or a glob within the part.
#[derive(Debug, Clone)]
enum Segment {
    Exact(String),
    Glob {
        /// With runs of `*` collapsed: within one part `**` means what `*`
        /// means, and globset reserves it for paths.
        text: String,
        /// Compiled on first use: a large policy names many patterns, and a
        /// command consults only those of the providers it runs.
        matcher: OnceLock<GlobMatcher>,
    },
}

impl Segment {
    /// `text` has been checked to hold only the part's characters and `*`/`?`.
    fn new(text: &str) -> Segment {
        if !is_glob(text) {
            return Segment::Exact(text.to_owned());
        }
        let mut collapsed = String::with_capacity(text.len());
        for c in text.chars() {
            if !(c == '*' && collapsed.ends_with('*')) {
                collapsed.push(c);
            }
        }
        Segment::Glob {
            text: collapsed,
            matcher: OnceLock::new(),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Segment::Exact(exact) => exact == value,
            Segment::Glob { text, matcher } => matcher
                .get_or_init(|| {
                    GlobBuilder::new(text)
                        .literal_separator(true)
                        .build()
                        .expect("only '*', '?' and a part's literal characters remain")
                        .compile_matcher()
                })
                .is_match(value),
        }
    }
}

impl ImagePattern {
    /// Parses a pattern as written in a policy file.
    pub fn parse(text: &str) -> Result<ImagePattern, ImageRefError> {
        if text == "*" {
            return Ok(ImagePattern {
                canonical: "*".to_owned(),
                scope: None,
            });
        }
        check_text(text)?;
        if is_image_id(text) {
            return Err(ImageRefError::ImageId(text.to_owned()));
        }
        let parts = Parts::split(text)?;
        if parts.name == "*" {
            return Err(ImageRefError::BareWildcardName);
        }
        let (registry, repository) = split_registry(parts.name);
        if is_glob(&registry) {
            return Err(ImageRefError::WildcardRegistry(registry));
        }
        check_registry(&registry)?;
        let (parent, name) = match repository.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", repository.as_str()),
        };
        if let Some(glob) = parent.split('/').find(|c| is_glob(c)) {
            return Err(ImageRefError::WildcardNotLast(glob.to_owned()));
        }
        check_repository(&repository, parts.name, Wildcards::Allowed)?;
        let version = match (parts.tag, parts.digest) {
            (Some(_), Some(_)) => return Err(ImageRefError::TagAndDigest),
            (None, None) => Version::Tag(Segment::new(DEFAULT_TAG)),
            (Some("*"), None) => Version::Any,
            (Some(tag), None) => {
                if !is_tag(tag, Wildcards::Allowed) {
                    return Err(ImageRefError::Tag(tag.to_owned()));
                }
                Version::Tag(Segment::new(tag))
            }
            (None, Some(digest)) if is_glob(digest) => return Err(ImageRefError::WildcardDigest),
            (None, Some(digest)) => Version::Digest(check_digest(digest)?.to_owned()),
        };
        let canonical = match (parts.tag, parts.digest) {
            (_, Some(digest)) => format!("{registry}/{repository}@{digest}"),
            (tag, None) => format!("{registry}/{repository}:{}", tag.unwrap_or(DEFAULT_TAG)),
        };
        Ok(ImagePattern {
            canonical,
            scope: Some(Scope {
                registry,
                parent: parent.to_owned(),
                name: Segment::new(name),
                version,
            }),
        })
    }

    /// The canonical form (as [`fmt::Display`] writes it), which parses back
    /// to the same pattern: `docker.io/library/pearl-sim:*`, or `*`.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Whether `image` is one this pattern allows: the same registry (host
    /// names compare case-insensitively), the same repository path with the
    /// last component matched by the pattern's, and a tag or digest the
    /// pattern covers.
    pub fn matches(&self, image: &ImageRef) -> bool {
        let Some(scope) = &self.scope else {
            return true;
        };
        if !scope.registry.eq_ignore_ascii_case(&image.registry) {
            return false;
        }
        let (parent, name) = match image.repository.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", image.repository.as_str()),
        };
        if parent != scope.parent || !scope.name.matches(name) {
            return false;
        }
        match &scope.version {
            Version::Any => true,
            Version::Tag(tag) => {
                image.digest.is_none() && image.tag.as_deref().is_some_and(|t| tag.matches(t))
            }
            Version::Digest(digest) => image.digest.as_deref() == Some(digest.as_str()),
        }
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for ImagePattern {
    type Err = ImageRefError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ImagePattern::parse(text)
    }
}

/// A reference split at its separators: the digest follows the only `@`, the
/// tag the last `:` after the last `/` (a `:` before a `/` is a port).
struct Parts<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(text: &'a str) -> Result<Parts<'a>, ImageRefError> {
        let (rest, digest) = match text.split_once('@') {
            Some((_, digest)) if digest.contains('@') => return Err(ImageRefError::TwoDigests),
            Some((_, "")) => return Err(ImageRefError::EmptyPart("after '@'")),
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        let tag_from = rest.rfind('/').map_or(0, |slash| slash + 1);
        let (name, tag) = match rest[tag_from..].rfind(':') {
            Some(colon) => (
                &rest[..tag_from + colon],
                Some(&rest[tag_from + colon + 1..]),
            ),
            None => (rest, None),
        };
        if tag == Some("") {
            return Err(ImageRefError::EmptyPart("after ':'"));
        }
        if name.is_empty() {
            return Err(ImageRefError::EmptyPart("before the tag or digest"));
        }
        Ok(Parts { name, tag, digest })
    }
}

/// Docker's `splitDockerDomain`: (registry, repository path).
fn split_registry(name: &str) -> (String, String) {
    let (registry, path) = match name.split_once('/') {
        None => (DEFAULT_REGISTRY, name),
        Some((LEGACY_DEFAULT_REGISTRY, path)) => (DEFAULT_REGISTRY, path),
        Some((first, path))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, path)
        }
        Some(_) => (DEFAULT_REGISTRY, name),
    };
    let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    (registry.to_owned(), path)
}

fn check_text(text: &str) -> Result<(), ImageRefError> {
    if text.is_empty() {
        return Err(ImageRefError::Empty);
    }
    if text.len() > MAX_REFERENCE_LEN {
        return Err(ImageRefError::TooLong { length: text.len() });
    }
    match text.bytes().position(|b| !b.is_ascii_graphic()) {
        Some(at) => Err(ImageRefError::BadCharacter { at }),
        None => Ok(()),
    }
}

/// `ParseNormalizedNamed` refuses 64 hex digits: that names an image id.
fn is_image_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_glob(text: &str) -> bool {
    text.contains(['*', '?'])
}

fn check_registry(registry: &str) -> Result<(), ImageRefError> {
    if is_registry(registry) {
        Ok(())
    } else {
        Err(ImageRefError::Registry(registry.to_owned()))
    }
}

/// `domainAndPort`: a host name (components of letters, digits and inner
/// dashes, joined by dots, so also an IPv4 address) or a bracketed IPv6
/// address, then an optional `:` and digits.
fn is_registry(registry: &str) -> bool {
    let (host_ok, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) => (
                !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                port,
            ),
            None => return false,
        },
        None => {
            let (host, port) = match registry.find(':') {
                Some(colon) => registry.split_at(colon),
                None => (registry, ""),
            };
            (host.split('.').all(is_domain_component), port)
        }
    };
    host_ok
        && match port.strip_prefix(':') {
            Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            None => port.is_empty(),
        }
}

/// `domainNameComponent`: `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// Where a pattern part may hold `*` and `?`: each stands for a letter, so
/// the grammar checks what the part writes out (`pearl-*` passes, `-*`,
/// which no valid name matches, does not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wildcards {
    None,
    /// In a pattern, whose other components have been checked to hold none.
    Allowed,
}

impl Wildcards {
    /// `b` as the grammar sees it.
    fn letter(self, b: u8) -> u8 {
        match (self, b) {
            (Wildcards::Allowed, b'*' | b'?') => b'a',
            _ => b,
        }
    }
}

/// `written` is the name as given, for the upper-case message.
fn check_repository(path: &str, written: &str, wildcards: Wildcards) -> Result<(), ImageRefError> {
    if path.len() > MAX_REPOSITORY_LEN {
        return Err(ImageRefError::RepositoryTooLong { length: path.len() });
    }
    for component in path.split('/') {
        if is_path_component(component, wildcards, false) {
            continue;
        }
        if is_path_component(component, wildcards, true) {
            return Err(ImageRefError::Uppercase(written.to_owned()));
        }
        return Err(ImageRefError::Component(component.to_owned()));
    }
    Ok(())
}

/// `pathComponent`: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, with
/// upper-case letters too when `fold_case` (to tell an upper-case name from
/// a malformed one).
fn is_path_component(component: &str, wildcards: Wildcards, fold_case: bool) -> bool {
    let byte = |i: usize| component.as_bytes().get(i).map(|&b| wildcards.letter(b));
    let alphanumeric = |b: u8| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || (fold_case && b.is_ascii_uppercase())
    };
    let mut i = 0;
    loop {
        let run = i;
        while byte(i).is_some_and(alphanumeric) {
            i += 1;
        }
        if i == run {
            return false;
        }
        match byte(i) {
            None => return true,
            Some(b'.') => i += 1,
            Some(b'_') => i += if byte(i + 1) == Some(b'_') { 2 } else { 1 },
            Some(b'-') => {
                while byte(i) == Some(b'-') {
                    i += 1;
                }
            }
            Some(_) => return false,
        }
    }
}

/// `tag`: `[\w][\w.-]{0,127}`, with Go's ASCII `\w`.
fn is_tag(tag: &str, wildcards: Wildcards) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes().map(|b| wildcards.letter(b));
    tag.len() <= 128
        && bytes.next().is_some_and(word)
        && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

fn check_tag(tag: &str) -> Result<&str, ImageRefError> {
    if is_tag(tag, Wildcards::None) {
        Ok(tag)
    } else {
        Err(ImageRefError::Tag(tag.to_owned()))
    }
}

/// The grammar's `digestPat` narrowed, as go-digest's check narrows it, to
/// the algorithms Docker registers: lower-case hex of the algorithm's length.
fn check_digest(digest: &str) -> Result<&str, ImageRefError> {
    let (length, hex) = match digest.split_once(':') {
        Some(("sha256", hex)) => (64, hex),
        Some(("sha384", hex)) => (96, hex),
        Some(("sha512", hex)) => (128, hex),
        _ => return Err(ImageRefError::Digest(digest.to_owned())),
    };
    if hex.len() == length && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(digest)
    } else {
        Err(ImageRefError::Digest(digest.to_owned()))
    }
}

#[cfg(test)]
mod tests;
