//! The HTTP the model checks do: one GET or POST with a time limit, a capped
//! body, and an error that is one line and never holds a credential.
//!
//! `https://` (the Hugging Face API) goes through rustls with the system's
//! root certificates; loopback endpoints (vLLM, the gateway) are plain
//! `http://`. Redirects: the Hub's (a renamed repository) are followed on
//! the same host with the `Authorization` header, never to another host
//! with it; vLLM's and the gateway's are not followed (an answer, as the
//! metrics import treats them).

use std::sync::{Arc, LazyLock};
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Largest body read from the Hub or vLLM (a large repository's model
/// payload lists every file).
pub const MAX_JSON_BYTES: u64 = 16 << 20;

/// What a request got back: any status, and the body as text.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Where a request goes and how it may travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The Hugging Face API: the environment's proxy (`HTTPS_PROXY`, …),
    /// same-host redirects.
    Hub,
    /// A miner's endpoint: direct, no redirects.
    Miner,
}

/// A header value that is never shown: its `Debug` is a placeholder.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The system's root certificates, read once (none: https fails with an
/// unknown-issuer error, which the check shows).
static ROOTS: LazyLock<Arc<Vec<Certificate<'static>>>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    if !found.errors.is_empty() {
        tracing::debug!(
            "{} errors reading the system's root certificates",
            found.errors.len()
        );
    }
    Arc::new(
        found
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect(),
    )
});

fn agent(route: Route, timeout: Duration, https: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("jarvis-mine/", env!("CARGO_PKG_VERSION")));
    config = match route {
        Route::Hub => config
            .max_redirects(5)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost),
        Route::Miner => config.max_redirects(0).proxy(None),
    };
    if https {
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(ROOTS.clone()))
                .unversioned_rustls_crypto_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build(),
        );
    }
    config.build().into()
}

/// GET `url`, with `Authorization: Bearer <token>` when there is one.
pub fn get(
    url: &str,
    route: Route,
    timeout: Duration,
    token: Option<&Secret>,
    limit: u64,
) -> Result<Response, String> {
    let agent = agent(route, timeout, url.starts_with("https://"));
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {}", token.expose()));
    }
    let response = request.call().map_err(|err| describe(&err, timeout))?;
    read(response, limit, timeout)
}

/// POST `body` as JSON to `url`.
pub fn post_json(
    url: &str,
    route: Route,
    timeout: Duration,
    body: &serde_json::Value,
    limit: u64,
) -> Result<Response, String> {
    let agent = agent(route, timeout, url.starts_with("https://"));
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|err| describe(&err, timeout))?;
    read(response, limit, timeout)
}

fn read(
    mut response: ureq::http::Response<ureq::Body>,
    limit: u64,
    timeout: Duration,
) -> Result<Response, String> {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|err| describe(&err, timeout))?;
    Ok(Response { status, body })
}

/// One line for a failed request: what a user can act on.
fn describe(err: &ureq::Error, timeout: Duration) -> String {
    match err {
        ureq::Error::Timeout(_) => format!("timed out after {} s", seconds(timeout)),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::BodyExceedsLimit(limit) => {
            format!("the answer is larger than {limit} bytes")
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ureq::Error::Io(io) => first_line(&io.to_string()),
        other => first_line(&other.to_string()),
    }
}

/// `0.5`, `10`: seconds as a person writes them.
pub fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// `url` if it is an absolute `http://` or `https://` URL with a host, else
/// why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("'{url}' is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("'{url}' is not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let secret = Secret::new("hf_very_secret".into());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(secret.expose(), "hf_very_secret");
    }

    #[test]
    fn urls_are_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:8000/v1").is_ok());
        assert!(check_url("https://huggingface.co").is_ok());
        for bad in ["127.0.0.1:8000", "ftp://x/", "not a url", "http://", "/v1"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25");
    }

    #[test]
    fn a_refused_connection_is_one_short_line() {
        // A port that was free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = get(
            &format!("http://127.0.0.1:{port}/"),
            Route::Miner,
            Duration::from_secs(2),
            None,
            1024,
        )
        .unwrap_err();
        assert_eq!(err, "connection refused");
    }
}
