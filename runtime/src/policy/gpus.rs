//! The `gpus` key: which of the host's GPUs a provider may see in `detect`
//! and give its containers.

use super::containers::GpuAsk;
use super::values::{FromPolicyText, text_value};
use super::{Denial, ProviderPolicy};

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

impl ProviderPolicy {
    pub(super) fn gpus(&self, ask: &GpuAsk) -> Result<(), Denial> {
        const CAPABILITY: Option<&str> = Some("containers");
        let ids = match ask {
            GpuAsk::None => return Ok(()),
            GpuAsk::Ids(ids) => ids,
            GpuAsk::All | GpuAsk::Count(_) => {
                let what = if *ask == GpuAsk::All {
                    "all GPUs".to_owned()
                } else {
                    "a number of GPUs".to_owned()
                };
                return self
                    .each(
                        CAPABILITY,
                        "gpus",
                        |g| g.gpus.as_ref(),
                        |granted| granted.iter().any(GpuId::is_any),
                        || what.clone(),
                    )
                    .map_err(|mut denial| {
                        denial.reason.push_str(
                            "; name the GPUs instead with [mining.extra].cuda_visible_devices",
                        );
                        denial
                    });
            }
        };
        for id in ids {
            self.each(
                CAPABILITY,
                "gpus",
                |g| g.gpus.as_ref(),
                |granted| granted.iter().any(|g| g.names(id, Some(id))),
                || format!("GPU '{id}'"),
            )?;
        }
        Ok(())
    }

    /// Whether `detect` may see the GPU with this index and UUID.
    pub fn gpu_visible(&self, index: u32, uuid: Option<&str>) -> bool {
        self.broken.is_none()
            && self
                .each(
                    None,
                    "gpus",
                    |g| g.gpus.as_ref(),
                    |granted| granted.iter().any(|g| g.names(&index.to_string(), uuid)),
                    String::new,
                )
                .is_ok()
    }
}

impl ProviderPolicy {
    /// The GPUs this provider may use when a view names them one by one
    /// (the narrowest such list); `None` when every view allows any GPU.
    pub fn granted_gpu_ids(&self) -> Option<Vec<GpuId>> {
        self.views
            .iter()
            .filter_map(|view| match &view.grant {
                None => Some(Vec::new()),
                Some(grant) => match &grant.gpus {
                    Some(ids) if !ids.iter().any(GpuId::is_any) => Some(ids.clone()),
                    None if view.strict => Some(Vec::new()),
                    _ => None,
                },
            })
            .min_by_key(Vec::len)
    }
}
