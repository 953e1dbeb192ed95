//! The pearld probe: one JSON-RPC 1.0 `getblockchaininfo` with basic auth.

use base64::Engine as _;
use std::time::Duration;

pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Credentials for the probe; the password never appears in any message.
pub struct RpcCredentials {
    pub user: String,
    pub password: String,
    /// The variable the password came from, for hints.
    pub password_env: String,
    pub password_set: bool,
}

/// `(ok, info)` for the doctor row.
pub fn probe(url: &str, credentials: &RpcCredentials) -> (bool, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(PROBE_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.user, credentials.password));
    let body = r#"{"jsonrpc":"1.0","id":"ojprobe","method":"getblockchaininfo","params":[]}"#;
    let response = agent
        .post(url)
        .header("Authorization", &format!("Basic {token}"))
        .content_type("text/plain")
        .send(body);
    let mut response = match response {
        Ok(response) => response,
        Err(ureq::Error::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return (false, format!("connection refused: {url}"));
        }
        Err(err) => return (false, first_line(&err.to_string())),
    };
    match response.status().as_u16() {
        200 => {}
        401 | 403 => {
            let hint = if credentials.password_set {
                format!("check pearld_rpc_user and ${}", credentials.password_env)
            } else {
                format!("${} is not set", credentials.password_env)
            };
            return (
                false,
                format!(
                    "authentication failed (HTTP {}): {hint}",
                    response.status().as_u16()
                ),
            );
        }
        code => return (false, format!("HTTP {code}")),
    }
    let reply = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|err| err.to_string())
        .and_then(|text| {
            serde_json::from_str::<serde_json::Value>(&text).map_err(|err| err.to_string())
        });
    let reply = match reply {
        Ok(reply) => reply,
        Err(err) => {
            return (
                false,
                format!("unreadable reply: {}", first_line(&err.to_string())),
            );
        }
    };
    if let Some(message) = reply["error"]["message"].as_str() {
        return (false, format!("RPC error: {message}"));
    }
    (true, sync_state(&reply["result"]))
}

/// "block height 10 (synced)" only when both counts are known and equal.
fn sync_state(result: &serde_json::Value) -> String {
    let count = |key: &str| result[key].as_u64();
    let show = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
    match (count("blocks"), count("headers")) {
        (Some(blocks), Some(headers)) if blocks == headers => {
            format!("block height {blocks} (synced)")
        }
        (blocks, headers) => format!(
            "block height {} (syncing ({}/{}))",
            show(blocks),
            show(blocks),
            show(headers)
        ),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn synced_only_when_both_counts_known() {
        assert_eq!(
            sync_state(&json!({"blocks": 5, "headers": 5})),
            "block height 5 (synced)"
        );
        assert_eq!(
            sync_state(&json!({"blocks": 5, "headers": 9})),
            "block height 5 (syncing (5/9))"
        );
        assert_eq!(sync_state(&json!({})), "block height ? (syncing (?/?))");
    }
}
