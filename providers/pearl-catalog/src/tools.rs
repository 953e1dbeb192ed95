//! Pearl's Python packages and executables (OpenJarvis `_install.py`).

/// Import names the subprocess providers need (`py-pearl-mining`, `pearl-gateway`, `miner-base`).
pub const REQUIRED_PYTHON_PACKAGES: [&str; 3] = ["pearl_mining", "pearl_gateway", "miner_base"];

/// The gateway executable the subprocess providers spawn.
pub const GATEWAY_EXECUTABLE: &str = "pearl-gateway";

/// How to install the Python packages: they are not on PyPI, so OpenJarvis's
/// `uv sync` hint only works inside its own source tree.
pub const INSTALL_HINT: &str = "build them from a Pearl checkout and install them into the `python3` on PATH (docs/user-guide.md#pearl-packages).";

/// The required packages absent from `installed` (`None` = not probed = none installed).
pub fn missing_python_packages(installed: Option<&[String]>) -> Vec<&'static str> {
    REQUIRED_PYTHON_PACKAGES
        .into_iter()
        .filter(|name| !installed.is_some_and(|have| have.iter().any(|h| h == name)))
        .collect()
}

/// The `detect` reason for missing packages, or `None` when all are importable.
pub fn python_packages_reason(installed: Option<&[String]>) -> Option<String> {
    let missing = missing_python_packages(installed);
    (!missing.is_empty()).then(|| {
        format!(
            "Pearl Python packages not installed — {INSTALL_HINT} Missing: {}.",
            missing.join(", ")
        )
    })
}

/// The `detect` reason when the gateway executable is absent (or was not probed).
pub fn gateway_reason(on_path: Option<bool>) -> Option<String> {
    (on_path != Some(true)).then(|| {
        format!(
            "`{GATEWAY_EXECUTABLE}` executable not found on PATH — it ships with the pearl-gateway package (miner/pearl-gateway in a Pearl checkout); install it into the Python environment on PATH"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_are_listed_in_order() {
        let have = vec!["pearl_gateway".to_string()];
        assert_eq!(
            missing_python_packages(Some(&have)),
            ["pearl_mining", "miner_base"]
        );
        assert_eq!(missing_python_packages(None).len(), 3);
        let all: Vec<String> = REQUIRED_PYTHON_PACKAGES.map(String::from).to_vec();
        assert!(python_packages_reason(Some(&all)).is_none());
        let reason = python_packages_reason(Some(&have)).unwrap();
        assert!(
            reason.starts_with(
                "Pearl Python packages not installed — build them from a Pearl checkout"
            )
        );
        assert!(reason.ends_with("Missing: pearl_mining, miner_base."));
    }

    #[test]
    fn gateway_must_be_known_present() {
        assert!(gateway_reason(Some(true)).is_none());
        assert!(gateway_reason(Some(false)).is_some());
        assert!(gateway_reason(None).is_some());
    }
}
