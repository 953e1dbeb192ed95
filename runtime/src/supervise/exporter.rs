//! The Prometheus exporter: `GET /metrics` on a loopback port serves the
//! supervisor's latest [`Snapshot`] in the OpenMetrics text format, through
//! the `prometheus-client` crate, with Prometheus's naming (base units,
//! `_total` counters) and the labels `worker`, `gpu`, `uuid` and `model`,
//! so DCGM-style dashboards carry over (see docs/fleet.md).
//!
//! A scrape only reads the snapshot the supervisor's loop last took: it
//! asks neither Docker nor NVML, so scraping often costs the miners nothing.

use super::snapshot::{Snapshot, WorkerSnapshot};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The default address: loopback, on a port none of the common exporters
/// use (node 9100, DCGM 9400, nvidia_gpu_exporter 9835, Prometheus 9090,
/// Pearl's gateway 8337 and 8339).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9741";

/// The OpenMetrics text format's media type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter<f64, AtomicU64>>;

/// `snapshot` as OpenMetrics text.
pub fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("jarvis_mine");
    let model = snapshot.model.clone().unwrap_or_default();
    let gauge = |registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
        let family = Gauges::default();
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
            None => registry.register(name, help, family.clone()),
        }
        family
    };
    let counter = |registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
        let family = Counters::default();
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
            None => registry.register(name, help, family.clone()),
        }
        family
    };

    let info = gauge(
        &mut registry,
        "session_info",
        "The supervised session: provider, model, session id and lifecycle state",
        None,
    );
    info.get_or_create(&vec![
        (
            "provider".into(),
            snapshot.provider.clone().unwrap_or_default(),
        ),
        ("model".into(), model.clone()),
        (
            "session".into(),
            snapshot.session_id.clone().unwrap_or_default(),
        ),
        ("state".into(), snapshot.state.clone()),
    ])
    .set(1.0);
    gauge(
        &mut registry,
        "snapshot_timestamp",
        "When the supervisor last looked at the session (Unix time)",
        Some(Unit::Seconds),
    )
    .get_or_create(&Vec::new())
    .set(snapshot.taken_at);

    write_workers(&mut registry, &snapshot.workers, &model, gauge, counter);
    write_gpus(&mut registry, snapshot, &model, gauge, counter);

    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

fn worker_labels(worker: &WorkerSnapshot, model: &str) -> Labels {
    vec![
        ("worker".into(), worker.index.to_string()),
        ("gpu".into(), worker.gpus.join(",")),
        ("model".into(), model.to_owned()),
    ]
}

fn write_workers(
    registry: &mut Registry,
    workers: &[WorkerSnapshot],
    model: &str,
    gauge: impl Fn(&mut Registry, &str, &str, Option<Unit>) -> Gauges,
    counter: impl Fn(&mut Registry, &str, &str, Option<Unit>) -> Counters,
) {
    let up = gauge(
        registry,
        "worker_up",
        "1 while the worker's container runs",
        None,
    );
    let failed = gauge(
        registry,
        "worker_failed",
        "1 when the watchdog left the worker stopped (too many restarts)",
        None,
    );
    let restarts = counter(
        registry,
        "worker_restarts",
        "Restarts the supervisor's watchdog made",
        None,
    );
    let submitted = counter(
        registry,
        "shares_submitted",
        "Shares (blocks) submitted",
        None,
    );
    let accepted = counter(registry, "shares_accepted", "Shares accepted", None);
    let rejected = counter(registry, "shares_rejected", "Shares rejected", None);
    let blocks = counter(registry, "blocks_found", "Blocks found", None);
    let prompt = counter(
        registry,
        "prompt_tokens",
        "Prompt tokens the worker's vLLM processed",
        None,
    );
    let served = counter(
        registry,
        "requests_served",
        "Requests the worker's vLLM served (users' and idle-fill's)",
        None,
    );
    let fill_requests = counter(
        registry,
        "idle_fill_requests",
        "Synthetic prefill requests idle-fill sent",
        None,
    );
    let fill_tokens = counter(
        registry,
        "idle_fill_prompt_tokens",
        "Prompt tokens of idle-fill's synthetic requests",
        None,
    );
    let fill_failures = counter(
        registry,
        "idle_fill_failures",
        "Idle-fill requests that failed",
        None,
    );
    let filling = gauge(
        registry,
        "idle_fill_active",
        "1 while idle-fill is sending synthetic load",
        None,
    );
    for worker in workers {
        let labels = worker_labels(worker, model);
        up.get_or_create(&labels)
            .set(f64::from(u8::from(worker.up)));
        failed
            .get_or_create(&labels)
            .set(f64::from(u8::from(worker.failed.is_some())));
        restarts
            .get_or_create(&labels)
            .inc_by(worker.restarts as f64);
        if let Some(counts) = &worker.counts {
            for (family, value) in [
                (&submitted, counts.shares_submitted),
                (&accepted, counts.shares_accepted),
                (&rejected, counts.shares_rejected),
                (&blocks, counts.blocks_found),
            ] {
                family.get_or_create(&labels).inc_by(value as f64);
            }
            if let Some(tokens) = counts.prompt_tokens {
                prompt.get_or_create(&labels).inc_by(tokens as f64);
            }
            if let Some(requests) = counts.requests_served {
                served.get_or_create(&labels).inc_by(requests as f64);
            }
        }
        if let Some(fill) = &worker.idle_fill {
            fill_requests
                .get_or_create(&labels)
                .inc_by(fill.requests as f64);
            fill_tokens
                .get_or_create(&labels)
                .inc_by(fill.prompt_tokens as f64);
            fill_failures
                .get_or_create(&labels)
                .inc_by(fill.failures as f64);
            filling
                .get_or_create(&labels)
                .set(f64::from(u8::from(fill.filling)));
        }
    }
}

fn write_gpus(
    registry: &mut Registry,
    snapshot: &Snapshot,
    model: &str,
    gauge: impl Fn(&mut Registry, &str, &str, Option<Unit>) -> Gauges,
    counter: impl Fn(&mut Registry, &str, &str, Option<Unit>) -> Counters,
) {
    let power = gauge(
        registry,
        "gpu_power",
        "Power draw",
        Some(Unit::Other("watts".into())),
    );
    let energy = counter(
        registry,
        "gpu_energy",
        "Energy used since the driver loaded (NVML's counter; a decrease is a driver reload)",
        Some(Unit::Joules),
    );
    let temperature = gauge(
        registry,
        "gpu_temperature",
        "GPU temperature",
        Some(Unit::Celsius),
    );
    let memory_temperature = gauge(
        registry,
        "gpu_memory_temperature",
        "Memory temperature",
        Some(Unit::Celsius),
    );
    let utilization = gauge(
        registry,
        "gpu_utilization",
        "GPU utilisation",
        Some(Unit::Other("ratio".into())),
    );
    let memory_utilization = gauge(
        registry,
        "gpu_memory_utilization",
        "Memory controller utilisation",
        Some(Unit::Other("ratio".into())),
    );
    let fan = gauge(
        registry,
        "gpu_fan_speed",
        "Fan speed",
        Some(Unit::Other("ratio".into())),
    );
    let memory_used = gauge(
        registry,
        "gpu_memory_used",
        "Memory used",
        Some(Unit::Bytes),
    );
    let sm_clock = gauge(
        registry,
        "gpu_sm_clock",
        "SM clock",
        Some(Unit::Other("hertz".into())),
    );
    let memory_clock = gauge(
        registry,
        "gpu_memory_clock",
        "Memory clock",
        Some(Unit::Other("hertz".into())),
    );
    let throttle = gauge(
        registry,
        "gpu_throttle_reason",
        "1 for each reason the clocks are held down now (nvidia-smi's names)",
        None,
    );
    for gpu in &snapshot.gpus {
        let index = gpu.index.to_string();
        let uuid = gpu.uuid.clone().unwrap_or_default();
        let worker = snapshot
            .workers
            .iter()
            .find(|w| {
                w.gpus
                    .iter()
                    .any(|id| *id == index || id.eq_ignore_ascii_case(&uuid))
            })
            .map_or_else(String::new, |w| w.index.to_string());
        let labels: Labels = vec![
            ("gpu".into(), index),
            ("uuid".into(), uuid),
            ("worker".into(), worker),
            ("model".into(), model.to_owned()),
        ];
        let set = |family: &Gauges, value: Option<f64>| {
            if let Some(value) = value {
                family.get_or_create(&labels).set(value);
            }
        };
        let percent = |value: Option<u32>| value.map(|v| f64::from(v) / 100.0);
        let mhz = |value: Option<u32>| value.map(|v| f64::from(v) * 1e6);
        set(&power, gpu.power_w);
        set(&temperature, gpu.gpu_temp_c.map(f64::from));
        set(&memory_temperature, gpu.memory_temp_c.map(f64::from));
        set(&utilization, percent(gpu.gpu_util_percent));
        set(&memory_utilization, percent(gpu.memory_util_percent));
        set(&fan, percent(gpu.fan_percent));
        set(
            &memory_used,
            gpu.memory_used_mib.map(|m| m as f64 * 1_048_576.0),
        );
        set(&sm_clock, mhz(gpu.sm_clock_mhz));
        set(&memory_clock, mhz(gpu.memory_clock_mhz));
        if let Some(mj) = gpu.energy_mj {
            energy.get_or_create(&labels).inc_by(mj as f64 / 1000.0);
        }
        for reason in gpu.throttle_reasons.iter().flatten() {
            let mut labels = labels.clone();
            labels.push(("reason".into(), reason.clone()));
            throttle.get_or_create(&labels).set(1.0);
        }
    }
}

/// The exporter's HTTP server, on its own thread.
pub struct Exporter {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl Exporter {
    /// Serves `latest` on `listen` until [`stop`](Self::stop).
    pub fn start(listen: SocketAddr, latest: Arc<Mutex<Snapshot>>) -> Result<Exporter, String> {
        let server = tiny_http::Server::http(listen)
            .map_err(|err| format!("cannot listen on {listen} for the exporter: {err}"))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("the exporter's listener on {listen} has no IP address"))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    respond(request, &latest);
                }
            })
            .map_err(|err| format!("cannot start the exporter's thread: {err}"))?;
        Ok(Exporter {
            server,
            thread: Some(thread),
            address,
        })
    }

    /// Where it listens (the port is the system's choice for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(request: tiny_http::Request, latest: &Mutex<Snapshot>) {
    let header = |name: &str, value: &str| {
        tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
    };
    let response = match (request.method(), request.url()) {
        (tiny_http::Method::Get, "/metrics") => {
            let snapshot = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
            tiny_http::Response::from_string(render(&snapshot))
                .with_header(header("Content-Type", CONTENT_TYPE))
        }
        (tiny_http::Method::Get, "/") => {
            tiny_http::Response::from_string("jarvis mine supervise: metrics at /metrics\n")
        }
        (tiny_http::Method::Get, _) => {
            tiny_http::Response::from_string("not found: metrics are at /metrics\n")
                .with_status_code(404)
        }
        _ => tiny_http::Response::from_string("only GET is served\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET")),
    };
    // A client that went away is its own business.
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        super::super::snapshot::example()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}:\n{text}"))
    }

    #[test]
    fn workers_and_gpus_are_named_as_prometheus_names_them() {
        let text = render(&snapshot());
        let model = r#"model="pearl-ai/Llama-3.3-70B-Instruct-pearl""#;
        assert_eq!(
            line(&text, "jarvis_mine_worker_up{worker=\"0\""),
            format!(r#"jarvis_mine_worker_up{{worker="0",gpu="0",{model}}} 1.0"#)
        );
        assert!(line(&text, "jarvis_mine_worker_up{worker=\"1\"").ends_with(" 0.0"));
        assert!(line(&text, "jarvis_mine_worker_failed{worker=\"1\"").ends_with(" 1.0"));
        assert!(line(&text, "jarvis_mine_worker_restarts_total{worker=\"0\"").ends_with(" 1.0"));
        assert!(line(&text, "jarvis_mine_shares_accepted_total{worker=\"0\"").ends_with(" 2.0"));
        assert!(line(&text, "jarvis_mine_shares_rejected_total{worker=\"0\"").ends_with(" 1.0"));
        assert!(line(&text, "jarvis_mine_blocks_found_total{worker=\"0\"").ends_with(" 2.0"));
        assert!(line(&text, "jarvis_mine_idle_fill_requests_total{worker=\"0\"").ends_with(" 7.0"));
        assert!(line(&text, "jarvis_mine_idle_fill_active{worker=\"0\"").ends_with(" 1.0"));
        // A worker with no counts has no count samples, rather than zeros.
        assert!(!text.contains("jarvis_mine_shares_accepted_total{worker=\"1\""));
        assert_eq!(
            line(&text, "jarvis_mine_gpu_power_watts{"),
            format!(
                r#"jarvis_mine_gpu_power_watts{{gpu="0",uuid="GPU-a",worker="0",{model}}} 412.5"#
            )
        );
        assert!(line(&text, "jarvis_mine_gpu_energy_joules_total{gpu=\"0\"").ends_with(" 3600.0"));
        assert!(line(&text, "jarvis_mine_gpu_temperature_celsius{gpu=\"0\"").ends_with(" 61.0"));
        assert!(line(&text, "jarvis_mine_gpu_utilization_ratio{gpu=\"0\"").ends_with(" 0.97"));
        assert!(line(&text, "jarvis_mine_gpu_memory_used_bytes{gpu=\"0\"").ends_with(" 2097152.0"));
        assert!(line(&text, "jarvis_mine_gpu_sm_clock_hertz{gpu=\"0\"").ends_with(" 1980000000.0"));
        assert!(
            line(&text, "jarvis_mine_gpu_throttle_reason{gpu=\"0\"")
                .contains(r#"reason="sw_power_cap""#)
        );
        // GPU 1 is worker 1's, by UUID; it gave no readings: no samples.
        assert!(!text.contains(r#"jarvis_mine_gpu_power_watts{gpu="1""#));
        assert!(line(&text, "jarvis_mine_session_info{").contains(r#"state="degraded""#));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_text_is_what_prometheus_parses() {
        // Our own scrape parser reads every sample back.
        let samples = crate::host::metrics::parse_samples(&render(&snapshot())).unwrap();
        let accepted: Vec<_> = samples
            .iter()
            .filter(|s| s.name == "jarvis_mine_shares_accepted_total")
            .collect();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].value, 2.0);
    }

    #[test]
    fn the_server_serves_metrics_and_nothing_else() {
        let latest = Arc::new(Mutex::new(snapshot()));
        let exporter =
            Exporter::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&latest)).unwrap();
        let base = format!("http://{}", exporter.address());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent.get(format!("{base}/metrics")).call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap(),
            CONTENT_TYPE
        );
        let body = response.body_mut().read_to_string().unwrap();
        assert!(body.contains("jarvis_mine_worker_up"), "{body}");
        // The next scrape serves the next snapshot.
        latest.lock().unwrap().state = "running".into();
        let body = agent
            .get(format!("{base}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(body.contains(r#"state="running""#), "{body}");
        let missing = agent.get(format!("{base}/other")).call().unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        let post = agent.post(format!("{base}/metrics")).send("x").unwrap();
        assert_eq!(post.status().as_u16(), 405);
        drop(exporter);
        assert!(agent.get(format!("{base}/metrics")).call().is_err());
    }
}
