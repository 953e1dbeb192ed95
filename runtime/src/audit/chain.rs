//! The hash chain: every record carries the sha256 of the previous line's
//! exact bytes, so an edited, removed, reordered or inserted line breaks it.

use sha2::{Digest, Sha256};

/// What the first record of a fresh log links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The link to `line`: sha256 (lower-case hex) of its bytes without the newline.
pub fn link(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    format!("{:x}", Sha256::digest(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_ignores_the_newline_only() {
        assert_eq!(link(b"{}\n"), link(b"{}"));
        assert_ne!(link(b"{} "), link(b"{}"));
        assert_eq!(link(b"").len(), GENESIS.len());
    }
}
