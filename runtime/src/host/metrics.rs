//! The `metrics` import: GET a Prometheus endpoint and parse it here, so a
//! guest never holds a socket. The provider's own session's loopback
//! endpoints (the host ports the host published for the containers it
//! created in this session, never an address a provider wrote down), and
//! others only where the policy grants them; no redirects, size- and
//! time-capped.

use super::CallHost;
use super::context::Metrics;
use crate::bindings::openjarvis::mining::metrics::{Host, Sample};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::{Request, ScrapeRequest};
use openmetrics_parser::PrometheusValue;
use std::net::IpAddr;
use std::time::Duration;

/// Largest body read from a metrics endpoint.
pub const MAX_BODY_BYTES: u64 = 2 << 20;
/// Most samples returned to a guest.
pub const MAX_SAMPLES: usize = 20_000;
/// Longest a scrape may take (vLLM answers in milliseconds).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

impl Host for CallHost {
    fn scrape(&mut self, url: String) -> Result<Vec<Sample>, Error> {
        self.privileged::<Metrics, _>("metrics.scrape", |gate| {
            let timeout = SCRAPE_TIMEOUT.min(gate.time_left());
            let (host, port) = endpoint(&url)?;
            let session = is_loopback(&host) && gate.session_ports().contains(&port);
            gate.permit(Request::Scrape(&ScrapeRequest {
                host,
                port,
                session,
            }))?;
            let text = fetch(&url, timeout)?;
            parse_samples(&text)
                .map_err(|err| Error::Failed(format!("{url} is not Prometheus text: {err}")))
        })
    }
}

/// The host and port of an `http://` URL (the only scheme fetched).
pub fn endpoint(url: &str) -> Result<(String, u16), Error> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| Error::Invalid(format!("'{url}' is not a URL")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Error::Invalid(format!(
            "'{url}': only http:// endpoints may be scraped"
        )));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((host, uri.port_u16().unwrap_or(80)))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// GETs `url` within `timeout`; redirects are not followed (a redirect is
/// an answer, not a way to reach an endpoint the policy did not grant).
fn fetch(url: &str, timeout: Duration) -> Result<String, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|err| Error::Unavailable(format!("{url}: {}", first_line(&err.to_string()))))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(Error::Failed(format!("{url}: HTTP {status}")));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_string()
        .map_err(|err| Error::Failed(format!("{url}: {}", first_line(&err.to_string()))))
}

/// Prometheus text to flat samples; histograms and summaries are skipped
/// (providers read counters and gauges).
pub fn parse_samples(text: &str) -> Result<Vec<Sample>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let exposition =
        openmetrics_parser::prometheus::parse_prometheus(text).map_err(|err| format!("{err:?}"))?;
    let mut samples = Vec::new();
    let mut families: Vec<_> = exposition.families.values().collect();
    families.sort_by(|a, b| a.family_name.cmp(&b.family_name));
    for family in families {
        for sample in family.iter_samples() {
            let value = match &sample.value {
                PrometheusValue::Unknown(n) | PrometheusValue::Gauge(n) => n.as_f64(),
                PrometheusValue::Counter(counter) => counter.value.as_f64(),
                PrometheusValue::Histogram(_) | PrometheusValue::Summary(_) => continue,
            };
            let labels = sample
                .get_labelset()
                .map(|set| set.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            samples.push(Sample {
                name: family.family_name.clone(),
                labels,
                value,
            });
            if samples.len() >= MAX_SAMPLES {
                return Ok(samples);
            }
        }
    }
    Ok(samples)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_names_with_colons_and_labels_parse() {
        let text = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1714865000.5\n# TYPE vllm:request_success_total counter\nvllm:request_success_total{finished_reason=\"stop\",model_name=\"m\"} 3.0\nvllm:request_success_total{finished_reason=\"length\",model_name=\"m\"} 2\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples.len(), 3);
        let start = samples
            .iter()
            .find(|s| s.name == "process_start_time_seconds")
            .unwrap();
        assert_eq!(start.value, 1714865000.5);
        let total: f64 = samples
            .iter()
            .filter(|s| s.name == "vllm:request_success_total")
            .map(|s| s.value)
            .sum();
        assert_eq!(total, 5.0);
        let labelled = samples
            .iter()
            .find(|s| s.name == "vllm:request_success_total")
            .unwrap();
        assert!(labelled.labels.contains(&("model_name".into(), "m".into())));
    }

    #[test]
    fn the_reference_gateway_fixture_parses() {
        let text = "# HELP pearl_gateway_shares_submitted_total Shares submitted.\n# TYPE pearl_gateway_shares_submitted_total counter\npearl_gateway_shares_submitted_total 12345\n# TYPE pearl_gateway_blocks_found_total counter\npearl_gateway_blocks_found_total 7\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(
            samples
                .iter()
                .find(|s| s.name == "pearl_gateway_blocks_found_total")
                .unwrap()
                .value,
            7.0
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_samples("{{{ not metrics").is_err());
        assert!(parse_samples("").unwrap().is_empty());
    }

    #[test]
    fn endpoints_are_http_host_and_port() {
        assert_eq!(
            endpoint("http://127.0.0.1:8000/metrics").unwrap(),
            ("127.0.0.1".into(), 8000)
        );
        assert_eq!(
            endpoint("http://[::1]:8339/").unwrap(),
            ("::1".into(), 8339)
        );
        assert_eq!(
            endpoint("http://LocalHost/").unwrap(),
            ("localhost".into(), 80)
        );
        for bad in [
            "https://127.0.0.1:8000/",
            "file:///etc/passwd",
            "not a url at all",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("::1") && is_loopback("localhost") && is_loopback("127.0.0.2"));
        assert!(!is_loopback("10.0.0.5") && !is_loopback("metadata.google.internal"));
    }
}
