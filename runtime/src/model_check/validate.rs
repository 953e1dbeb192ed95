//! `validate-model`: runtime evidence that a running miner serves a Pearl
//! model and mines with it (reference §5.1, §8.2's acceptance list).
//!
//! Checks, in order: `Model registry`; `Sidecar` (and `Sidecar model`);
//! `vLLM endpoint` / `vLLM /models`; `Chat completion` with `--prompt`
//! (else a note, not a check); `Gateway metrics`: share counts from the
//! first source that answers, and which one it was:
//!
//! 1. `gateway`: the gateway's Prometheus metrics (`…/metrics`);
//! 2. `container logs`: the session container's log lines, counted as
//!    `vllm-pearl`'s stats count them (current Pearl images serve no gateway
//!    metrics; an attached miner's container is not read);
//! 3. `vLLM`: vLLM's own metrics, which carry no share counts (0/0), as the
//!    reference reports them.

use super::http::{self, Route};
use super::report::{self, Check, Line, SCHEMA_VERSION};
use super::{InputError, Registry};
use crate::host::metrics::{MAX_BODY_BYTES, SCRAPE_TIMEOUT, parse_samples};
use crate::session::sidecar::{self, SessionRecord};
use crate::session::state::EXTERNAL_CONTAINER_ID;
use serde::Serialize;
use std::time::Duration;

/// The gateway's log lines, as Pearl's gateway prints them (the same
/// patterns `providers/vllm-pearl/src/stats.rs` counts).
const SUBMITTED: &str = "Submitting block";
const ACCEPTED: &str = "Block accepted by node";
const REJECTED: [&str; 3] = ["Block rejected", "Error submitting", "Rejecting proof"];
/// Log lines read from the container's end.
pub const LOG_WINDOW: usize = 200_000;

/// Tokens asked of the chat completion (the reference's).
const CHAT_MAX_TOKENS: u32 = 16;

/// The names of the checks other evidence collectors read back (the NVIDIA
/// release gate, `release_gate`).
pub const MODELS_CHECK: &str = "vLLM /models";
pub const CHAT_CHECK: &str = "Chat completion";
pub const SHARES_CHECK: &str = "Gateway metrics";

/// What the user asked; `None` fields default from the session record.
#[derive(Debug, Clone)]
pub struct Request {
    pub model: Option<String>,
    pub vllm_endpoint: Option<String>,
    pub gateway_metrics_url: Option<String>,
    pub allow_planned: bool,
    pub prompt: Option<String>,
    pub timeout: Duration,
    pub sidecar_path: crate::home::HomePath,
}

/// Where the share counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ShareSource {
    #[serde(rename = "gateway")]
    Gateway,
    #[serde(rename = "container logs")]
    ContainerLogs,
    #[serde(rename = "vLLM")]
    Vllm,
}

impl ShareSource {
    pub fn label(self) -> &'static str {
        match self {
            ShareSource::Gateway => "gateway",
            ShareSource::ContainerLogs => "container logs",
            ShareSource::Vllm => "vLLM",
        }
    }
}

/// The share counts the first answering source gave (`rejected` only from
/// the container's log lines, which name rejections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ShareCounts {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// One validation's result.
#[derive(Debug, Clone)]
pub struct Validation {
    pub model: String,
    pub registry: Registry,
    pub allow_planned: bool,
    pub prompt_ran: bool,
    /// Trailing `/` stripped.
    pub vllm_endpoint: Option<String>,
    /// Ending in `/metrics`.
    pub gateway_metrics_url: Option<String>,
    pub sidecar_path: crate::home::HomePath,
    pub lines: Vec<Line>,
    pub share_source: Option<ShareSource>,
    /// The counts behind the `Gateway metrics` check, when a source answered.
    pub shares: Option<ShareCounts>,
}

/// The artifact (reference §5.1: schema 1), plus `share_source`.
#[derive(Serialize)]
struct Artifact<'a> {
    schema_version: u64,
    model: &'a str,
    status: &'static str,
    allow_planned: bool,
    prompt_ran: bool,
    vllm_endpoint: Option<&'a str>,
    gateway_metrics_url: Option<&'a str>,
    sidecar_path: String,
    checks: Vec<&'a Check>,
    share_source: Option<ShareSource>,
}

impl Validation {
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.lines.iter().filter_map(|line| match line {
            Line::Check(check) => Some(check),
            Line::Note { .. } => None,
        })
    }

    pub fn passed(&self) -> bool {
        report::passed(self.checks())
    }

    /// The recorded check named `name` ([`MODELS_CHECK`], …), if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks().find(|check| check.name == name)
    }

    pub fn artifact(&self) -> String {
        report::artifact_text(&Artifact {
            schema_version: SCHEMA_VERSION,
            model: &self.model,
            status: report::status_word(self.passed()),
            allow_planned: self.allow_planned,
            prompt_ran: self.prompt_ran,
            vllm_endpoint: self.vllm_endpoint.as_deref(),
            gateway_metrics_url: self.gateway_metrics_url.as_deref(),
            sidecar_path: self.sidecar_path.display().to_string(),
            checks: self.checks().collect(),
            share_source: self.share_source,
        })
    }
}

/// The URLs given on the command line, checked before anything is asked.
pub fn check_urls(request: &Request) -> Result<(), InputError> {
    for (flag, url) in [
        ("--vllm-endpoint", &request.vllm_endpoint),
        ("--gateway-metrics-url", &request.gateway_metrics_url),
    ] {
        if let Some(url) = url {
            http::check_url(url).map_err(|err| {
                InputError(format!(
                    "{flag}: {err}; e.g. http://127.0.0.1:8000/v1 or http://127.0.0.1:8339"
                ))
            })?;
        }
    }
    Ok(())
}

/// `url` ending in `/metrics` (the reference's normalisation).
pub fn metrics_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/metrics") {
        url.to_owned()
    } else {
        format!("{url}/metrics")
    }
}

/// vLLM's metrics: the endpoint less one `/v1`, then `/metrics`.
pub fn vllm_metrics_url(endpoint: &str) -> String {
    let base = endpoint.strip_suffix("/v1").unwrap_or(endpoint);
    format!("{base}/metrics")
}

/// Runs the checks. `container_logs` reads a container's log lines (the
/// CLI passes [`docker_logs`]).
pub fn validate(
    request: &Request,
    container_logs: &dyn Fn(&str) -> Result<Vec<String>, String>,
) -> Result<Validation, InputError> {
    check_urls(request)?;
    let mut lines = Vec::new();
    let session = sidecar::read(&request.sidecar_path);
    let record: Option<&SessionRecord> = session.as_ref().ok().and_then(Option::as_ref);
    let model = request
        .model
        .clone()
        .or_else(|| record.map(|r| r.model.clone()).filter(|m| !m.is_empty()))
        .unwrap_or_else(|| pearl_catalog::DEFAULT_PEARL_MODEL.to_owned());
    let registry = Registry::of(&model);
    lines.push(Line::Check(registry.check(&model, request.allow_planned)));

    match &session {
        Ok(None) => lines.push(Line::Check(Check::fail(
            "Sidecar",
            "absent - run `jarvis mine start` first",
        ))),
        Ok(Some(record)) => {
            lines.push(Line::Check(Check::pass(
                "Sidecar",
                format!("present ({})", request.sidecar_path.display()),
            )));
            let served = if record.model.is_empty() {
                "missing"
            } else {
                record.model.as_str()
            };
            lines.push(Line::Check(Check::new(
                "Sidecar model",
                record.model == model,
                served,
            )));
        }
        Err(err) => lines.push(Line::Check(Check::fail("Sidecar", err.to_string()))),
    }

    let endpoint = request
        .vllm_endpoint
        .clone()
        .or_else(|| record.map(|r| r.vllm_endpoint.clone()))
        .map(|e| e.trim_end_matches('/').to_owned())
        .filter(|e| !e.is_empty());
    let gateway = request
        .gateway_metrics_url
        .clone()
        .or_else(|| record.map(|r| r.gateway_metrics_url.clone()))
        .filter(|g| !g.trim().is_empty())
        .map(|g| metrics_url(&g));

    match &endpoint {
        None => lines.push(Line::Check(Check::fail("vLLM endpoint", "missing"))),
        Some(endpoint) => lines.push(Line::Check(served_models(
            endpoint,
            &model,
            request.timeout,
        ))),
    }

    let mut prompt_ran = false;
    match (&request.prompt, &endpoint) {
        (Some(prompt), Some(endpoint)) => {
            prompt_ran = true;
            lines.push(Line::Check(chat(endpoint, &model, prompt, request.timeout)));
        }
        (Some(_), None) => lines.push(Line::Check(Check::fail(
            "Chat completion",
            "no vLLM endpoint to ask",
        ))),
        (None, _) => lines.push(Line::Note {
            name: "Chat completion".into(),
            info: "skipped (pass --prompt to run)".into(),
        }),
    }

    let container = record
        .map(|r| r.container_id.as_str())
        .filter(|id| !id.is_empty() && *id != EXTERNAL_CONTAINER_ID);
    let (check, share_source, shares) = share_evidence(
        gateway.as_deref(),
        container,
        endpoint.as_deref().map(vllm_metrics_url),
        request.timeout,
        container_logs,
    );
    lines.push(Line::Check(check));

    Ok(Validation {
        model,
        registry,
        allow_planned: request.allow_planned,
        prompt_ran,
        vllm_endpoint: endpoint,
        gateway_metrics_url: gateway,
        sidecar_path: request.sidecar_path.clone(),
        lines,
        share_source,
        shares,
    })
}

/// `vLLM /models`: the model is among the served ids.
fn served_models(endpoint: &str, model: &str, timeout: Duration) -> Check {
    const NAME: &str = MODELS_CHECK;
    let url = format!("{endpoint}/models");
    tracing::info!("GET {url}");
    let body = match http::get(&url, Route::Miner, timeout, None, http::MAX_JSON_BYTES) {
        Ok(response) if response.status == 200 => response.body,
        Ok(response) => return Check::fail(NAME, format!("HTTP {}", response.status)),
        Err(err) => return Check::fail(NAME, err),
    };
    let value: serde_json::Value = match serde_json::from_str(&body) {
        Ok(value) => value,
        Err(err) => return Check::fail(NAME, format!("not JSON: {err}")),
    };
    let ids: Vec<&str> = value
        .get("data")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("id").and_then(|id| id.as_str()).or(item.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if ids.contains(&model) {
        Check::pass(NAME, model)
    } else if ids.is_empty() {
        Check::fail(NAME, "0 ids")
    } else {
        let shown: Vec<&str> = ids.iter().take(5).copied().collect();
        Check::fail(NAME, format!("{} ids: {}", ids.len(), shown.join(", ")))
    }
}

/// `Chat completion`: the prompt gets at least one choice.
fn chat(endpoint: &str, model: &str, prompt: &str, timeout: Duration) -> Check {
    const NAME: &str = CHAT_CHECK;
    let url = format!("{endpoint}/chat/completions");
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": CHAT_MAX_TOKENS,
        "stream": false,
    });
    tracing::info!("POST {url}");
    let response = match http::post_json(&url, Route::Miner, timeout, &body, http::MAX_JSON_BYTES) {
        Ok(response) if response.status == 200 => response.body,
        Ok(response) => return Check::fail(NAME, format!("HTTP {}", response.status)),
        Err(err) => return Check::fail(NAME, err),
    };
    let value: serde_json::Value = match serde_json::from_str(&response) {
        Ok(value) => value,
        Err(err) => return Check::fail(NAME, format!("not JSON: {err}")),
    };
    let choices = value
        .get("choices")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|choices| !choices.is_empty());
    if choices {
        Check::pass(NAME, "choices returned")
    } else {
        Check::fail(NAME, "no choices")
    }
}

/// Counts from Prometheus text: the gateway's counters, summed over labels.
fn counted_metrics(url: &str, timeout: Duration) -> Result<(u64, u64), String> {
    tracing::info!("GET {url}");
    let response = http::get(url, Route::Miner, timeout, None, MAX_BODY_BYTES)?;
    if response.status != 200 {
        return Err(format!("HTTP {}", response.status));
    }
    let samples =
        parse_samples(&response.body).map_err(|err| format!("not Prometheus text: {err}"))?;
    let total = |name: &str| {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum::<f64>()
            .max(0.0) as u64
    };
    Ok((
        total("pearl_gateway_shares_submitted_total"),
        total("pearl_gateway_shares_accepted_total"),
    ))
}

/// Counts from a container's log lines: (submitted, accepted, rejected).
pub fn counted_log_lines(lines: &[String]) -> (u64, u64, u64) {
    let count = |pattern: &str| lines.iter().filter(|l| l.contains(pattern)).count() as u64;
    let rejected = lines
        .iter()
        .filter(|l| REJECTED.iter().any(|p| l.contains(p)))
        .count() as u64;
    (count(SUBMITTED), count(ACCEPTED), rejected)
}

/// `Gateway metrics`: the first source that answers, and its counts.
fn share_evidence(
    gateway: Option<&str>,
    container: Option<&str>,
    vllm: Option<String>,
    timeout: Duration,
    container_logs: &dyn Fn(&str) -> Result<Vec<String>, String>,
) -> (Check, Option<ShareSource>, Option<ShareCounts>) {
    const NAME: &str = SHARES_CHECK;
    let scrape_timeout = SCRAPE_TIMEOUT.min(timeout);
    let mut errors = Vec::new();
    let mut tried = false;
    let found = |source: ShareSource, counts: ShareCounts| {
        let mut info = format!(
            "{} submitted={} accepted={}",
            source.label(),
            counts.submitted,
            counts.accepted
        );
        if counts.rejected > 0 {
            info.push_str(&format!(" rejected={}", counts.rejected));
        }
        (Check::pass(NAME, info), Some(source), Some(counts))
    };
    if let Some(url) = gateway {
        tried = true;
        match counted_metrics(url, scrape_timeout) {
            Ok((submitted, accepted)) => {
                return found(
                    ShareSource::Gateway,
                    ShareCounts {
                        submitted,
                        accepted,
                        rejected: 0,
                    },
                );
            }
            Err(err) => errors.push(format!("gateway: {err}")),
        }
    }
    if let Some(id) = container {
        tried = true;
        tracing::info!("reading the log of container {id}");
        match container_logs(id) {
            Ok(lines) => {
                let (submitted, accepted, rejected) = counted_log_lines(&lines);
                return found(
                    ShareSource::ContainerLogs,
                    ShareCounts {
                        submitted,
                        accepted,
                        rejected,
                    },
                );
            }
            Err(err) => errors.push(format!("container logs: {err}")),
        }
    }
    if let Some(url) = vllm.filter(|url| Some(url.as_str()) != gateway) {
        tried = true;
        match counted_metrics(&url, scrape_timeout) {
            Ok((submitted, accepted)) => {
                return found(
                    ShareSource::Vllm,
                    ShareCounts {
                        submitted,
                        accepted,
                        rejected: 0,
                    },
                );
            }
            Err(err) => errors.push(format!("vLLM: {err}")),
        }
    }
    if !tried {
        return (Check::fail(NAME, "missing"), None, None);
    }
    (Check::fail(NAME, errors.join(" | ")), None, None)
}

/// The last [`LOG_WINDOW`] lines of a container's log, through the
/// machine's Docker engine.
pub fn docker_logs(id: &str) -> Result<Vec<String>, String> {
    let docker = crate::docker::Docker::connect().map_err(|err| err.to_string())?;
    docker
        .logs(id, LOG_WINDOW)
        .map_err(|err| http::first_line(&err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    fn no_logs(_: &str) -> Result<Vec<String>, String> {
        Err("no Docker in unit tests".into())
    }

    /// A loopback server answering every request with `reply(path)`.
    fn serve(reply: fn(&str) -> (u16, String)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, body) = reply(&path);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    fn request(dir: &std::path::Path) -> Request {
        Request {
            model: None,
            vllm_endpoint: None,
            gateway_metrics_url: None,
            allow_planned: false,
            prompt: None,
            timeout: Duration::from_secs(5),
            sidecar_path: crate::home::root(dir).join("runtime/mining.json"),
        }
    }

    fn check<'a>(validation: &'a Validation, name: &str) -> &'a Check {
        validation.checks().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn nothing_running_fails_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let validation = validate(&request(dir.path()), &no_logs).unwrap();
        assert_eq!(validation.model, pearl_catalog::DEFAULT_PEARL_MODEL);
        assert_eq!(
            check(&validation, "Sidecar").info,
            "absent - run `jarvis mine start` first"
        );
        assert_eq!(check(&validation, "vLLM endpoint").info, "missing");
        assert_eq!(check(&validation, "Gateway metrics").info, "missing");
        assert!(!validation.passed());
        assert!(validation.lines.contains(&Line::Note {
            name: "Chat completion".into(),
            info: "skipped (pass --prompt to run)".into()
        }));
    }

    #[test]
    fn a_refused_gateway_falls_back_to_vllm_metrics() {
        let vllm = serve(|path| match path {
            "/v1/models" => (
                200,
                r#"{"data":[{"id":"pearl-ai/Llama-3.3-70B-Instruct-pearl"}]}"#.into(),
            ),
            "/v1/chat/completions" => (200, r#"{"choices":[{"index":0}]}"#.into()),
            "/metrics" => (200, "vllm:num_requests_running 0\n".into()),
            _ => (404, String::new()),
        });
        let dir = tempfile::tempdir().unwrap();
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gateway = format!("http://{}", refused.local_addr().unwrap());
        drop(refused);
        let mut request = request(dir.path());
        request.vllm_endpoint = Some(format!("{vllm}/v1/"));
        request.gateway_metrics_url = Some(gateway.clone());
        request.prompt = Some("Say hello in one sentence.".into());
        let validation = validate(&request, &no_logs).unwrap();
        assert_eq!(
            check(&validation, "vLLM /models"),
            &Check::pass("vLLM /models", "pearl-ai/Llama-3.3-70B-Instruct-pearl")
        );
        assert_eq!(
            check(&validation, "Chat completion"),
            &Check::pass("Chat completion", "choices returned")
        );
        assert_eq!(
            check(&validation, "Gateway metrics").info,
            "vLLM submitted=0 accepted=0"
        );
        assert_eq!(validation.share_source, Some(ShareSource::Vllm));
        assert_eq!(validation.vllm_endpoint, Some(format!("{vllm}/v1")));
        assert_eq!(
            validation.gateway_metrics_url,
            Some(format!("{gateway}/metrics"))
        );
        // Only the sidecar fails.
        let failed: Vec<&str> = validation
            .checks()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["Sidecar"]);
        let artifact: serde_json::Value = serde_json::from_str(&validation.artifact()).unwrap();
        assert_eq!(artifact["prompt_ran"], true);
        assert_eq!(artifact["share_source"], "vLLM");
    }

    #[test]
    fn the_sessions_container_log_is_read_when_the_gateway_has_no_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let vllm = serve(|path| match path {
            "/v1/models" => (200, r#"{"data":["other-model"]}"#.into()),
            _ => (404, String::new()),
        });
        let record = SessionRecord {
            provider: "vllm-pearl".into(),
            vllm_endpoint: format!("{vllm}/v1"),
            model: "pearl-ai/Llama-3.1-8B-Instruct-pearl".into(),
            gateway_url: vllm.clone(),
            gateway_metrics_url: vllm.clone(),
            container_id: "abc123".into(),
            wallet_address: "prl1qexampleaddress".into(),
            started_at: 1,
            session_id: None,
            image: None,
            workers: Vec::new(),
        };
        let req = request(dir.path());
        sidecar::write(&req.sidecar_path, &record).unwrap();
        let logs = |id: &str| {
            assert_eq!(id, "abc123");
            Ok([
                "Submitting block",
                "Block accepted by node!",
                "Submitting block",
                "Block rejected: stale template",
            ]
            .map(String::from)
            .to_vec())
        };
        let validation = validate(&req, &logs).unwrap();
        assert_eq!(validation.model, "pearl-ai/Llama-3.1-8B-Instruct-pearl");
        assert_eq!(
            check(&validation, "Model registry").info,
            "planned: pearl-ai/Llama-3.1-8B-Instruct-pearl"
        );
        assert!(check(&validation, "Sidecar model").ok);
        assert_eq!(
            check(&validation, "vLLM /models").info,
            "1 ids: other-model"
        );
        assert_eq!(
            check(&validation, "Gateway metrics").info,
            "container logs submitted=2 accepted=1 rejected=1"
        );
        assert_eq!(validation.share_source, Some(ShareSource::ContainerLogs));
        assert_eq!(
            validation.shares,
            Some(ShareCounts {
                submitted: 2,
                accepted: 1,
                rejected: 1
            })
        );
    }

    #[test]
    fn bad_urls_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = request(dir.path());
        req.vllm_endpoint = Some("127.0.0.1:8000/v1".into());
        let err = validate(&req, &no_logs).unwrap_err();
        assert!(err.0.starts_with("--vllm-endpoint: "), "{err}");
    }

    #[test]
    fn metrics_urls_end_in_metrics() {
        assert_eq!(metrics_url("http://h:8339"), "http://h:8339/metrics");
        assert_eq!(
            metrics_url("http://h:8339/metrics/"),
            "http://h:8339/metrics"
        );
        assert_eq!(
            vllm_metrics_url("http://h:8000/v1"),
            "http://h:8000/metrics"
        );
    }
}
