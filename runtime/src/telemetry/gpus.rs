//! Which GPUs a session uses: what its containers were created with.
//!
//! The host creates every container of a session from the provider's
//! declarative `container-spec`, and Docker records the request
//! (`HostConfig.DeviceRequests`). Read back, each request is device ids
//! (NVML indexes or UUIDs), a count `n` (the NVIDIA runtime then gives GPUs
//! `0..n`) or every GPU (`docker run --gpus all`), which `status` narrows to
//! `[mining.extra].cuda_visible_devices` when that is set. A session of host
//! processes, and an attached miner, have no containers here: no GPUs.
//!
//! One exception: `[mining.extra].gpu_request = "none"`, the mode for trying
//! the flow with a test image on a host without GPUs, creates the container
//! without a GPU request. Its session's GPUs are the ones the request would
//! have named (`cuda_visible_devices`, else every GPU), and are marked so
//! ([`GpuSource::Config`]).

use crate::config::MiningConfig;
use crate::docker::GpuRequest;
use serde::Serialize;

/// The GPUs a session uses, as the sampler selects them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionGpus {
    /// NVML indexes or UUIDs; `None` is every GPU NVML lists.
    pub selection: Option<Vec<String>>,
    pub source: GpuSource,
}

/// Where [`SessionGpus`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    /// The session's containers' GPU requests, as Docker recorded them.
    Container,
    /// No container asked for a GPU (`gpu_request = "none"`): the GPUs a
    /// request would have named.
    Config,
}

impl SessionGpus {
    /// The selection as people read it: "all", "0, 1".
    pub fn describe(&self) -> String {
        match &self.selection {
            None => "all".to_owned(),
            Some(ids) => ids.join(", "),
        }
    }
}

/// The GPUs of a session whose containers were created with `requests`
/// (every device request of every container), under `mining`; `None`: the
/// session uses no GPU.
pub fn session_gpus<'a>(
    requests: impl IntoIterator<Item = &'a GpuRequest>,
    mining: Option<&MiningConfig>,
) -> Option<SessionGpus> {
    let visible = mining.and_then(cuda_visible_devices);
    let mut all = false;
    let mut ids: Vec<String> = Vec::new();
    for request in requests {
        let requested: Vec<String> = match request {
            GpuRequest::None => continue,
            GpuRequest::All => {
                all = true;
                continue;
            }
            GpuRequest::Count(n) => (0..*n).map(|index| index.to_string()).collect(),
            GpuRequest::DeviceIds(requested) => requested.clone(),
        };
        for id in requested {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let any = all || !ids.is_empty();
    if any {
        let selection = if all { visible } else { Some(ids) };
        return Some(SessionGpus {
            selection,
            source: GpuSource::Container,
        });
    }
    let no_request = mining.is_some_and(|m| {
        crate::config::extra_string(&m.extra, "gpu_request")
            .ok()
            .flatten()
            .as_deref()
            == Some("none")
    });
    no_request.then_some(SessionGpus {
        selection: visible,
        source: GpuSource::Config,
    })
}

/// `[mining.extra].cuda_visible_devices` as a list; `None` when unset or empty.
fn cuda_visible_devices(mining: &MiningConfig) -> Option<Vec<String>> {
    let ids: Vec<String> = mining
        .cuda_visible_devices()?
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_mining as mining;

    fn ids(ids: &[&str]) -> Option<Vec<String>> {
        Some(ids.iter().map(|id| (*id).to_owned()).collect())
    }

    #[test]
    fn device_ids_and_counts_are_what_the_containers_got() {
        let config = mining("cuda_visible_devices = \"3\"");
        let gpus = session_gpus(
            &[
                GpuRequest::DeviceIds(vec!["1".into(), "GPU-a".into()]),
                GpuRequest::Count(2),
                GpuRequest::DeviceIds(vec!["1".into()]),
            ],
            Some(&config),
        )
        .unwrap();
        // Explicit requests are not narrowed: the containers have these.
        assert_eq!(gpus.selection, ids(&["1", "GPU-a", "0"]));
        assert_eq!(gpus.source, GpuSource::Container);
        assert_eq!(gpus.describe(), "1, GPU-a, 0");
    }

    #[test]
    fn all_is_narrowed_by_cuda_visible_devices() {
        let narrowed = mining("cuda_visible_devices = \" 2, GPU-b ,\"");
        assert_eq!(
            session_gpus(&[GpuRequest::All], Some(&narrowed))
                .unwrap()
                .selection,
            ids(&["2", "GPU-b"])
        );
        let every = session_gpus(&[GpuRequest::All, GpuRequest::Count(1)], None).unwrap();
        assert_eq!(every.selection, None);
        assert_eq!(every.describe(), "all");
        let empty = mining("cuda_visible_devices = \"\"");
        assert_eq!(
            session_gpus(&[GpuRequest::All], Some(&empty))
                .unwrap()
                .selection,
            None
        );
    }

    #[test]
    fn no_request_is_no_gpu_unless_the_config_said_none() {
        assert_eq!(session_gpus(&[], None), None);
        assert_eq!(
            session_gpus(&[GpuRequest::None, GpuRequest::Count(0)], Some(&mining(""))),
            None
        );
        assert_eq!(
            session_gpus(&[], Some(&mining("gpu_request = \"auto\""))),
            None
        );
        let test_mode = session_gpus(&[], Some(&mining("gpu_request = \"none\""))).unwrap();
        assert_eq!(
            test_mode,
            SessionGpus {
                selection: None,
                source: GpuSource::Config
            }
        );
        let narrowed = session_gpus(
            &[],
            Some(&mining(
                "gpu_request = \"none\"\ncuda_visible_devices = \"0,1\"",
            )),
        )
        .unwrap();
        assert_eq!(narrowed.selection, ids(&["0", "1"]));
        // A container that did get GPUs wins over the test mode.
        let requested = session_gpus(
            &[GpuRequest::Count(1)],
            Some(&mining("gpu_request = \"none\"")),
        )
        .unwrap();
        assert_eq!(requested.source, GpuSource::Container);
    }
}
