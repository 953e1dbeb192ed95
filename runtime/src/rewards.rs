//! Rewards go to the user: Pearl addresses in what a provider hands the host.
//!
//! A provider that describes a container can put its author's wallet in the
//! miner's env or args, as cryptojacking code does with "warm-up" workers.
//! [`check_payout_addresses`] finds every Pearl address in a container
//! spec's texts and refuses any that is not `[mining].wallet_address`;
//! [`scan_component`] finds addresses and pool URLs compiled into a
//! component, for `providers inspect` and `install` to warn about.
//!
//! A Pearl address is bech32: the human-readable part `prl` (`tprl` on
//! testnet), `1`, then the witness version (`q` for v0, `p` for Taproot) and
//! the data. Bech32 is case-insensitive, and a decoder refuses mixed case.

use percent_encoding::percent_decode_str;
use regex::bytes::Regex;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

/// Findings `scan_component` returns in full; the rest are counted.
pub const MAX_FINDINGS: usize = 16;
/// Longest text shown for one finding or one foreign address.
const MAX_SHOWN: usize = 120;

/// `prl1q` or `prl1p` in any case: where an address starts (after its HRP).
static MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("(?i-u)prl1[qp]").expect("marker compiles"));
/// In a component: the marker and at least nine bech32 data characters
/// (`doctor`'s shortest valid address is 14 characters), at most bech32's 90.
static COMPONENT_ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("(?i-u)prl1[qp][02-9ac-hj-np-z]{9,85}").expect("address compiles"));
/// A stratum URL (`stratum+tcp://`, `stratum+ssl://`, `stratum2+tcp://`...)
/// or a `pool:<url>` submit target, with the URL characters that follow.
static POOL_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i-u)(?:pool:[a-z][a-z0-9+.\-]*://|stratum[a-z0-9]*\+[a-z0-9]+://)[A-Za-z0-9._~%!$&*+,;=:@/\[\]\-]*",
    )
    .expect("pool URL compiles")
});

/// A Pearl address in a container spec that is not the user's wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// The position of the text in what was checked.
    pub index: usize,
    /// The address as found (letters and digits only, at most 120 of them).
    pub address: String,
    pub how: Hidden,
}

/// How the address was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Plainly, in any case, anywhere in the text.
    Written,
    /// Percent-encoded, as in a URL.
    PercentEncoded,
    /// Its start (`prl1q`, `prl1p`) split between this text and the next.
    Split,
}

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, address) = (self.index, &self.address);
        match self.how {
            Hidden::Written => write!(f, "value {index} carries Pearl address '{address}'")?,
            Hidden::PercentEncoded => write!(
                f,
                "value {index} carries Pearl address '{address}' (percent-encoded)"
            )?,
            Hidden::Split => write!(
                f,
                "values {index} and {} split a Pearl address between them ('{address}')",
                index + 1
            )?,
        }
        f.write_str(
            ", which is not [mining].wallet_address: a container may pay only the user's wallet",
        )
    }
}

impl std::error::Error for Foreign {}

/// Checks that every Pearl address in `texts` (a container spec's env
/// values and args, in order) is `wallet`, ignoring ASCII case. An address
/// is the whole run of ASCII letters and digits around `prl1q`/`prl1p`, so a
/// longer run, another HRP (`xprl1q…`) or a fragment counts as another
/// address. Each text is checked as written and percent-decoded; the texts
/// joined in order are checked for an address start split between them.
pub fn check_payout_addresses<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    wallet: &str,
) -> Result<(), Foreign> {
    let wallet = wallet.trim();
    let mut joined = String::new();
    let mut starts = Vec::new();
    for (index, text) in texts.into_iter().enumerate() {
        check_text(text, index, wallet, Hidden::Written)?;
        if text.contains('%') {
            let decoded = percent_decode_str(text).decode_utf8_lossy();
            check_text(&decoded, index, wallet, Hidden::PercentEncoded)?;
        }
        starts.push(joined.len());
        joined.push_str(text);
    }
    // Every marker, overlapping ones included: `prl1p` + `rl1q` overlap.
    let mut from = 0;
    while let Some(marker) = MARKER.find_at(joined.as_bytes(), from) {
        let inside = starts
            .iter()
            .position(|&start| marker.start() < start && start < marker.end());
        if let Some(next) = inside {
            let run = address_run(joined.as_bytes(), marker.range());
            return Err(Foreign {
                index: next - 1,
                address: shown(&joined[run]),
                how: Hidden::Split,
            });
        }
        from = marker.start() + 1;
    }
    Ok(())
}

fn check_text(text: &str, index: usize, wallet: &str, how: Hidden) -> Result<(), Foreign> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(marker) = MARKER.find_at(bytes, from) {
        let run = address_run(bytes, marker.range());
        let address = &text[run.clone()];
        if !address.eq_ignore_ascii_case(wallet) {
            return Err(Foreign {
                index,
                address: shown(address),
                how,
            });
        }
        from = run.end;
    }
    Ok(())
}

/// The run of ASCII letters and digits around `marker`.
fn address_run(bytes: &[u8], marker: Range<usize>) -> Range<usize> {
    let start = bytes[..marker.start]
        .iter()
        .rposition(|b| !b.is_ascii_alphanumeric())
        .map_or(0, |i| i + 1);
    let end = bytes[marker.end..]
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .map_or(bytes.len(), |i| marker.end + i);
    start..end
}

/// ASCII text cut to [`MAX_SHOWN`] characters.
fn shown(ascii: &str) -> String {
    if ascii.len() <= MAX_SHOWN {
        ascii.to_owned()
    } else {
        format!("{}…", &ascii[..MAX_SHOWN])
    }
}

/// What [`scan_component`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    PearlAddress,
    PoolUrl,
}

/// A Pearl address or pool URL in a component's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// As found: printable ASCII, at most 120 characters.
    pub text: String,
    /// Byte offset of its first occurrence in the component.
    pub offset: usize,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FindingKind::PearlAddress => "Pearl address",
            FindingKind::PoolUrl => "pool URL",
        };
        write!(f, "{what} '{}' (at byte {})", self.text, self.offset)
    }
}

/// What a component embeds, deduplicated (addresses and URLs ignoring ASCII
/// case), in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComponentScan {
    /// The first [`MAX_FINDINGS`].
    pub findings: Vec<Finding>,
    /// How many more there are.
    pub omitted: usize,
}

/// Finds Pearl addresses and pool URLs (`stratum+tcp://`, `stratum+ssl://`,
/// `stratum2+tcp://`, `pool:<url>`) written as ASCII anywhere in a
/// component: data segments, custom sections, nested modules. Bytes that
/// are encoded or computed at run time are not found: this is a warning
/// for the reader, and the host's check of container specs is the defence.
pub fn scan_component(bytes: &[u8]) -> ComponentScan {
    let mut found: Vec<(usize, FindingKind, &[u8])> = Vec::new();
    for (kind, pattern) in [
        (FindingKind::PearlAddress, &*COMPONENT_ADDRESS),
        (FindingKind::PoolUrl, &*POOL_URL),
    ] {
        found.extend(
            pattern
                .find_iter(bytes)
                .map(|m| (m.start(), kind, m.as_bytes())),
        );
    }
    found.sort_by_key(|(offset, _, _)| *offset);
    let mut seen = HashSet::new();
    let mut scan = ComponentScan::default();
    for (offset, kind, text) in found {
        if !seen.insert((kind, text.to_ascii_lowercase())) {
            continue;
        }
        if scan.findings.len() == MAX_FINDINGS {
            scan.omitted += 1;
            continue;
        }
        let text = std::str::from_utf8(text).expect("the patterns match ASCII only");
        scan.findings.push(Finding {
            kind,
            text: shown(text),
            offset,
        });
    }
    scan
}

#[cfg(test)]
mod tests;
