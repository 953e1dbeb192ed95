//! Policy values that validate themselves while they are deserialized (so
//! the TOML parser attaches file, line and column to every error), shared by
//! the per-capability rule files.

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Builds a value from its text form, or says what is wrong with it.
pub trait FromPolicyText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
    fn text(&self) -> &str;
}

/// Implements Deserialize/Serialize through `FromPolicyText`.
macro_rules! text_value {
    ($ty:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                <$ty as $crate::policy::values::FromPolicyText>::from_text(&text)
                    .map_err(serde::de::Error::custom)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($crate::policy::values::FromPolicyText::text(self))
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.text())
            }
        }
    };
}
pub(crate) use text_value;

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

pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
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
