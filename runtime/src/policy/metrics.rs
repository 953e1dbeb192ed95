//! The `metrics` capability's keys (`[providers.ID.metrics]`): which HTTP
//! endpoints a provider may scrape besides its own session's.

use super::values::{FromPolicyText, text_value};
use super::{Denial, ProviderPolicy, Role, View};
use serde::{Deserialize, Serialize};

const CAPABILITY: Option<&str> = Some("metrics");

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsRules {
    /// `"session"` (the provider's own loopback endpoints) or
    /// `http://HOST:PORT` patterns, `*` allowed for HOST, a `*.` prefix, or PORT.
    pub endpoints: Option<Vec<Endpoint>>,
}

/// `"session"`, or `http://HOST:PORT` where HOST is a name, an IP, `*` or
/// `*.suffix`, and PORT a number or `*`. Only http is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    text: String,
    kind: EndpointKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EndpointKind {
    Session,
    Http { host: String, port: Option<u16> },
}

pub const SESSION_ENDPOINTS: &str = "session";

impl Endpoint {
    pub fn is_session(&self) -> bool {
        self.kind == EndpointKind::Session
    }

    /// Whether an http URL's host and port match this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let EndpointKind::Http {
            host: pattern,
            port: want,
        } = &self.kind
        else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = pattern == "*"
            || *pattern == host
            || pattern
                .strip_prefix("*.")
                .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
        host_ok && want.is_none_or(|p| p == port)
    }
}

impl FromPolicyText for Endpoint {
    fn from_text(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "endpoint {text:?} must be \"session\" or \"http://HOST:PORT\" (HOST may be \"*\" or \"*.domain\", PORT may be \"*\"; \"http://*:*\" allows every http endpoint)"
            )
        };
        if text == SESSION_ENDPOINTS {
            return Ok(Endpoint {
                text: text.to_owned(),
                kind: EndpointKind::Session,
            });
        }
        let rest = text.strip_prefix("http://").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && (host == "*"
                || host
                    .strip_prefix("*.")
                    .unwrap_or(host)
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)));
        let port = match port {
            "*" => None,
            number => Some(number.parse::<u16>().map_err(|_| bad())?),
        };
        if !host_ok || port == Some(0) {
            return Err(bad());
        }
        Ok(Endpoint {
            text: text.to_owned(),
            kind: EndpointKind::Http {
                host: host.to_ascii_lowercase(),
                port,
            },
        })
    }
    fn text(&self) -> &str {
        &self.text
    }
}
text_value!(Endpoint);

/// A scrape as the policy sees it.
#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    pub host: String,
    pub port: u16,
    /// The endpoint is one the host published for this provider's session
    /// (derived from the containers it created, never from provider data).
    pub session: bool,
}

impl ProviderPolicy {
    pub(super) fn scrape(&self, scrape: &ScrapeRequest) -> Result<(), Denial> {
        let url = format!("http://{}:{}", scrape.host, scrape.port);
        fn endpoints(grant: &super::Grant) -> Option<&Vec<Endpoint>> {
            grant.metrics.as_ref()?.endpoints.as_ref()
        }
        let listed = |view: &View| {
            view.grant.as_ref().and_then(endpoints).is_some_and(|list| {
                list.iter().any(|e| {
                    (scrape.session && e.is_session()) || e.matches(&scrape.host, scrape.port)
                })
            })
        };
        if !scrape.session
            && !self
                .views
                .iter()
                .any(|v| v.role == Role::Grants && listed(v))
        {
            let (key, file) = self.granting_key();
            return Err(Denial::key(
                CAPABILITY,
                format!("{key}.metrics.endpoints"),
                &file,
                format!(
                    "endpoint {url} is not one of this session's loopback endpoints and is not in {key}.metrics.endpoints (policy {})",
                    file.display()
                ),
            ));
        }
        for view in &self.views {
            let constrained = view.grant.as_ref().and_then(endpoints).is_some();
            // The metrics capability itself grants the session's own endpoints.
            if constrained && !listed(view) {
                return Err(view.not_in(
                    CAPABILITY,
                    &format!("endpoint {url}"),
                    "metrics.endpoints",
                ));
            }
        }
        Ok(())
    }
}
