//! Steps 5 and 6 of the runbook: `jarvis mine doctor` (the doctor itself,
//! with the same facts) and the init check: a `[mining]` table for
//! vllm-pearl that loads and validates, and the miner image it names
//! present on this host (`init` resolves or builds it; the gate never
//! pulls).

use super::criteria::{CONFIG, Criterion, DOCTOR, IMAGE};
use crate::config::{Config, MiningConfig, extra_string};
use crate::docker::Docker;
use crate::doctor::{self, DoctorInput, DoctorReport, FactsSource};
use crate::paths::Paths;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use host_gpu::HardwareFacts;

/// The provider the NVIDIA release gate is for (reference §8.3).
pub const PROVIDER: &str = "vllm-pearl";

/// vllm-pearl's image when `[mining.extra].docker_image_tag` is not set
/// (the reference's; `jarvis mine init --image`'s default).
pub const DEFAULT_IMAGE: &str = "openjarvis/pearl-miner:master";

/// What the doctor needs beyond the facts.
pub struct DoctorContext<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub sandbox: &'a Sandbox,
    pub registry: &'a Registry,
    pub policy: &'a Policy,
}

/// `Doctor`: the doctor's verdict is "ready" (its rows, the pearld probe
/// and every provider's sandboxed `detect`, judged for the configured
/// provider). Returns the report for `doctor.json`.
pub fn doctor(
    context: &DoctorContext,
    facts: &HardwareFacts,
    source: FactsSource,
) -> (Criterion, DoctorReport) {
    let mining = context.config.mining.as_ref();
    let node = doctor::probe_node(mining, context.paths.config_file());
    let report = doctor::run(
        context.sandbox,
        context.registry,
        &DoctorInput {
            paths: context.paths,
            config: context.config,
            facts,
            facts_source: source,
            node,
            policy: context.policy,
            model: None,
            engine: None,
        },
    );
    let verdict = &report.verdict;
    let mut detail = verdict.summary.clone();
    if let Some(problem) = verdict.problems.first() {
        detail.push_str(&format!(
            " (first: {}: {}; fix: {})",
            problem.check, problem.problem, problem.fix
        ));
    }
    (Criterion::judged(DOCTOR, report.ready(), detail), report)
}

/// `Mining config`: `[mining]` exists, loads and validates (the loader's own
/// validation), for vllm-pearl.
pub fn config(config: &Config, config_error: Option<&str>, paths: &Paths) -> Criterion {
    let file = paths.config_file().display();
    if let Some(err) = config_error {
        return Criterion::fail(
            CONFIG,
            format!("{err}; fix it, or run `jarvis mine init --force`"),
        );
    }
    let Some(mining) = &config.mining else {
        return Criterion::fail(
            CONFIG,
            format!("no [mining] section in {file}: run `jarvis mine init`"),
        );
    };
    if mining.provider != PROVIDER {
        return Criterion::fail(
            CONFIG,
            format!(
                "[mining].provider is {} in {file}; the NVIDIA release gate runs {PROVIDER} \
                 (`jarvis mine init --provider {PROVIDER} --force`)",
                mining.provider
            ),
        );
    }
    Criterion::pass(
        CONFIG,
        format!(
            "{PROVIDER} in {file}: model {}, image {}, pearld {}",
            mining.model(),
            image(mining),
            mining.pearld_rpc_url()
        ),
    )
}

/// The miner image `[mining.extra].docker_image_tag` names.
pub fn image(mining: &MiningConfig) -> String {
    extra_string(&mining.extra, "docker_image_tag")
        .ok()
        .flatten()
        .filter(|tag| !tag.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned())
}

/// `Miner image`: the configured image is present locally.
pub fn image_present(mining: Option<&MiningConfig>, docker: Option<&Docker>) -> Criterion {
    let Some(mining) = mining.filter(|m| m.provider == PROVIDER) else {
        return Criterion::skip(IMAGE, "not checked: no vllm-pearl [mining] config");
    };
    let Some(docker) = docker else {
        return Criterion::skip(IMAGE, "not checked: the Docker daemon did not answer");
    };
    let image = image(mining);
    match docker.image_present(&image) {
        Ok(true) => Criterion::pass(IMAGE, format!("{image} present locally")),
        Ok(false) => Criterion::fail(
            IMAGE,
            format!(
                "{image} is not present locally: run `jarvis mine init --force` (it pulls the image, \
                 or builds it with --pearl-source-dir); the gate never pulls"
            ),
        ),
        Err(err) => Criterion::fail(IMAGE, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_must_be_there_valid_and_for_vllm_pearl() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::with_home(dir.path());
        let none = config(&Config::default(), None, &paths);
        assert!(none.failed());
        assert!(
            none.detail.starts_with("no [mining] section in "),
            "{none:?}"
        );
        assert!(
            none.detail.ends_with(": run `jarvis mine init`"),
            "{none:?}"
        );
        let broken = config(&Config::default(), Some("config.toml:3:1: bad"), &paths);
        assert!(broken.failed() && broken.detail.starts_with("config.toml:3:1: bad"));
        let parse = |provider: &str| {
            Config::parse(
                &format!(
                    "[mining]\nprovider = \"{provider}\"\nwallet_address = \"prl1qexampleaddress\"\n\
                     [mining.extra]\ndocker_image_tag = \"example/miner:1\"\n"
                ),
                std::path::Path::new("config.toml"),
            )
            .unwrap()
        };
        let cpu = config(&parse("cpu-pearl"), None, &paths);
        assert!(
            cpu.failed() && cpu.detail.contains("runs vllm-pearl"),
            "{cpu:?}"
        );
        let vllm = parse("vllm-pearl");
        let ok = config(&vllm, None, &paths);
        assert!(
            ok.passed && ok.detail.contains("image example/miner:1"),
            "{ok:?}"
        );
        assert_eq!(image(vllm.mining.as_ref().unwrap()), "example/miner:1");
    }
}
