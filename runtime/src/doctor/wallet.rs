//! Pearl payout address format (prefix and length; no bech32 checksum, as in the reference).

/// `Ok(())` or the reason the address is malformed.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("empty".into());
    }
    if !(address.starts_with("prl1q") || address.starts_with("prl1p")) {
        let head: String = address.chars().take(6).collect();
        return Err(format!(
            "expected 'prl1q...' or 'prl1p...' prefix; got '{head}'"
        ));
    }
    let length = address.chars().count();
    if length < 14 {
        return Err(format!("too short ({length} chars)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_address;

    #[test]
    fn reference_rules() {
        assert_eq!(check_address(""), Err("empty".into()));
        assert_eq!(
            check_address("bc1qxyzxyzxyzxyz"),
            Err("expected 'prl1q...' or 'prl1p...' prefix; got 'bc1qxy'".into())
        );
        assert_eq!(check_address("prl1qabc"), Err("too short (8 chars)".into()));
        assert_eq!(check_address("prl1qexampleaddress"), Ok(()));
        assert_eq!(check_address("prl1pexampleaddress"), Ok(()));
    }
}
