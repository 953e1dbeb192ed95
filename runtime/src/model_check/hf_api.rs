//! The Hugging Face Hub's model API: a model's payload (its `config`
//! summary) and its top-level files. The base URL is `HF_ENDPOINT`, as
//! `huggingface_hub` reads it (a mirror, or a test server), else
//! <https://huggingface.co>. The token, when there is one, goes only into
//! the `Authorization` header: never into a URL, a message or a log line.

use super::http::{self, Route, Secret};
use crate::redact::Redactor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::time::Duration;

/// The variable `huggingface_hub` reads the API's base URL from.
pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The variable the token is read from unless `--hf-token-env` names another.
pub const DEFAULT_TOKEN_ENV: &str = "HF_TOKEN";

/// Python's `urllib.parse.quote(id, safe="/")`: all but letters, digits,
/// `_.-~` and `/` escaped.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// The Hub as one inspection sees it.
#[derive(Debug)]
pub struct Hub {
    endpoint: String,
    token: Option<Secret>,
    /// The variable the token came from (or would have), for messages.
    token_env: String,
    timeout: Duration,
}

impl Hub {
    /// `endpoint` is `HF_ENDPOINT`'s value, if set (empty counts as unset).
    pub fn new(
        endpoint: Option<&str>,
        token: Option<Secret>,
        token_env: &str,
        timeout: Duration,
    ) -> Result<Hub, String> {
        let endpoint = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            Some(endpoint) => {
                http::check_url(endpoint).map_err(|err| {
                    format!("{ENDPOINT_ENV}: {err}; unset it to use {DEFAULT_ENDPOINT}")
                })?;
                endpoint.trim_end_matches('/').to_owned()
            }
            None => DEFAULT_ENDPOINT.to_owned(),
        };
        Ok(Hub {
            endpoint,
            token,
            token_env: token_env.to_owned(),
            timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `<endpoint>/api/models/<id>`.
    pub fn model_url(&self, id: &str) -> String {
        format!(
            "{}/api/models/{}",
            self.endpoint,
            utf8_percent_encode(id, MODEL_ID)
        )
    }

    /// `<endpoint>/api/models/<id>/tree/main?recursive=false`.
    pub fn tree_url(&self, id: &str) -> String {
        format!("{}/tree/main?recursive=false", self.model_url(id))
    }

    /// The model's payload (a JSON object), or the check's info.
    pub fn model(&self, id: &str) -> Result<Value, String> {
        let value = self.get_json(&self.model_url(id))?;
        if !value.is_object() {
            return Err("the Hub's answer is not a JSON object".into());
        }
        Ok(value)
    }

    /// The paths of the files at the top of the model's `main`.
    pub fn files(&self, id: &str) -> Result<Vec<String>, String> {
        let value = self.get_json(&self.tree_url(id))?;
        let Some(entries) = value.as_array() else {
            return Err("the Hub's file list is not a JSON array".into());
        };
        Ok(entries
            .iter()
            .filter(|entry| entry.get("type").and_then(Value::as_str) != Some("directory"))
            .filter_map(|entry| entry.get("path").and_then(Value::as_str))
            .map(str::to_owned)
            .collect())
    }

    /// [`fetch_json`](Self::fetch_json), its error with the token hidden
    /// should any layer below ever quote a header.
    fn get_json(&self, url: &str) -> Result<Value, String> {
        self.fetch_json(url)
            .map_err(|err| Redactor::new(self.token.iter().map(Secret::expose)).redact_owned(&err))
    }

    fn fetch_json(&self, url: &str) -> Result<Value, String> {
        tracing::info!("GET {url} (token: {})", self.token_word());
        let started = std::time::Instant::now();
        let response = http::get(
            url,
            Route::Hub,
            self.timeout,
            self.token.as_ref(),
            http::MAX_JSON_BYTES,
        )?;
        tracing::info!(
            "HTTP {} from {url} in {:?}",
            response.status,
            started.elapsed()
        );
        if response.status != 200 {
            return Err(self.status_info(response.status));
        }
        serde_json::from_str(&response.body)
            .map_err(|err| format!("the Hub's answer is not JSON: {err}"))
    }

    fn token_word(&self) -> String {
        match &self.token {
            Some(_) => format!("from ${}", self.token_env),
            None => "none".into(),
        }
    }

    /// `HTTP <code>`, and for 401/403 what to do about the token.
    fn status_info(&self, status: u16) -> String {
        match (status, &self.token) {
            (401 | 403, None) => format!(
                "HTTP {status}; set ${} for gated/private models",
                self.token_env
            ),
            (401 | 403, Some(_)) => format!(
                "HTTP {status}; the token in ${} was refused (check it, and that it may read this model)",
                self.token_env
            ),
            _ => format!("HTTP {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(endpoint: Option<&str>) -> Hub {
        Hub::new(endpoint, None, DEFAULT_TOKEN_ENV, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_quote_the_id_but_keep_its_slash() {
        let hub = hub(None);
        assert_eq!(
            hub.model_url("pearl-ai/Llama-3.3-70B-Instruct-pearl"),
            "https://huggingface.co/api/models/pearl-ai/Llama-3.3-70B-Instruct-pearl"
        );
        assert_eq!(
            hub.tree_url("org/a b?c"),
            "https://huggingface.co/api/models/org/a%20b%3Fc/tree/main?recursive=false"
        );
    }

    #[test]
    fn the_endpoint_comes_from_hf_endpoint() {
        assert_eq!(
            hub(Some("http://127.0.0.1:9/")).endpoint(),
            "http://127.0.0.1:9"
        );
        assert_eq!(hub(Some("")).endpoint(), DEFAULT_ENDPOINT);
        let err = Hub::new(
            Some("localhost:9"),
            None,
            "HF_TOKEN",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.starts_with("HF_ENDPOINT: "), "{err}");
    }

    #[test]
    fn refusals_say_what_to_do_about_the_token() {
        let without = hub(None);
        assert_eq!(
            without.status_info(401),
            "HTTP 401; set $HF_TOKEN for gated/private models"
        );
        assert_eq!(without.status_info(404), "HTTP 404");
        let with = Hub::new(
            None,
            Some(Secret::new("hf_abcdef".into())),
            "MY_TOKEN",
            Duration::from_secs(1),
        )
        .unwrap();
        let info = with.status_info(403);
        assert!(
            info.starts_with("HTTP 403; the token in $MY_TOKEN was refused"),
            "{info}"
        );
        assert!(!format!("{with:?}").contains("hf_abcdef"));
    }
}
