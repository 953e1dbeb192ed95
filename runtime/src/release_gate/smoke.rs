//! Step 3 of the runbook: `docker run --rm --gpus all <CUDA image>
//! nvidia-smi`, only with a CUDA image this host already has: the gate
//! never pulls. The container is labelled [`LABEL_SMOKE`] (not as a mining
//! container, so no session's reconciliation touches it) and removed
//! whatever happens.

use super::criteria::{Criterion, GPU_SMOKE};
use super::host::Source;
use crate::docker::{ContainerSpec, Docker, GpuRequest};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The label on the smoke container; its value is the home's.
pub const LABEL_SMOKE: &str = "org.openjarvis.validate-host.smoke";

/// The runbook's image, preferred when present.
pub const RUNBOOK_CUDA_IMAGE: &str = "nvidia/cuda:12.9.1-base-ubuntu24.04";

/// Repositories whose images count as CUDA images.
pub const CUDA_REPOSITORIES: [&str; 2] = ["nvidia/cuda", "nvcr.io/nvidia/cuda"];

/// What the container runs: one line per GPU it sees.
const COMMAND: [&str; 2] = ["nvidia-smi", "-L"];

/// How often the container's state is asked while it runs.
const POLL: Duration = Duration::from_millis(200);

/// The local CUDA images, sorted (none: the smoke test is skipped).
pub fn local_cuda_images(docker: &Docker) -> Result<Vec<String>, String> {
    let mut tags = Vec::new();
    for repository in CUDA_REPOSITORIES {
        tags.extend(docker.local_tags(repository).map_err(|e| e.to_string())?);
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// The image to run: the runbook's, else a `base` one (smallest), else the
/// first.
pub fn choose(images: &[String]) -> Option<&str> {
    images
        .iter()
        .find(|tag| *tag == RUNBOOK_CUDA_IMAGE)
        .or_else(|| images.iter().find(|tag| tag.contains("base")))
        .or_else(|| images.first())
        .map(String::as_str)
}

/// `GPU container`: runs `nvidia-smi -L` with every GPU in a local CUDA
/// image, for at most `timeout`; skipped without one, or when a facts file
/// stands in for this host's GPUs.
pub fn run(
    docker: Option<&Docker>,
    source: Source,
    home_label: &str,
    timeout: Duration,
) -> Criterion {
    let Some(docker) = docker else {
        return Criterion::skip(GPU_SMOKE, "not run: the Docker daemon did not answer");
    };
    let images = match local_cuda_images(docker) {
        Ok(images) => images,
        Err(err) => return Criterion::fail(GPU_SMOKE, format!("cannot list local images: {err}")),
    };
    let Some(image) = choose(&images) else {
        return Criterion::skip(
            GPU_SMOKE,
            format!(
                "not run: no CUDA image present locally (the gate never pulls); \
                 `docker pull {RUNBOOK_CUDA_IMAGE}` to run it"
            ),
        );
    };
    if let Source::File(path) = source {
        return Criterion::skip(
            GPU_SMOKE,
            format!(
                "not run: {} stands in for this host's GPUs, so the CUDA image {image} is not run on them",
                path.display()
            ),
        );
    }
    let spec = ContainerSpec {
        image: image.to_owned(),
        args: COMMAND.map(String::from).to_vec(),
        labels: BTreeMap::from([(LABEL_SMOKE.to_owned(), home_label.to_owned())]),
        gpus: GpuRequest::All,
        ..ContainerSpec::default()
    };
    let id = match docker.create(&spec) {
        Ok(id) => id,
        Err(err) => return Criterion::fail(GPU_SMOKE, not_run(image, &err.to_string())),
    };
    let result = run_created(docker, &id, image, timeout);
    if let Err(err) = docker.remove(&id) {
        tracing::warn!("could not remove the GPU smoke container {id}: {err}");
    }
    result
}

/// Starts the created container, waits for it to exit, and reads its
/// output.
fn run_created(docker: &Docker, id: &str, image: &str, timeout: Duration) -> Criterion {
    if let Err(err) = docker.start(id) {
        return Criterion::fail(GPU_SMOKE, not_run(image, &err.to_string()));
    }
    let began = Instant::now();
    let exit_code = loop {
        match docker.inspect(id) {
            Ok(Some(state)) if matches!(state.status.as_str(), "exited" | "dead") => {
                break state.exit_code.unwrap_or(-1);
            }
            Ok(Some(_)) => {}
            Ok(None) => return Criterion::fail(GPU_SMOKE, "the container vanished while it ran"),
            Err(err) => return Criterion::fail(GPU_SMOKE, err.to_string()),
        }
        if began.elapsed() >= timeout {
            return Criterion::fail(
                GPU_SMOKE,
                format!(
                    "`{}` in {image} did not finish within {} s",
                    COMMAND.join(" "),
                    timeout.as_secs()
                ),
            );
        }
        std::thread::sleep(POLL.min(timeout.saturating_sub(began.elapsed())));
    };
    let lines = docker.logs(id, 50).unwrap_or_default();
    judge(image, exit_code, &lines)
}

/// Passes when the command exited 0 and listed at least one GPU.
fn judge(image: &str, exit_code: i64, lines: &[String]) -> Criterion {
    let gpus: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("GPU "))
        .map(|l| l.split(" (UUID").next().unwrap_or(l))
        .collect();
    let command = COMMAND.join(" ");
    if exit_code == 0 && !gpus.is_empty() {
        return Criterion::pass(
            GPU_SMOKE,
            format!("`{command}` in {image}: {}", gpus.join("; ")),
        );
    }
    let said = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("no output");
    Criterion::fail(
        GPU_SMOKE,
        format!("`{command}` in {image} exited with {exit_code}: {said}"),
    )
}

fn not_run(image: &str, error: &str) -> String {
    format!(
        "a GPU container from {image} could not run: {}; install the NVIDIA Container Toolkit \
         and check `docker run --rm --gpus all {image} nvidia-smi`",
        error.lines().next().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbooks_image_wins_then_a_base_image() {
        let images = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(choose(&images(&[])), None);
        assert_eq!(
            choose(&images(&[
                "nvidia/cuda:12.4.1-devel-ubuntu22.04",
                RUNBOOK_CUDA_IMAGE
            ])),
            Some(RUNBOOK_CUDA_IMAGE)
        );
        assert_eq!(
            choose(&images(&[
                "nvidia/cuda:12.4.1-devel-ubuntu22.04",
                "nvidia/cuda:12.4.1-base-ubuntu22.04"
            ])),
            Some("nvidia/cuda:12.4.1-base-ubuntu22.04")
        );
    }

    #[test]
    fn nvidia_smi_must_list_a_gpu_and_exit_0() {
        let listed = [
            "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0123)".to_owned(),
            "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-4567)".to_owned(),
        ];
        let pass = judge("nvidia/cuda:x", 0, &listed);
        assert!(pass.passed);
        assert_eq!(
            pass.detail,
            "`nvidia-smi -L` in nvidia/cuda:x: GPU 0: NVIDIA H100 80GB HBM3; GPU 1: NVIDIA H100 80GB HBM3"
        );
        let failed = judge(
            "nvidia/cuda:x",
            9,
            &[
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
                    .to_owned(),
            ],
        );
        assert!(
            failed.failed()
                && failed
                    .detail
                    .contains("exited with 9: NVIDIA-SMI has failed")
        );
        assert!(judge("nvidia/cuda:x", 0, &[]).failed());
    }
}
