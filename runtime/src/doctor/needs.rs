//! What each provider needs of the host, so that doctor judges its rows for
//! the provider that would run: a check the provider does not need is
//! informational (no FAIL for Pearl's Python tools on an H100 host, whose
//! miner runs them inside the container; no GPU FAIL for cpu-pearl).
//!
//! The built-in providers' needs are known here; a community provider's
//! hardware needs are its own `detect`'s business, so for it only what every
//! miner needs (a node, a wallet, a sound policy) is judged.

use serde::Serialize;

/// One thing a check establishes about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// A `[mining]` section to run from.
    Config,
    /// NVIDIA Hopper GPUs with the model's memory, and their driver.
    NvidiaGpu,
    /// Apple Silicon's GPU.
    AppleGpu,
    /// PyTorch with the MPS backend (Apple).
    TorchMps,
    /// A reachable Docker daemon (the miner runs in a container).
    Docker,
    /// Room for the model's weights in the Hugging Face cache.
    ModelDisk,
    /// A Pearl model the registry validated.
    Model,
    /// Pearl's Python packages, importable by `python3`.
    PearlPython,
    /// `pearl-gateway` on PATH.
    PearlGateway,
    /// A pearld node answering RPC (solo mining).
    PearlNode,
    /// A well-formed payout address.
    Wallet,
    /// A system policy that parses (a broken one denies everything).
    Policy,
}

const EVERY_MINER: [Need; 4] = [Need::Config, Need::PearlNode, Need::Wallet, Need::Policy];

/// What `provider` needs; `solo` is false for a pool target, which needs no
/// node of the user's own.
pub fn needs(provider: &str, solo: bool) -> Vec<Need> {
    let own: &[Need] = match provider {
        "vllm-pearl" => &[Need::NvidiaGpu, Need::Docker, Need::ModelDisk, Need::Model],
        "cpu-pearl" => &[Need::PearlPython, Need::PearlGateway],
        "apple-mps-pearl" => &[
            Need::AppleGpu,
            Need::TorchMps,
            Need::PearlPython,
            Need::PearlGateway,
        ],
        _ => &[],
    };
    EVERY_MINER
        .iter()
        .chain(own)
        .copied()
        .filter(|need| solo || *need != Need::PearlNode)
        .collect()
}

/// The GPU vendor a provider mines on, for the "GPU vendor" row.
pub fn gpu_vendor(needs: &[Need]) -> Option<&'static str> {
    if needs.contains(&Need::NvidiaGpu) {
        Some("nvidia")
    } else if needs.contains(&Need::AppleGpu) {
        Some("apple")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_builtin_needs_its_own_tools_only() {
        let vllm = needs("vllm-pearl", true);
        assert!(vllm.contains(&Need::Docker) && vllm.contains(&Need::NvidiaGpu));
        assert!(
            !vllm.contains(&Need::PearlPython),
            "tools run in the container"
        );
        let cpu = needs("cpu-pearl", true);
        assert!(cpu.contains(&Need::PearlPython) && !cpu.contains(&Need::Docker));
        assert_eq!(gpu_vendor(&cpu), None);
        assert_eq!(gpu_vendor(&needs("apple-mps-pearl", true)), Some("apple"));
        assert_eq!(needs("someone-elses", true), EVERY_MINER);
        assert!(!needs("cpu-pearl", false).contains(&Need::PearlNode));
    }
}
