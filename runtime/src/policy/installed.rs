//! The `[installed]` table: may community providers load at all, and which.

use super::values::Sha256;
use super::{Layer, Policy};
use serde::{Deserialize, Serialize};

/// `[installed]`: may community providers load at all, and which ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledRules {
    pub allow: Option<bool>,
    /// Only components with one of these sha256 digests load.
    pub sha256: Option<Vec<Sha256>>,
}

impl Policy {
    /// Whether an installed component with `sha256` may load at all.
    pub fn admit_installed(&self, sha256: &str) -> Result<(), String> {
        if let Some(problem) = self.system_problem() {
            return Err(problem);
        }
        for (path, layer) in self.layers() {
            let Layer::Loaded(file) = layer else { continue };
            if file.installed.allow == Some(false) {
                return Err(format!(
                    "installed providers are disabled by installed.allow (policy {})",
                    path.display()
                ));
            }
            if let Some(allowed) = &file.installed.sha256
                && !allowed.iter().any(|digest| digest.to_string() == sha256)
            {
                return Err(format!(
                    "component sha256 {sha256} is not in installed.sha256 (policy {})",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}
