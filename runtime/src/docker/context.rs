//! The build context: a directory streamed to the daemon as a tar, honouring
//! its `.dockerignore` as `docker build` does, without holding it in memory
//! (Pearl's context is its whole monorepo).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use globset::{GlobBuilder, GlobMatcher};
use tokio::sync::mpsc;

/// How much tar is buffered before it is handed to the request.
const CHUNK: usize = 256 * 1024;

/// `.dockerignore` rules: the last matching pattern decides; `!` re-includes.
/// A pattern matches a path or any of its parent directories.
pub(crate) struct IgnoreRules {
    rules: Vec<(GlobMatcher, bool)>,
    has_exceptions: bool,
}

impl IgnoreRules {
    /// Reads `<context>/.dockerignore`; none means nothing is ignored.
    pub(crate) fn load(context: &Path) -> Result<IgnoreRules, String> {
        match fs::read_to_string(context.join(".dockerignore")) {
            Ok(text) => IgnoreRules::parse(&text),
            Err(error) if error.kind() == io::ErrorKind::NotFound => IgnoreRules::parse(""),
            Err(error) => Err(format!(
                "cannot read {}: {error}",
                context.join(".dockerignore").display()
            )),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<IgnoreRules, String> {
        let mut rules = Vec::new();
        let mut has_exceptions = false;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|error| format!("bad .dockerignore pattern '{line}': {error}"))?;
            has_exceptions |= !exclude;
            rules.push((glob.compile_matcher(), exclude));
        }
        Ok(IgnoreRules {
            rules,
            has_exceptions,
        })
    }

    /// Whether `path` (relative, '/'-separated) is left out of the context.
    pub(crate) fn excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for (glob, exclude) in &self.rules {
            if excluded != *exclude && matches_self_or_parent(glob, path) {
                excluded = *exclude;
            }
        }
        excluded
    }
}

/// Like Go's `filepath.Clean` on a pattern, without the leading '/'.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn matches_self_or_parent(glob: &GlobMatcher, path: &str) -> bool {
    if glob.is_match(path) {
        return true;
    }
    path.match_indices('/')
        .any(|(end, _)| glob.is_match(&path[..end]))
}

/// Hands tar bytes to the request body from the thread that writes them.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the build request ended"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A context being streamed: the body for the request, and what went wrong
/// reading it (a permission problem, ...), to explain a failed build.
pub(crate) struct ContextTar {
    pub(crate) body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>,
    pub(crate) problem: Arc<Mutex<Option<String>>>,
}

/// Starts streaming `context` as a tar. `always` (the Dockerfile, relative)
/// is sent even if `.dockerignore` leaves it out, as `docker build` does.
pub(crate) fn stream_context(context: &Path, always: &str) -> Result<ContextTar, String> {
    let rules = IgnoreRules::load(context)?;
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let problem = Arc::new(Mutex::new(None));
    let root = context.to_path_buf();
    let always = always.trim_start_matches("./").to_owned();
    let report = Arc::clone(&problem);
    std::thread::Builder::new()
        .name("docker-build-context".into())
        .spawn(move || {
            let writer = ChannelWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHUNK),
            };
            let mut tar = tar::Builder::new(writer);
            tar.follow_symlinks(false);
            let walker = Walker {
                rules: &rules,
                always: &always,
            };
            let result = walker
                .walk(&mut tar, &root, "")
                .and_then(|()| tar.into_inner())
                .and_then(|mut writer| writer.flush());
            if let Err(error) = result
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                let message = error.to_string();
                *report.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
                let _ = sender.blocking_send(Err(io::Error::other(message)));
            }
        })
        .map_err(|error| format!("cannot start streaming the build context: {error}"))?;
    let body = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    Ok(ContextTar {
        body: Box::pin(body),
        problem,
    })
}

struct Walker<'a> {
    rules: &'a IgnoreRules,
    always: &'a str,
}

impl Walker<'_> {
    fn walk(
        &self,
        tar: &mut tar::Builder<ChannelWriter>,
        dir: &Path,
        prefix: &str,
    ) -> io::Result<()> {
        let mut entries: Vec<(String, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| annotate(dir, e))?
            .map(|entry| entry.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
            .collect::<Result<_, _>>()
            .map_err(|e| annotate(dir, e))?;
        entries.sort();
        for (name, path) in entries {
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = fs::symlink_metadata(&path)
                .map_err(|e| annotate(&path, e))?
                .file_type();
            let forced = relative == self.always || relative == ".dockerignore";
            let excluded = !forced && self.rules.excluded(&relative);
            if kind.is_dir() {
                let holds_always = self.always.starts_with(&format!("{relative}/"));
                if !excluded {
                    tar.append_dir(&relative, &path)
                        .map_err(|e| annotate(&path, e))?;
                }
                if !excluded || self.rules.has_exceptions || holds_always {
                    self.walk(tar, &path, &relative)?;
                }
            } else if !excluded && (kind.is_file() || kind.is_symlink()) {
                tar.append_path_with_name(&path, &relative)
                    .map_err(|e| annotate(&path, e))?;
            }
        }
        Ok(())
    }
}

fn annotate(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_semantics() {
        let rules = IgnoreRules::parse(
            "# comment\n.git\n/target\n**/*.pyc\n*.md\n!README.md\ndocs/**/draft*\n",
        )
        .unwrap();
        assert!(rules.excluded(".git"));
        assert!(rules.excluded(".git/objects/ab"));
        assert!(rules.excluded("target/release/x"));
        assert!(!rules.excluded("miner/target"));
        assert!(rules.excluded("a/b/c.pyc"));
        assert!(rules.excluded("c.pyc"));
        assert!(rules.excluded("NOTES.md"));
        assert!(!rules.excluded("README.md"));
        assert!(!rules.excluded("miner/NOTES.md"));
        assert!(rules.excluded("docs/x/y/draft1.txt"));
        assert!(!rules.excluded("miner/vllm-miner/Dockerfile"));
        assert!(rules.has_exceptions);
    }

    #[test]
    fn no_dockerignore_keeps_everything() {
        let rules = IgnoreRules::parse("").unwrap();
        assert!(!rules.excluded("anything/at/all"));
    }
}
