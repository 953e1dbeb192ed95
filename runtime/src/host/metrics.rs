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
use std::collections::HashMap;
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
            let request = scrape_request(&url, &gate.session_ports())?;
            gate.permit(Request::Scrape(&request))?;
            fetch_samples(&url, timeout)
        })
    }

    fn scrape_all(&mut self, urls: Vec<String>) -> Result<Vec<Result<Vec<Sample>, Error>>, Error> {
        self.privileged_batch::<Metrics, _>("metrics.scrape-all", urls.len(), |gate| {
            super::check_batch("scrape-all", "URLs", urls.len())?;
            let timeout = SCRAPE_TIMEOUT.min(gate.time_left());
            let ports = gate.session_ports();
            let requests = urls
                .iter()
                .enumerate()
                .map(|(index, url)| {
                    scrape_request(url, &ports).map_err(|err| super::in_request(index, err))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let requests: Vec<Request> = requests.iter().map(Request::Scrape).collect();
            gate.permit_all(&requests)?;
            // One thread per URL: each fetch waits on its endpoint, not on
            // the others.
            Ok(std::thread::scope(|scope| {
                let fetches: Vec<_> = urls
                    .iter()
                    .map(|url| scope.spawn(move || fetch_samples(url, timeout)))
                    .collect();
                fetches
                    .into_iter()
                    .map(|fetch| fetch.join().expect("a scrape does not panic"))
                    .collect()
            }))
        })
    }
}

/// What the policy decides on for a scrape of `url`: its host and port,
/// and whether that is one of the session's own loopback `ports`.
fn scrape_request(url: &str, ports: &[u16]) -> Result<ScrapeRequest, Error> {
    let (host, port) = endpoint(url)?;
    let session = is_loopback(&host) && ports.contains(&port);
    Ok(ScrapeRequest {
        host,
        port,
        session,
    })
}

/// GETs `url` within `timeout` and parses its samples.
fn fetch_samples(url: &str, timeout: Duration) -> Result<Vec<Sample>, Error> {
    let text = fetch(url, timeout)?;
    parse_samples(&text)
        .map_err(|err| Error::Failed(format!("{url} is not Prometheus text: {err}")))
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

/// Prometheus text to flat samples, in name order (a stable sort: a name's
/// samples keep the text's order), at most [`MAX_SAMPLES`] of them.
/// Histograms, gauge histograms and summaries are skipped (providers read
/// counters and gauges): the samples of a family a `# TYPE` line declares
/// one, `NAME`, `NAME_bucket`, `NAME_sum`, `NAME_count`, `NAME_created`,
/// `NAME_gsum` and `NAME_gcount`, unless a sample's own name has a `# TYPE`
/// line of its own.
///
/// The text format (0.0.4), and OpenMetrics text as the Python and Go
/// clients write it: metric names with colons (`vllm:num_requests_running`),
/// Prometheus 3's quoted names (`{"my.metric", "my.label"="v"} 1`), label
/// values with the format's three escapes (`\\`, `\"`, `\n`), `NaN`,
/// `+Inf`, `-Inf`, an optional timestamp, an exemplar (`# {…} 1`, ignored),
/// `# HELP`, other comments and `# EOF`; CRLF line ends too. Anything else
/// on a line is an error naming the line: the whole text is refused, never
/// half read.
pub fn parse_samples(text: &str) -> Result<Vec<Sample>, String> {
    // Family name -> whether its type is a distribution (histogram, summary).
    let mut distributions: HashMap<String, bool> = HashMap::new();
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = |err: String| format!("line {}: {err}", index + 1);
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((name, distribution)) = type_comment(comment).map_err(at)? {
                distributions.insert(name, distribution);
            }
            continue;
        }
        samples.push(sample_line(line).map_err(at)?);
    }
    samples.retain(|sample: &Sample| !in_distribution(&sample.name, &distributions));
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    samples.truncate(MAX_SAMPLES);
    Ok(samples)
}

/// Suffixes of a histogram's or summary's samples (OpenMetrics adds
/// `_created`, and `_gsum`/`_gcount` for gauge histograms).
const DISTRIBUTION_SUFFIXES: [&str; 6] =
    ["_bucket", "_sum", "_count", "_created", "_gsum", "_gcount"];

fn in_distribution(name: &str, distributions: &HashMap<String, bool>) -> bool {
    if let Some(&distribution) = distributions.get(name) {
        return distribution;
    }
    DISTRIBUTION_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|family| distributions.get(family))
            .is_some_and(|&distribution| distribution)
    })
}

/// A `# TYPE NAME KIND` comment's family and whether KIND is a
/// distribution; `None` for any other comment.
fn type_comment(comment: &str) -> Result<Option<(String, bool)>, String> {
    let mut cursor = Cursor::new(comment);
    cursor.blanks();
    if !cursor.rest().starts_with("TYPE") {
        return Ok(None);
    }
    cursor.advance("TYPE".len());
    if cursor.blanks() == 0 {
        // `# TYPEWRITER …`: a comment.
        return Ok(None);
    }
    let name = match cursor.peek() {
        Some(b'"') => {
            cursor.advance(1);
            cursor.quoted()?
        }
        _ => cursor
            .metric_name()
            .ok_or("expected a metric name after # TYPE")?
            .to_owned(),
    };
    if name.is_empty() {
        return Err("empty metric name after # TYPE".into());
    }
    if cursor.blanks() == 0 {
        return Err(format!("expected a type after # TYPE {name}"));
    }
    let kind = cursor.token();
    cursor.blanks();
    if !cursor.rest().is_empty() {
        return Err(format!("unexpected text after # TYPE {name} {kind}"));
    }
    let distribution = match kind {
        "histogram" | "gaugehistogram" | "summary" => true,
        "counter" | "gauge" | "untyped" | "unknown" | "info" | "stateset" => false,
        _ => return Err(format!("unknown metric type '{kind}' for {name}")),
    };
    Ok(Some((name, distribution)))
}

/// `NAME{LABELS} VALUE [TIMESTAMP] [# EXEMPLAR]`, the name either before
/// the braces or quoted as their first item.
fn sample_line(line: &str) -> Result<Sample, String> {
    let mut cursor = Cursor::new(line);
    let mut name = cursor.metric_name().map(str::to_owned);
    let mut labels = Vec::new();
    if cursor.eat(b'{') {
        let mut first = true;
        loop {
            cursor.blanks();
            if cursor.eat(b'}') {
                break;
            }
            let quoted = cursor.eat(b'"');
            let key = if quoted {
                cursor.quoted()?
            } else {
                cursor
                    .label_name()
                    .ok_or_else(|| expected("a label name", &cursor))?
                    .to_owned()
            };
            cursor.blanks();
            if cursor.eat(b'=') {
                cursor.blanks();
                if !cursor.eat(b'"') {
                    return Err(expected(
                        &format!("a quoted value for label {key}"),
                        &cursor,
                    ));
                }
                let value = cursor.quoted()?;
                if key.is_empty() {
                    return Err("empty label name".into());
                }
                labels.push((key, value));
            } else if quoted && first && name.is_none() {
                name = Some(key);
            } else {
                return Err(expected(&format!("'=' after label {key}"), &cursor));
            }
            first = false;
            cursor.blanks();
            if cursor.eat(b',') {
                continue;
            }
            if cursor.eat(b'}') {
                break;
            }
            return Err(expected("',' or '}' in the labels", &cursor));
        }
    }
    let name = match name {
        Some(name) if !name.is_empty() => name,
        _ => return Err(expected("a metric name", &cursor)),
    };
    if cursor.blanks() == 0 {
        return Err(expected(
            &format!("a space and a value after {name}"),
            &cursor,
        ));
    }
    let token = cursor.token();
    let value =
        number(token).ok_or_else(|| format!("'{token}' is not a number (the value of {name})"))?;
    cursor.blanks();
    if cursor.peek().is_some_and(|b| b != b'#') {
        let timestamp = cursor.token();
        if number(timestamp).is_none_or(|t| !t.is_finite()) {
            return Err(format!(
                "'{timestamp}' is not a timestamp (after the value of {name})"
            ));
        }
        cursor.blanks();
    }
    // An exemplar (`# {trace_id="…"} 1.0`) or nothing.
    if cursor.peek().is_some_and(|b| b != b'#') {
        return Err(expected(
            &format!("the end of the line after the value of {name}"),
            &cursor,
        ));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// A float as the text format writes one: Go's `ParseFloat` syntax, which
/// Rust's matches for decimal numbers, `NaN` and `±Inf` (any case).
fn number(token: &str) -> Option<f64> {
    token.parse().ok()
}

fn expected(what: &str, cursor: &Cursor) -> String {
    match cursor.rest().chars().next() {
        Some(found) => format!("expected {what}, found {found:?}"),
        None => format!("expected {what}, found the end of the line"),
    }
}

/// A position in one line. Every delimiter is ASCII, so every position the
/// cursor stops at is a char boundary.
struct Cursor<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Self {
        Cursor { line, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.line[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.at).copied()
    }

    fn advance(&mut self, bytes: usize) {
        self.at += bytes;
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    /// Skips spaces and tabs; how many.
    fn blanks(&mut self) -> usize {
        let count = self
            .rest()
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        self.at += count;
        count
    }

    /// Up to the next blank or the end of the line.
    fn token(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest.find([' ', '\t']).unwrap_or(rest.len());
        self.at += len;
        &rest[..len]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    fn metric_name(&mut self) -> Option<&'a str> {
        self.identifier(true)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`
    fn label_name(&mut self) -> Option<&'a str> {
        self.identifier(false)
    }

    fn identifier(&mut self, colons: bool) -> Option<&'a str> {
        let rest = self.rest();
        let part = |b: &u8, first: bool| {
            b.is_ascii_alphabetic()
                || *b == b'_'
                || (colons && *b == b':')
                || (!first && b.is_ascii_digit())
        };
        let len = rest
            .bytes()
            .enumerate()
            .take_while(|(i, b)| part(b, *i == 0))
            .count();
        self.at += len;
        (len > 0).then(|| &rest[..len])
    }

    /// The rest of a quoted string (the opening `"` already eaten),
    /// unescaped, through its closing `"`.
    fn quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(stop) = rest.find(['"', '\\']) else {
                return Err("a quoted string is not closed on its line".into());
            };
            out.push_str(&rest[..stop]);
            self.at += stop + 1;
            if rest.as_bytes()[stop] == b'"' {
                return Ok(out);
            }
            match self.peek() {
                Some(b'\\') => out.push('\\'),
                Some(b'"') => out.push('"'),
                Some(b'n') => out.push('\n'),
                _ => {
                    let found = self.rest().chars().next();
                    return Err(match found {
                        Some(c) => format!(
                            "unknown escape '\\{c}' in a quoted string (only \\\\, \\\" and \\n)"
                        ),
                        None => "a quoted string is not closed on its line".into(),
                    });
                }
            }
            self.at += 1;
        }
    }
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

    /// What vLLM's Python client serves: `_created` series, a histogram,
    /// and a family declared without samples (a labelled metric nothing
    /// has touched yet).
    #[test]
    fn a_vllm_exposition_parses_and_skips_its_histograms() {
        let text = "\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine=\"0\",model_name=\"pearl/llama\"} 2.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"pearl/llama\"} 3.0
vllm:request_success_created{engine=\"0\",finished_reason=\"stop\",model_name=\"pearl/llama\"} 1.7148650005e+09
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.001\",model_name=\"pearl/llama\"} 0.0
vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"pearl/llama\"} 3.0
vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"pearl/llama\"} 3.0
vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"pearl/llama\"} 0.25
vllm:time_to_first_token_seconds_created{engine=\"0\",model_name=\"pearl/llama\"} 1.7148650005e+09
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
";
        let samples = parse_samples(text).unwrap();
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vllm:num_requests_running",
                "vllm:request_success_created",
                "vllm:request_success_total",
            ]
        );
        assert_eq!(samples[0].value, 2.0);
        assert_eq!(
            samples[2].labels,
            [
                ("engine".to_owned(), "0".to_owned()),
                ("finished_reason".into(), "stop".into()),
                ("model_name".into(), "pearl/llama".into()),
            ]
        );
    }

    #[test]
    fn escaped_label_values_are_unescaped() {
        let text = "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\",odd=\"a,b=c} # d\"} 1.458255915e9\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0].labels,
            [
                ("path".to_owned(), "C:\\DIR\\FILE.TXT".to_owned()),
                ("error".into(), "Cannot find file:\n\"FILE.TXT\"".into()),
                ("odd".into(), "a,b=c} # d".into()),
            ]
        );
        assert_eq!(samples[0].value, 1.458255915e9);
    }

    #[test]
    fn special_values_timestamps_exemplars_and_eof_are_read() {
        let text = "# TYPE a gauge\r\na NaN\r\nb +Inf 1395066363000\nc{x=\"1\"}\t-Inf -3982045\nd_total 7 # {trace_id=\"abc\"} 1.0 1.5e9\ne 1e-3 1.5e9\n# EOF\n";
        let samples = parse_samples(text).unwrap();
        let value = |name: &str| samples.iter().find(|s| s.name == name).unwrap().value;
        assert!(value("a").is_nan());
        assert_eq!(value("b"), f64::INFINITY);
        assert_eq!(value("c"), f64::NEG_INFINITY);
        assert_eq!(value("d_total"), 7.0);
        assert_eq!(value("e"), 0.001);
        assert_eq!(samples.len(), 5);
    }

    #[test]
    fn quoted_utf8_names_are_read() {
        let text = "{\"my.metric\", \"my.label\"=\"v\", plain=\"w\",} 1\nother{\"dotted.label\"=\"x\"} 2\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples[0].name, "my.metric");
        assert_eq!(
            samples[0].labels,
            [
                ("my.label".to_owned(), "v".to_owned()),
                ("plain".into(), "w".into())
            ]
        );
        assert_eq!(samples[1].name, "other");
        assert_eq!(
            samples[1].labels,
            [("dotted.label".to_owned(), "x".to_owned())]
        );
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        for (text, needle) in [
            ("ok 1\nbad{x=\"\\t\"} 1\n", "line 2: unknown escape"),
            ("a{x=\"open} 1\n", "line 1: a quoted string is not closed"),
            ("a 1 2 3\n", "line 1: expected the end of the line"),
            ("a one\n", "line 1: 'one' is not a number"),
            ("a\n", "line 1: expected a space and a value after a"),
            ("a{x} 1\n", "line 1: expected '=' after label x"),
            ("a{x=\"1\" y=\"2\"} 1\n", "line 1: expected ',' or '}'"),
            ("{} 1\n", "line 1: expected a metric name"),
            ("{\"\"} 1\n", "line 1: expected a metric name"),
            ("a 1 soon\n", "line 1: 'soon' is not a timestamp"),
            ("# TYPE a countr\n", "line 1: unknown metric type 'countr'"),
            ("# TYPE a\n", "line 1: expected a type after # TYPE a"),
            ("a-b 1\n", "line 1: expected a space and a value after a"),
        ] {
            let err = parse_samples(text).unwrap_err();
            assert!(err.starts_with(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn samples_are_in_name_order_and_capped() {
        let text: String = (0..MAX_SAMPLES + 5)
            .rev()
            .map(|i| format!("m{i:06} {i}\n"))
            .collect();
        let samples = parse_samples(&text).unwrap();
        assert_eq!(samples.len(), MAX_SAMPLES);
        assert_eq!(samples[0].name, "m000000");
        assert!(samples.windows(2).all(|w| w[0].name < w[1].name));
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
