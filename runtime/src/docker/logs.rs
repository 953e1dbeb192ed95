//! Container logs: the tail, and following. Lines are raw: the caller
//! redacts them (it knows the secrets).

use bollard::container::LogOutput;
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::Docker;
use super::error::DockerError;

/// Splits a container's output into lines, stdout and stderr separately (a
/// line written in two pieces to one stream stays one line).
#[derive(Default)]
struct Lines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Lines {
    /// Adds a chunk; calls `emit` for each completed line until it says stop.
    fn push(&mut self, chunk: LogOutput, emit: &mut dyn FnMut(String) -> bool) -> bool {
        let (buffer, bytes) = match chunk {
            LogOutput::StdErr { message } => (&mut self.stderr, message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => (&mut self.stdout, message),
        };
        buffer.extend_from_slice(&bytes);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if !emit(decode(&line)) {
                return false;
            }
        }
        true
    }

    /// Emits what is left without a final newline.
    fn finish(&mut self, emit: &mut dyn FnMut(String) -> bool) {
        for buffer in [&mut self.stdout, &mut self.stderr] {
            if !buffer.is_empty() {
                let rest = std::mem::take(buffer);
                if !emit(decode(&rest)) {
                    return;
                }
            }
        }
    }
}

/// UTF-8 with replacement, without the line ending.
fn decode(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.trim_end_matches(['\n', '\r']).to_owned()
}

/// stdout and stderr, the last `tail` lines (`usize::MAX` = all), followed
/// or not.
fn logs_options(tail: usize, follow: bool) -> LogsOptions {
    let tail = if tail == usize::MAX {
        "all".to_owned()
    } else {
        tail.to_string()
    };
    LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(follow)
        .tail(&tail)
        .build()
}

impl Docker {
    /// The last `tail` lines of stdout and stderr (`usize::MAX` = all), in
    /// the order Docker returns them. Raw: redact before showing.
    pub fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>, DockerError> {
        let options = logs_options(tail, false);
        let what = format!("failed to read the logs of container '{id}'");
        let collect = async {
            let mut stream = self.client.logs(id, Some(options));
            let mut lines = Vec::new();
            let mut splitter = Lines::default();
            let mut keep = |line: String| {
                lines.push(line);
                true
            };
            while let Some(chunk) = stream.next().await {
                splitter.push(chunk?, &mut keep);
            }
            splitter.finish(&mut keep);
            Ok::<_, bollard::errors::Error>(lines)
        };
        self.call(
            &format!("reading the logs of container '{id}'"),
            self.timeouts.request,
            collect,
        )?
        .map_err(|error| self.error(&what, &error))
    }

    /// For each `(id, limit)` of `searches`, the lines among the container's
    /// last `tail` that `keep` turns into a line to keep (it is given the
    /// search's index), the newest `limit` of them. The logs are read
    /// concurrently and only kept lines are held, so a long log costs time,
    /// not memory.
    pub fn grep_logs_all(
        &self,
        searches: &[(&str, usize)],
        tail: usize,
        keep: &(dyn Fn(usize, String) -> Option<String> + Sync),
    ) -> Result<Vec<Result<Vec<String>, DockerError>>, DockerError> {
        let options = logs_options(tail, false);
        let reads = searches.iter().enumerate().map(|(index, &(id, limit))| {
            let mut stream = self.client.logs(id, Some(options.clone()));
            async move {
                let mut kept = std::collections::VecDeque::new();
                let mut splitter = Lines::default();
                let mut emit = |line: String| {
                    if let Some(line) = keep(index, line) {
                        if kept.len() == limit {
                            kept.pop_front();
                        }
                        if limit > 0 {
                            kept.push_back(line);
                        }
                    }
                    true
                };
                while let Some(chunk) = stream.next().await {
                    splitter.push(chunk?, &mut emit);
                }
                splitter.finish(&mut emit);
                Ok::<_, bollard::errors::Error>(Vec::from(kept))
            }
        });
        let results = self.call(
            &format!("reading the logs of {} containers", searches.len()),
            self.timeouts.request,
            futures_util::future::join_all(reads),
        )?;
        Ok(searches
            .iter()
            .zip(results)
            .map(|((id, _), result)| {
                result.map_err(|error| {
                    self.error(
                        &format!("failed to read the logs of container '{id}'"),
                        &error,
                    )
                })
            })
            .collect())
    }

    /// Calls `on_line` with the last `tail` lines, then with each new line as
    /// the container writes it. Returns when the container stops (its log
    /// stream ends) or when `on_line` returns `false`. There is no time limit
    /// while the container runs.
    pub fn follow_logs(
        &self,
        id: &str,
        tail: usize,
        on_line: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), DockerError> {
        let options = logs_options(tail, true);
        let what = format!("failed to follow the logs of container '{id}'");
        let follow = async {
            let mut stream = self.client.logs(id, Some(options));
            let mut splitter = Lines::default();
            let mut emit = |line: String| on_line(&line);
            while let Some(chunk) = stream.next().await {
                if !splitter.push(chunk?, &mut emit) {
                    return Ok(());
                }
            }
            splitter.finish(&mut emit);
            Ok::<_, bollard::errors::Error>(())
        };
        self.runtime
            .block_on(follow)
            .map_err(|error| self.error(&what, &error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn lines_are_split_per_stream_and_joined_across_chunks() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        let mut emit = |line: String| {
            seen.push(line);
            true
        };
        let out = |s: &'static str| LogOutput::StdOut {
            message: Bytes::from_static(s.as_bytes()),
        };
        let err = |s: &'static str| LogOutput::StdErr {
            message: Bytes::from_static(s.as_bytes()),
        };
        lines.push(out("Submitting "), &mut emit);
        lines.push(err("warn: x\r\n"), &mut emit);
        lines.push(out("block\nBlock accepted"), &mut emit);
        lines.push(out(" by node!\nno newline"), &mut emit);
        lines.finish(&mut emit);
        assert_eq!(
            seen,
            [
                "warn: x",
                "Submitting block",
                "Block accepted by node!",
                "no newline"
            ]
        );
    }

    #[test]
    fn stopping_early_stops_emitting() {
        let mut lines = Lines::default();
        let mut count = 0;
        let mut emit = |_line: String| {
            count += 1;
            false
        };
        let more = lines.push(
            LogOutput::StdOut {
                message: Bytes::from_static(b"a\nb\nc\n"),
            },
            &mut emit,
        );
        assert!(!more);
        assert_eq!(count, 1);
    }
}
