//! The `metrics` import: GET a Prometheus endpoint of the provider's own
//! session and parse it here, so a guest never holds a socket. Loopback only,
//! no redirects, size- and time-capped.

use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::metrics::{Host, Sample};
use crate::bindings::openjarvis::mining::types::Error;
use crate::sandbox::CallState;
use openmetrics_parser::PrometheusValue;
use std::net::IpAddr;
use std::time::Duration;

/// Largest body read from a metrics endpoint.
pub const MAX_BODY_BYTES: u64 = 2 << 20;
/// Most samples returned to a guest.
pub const MAX_SAMPLES: usize = 20_000;
/// Longest a scrape may take (vLLM answers in milliseconds).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

impl Host for CallState {
    fn scrape(&mut self, url: String) -> Result<Vec<Sample>, Error> {
        let host = self.authorize(Capability::Metrics, "metrics.scrape")?;
        let allowed_ports = host.session_ports();
        check_endpoint(&url, &allowed_ports)?;
        let text = fetch(&url)?;
        parse_samples(&text)
            .map_err(|err| Error::Failed(format!("{url} is not Prometheus text: {err}")))
    }
}

/// Only loopback endpoints on the ports of this provider's own session.
pub fn check_endpoint(url: &str, allowed_ports: &[u16]) -> Result<(), Error> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| Error::Invalid(format!("'{url}' is not a URL")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Error::Denied(format!(
            "'{url}': only http:// loopback endpoints may be scraped"
        )));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(Error::Denied(format!(
            "'{url}' is not a loopback endpoint: providers may only scrape their own session's endpoints"
        )));
    }
    let port = uri.port_u16().unwrap_or(80);
    if !allowed_ports.contains(&port) {
        return Err(Error::Denied(format!(
            "'{url}' is not an endpoint of this provider's session (ports {allowed_ports:?})"
        )));
    }
    Ok(())
}

fn fetch(url: &str) -> Result<String, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(SCRAPE_TIMEOUT))
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
    fn only_own_loopback_endpoints() {
        let own = [8000, 8339];
        assert!(check_endpoint("http://127.0.0.1:8000/metrics", &own).is_ok());
        assert!(check_endpoint("http://localhost:8339/metrics", &own).is_ok());
        assert!(check_endpoint("http://[::1]:8000/metrics", &own).is_ok());
        for (url, why) in [
            ("http://10.0.0.5:8000/metrics", "not a loopback"),
            ("https://127.0.0.1:8000/metrics", "only http://"),
            (
                "http://127.0.0.1:22/",
                "not an endpoint of this provider's session",
            ),
            ("http://metadata.google.internal/", "not a loopback"),
            ("not a url at all", "not a URL"),
        ] {
            let err = check_endpoint(url, &own).unwrap_err();
            let text = match err {
                Error::Denied(m) | Error::Invalid(m) => m,
                other => panic!("{other:?}"),
            };
            assert!(text.contains(why), "{url}: {text}");
        }
    }
}
