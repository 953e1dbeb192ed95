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

/// What the probe learnt, for the doctor row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    pub info: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl Answer {
    fn failed(info: String, fix: String) -> Answer {
        Answer {
            ok: false,
            info,
            fix: Some(fix),
        }
    }
}

pub fn probe(url: &str, credentials: &RpcCredentials) -> Answer {
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
    let set_url = "set [mining.extra].pearld_rpc_url to where it listens";
    let mut response = match response {
        Ok(response) => response,
        Err(ureq::Error::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Answer::failed(
                format!("connection refused: {url}"),
                format!("start pearld (a synced Pearl node), or {set_url}"),
            );
        }
        Err(ureq::Error::Timeout(_)) => {
            return Answer::failed(
                format!("no answer from {url} within {} s", PROBE_TIMEOUT.as_secs()),
                format!("check that pearld is running and reachable there, or {set_url}"),
            );
        }
        Err(err) => {
            return Answer::failed(
                format!("{url}: {}", first_line(&err.to_string())),
                format!("check that pearld is reachable, or {set_url}"),
            );
        }
    };
    match response.status().as_u16() {
        200 => {}
        401 | 403 => {
            let env = &credentials.password_env;
            let (hint, fix) = if credentials.password_set {
                (
                    format!("check pearld_rpc_user and ${env}"),
                    format!(
                        "set ${env} to pearld's rpcpassword and [mining.extra].pearld_rpc_user to its rpcuser"
                    ),
                )
            } else {
                (
                    format!("${env} is not set"),
                    format!("export {env}=<pearld's rpcpassword> in the shell that runs jarvis"),
                )
            };
            return Answer::failed(
                format!(
                    "authentication failed (HTTP {}): {hint}",
                    response.status().as_u16()
                ),
                fix,
            );
        }
        code => {
            return Answer::failed(
                format!("HTTP {code} from {url}"),
                format!("check that {url} is pearld's RPC port, or {set_url}"),
            );
        }
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
            return Answer::failed(
                format!("unreadable reply: {}", first_line(&err.to_string())),
                format!("check that {url} is pearld's RPC port"),
            );
        }
    };
    if let Some(message) = reply["error"]["message"].as_str() {
        return Answer::failed(
            format!("RPC error: {message}"),
            "check pearld's log".to_owned(),
        );
    }
    Answer {
        ok: true,
        info: sync_state(&reply["result"]),
        fix: None,
    }
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
