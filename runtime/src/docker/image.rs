//! Images: presence, pull, and `ensure_image` (local, else pull, else build
//! from a Pearl checkout).

use std::path::Path;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::Docker;
use super::error::{Cause, DockerError, classify, first_line, unreachable_message};
use crate::redact::Redactor;

/// Where Pearl's miner Dockerfile lives in a Pearl checkout; the build
/// context is the checkout's root (the whole monorepo).
pub const PEARL_DOCKERFILE: &str = "miner/vllm-miner/Dockerfile";

/// How [`Docker::ensure_image`] got the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSource {
    Local,
    Pulled,
    Built,
}

/// Progress of a pull or build, for the CLI to draw. Nothing is drawn here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageProgress {
    /// What happens next, in words ("pulling …", "building … from …").
    Phase(String),
    /// A pull layer or a BuildKit transfer: `current`/`total` in bytes when
    /// known.
    Layer {
        id: String,
        status: String,
        current: Option<u64>,
        total: Option<u64>,
    },
    /// A pull message not about one layer ("Digest: …", "Status: …").
    Status(String),
    /// One line of build output: a step starting, a step's own output, an
    /// error.
    BuildLine(String),
    /// The image is present.
    Done(ImageSource),
}

/// A layer event from Docker's progress detail (bytes, when known).
pub(super) fn layer_progress(
    id: String,
    status: String,
    detail: Option<bollard::models::ProgressDetail>,
) -> ImageProgress {
    let detail = detail.unwrap_or_default();
    ImageProgress::Layer {
        id,
        status,
        current: detail.current.and_then(|c| u64::try_from(c).ok()),
        total: detail
            .total
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0),
    }
}

/// Why a pull did not produce the image.
enum PullFailure {
    /// The daemon could not be reached: not worth trying to build.
    Fatal(DockerError),
    /// The registry or daemon refused (first line of its message).
    Refused(String),
}

impl Docker {
    /// Whether `image` (name:tag, or an id) is present locally.
    pub fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        self.image_digests(image).map(|digests| digests.is_some())
    }

    /// The local image's id and repo digests (`name@sha256:...`); `None`
    /// when it is not present.
    pub fn image_digests(&self, image: &str) -> Result<Option<Vec<String>>, DockerError> {
        let result = self.call(
            &format!("inspecting image '{image}'"),
            self.timeouts.request,
            self.client.inspect_image(image),
        )?;
        match result {
            Ok(inspect) => Ok(Some(
                inspect
                    .id
                    .into_iter()
                    .chain(inspect.repo_digests.unwrap_or_default())
                    .collect(),
            )),
            Err(error) => match classify(&error) {
                Cause::Daemon { status: 404, .. } => Ok(None),
                _ => Err(self.error(&format!("failed to inspect image '{image}'"), &error)),
            },
        }
    }

    /// The `name:tag`s of local images matching `reference` (Docker's
    /// `reference` filter: a repository without a tag matches all its tags),
    /// sorted; nothing is pulled.
    pub fn local_tags(&self, reference: &str) -> Result<Vec<String>, DockerError> {
        let filters = std::collections::HashMap::from([("reference", vec![reference])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let what = format!("failed to list local images matching '{reference}'");
        let images = self
            .call(
                &format!("listing local images matching '{reference}'"),
                self.timeouts.request,
                self.client.list_images(Some(options)),
            )?
            .map_err(|error| self.error(&what, &error))?;
        let mut tags: Vec<String> = images
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter(|tag| tag != "<none>:<none>")
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Removes a local image (untags it; layers go when nothing uses them).
    /// Already gone is `Ok`.
    pub fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        let result = self.call(
            &format!("removing image '{image}'"),
            self.timeouts.request,
            self.client.remove_image(image, Some(options), None),
        )?;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(&error) {
                Cause::Daemon { status: 404, .. } => Ok(()),
                _ => Err(self.error(&format!("failed to remove image '{image}'"), &error)),
            },
        }
    }

    /// Makes `image` present: already local → [`ImageSource::Local`]; else
    /// pulled → `Pulled`; else, when `build_context` (a Pearl checkout) is
    /// given, built from its [`PEARL_DOCKERFILE`] through the Docker API →
    /// `Built`; else [`DockerError::ImageUnavailable`] naming the image, the
    /// pull error and what to do.
    pub fn ensure_image(
        &self,
        image: &str,
        build_context: Option<&Path>,
        progress: &mut dyn FnMut(ImageProgress),
    ) -> Result<ImageSource, DockerError> {
        if self.image_present(image)? {
            progress(ImageProgress::Done(ImageSource::Local));
            return Ok(ImageSource::Local);
        }
        progress(ImageProgress::Phase(format!("pulling {image}")));
        let pull_error = match self.pull(image, progress) {
            Ok(()) => {
                progress(ImageProgress::Done(ImageSource::Pulled));
                return Ok(ImageSource::Pulled);
            }
            Err(PullFailure::Fatal(error)) => return Err(error),
            Err(PullFailure::Refused(message)) => message,
        };
        let Some(context) = build_context else {
            return Err(DockerError::ImageUnavailable(format!(
                "image '{image}' is not available: it is not present locally and pulling it failed \
                 (pull error: {pull_error}). To build it from Pearl's source, pass \
                 `--pearl-source-dir DIR` to `jarvis mine init` (or set [mining.extra].pearl_source_dir) \
                 to a Pearl checkout, or build it yourself from the \
                 root of a Pearl checkout: `docker build -t {image} -f {PEARL_DOCKERFILE} .`"
            )));
        };
        if !context.join(PEARL_DOCKERFILE).is_file() {
            return Err(DockerError::ImageUnavailable(format!(
                "image '{image}' is not available: it is not present locally, pulling it failed \
                 (pull error: {pull_error}), and {} is not a Pearl checkout (no {PEARL_DOCKERFILE}); \
                 point `--pearl-source-dir` ([mining.extra].pearl_source_dir) at the root of a Pearl checkout",
                context.display()
            )));
        }
        progress(ImageProgress::Phase(format!(
            "building {image} from {} ({PEARL_DOCKERFILE}); the first build takes 30-60 min",
            context.display()
        )));
        match self.build_image(context, PEARL_DOCKERFILE, image, progress) {
            Ok(()) => {
                progress(ImageProgress::Done(ImageSource::Built));
                Ok(ImageSource::Built)
            }
            Err(DockerError::Failed(message)) => Err(DockerError::ImageUnavailable(format!(
                "image '{image}' is not available: pulling it failed (pull error: {pull_error}) and \
                 {message}"
            ))),
            Err(other) => Err(other),
        }
    }

    /// Pulls `image`, reporting layers. A reference without a tag or digest
    /// means `:latest` (never "every tag").
    fn pull(
        &self,
        image: &str,
        progress: &mut dyn FnMut(ImageProgress),
    ) -> Result<(), PullFailure> {
        let mut options = CreateImageOptionsBuilder::default().from_image(image);
        if !has_tag_or_digest(image) {
            options = options.tag("latest");
        }
        let limit = self.timeouts.pull_idle;
        let redactor = Redactor::patterns_only();
        let pulled = self.runtime.block_on(async {
            let mut stream = self.client.create_image(Some(options.build()), None, None);
            loop {
                let Ok(next) = tokio::time::timeout(limit, stream.next()).await else {
                    return Err(PullFailure::Refused(format!(
                        "no progress for {} s",
                        limit.as_secs()
                    )));
                };
                let Some(item) = next else { return Ok(()) };
                let info = match item {
                    Ok(info) => info,
                    Err(error) => {
                        return Err(match classify(&error) {
                            Cause::Transport(detail) => PullFailure::Fatal(
                                DockerError::Unavailable(unreachable_message(&self.host, &detail)),
                            ),
                            Cause::Daemon { message, .. }
                            | Cause::Stream(message)
                            | Cause::Other(message) => PullFailure::Refused(
                                redactor.redact(first_line(&message)).into_owned(),
                            ),
                        });
                    }
                };
                let status = info.status.unwrap_or_default();
                match info.id {
                    Some(id) if !id.is_empty() => {
                        progress(layer_progress(id, status, info.progress_detail));
                    }
                    _ if !status.is_empty() => progress(ImageProgress::Status(status)),
                    _ => {}
                }
            }
        });
        pulled?;
        // A pull can end without error yet without the image (e.g. a
        // platform mismatch on some daemons): trust only the image store.
        match self.image_present(image) {
            Ok(true) => Ok(()),
            Ok(false) => Err(PullFailure::Refused(
                "the pull finished but the image is still not present".to_owned(),
            )),
            Err(error) => Err(PullFailure::Fatal(error)),
        }
    }
}

/// Whether the last path component names a tag (`name:tag`) or the
/// reference has a digest (`name@sha256:…`). A registry port
/// (`host:5000/name`) is not a tag.
fn has_tag_or_digest(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_digests_and_registry_ports() {
        assert!(has_tag_or_digest("openjarvis/pearl-miner:master"));
        assert!(has_tag_or_digest("ghcr.io/pearl/vllm-miner@sha256:abc"));
        assert!(has_tag_or_digest("localhost:5000/pearl:1"));
        assert!(!has_tag_or_digest("localhost:5000/pearl"));
        assert!(!has_tag_or_digest("ubuntu"));
    }
}
