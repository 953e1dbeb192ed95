//! The frozen contract `openjarvis:mining@0.1.0` (`wit/0.1.0/types.wit`),
//! and each of its types' twin in the current contract.
//!
//! A 0.1 component is served by converting: what it sends (import
//! arguments, export results) goes `up` to the current types, what the host
//! sends it (import results, export arguments) comes `down`. The tables at
//! the end list every record, variant and enum that crosses, field by
//! field. A field the current contract adds to a record that goes up takes
//! its value for 0.1 components in that record's `added { .. }`; a record
//! that only comes down simply leaves the new field behind. A case the
//! current contract adds to a variant that comes down has no 0.1 twin: the
//! compiler asks for a decision there.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "mining-provider",
    additional_derives: [PartialEq],
});

use self::openjarvis::mining as frozen;
use super::v0_2::openjarvis::mining as current;

/// A value as its twin in the other contract version.
pub trait Twin<T> {
    fn twin(self) -> T;
}

/// Types both versions share as they are.
macro_rules! same {
    ($($ty:ty),*) => {
        $(impl Twin<$ty> for $ty {
            fn twin(self) -> $ty {
                self
            }
        })*
    };
}

same!((), bool, u16, u32, i32, u64, i64, f64, String);

impl<A: Twin<B>, B> Twin<Option<B>> for Option<A> {
    fn twin(self) -> Option<B> {
        self.map(Twin::twin)
    }
}

impl<A: Twin<B>, B> Twin<Vec<B>> for Vec<A> {
    fn twin(self) -> Vec<B> {
        self.into_iter().map(Twin::twin).collect()
    }
}

impl<A: Twin<B>, B, C: Twin<D>, D> Twin<(B, D)> for (A, C) {
    fn twin(self) -> (B, D) {
        (self.0.twin(), self.1.twin())
    }
}

impl<A: Twin<B>, B, E: Twin<F>, F> Twin<Result<B, F>> for Result<A, E> {
    fn twin(self) -> Result<B, F> {
        self.map(Twin::twin).map_err(Twin::twin)
    }
}

/// A record's twin, field by field: `up` (0.1 to current), `down` (current
/// to 0.1) or `both`; `added` gives 0.1 values for the current fields 0.1
/// lacks.
macro_rules! record {
    (both $($rest:tt)*) => {
        record!(up $($rest)*);
        record!(down $($rest)*);
    };
    (up $iface:ident::$name:ident { $($field:ident),* $(,)? }
        $(added { $($new:ident: $value:expr),* $(,)? })?) => {
        impl Twin<current::$iface::$name> for frozen::$iface::$name {
            fn twin(self) -> current::$iface::$name {
                current::$iface::$name {
                    $($field: self.$field.twin(),)*
                    $($($new: $value,)*)?
                }
            }
        }
    };
    (down $iface:ident::$name:ident { $($field:ident),* $(,)? }
        $(added { $($new:ident: $value:expr),* $(,)? })?) => {
        impl Twin<frozen::$iface::$name> for current::$iface::$name {
            fn twin(self) -> frozen::$iface::$name {
                frozen::$iface::$name {
                    $($field: self.$field.twin(),)*
                }
            }
        }
    };
}

/// A variant's or enum's twin, case by case (a case with a payload names it).
macro_rules! variant {
    (both $($rest:tt)*) => {
        variant!(up $($rest)*);
        variant!(down $($rest)*);
    };
    (up $($rest:tt)*) => {
        variant!(@ frozen => current, $($rest)*);
    };
    (down $($rest:tt)*) => {
        variant!(@ current => frozen, $($rest)*);
    };
    (@ $from:ident => $to:ident,
        $iface:ident::$name:ident { $($case:ident $(($value:ident))?),* $(,)? }) => {
        impl Twin<$to::$iface::$name> for $from::$iface::$name {
            fn twin(self) -> $to::$iface::$name {
                match self {
                    $(Self::$case $(($value))? => $to::$iface::$name::$case $(($value.twin()))?,)*
                }
            }
        }
    };
}

// What both sides send: host errors (import results, `start` and `stop`
// results) and the session records (`sidecar` arguments and results).
variant!(both types::Error { Denied(m), Invalid(m), Unavailable(m), Failed(m) });
record!(both sidecar::Session {
    vllm_endpoint, model, gateway_url, gateway_metrics_url, metrics_url, container_id,
    wallet_address, image,
} added { workers: Vec::new() });
record!(both sidecar::ProcessSession {
    gateway_url, metrics_url, wallet_address, gateway_process, miner_loop_process,
});

// What a 0.1 component sends: its self-description, verdicts and stats,
// and its import requests.
record!(up types::ProviderInfo { id, version, description, capabilities });
variant!(up types::Capability { Containers, Sidecar, Metrics, GpuTelemetry, Processes });
record!(up types::Capabilities { supported, reason, estimated_hashrate } added { notes: Vec::new() });
record!(up types::MiningStats {
    provider_id, shares_submitted, shares_accepted, blocks_found, hashrate, uptime_seconds,
    last_share_at, last_error, payout_target, fees_owed, requests_served, prompt_tokens,
    generation_tokens,
} added { shares_rejected: 0, workers: Vec::new() });
variant!(up types::EnvValue { Text(t), Secret(v), OptionalSecret(v) });
variant!(up log::Level { Trace, Debug, Info, Warn, Error });
record!(up containers::ContainerSpec {
    name, image, args, env, gpus, mounts, ports, shm_size_bytes, network, restart,
});
variant!(up containers::GpuRequest { None, All, Count(n), DeviceIds(ids) });
record!(up containers::Mount { source, target, read_only });
variant!(up containers::MountSource { HfCache, HostPath(p) });
record!(up containers::Port { host, container });
record!(up processes::ProcessSpec { name, program, args, env, ports });

// What the host sends a 0.1 component: facts, config and import answers.
record!(down types::HardwareFacts {
    os, arch, cpu_model, cpu_cores, ram_mib, gpus, visible_devices, gpu_note,
    nvidia_driver_version, cuda_version, disk_free_mib, disk_path, docker, pearl,
});
record!(down types::Gpu { index, uuid, name, vendor, compute_capability, memory_total_mib });
record!(down types::DockerFacts { reachable, version });
record!(down types::PearlFacts {
    gateway_on_path, python_packages, torch_installed, torch_mps_built, torch_mps_available,
});
record!(down types::MiningConfig {
    provider, wallet_address, submit_target, fee_bps, fee_payout_address, extra,
});
variant!(down types::SubmitTarget { Solo(t), Pool(t) });
record!(down types::SoloTarget { pearld_rpc_url });
record!(down types::PoolTarget { url, worker_id });
variant!(down types::ExtraValue { Text(t), Integer(n), Float(x), Boolean(b), Texts(t) });
record!(down containers::ContainerState { status, running, exit_code, started_at, finished_at });
record!(down metrics::Sample { name, labels, value });
record!(down processes::ProcessState { running, exit_code, started_at, pid });

#[cfg(test)]
mod tests {
    use super::{Twin, current, frozen};

    #[test]
    fn stats_from_0_1_reject_nothing_and_keep_their_fields() {
        let old = frozen::types::MiningStats {
            provider_id: "p".into(),
            shares_submitted: 5,
            shares_accepted: 4,
            blocks_found: 1,
            hashrate: 2.5,
            uptime_seconds: 60.0,
            last_share_at: Some(1.0),
            last_error: Some("e".into()),
            payout_target: "solo".into(),
            fees_owed: 3,
            requests_served: Some(7),
            prompt_tokens: None,
            generation_tokens: Some(9),
        };
        let new: current::types::MiningStats = old.clone().twin();
        assert_eq!(new.shares_rejected, 0);
        assert_eq!(
            (new.provider_id, new.shares_submitted, new.shares_accepted),
            (old.provider_id, old.shares_submitted, old.shares_accepted)
        );
        assert_eq!(
            (new.last_error, new.requests_served, new.prompt_tokens),
            (old.last_error, old.requests_served, old.prompt_tokens)
        );
        assert_eq!(new.generation_tokens, old.generation_tokens);
    }

    #[test]
    fn errors_and_sessions_cross_both_ways_unchanged() {
        let error = current::types::Error::Denied("no".into());
        let old: frozen::types::Error = error.clone().twin();
        assert_eq!(old, frozen::types::Error::Denied("no".into()));
        assert_eq!(Twin::<current::types::Error>::twin(old), error);
        let session = current::sidecar::ProcessSession {
            gateway_url: "g".into(),
            metrics_url: "m".into(),
            wallet_address: "w".into(),
            gateway_process: "gp".into(),
            miner_loop_process: "ml".into(),
        };
        let old: frozen::sidecar::ProcessSession = session.clone().twin();
        assert_eq!(Twin::<current::sidecar::ProcessSession>::twin(old), session);
    }
}
