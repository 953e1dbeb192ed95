//! Image builds through the Engine API with BuildKit (Pearl's Dockerfile uses
//! cache mounts, which the classic builder rejects), and their progress.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::moby::buildkit::v1::StatusResponse;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
use futures_util::StreamExt;

use super::Docker;
use super::context::stream_context;
use super::error::{Cause, DockerError, classify, unreachable_message};
use super::image::ImageProgress;

/// How many output lines a failed build's message quotes.
const TAIL_LINES: usize = 10;

impl Docker {
    /// Builds `image` from the directory `context` with `dockerfile` (a path
    /// inside the context), streaming the context as a tar (honouring its
    /// `.dockerignore`) and reporting each step and output line. A failed
    /// build is [`DockerError::Failed`] quoting its last lines; a build that
    /// prints nothing for [`super::Timeouts::build_idle`] is abandoned.
    pub fn build_image(
        &self,
        context: &Path,
        dockerfile: &str,
        image: &str,
        progress: &mut dyn FnMut(ImageProgress),
    ) -> Result<(), DockerError> {
        let failed = |detail: String| {
            DockerError::Failed(format!(
                "building image '{image}' from {} failed: {detail}",
                context.display()
            ))
        };
        if !context.join(dockerfile).is_file() {
            return Err(failed(format!("there is no {dockerfile} in it")));
        }
        let tar = stream_context(context, dockerfile).map_err(&failed)?;
        let session = session_id();
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(image)
            .rm(true)
            .forcerm(true)
            .version(BuilderVersion::BuilderBuildKit)
            .session(&session)
            .build();
        let body = bollard::body_try_stream(tar.body);
        let idle = self.timeouts.build_idle;
        let mut report = BuildReport::new(progress);
        let outcome: Result<(), Cause> = self.runtime.block_on(async {
            let mut stream = self.client.build_image(options, None, Some(body));
            loop {
                let Ok(next) = tokio::time::timeout(idle, stream.next()).await else {
                    return Err(Cause::Other(format!(
                        "the build printed nothing for {} min",
                        idle.as_secs() / 60
                    )));
                };
                match next {
                    None => return Ok(()),
                    Some(Ok(info)) => report.info(info),
                    Some(Err(error)) => return Err(classify(&error)),
                }
            }
        });
        report.finish();
        let problem = tar.problem.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(problem) = problem {
            return Err(failed(format!(
                "reading the build context failed: {problem}"
            )));
        }
        match outcome {
            Ok(()) => {}
            Err(Cause::Transport(detail)) => {
                return Err(DockerError::Unavailable(unreachable_message(
                    &self.host, &detail,
                )));
            }
            Err(Cause::Daemon { message, .. } | Cause::Stream(message) | Cause::Other(message)) => {
                return Err(failed(report.explain(&message)));
            }
        }
        if self.image_present(image)? {
            Ok(())
        } else {
            Err(failed(
                report.explain("the build finished but the image is not present"),
            ))
        }
    }
}

/// A BuildKit session id unique to this build.
fn session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "jarvis-mine-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Turns the build stream into [`ImageProgress`] events and remembers the
/// last lines for an error message.
struct BuildReport<'p> {
    progress: &'p mut dyn FnMut(ImageProgress),
    started: HashSet<String>,
    finished: HashSet<String>,
    /// Unterminated output per BuildKit vertex ("" for the classic stream).
    partial: HashMap<String, Vec<u8>>,
    last: VecDeque<String>,
}

impl<'p> BuildReport<'p> {
    fn new(progress: &'p mut dyn FnMut(ImageProgress)) -> Self {
        BuildReport {
            progress,
            started: HashSet::new(),
            finished: HashSet::new(),
            partial: HashMap::new(),
            last: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    fn line(&mut self, line: String) {
        if self.last.len() == TAIL_LINES {
            self.last.pop_front();
        }
        self.last.push_back(line.clone());
        (self.progress)(ImageProgress::BuildLine(line));
    }

    /// Adds output of `source`; emits each completed line.
    fn output(&mut self, source: &str, bytes: &[u8]) {
        let buffer = self.partial.entry(source.to_owned()).or_default();
        buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        for line in lines.into_iter().filter(|l| !l.is_empty()) {
            self.line(line);
        }
    }

    fn info(&mut self, info: BuildInfo) {
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => self.buildkit(status),
            _ => {
                if let Some(stream) = info.stream {
                    self.output("", stream.as_bytes());
                }
                if let (Some(id), Some(status)) = (info.id, info.status) {
                    (self.progress)(super::image::layer_progress(
                        id,
                        status,
                        info.progress_detail,
                    ));
                }
            }
        }
    }

    fn buildkit(&mut self, status: StatusResponse) {
        for vertex in status.vertexes {
            if !vertex.error.is_empty() {
                if self.finished.insert(vertex.digest.clone()) {
                    self.line(format!("ERROR {}: {}", vertex.name, vertex.error));
                }
            } else if vertex.cached && vertex.completed.is_some() {
                if self.finished.insert(vertex.digest.clone()) {
                    self.line(format!("CACHED {}", vertex.name));
                }
            } else if vertex.started.is_some() && self.started.insert(vertex.digest.clone()) {
                self.line(vertex.name);
            }
        }
        for status in status.statuses {
            (self.progress)(ImageProgress::Layer {
                id: status.id,
                status: status.name,
                current: u64::try_from(status.current).ok(),
                total: u64::try_from(status.total).ok().filter(|&t| t > 0),
            });
        }
        for log in status.logs {
            self.output(&log.vertex, &log.msg);
        }
        for warning in status.warnings {
            self.line(format!(
                "WARNING: {}",
                String::from_utf8_lossy(&warning.short).trim()
            ));
        }
    }

    /// Emits unterminated output.
    fn finish(&mut self) {
        let rests: Vec<Vec<u8>> = self.partial.drain().map(|(_, rest)| rest).collect();
        for rest in rests {
            let line = String::from_utf8_lossy(&rest).trim_end().to_owned();
            if !line.is_empty() {
                self.line(line);
            }
        }
    }

    /// `error`, then the last output lines joined by " | ".
    fn explain(&self, error: &str) -> String {
        let error = error.trim();
        if self.last.is_empty() {
            return error.to_owned();
        }
        let tail: Vec<&str> = self.last.iter().map(String::as_str).collect();
        format!("{error}; last output: {}", tail.join(" | "))
    }
}
