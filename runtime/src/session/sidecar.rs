//! The session sidecar, `<home>/runtime/mining.json` (reference §1.6, §7).
//!
//! OpenJarvis 1.0.4 reads this file in several places, each for its own keys
//! (read in the package's source; tests/openjarvis_handoff.rs runs them):
//!
//! | OpenJarvis reader | keys it reads |
//! |---|---|
//! | engine discovery (`_maybe_register_mining_sidecar_engine`) | `vllm_endpoint`, `model`: registers `vllm-pearl-mining` at the endpoint less `/` and one `/v1` |
//! | `jarvis mine status` | `provider`; `gateway_pid`/`miner_loop_pid`; `metrics_url`, scraped **as gateway metrics**; else `[mining]`'s provider `stats()` |
//! | `vllm-pearl` `stats()`, the telemetry collector | `gateway_metrics_url` + `/metrics`, then `vllm_endpoint` less `/v1` + `/metrics` |
//! | `jarvis mine stop` | `gateway_pid`/`miner_loop_pid`: processes it kills |
//! | `jarvis mine doctor`, `validate-model` | `container_id`; `model`, `vllm_endpoint`, `gateway_metrics_url` |
//!
//! So the record written here is the reference's vllm shape plus keys no
//! reader looks at, `session_id`, `image` and (for a session of several
//! workers) `workers`, and nothing else: no
//! `metrics_url` (`mine status` would parse vLLM's metrics as the gateway's
//! and show 0 shares), no PIDs (`mine stop` would kill them). Where this
//! runtime needs vLLM's metrics it derives the URL from the endpoint
//! ([`SessionRecord::vllm_metrics_url`]), as OpenJarvis's `stats()` does.
//!
//! File format, as the reference writes it: a JSON object, indented by two
//! spaces, keys sorted, no trailing newline; mode 0600; replaced atomically
//! (a temporary file in the same directory, fsync, rename: `atomic_file`).
//!
//! Reading is strict about shape but tolerant of extra keys: a key this
//! version does not know (a newer OpenJarvis may add some, an older version
//! of this runtime wrote `metrics_url`) is accepted and **dropped**, not
//! preserved. This runtime writes the sidecar only as a whole new record for
//! a new session, so nothing is lost in practice, and keeping the record
//! closed means it can never carry anything but its typed fields (in
//! particular no secret: there is no field for one). A record OpenJarvis's
//! `mine attach` wrote reads like ours; its `vllm_endpoint` is read as
//! OpenJarvis's engine discovery reads it (`/v1` implied, see [`read`]). One
//! its `cpu-pearl` wrote (PIDs, no endpoint) is
//! [`SidecarError::OpenJarvisProcesses`], never "corrupt", so nothing here
//! removes the only record of processes OpenJarvis must stop.
//!
//! Our own cpu-pearl and apple-mps-pearl sessions are written in that cpu
//! shape ([`ProcessSession`]: PIDs from the host's process table and
//! `metrics_url`, plus `session_id`), so OpenJarvis's `mine status` reads
//! them as its own (tests/processes_cli.rs); [`read_processes`] reads both.

use crate::atomic_file;
use crate::home::HomePath;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// `read` refuses files larger than this (a real record is well under 2 KiB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// [`validate`] refuses any string field longer than this many bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// One mining session, as written to the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Provider id, e.g. `vllm-pearl`.
    pub provider: String,
    /// The OpenAI-compatible endpoint, `http://127.0.0.1:<port>/v1`.
    pub vllm_endpoint: String,
    /// The served model name.
    pub model: String,
    /// `http://127.0.0.1:<gateway_port>`.
    pub gateway_url: String,
    /// `http://127.0.0.1:<gateway_metrics_port>`, without `/metrics`, as the
    /// reference writes it.
    pub gateway_metrics_url: String,
    /// Docker container id (`external` for an attached session).
    pub container_id: String,
    pub wallet_address: String,
    /// Unix seconds. Written as an integer; a float (the reference's cpu
    /// providers write `time.time()`) is accepted when reading and truncated.
    #[serde(deserialize_with = "unix_seconds")]
    pub started_at: u64,
    /// Ours: identifies the session in logs and telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Ours: the image the container runs, `repo:tag` or `repo@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Ours: every worker when the session runs several miners, worker 0
    /// first (its container and endpoint are also the record's own, the
    /// ones OpenJarvis reads). Empty for one container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerRecord>,
}

/// One worker of a session of several: its container, GPUs and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub container_id: String,
    /// Host GPU ids (NVML indexes or UUIDs) it mines on.
    #[serde(default)]
    pub gpus: Vec<String>,
    /// `http://127.0.0.1:<port>/v1`.
    pub vllm_endpoint: String,
}

impl WorkerRecord {
    /// The worker's vLLM server: its endpoint less `/v1`.
    pub fn vllm_base_url(&self) -> &str {
        base_url(&self.vllm_endpoint)
    }

    /// vLLM's Prometheus endpoint beside the worker's API.
    pub fn vllm_metrics_url(&self) -> String {
        format!("{}/metrics", self.vllm_base_url())
    }
}

/// Workers one session may record, and GPUs one worker may name.
pub const MAX_WORKERS: usize = 16;
pub const MAX_WORKER_GPUS: usize = 16;

/// A session of processes, in the shape OpenJarvis's cpu providers write
/// (reference §1.6): its `jarvis mine status` shows the PIDs and scrapes
/// `metrics_url` as the gateway's metrics, its `jarvis mine stop` stops the
/// PIDs. `session_id` marks it as ours: the host wrote the PIDs from its
/// own process table, never from what a provider said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSession {
    pub provider: String,
    /// Unix seconds, a float as the reference writes it.
    pub started_at: f64,
    pub wallet_address: String,
    pub gateway_url: String,
    /// The gateway's Prometheus endpoint, with `/metrics`.
    pub metrics_url: String,
    pub gateway_pid: u32,
    pub miner_loop_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl SessionRecord {
    /// Each worker's container, endpoint and GPUs: the recorded workers,
    /// or the record's one container as worker 0.
    pub fn worker_list(&self) -> Vec<WorkerRecord> {
        if self.workers.is_empty() {
            vec![WorkerRecord {
                container_id: self.container_id.clone(),
                gpus: Vec::new(),
                vllm_endpoint: self.vllm_endpoint.clone(),
            }]
        } else {
            self.workers.clone()
        }
    }

    /// The vLLM server's base URL: `vllm_endpoint` less a trailing `/` and
    /// one `/v1`, as OpenJarvis's engine discovery takes it.
    pub fn vllm_base_url(&self) -> &str {
        base_url(&self.vllm_endpoint)
    }

    /// vLLM's Prometheus endpoint, `<base>/metrics`: vLLM serves it on its
    /// API port, so it is derived, never recorded (see the module notes).
    pub fn vllm_metrics_url(&self) -> String {
        format!("{}/metrics", self.vllm_base_url())
    }
}

fn base_url(endpoint: &str) -> &str {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed)
}

fn unix_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Int(u64),
        Float(f64),
    }
    match Seconds::deserialize(deserializer)? {
        Seconds::Int(secs) => Ok(secs),
        Seconds::Float(secs) if secs.is_finite() && secs >= 0.0 && secs < u64::MAX as f64 => {
            Ok(secs as u64)
        }
        Seconds::Float(secs) => Err(serde::de::Error::custom(format!(
            "started_at {secs} is not a unix time"
        ))),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The file exists but could not be read (permissions, a directory, …).
    #[error("cannot read sidecar {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but is not a session record: too large, not JSON,
    /// not an object, or a field missing or of the wrong type.
    #[error("stale or corrupt sidecar {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A session OpenJarvis's `cpu-pearl` or `apple-mps-pearl` started
    /// (the reference's cpu shape: processes, no vLLM endpoint). Not ours to
    /// reconcile: removing it would leave its processes running with nothing
    /// to stop them by.
    #[error(
        "sidecar {path} describes an OpenJarvis {provider} session (gateway pid {gateway_pid}, \
         miner loop pid {miner_loop_pid}), which this runtime does not run: \
         stop it with OpenJarvis's `jarvis mine stop` first"
    )]
    OpenJarvisProcesses {
        path: PathBuf,
        provider: String,
        gateway_pid: String,
        miner_loop_pid: String,
    },
    /// A session of processes this runtime started ([`ProcessSession`],
    /// with a session id): not a container session, read it with
    /// [`read_processes`].
    #[error(
        "sidecar {path} describes a {provider} session of processes (gateway pid {gateway_pid}, \
         miner loop pid {miner_loop_pid}) that `jarvis mine start` started: \
         stop it with `jarvis mine stop` first"
    )]
    Processes {
        path: PathBuf,
        provider: String,
        gateway_pid: String,
        miner_loop_pid: String,
    },
    #[error("cannot write sidecar {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove sidecar {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SidecarError {
    /// True for the errors `status` should report as "stale or corrupt
    /// sidecar" and reconcile (remove), as opposed to I/O trouble.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, SidecarError::Corrupt { .. })
    }
}

/// Serialises `record` as the sidecar text: indent 2, keys sorted, no
/// trailing newline.
pub fn to_json(record: &impl Serialize) -> String {
    let value = serde_json::to_value(record).expect("a session record always serialises");
    let serde_json::Value::Object(map) = value else {
        unreachable!("a SessionRecord serialises to an object")
    };
    // Sort explicitly: serde_json's Map keeps insertion order when another
    // crate in the build turns on `preserve_order`.
    let sorted: BTreeMap<String, serde_json::Value> = map.into_iter().collect();
    serde_json::to_string_pretty(&sorted).expect("a JSON map always serialises")
}

/// Atomically replaces `path` with `record` (see [`atomic_file::write`]);
/// on any error `path` is untouched.
pub fn write(path: &HomePath, record: &impl Serialize) -> Result<(), SidecarError> {
    let err = |source| SidecarError::Write {
        path: path.absolute(),
        source,
    };
    let text = to_json(record);
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the record is {} bytes; readers accept at most {MAX_FILE_BYTES}",
                text.len()
            ),
        )));
    }
    path.write_atomically(atomic_file::Mode::Fixed(0o600), text.as_bytes())
        .map_err(err)
}

/// Reads a session of processes: ours, or OpenJarvis's cpu providers'.
/// `Ok(None)` when there is no record or it is a container session.
pub fn read_processes(path: &HomePath) -> Result<Option<ProcessSession>, SidecarError> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    let value = parse_object(path, &bytes)?;
    if !is_process_shape(&value) {
        // A container session, or a corrupt record: as `read` says.
        return container_record(path, value).map(|_| None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| SidecarError::Corrupt {
            path: path.absolute(),
            reason: format!("not a session of processes: {e}"),
        })
}

/// Reads the sidecar. A missing file is `Ok(None)`; anything else that is
/// not a session record is an error (see [`SidecarError::is_corrupt`]). A
/// session of processes is [`SidecarError::Processes`] (ours) or
/// [`SidecarError::OpenJarvisProcesses`]; read it with [`read_processes`].
pub fn read(path: &HomePath) -> Result<Option<SessionRecord>, SidecarError> {
    read_bytes(path)?
        .map(|bytes| parse_record(path, &bytes))
        .transpose()
}

/// The record at a path read again and again (`jarvis mine supervise`
/// reads it every second): parsed only when its bytes changed.
#[derive(Default)]
pub struct RecordReader {
    last: Option<(Vec<u8>, SessionRecord)>,
}

impl RecordReader {
    /// [`read`], parsing only bytes it has not parsed last time.
    pub fn read(&mut self, path: &HomePath) -> Result<Option<SessionRecord>, SidecarError> {
        let Some(bytes) = read_bytes(path)? else {
            self.last = None;
            return Ok(None);
        };
        if let Some((seen, record)) = &self.last
            && *seen == bytes
        {
            return Ok(Some(record.clone()));
        }
        self.last = None;
        let record = parse_record(path, &bytes)?;
        self.last = Some((bytes, record.clone()));
        Ok(Some(record))
    }
}

fn parse_record(path: &HomePath, bytes: &[u8]) -> Result<SessionRecord, SidecarError> {
    let value = parse_object(path, bytes)?;
    if is_process_shape(&value) {
        return Err(processes_error(path, &value));
    }
    container_record(path, value)
}

/// Whether a record has OpenJarvis's cpu shape: PIDs, no endpoint.
fn is_process_shape(value: &serde_json::Value) -> bool {
    let has = |key| value.get(key).is_some();
    !has("vllm_endpoint") && (has("gateway_pid") || has("miner_loop_pid"))
}

/// What `read` says of a session of processes: ours (with a session id)
/// or OpenJarvis's. Printed: numbers, and a short provider id with its
/// escapes visible.
fn processes_error(path: &HomePath, value: &serde_json::Value) -> SidecarError {
    let pid = |key: &str| match value.get(key) {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => "?".into(),
    };
    let provider = match value.get("provider") {
        Some(serde_json::Value::String(id)) => {
            id.chars().take(64).flat_map(char::escape_default).collect()
        }
        _ => "?".into(),
    };
    let (path, gateway_pid, miner_loop_pid) =
        (path.absolute(), pid("gateway_pid"), pid("miner_loop_pid"));
    if value.get("session_id").is_some() {
        SidecarError::Processes {
            path,
            provider,
            gateway_pid,
            miner_loop_pid,
        }
    } else {
        SidecarError::OpenJarvisProcesses {
            path,
            provider,
            gateway_pid,
            miner_loop_pid,
        }
    }
}

/// A container session's record from the object read.
fn container_record(
    path: &HomePath,
    value: serde_json::Value,
) -> Result<SessionRecord, SidecarError> {
    let mut record: SessionRecord =
        serde_json::from_value(value).map_err(|e| SidecarError::Corrupt {
            path: path.absolute(),
            reason: format!("not a session record: {e}"),
        })?;
    // OpenJarvis routes `http://h:p`, `http://h:p/` and `http://h:p/v1/` to
    // `http://h:p/v1` (its `attach` records the endpoint as typed): read it
    // the same way, so readiness probes and metrics go where it routes.
    record.vllm_endpoint = format!("{}/v1", record.vllm_base_url());
    Ok(record)
}

/// The sidecar's bytes, read once: a regular file, capped; `None` when
/// there is none.
fn read_bytes(path: &HomePath) -> Result<Option<Vec<u8>>, SidecarError> {
    let unreadable = |source| SidecarError::Unreadable {
        path: path.absolute(),
        source,
    };
    let corrupt = |reason: String| SidecarError::Corrupt {
        path: path.absolute(),
        reason,
    };
    // Without blocking: a FIFO planted at the path opens at once and is
    // refused below, never a hang.
    let mut options = cap_std::fs::OpenOptions::new();
    cap_std::fs::OpenOptionsExt::custom_flags(
        options.read(true),
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    let file = match path.open_with(&options) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(unreadable(source)),
    };
    if !file.metadata().map_err(unreadable)?.is_file() {
        return Err(unreadable(std::io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(corrupt(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(Some(bytes))
}

/// A record's bytes as a JSON object.
fn parse_object(path: &HomePath, bytes: &[u8]) -> Result<serde_json::Value, SidecarError> {
    let corrupt = |reason: String| SidecarError::Corrupt {
        path: path.absolute(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("empty file".into()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(corrupt("not a JSON object".into()));
    }
    Ok(value)
}

/// Removes the sidecar; a missing file is not an error.
pub fn remove(path: &HomePath) -> Result<(), SidecarError> {
    path.remove_file_if_present()
        .map_err(|source| SidecarError::Remove {
            path: path.absolute(),
            source,
        })
}

/// Why a record must not be written. Messages never include a URL's value
/// (it could carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("sidecar field `{field}` is empty")]
    Empty { field: &'static str },
    #[error("sidecar field `{field}` is {len} bytes long; the limit is {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("sidecar field `{field}` contains a control character")]
    ControlCharacter { field: &'static str },
    #[error("sidecar field `{field}` is not acceptable: {reason}")]
    Url { field: &'static str, reason: String },
}

/// OpenJarvis's reader rules (§7) plus ours for the sessions this runtime
/// writes: `vllm_endpoint` and `model` non-empty; `vllm_endpoint` an
/// `http(s)` URL on a loopback host whose path ends in `/v1`; every URL
/// `http(s)`, loopback, without credentials, query or fragment;
/// `provider` and `container_id`
/// non-empty; every string at most [`MAX_STRING_BYTES`] bytes and free of
/// control characters. (`wallet_address` may be empty, as `mine attach`
/// allows.) Returns the first problem found, in field order.
pub fn validate(record: &SessionRecord) -> Result<(), ValidationError> {
    let optional = |value: &Option<String>| value.as_deref().unwrap_or("x").to_owned();
    let strings: [(&'static str, String, bool); 9] = [
        ("provider", record.provider.clone(), true),
        ("vllm_endpoint", record.vllm_endpoint.clone(), true),
        ("model", record.model.clone(), true),
        ("gateway_url", record.gateway_url.clone(), true),
        (
            "gateway_metrics_url",
            record.gateway_metrics_url.clone(),
            true,
        ),
        ("container_id", record.container_id.clone(), true),
        ("wallet_address", record.wallet_address.clone(), false),
        ("session_id", optional(&record.session_id), true),
        ("image", optional(&record.image), true),
    ];
    for (field, value, required) in &strings {
        let field = *field;
        if value.len() > MAX_STRING_BYTES {
            return Err(ValidationError::TooLong {
                field,
                len: value.len(),
                max: MAX_STRING_BYTES,
            });
        }
        if *required && value.trim().is_empty() {
            return Err(ValidationError::Empty { field });
        }
        if value.chars().any(char::is_control) {
            return Err(ValidationError::ControlCharacter { field });
        }
    }
    check_url("vllm_endpoint", &record.vllm_endpoint, Some("/v1"))?;
    check_url("gateway_url", &record.gateway_url, None)?;
    check_url("gateway_metrics_url", &record.gateway_metrics_url, None)?;
    validate_workers(record)
}

/// Workers: at most [`MAX_WORKERS`], worker 0 the record's own container
/// and endpoint, each container once, each endpoint a vLLM `/v1` URL.
fn validate_workers(record: &SessionRecord) -> Result<(), ValidationError> {
    let workers = &record.workers;
    let invalid = |reason: String| ValidationError::Url {
        field: "workers",
        reason,
    };
    if workers.len() > MAX_WORKERS {
        return Err(invalid(format!(
            "{} workers; a session records at most {MAX_WORKERS}",
            workers.len()
        )));
    }
    if let Some(first) = workers.first()
        && (first.container_id != record.container_id
            || first.vllm_endpoint != record.vllm_endpoint)
    {
        return Err(invalid(
            "worker 0 must be the record's own container_id and vllm_endpoint".into(),
        ));
    }
    for (index, worker) in workers.iter().enumerate() {
        let texts = std::iter::once(&worker.container_id)
            .chain(&worker.gpus)
            .chain(std::iter::once(&worker.vllm_endpoint));
        for text in texts {
            if text.is_empty()
                || text.len() > MAX_STRING_BYTES
                || text.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "worker {index} has an empty, overlong or control-character value"
                )));
            }
        }
        if worker.gpus.len() > MAX_WORKER_GPUS {
            return Err(invalid(format!(
                "worker {index} names {} GPUs; the limit is {MAX_WORKER_GPUS}",
                worker.gpus.len()
            )));
        }
        if workers[..index]
            .iter()
            .any(|w| w.container_id == worker.container_id)
        {
            return Err(invalid(format!(
                "worker {index} repeats another worker's container"
            )));
        }
        check_url("workers", &worker.vllm_endpoint, Some("/v1"))?;
    }
    Ok(())
}

/// A vLLM metrics URL a provider declared for `record`'s session: empty, or
/// exactly [`SessionRecord::vllm_metrics_url`]. The host derives that URL
/// and never records it, so any other value would be a promise nothing
/// keeps. A malformed value gets [`validate`]'s reason.
pub fn check_vllm_metrics_url(derived: &str, declared: &str) -> Result<(), ValidationError> {
    if declared.is_empty() {
        return Ok(());
    }
    check_url("metrics_url", declared, Some("/metrics"))?;
    if declared != derived {
        return Err(ValidationError::Url {
            field: "metrics_url",
            reason: "it must be vLLM's own /metrics beside `vllm_endpoint`, or empty \
                     (the host derives it from the endpoint)"
                .into(),
        });
    }
    Ok(())
}

/// An `http(s)` URL on a loopback host, without credentials, query or
/// fragment, whose path ends in `suffix` if given.
/// The port of a loopback `http(s)` URL without credentials, query or
/// fragment (the rules of [`validate`]); the error completes "<field> …".
pub fn loopback_port(url: &str) -> Result<u16, String> {
    if url.len() > MAX_STRING_BYTES {
        return Err(format!("is longer than {MAX_STRING_BYTES} bytes"));
    }
    check_url("url", url, None).map_err(|err| match err {
        ValidationError::Url { reason, .. } => format!("is not acceptable: {reason}"),
        other => other.to_string(),
    })?;
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|uri| uri.port_u16())
        .ok_or_else(|| "has no port".to_owned())
}

fn check_url(
    field: &'static str,
    value: &str,
    suffix: Option<&str>,
) -> Result<(), ValidationError> {
    let bad = |reason: &str| ValidationError::Url {
        field,
        reason: reason.to_owned(),
    };
    if value.contains(['?', '#']) {
        return Err(bad("a URL with a query or fragment"));
    }
    let uri: ureq::http::Uri = value.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    if authority.as_str().contains('@') {
        return Err(bad("a URL must not carry credentials"));
    }
    if !is_loopback(authority.host()) {
        return Err(bad(
            "the host must be loopback (127.0.0.1, ::1 or localhost)",
        ));
    }
    if let Some(suffix) = suffix
        && !uri.path().ends_with(suffix)
    {
        return Err(bad(&format!("the path must end in {suffix}")));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            provider: "vllm-pearl".into(),
            vllm_endpoint: "http://127.0.0.1:8000/v1".into(),
            model: "pearl-ai/Llama-3.3-70B-Instruct-pearl".into(),
            gateway_url: "http://127.0.0.1:8337".into(),
            gateway_metrics_url: "http://127.0.0.1:8339".into(),
            container_id: "0123456789ab".into(),
            wallet_address: "prl1qexampleaddress".into(),
            started_at: 1_760_000_000,
            session_id: Some("s-1".into()),
            image: Some("openjarvis/pearl-miner:master".into()),
            workers: Vec::new(),
        }
    }

    #[test]
    fn json_is_sorted_indented_and_closed() {
        let text = to_json(&record());
        assert!(text.starts_with("{\n  \"container_id\": \"0123456789ab\",\n"));
        assert!(!text.ends_with('\n'));
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(
            keys,
            [
                "container_id",
                "gateway_metrics_url",
                "gateway_url",
                "image",
                "model",
                "provider",
                "session_id",
                "started_at",
                "vllm_endpoint",
                "wallet_address"
            ]
        );
        assert!(text.contains("\"started_at\": 1760000000,"));
    }

    #[test]
    fn reading_tolerates_unknown_keys_and_float_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        let mut value: serde_json::Value = serde_json::from_str(&to_json(&record())).unwrap();
        value["added_by_openjarvis"] = "x".into();
        value["started_at"] = 1_760_000_000.75.into();
        std::fs::write(path.absolute(), value.to_string()).unwrap();
        let read = read(&path).unwrap().unwrap();
        assert_eq!(read, record());
        assert!(!to_json(&read).contains("added_by_openjarvis"));
    }

    #[test]
    fn an_endpoint_is_read_as_openjarvis_routes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        for written in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "http://127.0.0.1:8000/v1",
            "http://127.0.0.1:8000/v1/",
        ] {
            let mut value: serde_json::Value = serde_json::from_str(&to_json(&record())).unwrap();
            value["vllm_endpoint"] = written.into();
            std::fs::write(path.absolute(), value.to_string()).unwrap();
            let read = read(&path).unwrap().unwrap();
            assert_eq!(read.vllm_endpoint, "http://127.0.0.1:8000/v1", "{written}");
            assert_eq!(read.vllm_base_url(), "http://127.0.0.1:8000");
            assert_eq!(read.vllm_metrics_url(), "http://127.0.0.1:8000/metrics");
        }
    }

    #[test]
    fn keys_openjarvis_reads_otherwise_are_dropped_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        let mut value: serde_json::Value = serde_json::from_str(&to_json(&record())).unwrap();
        // What an older version of this runtime wrote, and the cpu shape's PIDs.
        value["metrics_url"] = "http://127.0.0.1:8000/metrics".into();
        value["gateway_pid"] = 7.into();
        value["miner_loop_pid"] = 8.into();
        std::fs::write(path.absolute(), value.to_string()).unwrap();
        let text = to_json(&read(&path).unwrap().unwrap());
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in ["metrics_url", "gateway_pid", "miner_loop_pid"] {
            assert!(written.get(key).is_none(), "{key}: {text}");
        }
    }

    #[test]
    fn corrupt_files_are_errors_not_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        assert!(read(&path).unwrap().is_none());
        for (text, expect) in [
            ("", "empty file"),
            ("{\"provider\": ", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            ("{\"provider\": \"vllm-pearl\"}", "missing field"),
            (
                "{\"provider\": \"cpu-pearl\", \"started_at\": 1.5}",
                "not a session record",
            ),
        ] {
            std::fs::write(path.absolute(), text).unwrap();
            let err = read(&path).unwrap_err();
            assert!(err.is_corrupt(), "{text}: {err}");
            assert!(err.to_string().contains(expect), "{text}: {err}");
            assert!(err.to_string().starts_with("stale or corrupt sidecar "));
        }
        std::fs::write(path.absolute(), vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("larger than"));
        std::fs::remove_file(path.absolute()).unwrap();
        std::fs::create_dir(path.absolute()).unwrap();
        assert!(matches!(read(&path), Err(SidecarError::Unreadable { .. })));
    }

    #[test]
    fn a_reader_of_the_same_path_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        let mut reader = RecordReader::default();
        assert_eq!(reader.read(&path).unwrap(), None);
        let first = record();
        // The same length, one byte apart: the bytes are compared, not sizes or times.
        let second = SessionRecord {
            container_id: "0123456789ac".into(),
            ..record()
        };
        for (written, expected) in [(&first, &first), (&first, &first), (&second, &second)] {
            std::fs::write(path.absolute(), to_json(written)).unwrap();
            assert_eq!(reader.read(&path).unwrap().as_ref(), Some(expected));
        }
        std::fs::write(path.absolute(), "{\"provider\": ").unwrap();
        assert!(reader.read(&path).unwrap_err().is_corrupt());
        std::fs::write(path.absolute(), to_json(&second)).unwrap();
        assert_eq!(reader.read(&path).unwrap(), Some(second.clone()));
        remove(&path).unwrap();
        assert_eq!(reader.read(&path).unwrap(), None);
        std::fs::write(path.absolute(), to_json(&second)).unwrap();
        assert_eq!(reader.read(&path).unwrap(), Some(second));
    }

    #[test]
    fn an_openjarvis_cpu_session_is_not_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        // What OpenJarvis's cpu-pearl start writes (reference §1.6).
        std::fs::write(
            path.absolute(),
            r#"{"provider": "cpu-pearl", "started_at": 1760000000.5, "wallet_address": "prl1q",
                "gateway_url": "http://127.0.0.1:8337", "metrics_url": "http://127.0.0.1:8339/metrics",
                "gateway_pid": 4242, "miner_loop_pid": 4243}"#,
        )
        .unwrap();
        let err = read(&path).unwrap_err();
        assert!(!err.is_corrupt(), "{err}");
        let message = err.to_string();
        for part in [
            "OpenJarvis cpu-pearl session",
            "gateway pid 4242",
            "miner loop pid 4243",
            "`jarvis mine stop`",
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
        // JSON escapes: the file holds the control characters themselves.
        let hostile = r#"{"provider": "\u001b]0;x\u0007", "gateway_pid": "\u001b[2J"}"#;
        std::fs::write(path.absolute(), hostile).unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(
            !message.contains('\u{1b}') && !message.contains('\u{7}'),
            "{message:?}"
        );
    }

    #[test]
    fn our_session_of_processes_round_trips_in_openjarvis_s_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        let ours = ProcessSession {
            provider: "cpu-pearl".into(),
            started_at: 1_760_000_000.5,
            wallet_address: "prl1q".into(),
            gateway_url: "http://127.0.0.1:8337".into(),
            metrics_url: "http://127.0.0.1:8339/metrics".into(),
            gateway_pid: 4242,
            miner_loop_pid: 4243,
            session_id: Some("s1".into()),
        };
        write(&path, &ours).unwrap();
        assert_eq!(read_processes(&path).unwrap(), Some(ours));
        // Not a container session, and said to be ours, not OpenJarvis's.
        let err = read(&path).unwrap_err();
        assert!(matches!(err, SidecarError::Processes { .. }), "{err}");
        assert!(
            err.to_string().contains("`jarvis mine start` started"),
            "{err}"
        );
        // OpenJarvis's own cpu record reads too (no session id).
        std::fs::write(
            path.absolute(),
            r#"{"provider": "cpu-pearl", "started_at": 1760000000.5, "wallet_address": "prl1q",
                "gateway_url": "http://127.0.0.1:8337", "metrics_url": "http://127.0.0.1:8339/metrics",
                "gateway_pid": 4242, "miner_loop_pid": 4243}"#,
        )
        .unwrap();
        assert_eq!(read_processes(&path).unwrap().unwrap().session_id, None);
        // A container record is no session of processes.
        write(&path, &record()).unwrap();
        assert_eq!(read_processes(&path).unwrap(), None);
    }

    #[test]
    fn remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/mining.json");
        remove(&path).unwrap();
        write(&path, &record()).unwrap();
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn oversized_records_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("mining.json");
        let mut big = record();
        big.model = "m".repeat(MAX_FILE_BYTES as usize);
        assert!(matches!(
            write(&path, &big),
            Err(SidecarError::Write { .. })
        ));
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn validate_accepts_what_we_write() {
        validate(&record()).unwrap();
        let mut r = record();
        r.vllm_endpoint = "http://[::1]:8000/v1".into();
        r.gateway_url = "https://localhost:8337/".into();
        r.wallet_address = String::new();
        r.session_id = None;
        r.image = None;
        validate(&r).unwrap();
    }

    #[test]
    fn validate_rejects() {
        type Edit = fn(&mut SessionRecord);
        let cases: [(Edit, &str); 13] = [
            (
                |r| r.vllm_endpoint = String::new(),
                "`vllm_endpoint` is empty",
            ),
            (|r| r.model = "  ".into(), "`model` is empty"),
            (|r| r.provider = String::new(), "`provider` is empty"),
            (
                |r| r.container_id = String::new(),
                "`container_id` is empty",
            ),
            (
                |r| r.vllm_endpoint = "http://10.0.0.5:8000/v1".into(),
                "host must be loopback",
            ),
            (
                |r| r.vllm_endpoint = "http://127.0.0.1:8000".into(),
                "path must end in /v1",
            ),
            (
                |r| r.vllm_endpoint = "ftp://127.0.0.1:8000/v1".into(),
                "scheme must be http or https",
            ),
            (
                |r| r.vllm_endpoint = "127.0.0.1:8000/v1".into(),
                "`vllm_endpoint` is not acceptable",
            ),
            (
                |r| r.vllm_endpoint = "http://user:hunter2@127.0.0.1:8000/v1".into(),
                "must not carry credentials",
            ),
            (
                |r| r.gateway_url = "http://127.0.0.1:8337/?token=x".into(),
                "query or fragment",
            ),
            (
                |r| r.model = "m".repeat(MAX_STRING_BYTES + 1),
                "`model` is 4097 bytes long; the limit is 4096",
            ),
            (
                |r| r.wallet_address = "prl1q\nX".into(),
                "`wallet_address` contains a control character",
            ),
            (|r| r.image = Some(String::new()), "`image` is empty"),
        ];
        for (edit, expect) in cases {
            let mut r = record();
            edit(&mut r);
            let err = validate(&r).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} lacks {expect:?}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_declared_metrics_url_must_be_the_derived_one() {
        let r = record();
        check_vllm_metrics_url(&r.vllm_metrics_url(), "").unwrap();
        check_vllm_metrics_url(&r.vllm_metrics_url(), "http://127.0.0.1:8000/metrics").unwrap();
        for (declared, expect) in [
            ("http://127.0.0.1:8000/", "path must end in /metrics"),
            (
                "http://user:hunter2@127.0.0.1:8000/metrics",
                "must not carry credentials",
            ),
            ("http://10.0.0.5:8000/metrics", "host must be loopback"),
            (
                "http://127.0.0.1:6379/metrics",
                "vLLM's own /metrics beside `vllm_endpoint`",
            ),
        ] {
            let err = check_vllm_metrics_url(&r.vllm_metrics_url(), declared)
                .unwrap_err()
                .to_string();
            assert!(err.contains("`metrics_url`"), "{err}");
            assert!(err.contains(expect), "{err:?} lacks {expect:?}");
            assert!(!err.contains("hunter2") && !err.contains("6379"), "{err}");
        }
    }
}
