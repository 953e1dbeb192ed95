//! The `processes` import: a provider describes a process; the host checks
//! the program, its arguments and environment as text, asks the policy,
//! then resolves secret references, labels the process with the provider's
//! identity, starts it detached and records it. A provider acts only on
//! processes of its own session, by the name it gave; anything else reads
//! exactly as nothing.

use super::CallHost;
use super::context::Processes;
use super::env::Env;
use super::gate::Gate;
use crate::bindings::openjarvis::mining::processes::{Host, ProcessSpec, ProcessState};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::{HostRule, Request, SpawnRequest};
use crate::process::{self, Liveness, Program, signal};
use std::time::{Duration, Instant};

const MAX_ARGS: usize = 64;
const MAX_TEXT: usize = 1024;
const MAX_ENV: usize = 64;
const MAX_PORTS: usize = 8;
/// The longest grace a stop may ask for.
const MAX_GRACE: Duration = Duration::from_secs(60);
/// The most log lines one tail returns.
const MAX_TAIL_LINES: u32 = 1000;
/// How often a readiness wait tries to connect.
const CONNECT_POLL: Duration = Duration::from_millis(50);

impl Host for CallHost {
    fn spawn(&mut self, spec: ProcessSpec) -> Result<String, Error> {
        self.privileged::<Processes, _>("processes.spawn", |gate| spawn(gate, spec))
    }

    fn wait_listening(&mut self, handle: String, port: u16, timeout_ms: u32) -> Result<(), Error> {
        self.privileged::<Processes, _>("processes.wait-listening", |gate| {
            check_name(&handle)?;
            let limit = Duration::from_millis(u64::from(timeout_ms)).min(gate.time_left());
            let mut view = gate.permit(Request::Own { target: &handle })?;
            let record = view.find(&handle).ok_or_else(|| not_found(&handle))?;
            // Only a port the process was declared to serve: anything else
            // would make this a probe of the host's other services.
            if !record.ports.contains(&port) {
                return Err(Error::Invalid(format!(
                    "port {port} is not one of the ports process '{handle}' was declared to serve"
                )));
            }
            let began = Instant::now();
            loop {
                if process::liveness(&record) != Liveness::Alive {
                    let code = view.child_exit_code(record.pid);
                    return Err(Error::Failed(format!(
                        "process '{handle}' exited{} before it listened on port {port}; see its log ({})",
                        code.map(|c| format!(" with code {c}")).unwrap_or_default(),
                        view.log_path(&record)
                    )));
                }
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                if std::net::TcpStream::connect_timeout(&address, CONNECT_POLL).is_ok() {
                    return Ok(());
                }
                if began.elapsed() >= limit {
                    return Err(Error::Failed(format!(
                        "process '{handle}' did not listen on port {port} within {} ms",
                        limit.as_millis()
                    )));
                }
                std::thread::sleep(CONNECT_POLL);
            }
        })
    }

    fn stop(&mut self, handle: String, grace_ms: u32) -> Result<(), Error> {
        self.privileged::<Processes, _>("processes.stop", |gate| {
            check_name(&handle)?;
            let grace = Duration::from_millis(u64::from(grace_ms))
                .min(MAX_GRACE)
                .min(gate.time_left());
            let view = gate.permit(Request::Own { target: &handle })?;
            let Some(record) = view.find(&handle) else {
                return Ok(());
            };
            signal::stop(&record, grace)
                .map(drop)
                .map_err(|err| Error::Failed(format!("cannot stop process '{handle}': {err}")))
        })
    }

    fn inspect(&mut self, handle: String) -> Result<Option<ProcessState>, Error> {
        self.privileged::<Processes, _>("processes.inspect", |gate| {
            check_name(&handle)?;
            let mut view = gate.permit(Request::Own { target: &handle })?;
            let Some(record) = view.find(&handle) else {
                return Ok(None);
            };
            let running = process::liveness(&record) == Liveness::Alive;
            Ok(Some(ProcessState {
                running,
                exit_code: if running {
                    None
                } else {
                    view.child_exit_code(record.pid)
                },
                started_at: record.start_time as f64,
                pid: record.pid,
            }))
        })
    }

    fn tail_log(&mut self, handle: String, limit: u32) -> Result<Vec<String>, Error> {
        self.privileged::<Processes, _>("processes.tail-log", |gate| {
            check_name(&handle)?;
            let view = gate.permit(Request::Own { target: &handle })?;
            let Some(record) = view.find(&handle) else {
                return Ok(Vec::new());
            };
            process::logs::tail(
                &view.log_path(&record),
                limit.min(MAX_TAIL_LINES) as usize,
                &crate::redact::Redactor::for_variables(record.secrets.iter().map(String::as_str)),
            )
            .map_err(|err| Error::Failed(format!("cannot read the log of '{handle}': {err}")))
        })
    }
}

/// `processes.spawn`: decide on the request as described, then start it.
fn spawn(gate: &mut Gate<'_, Processes>, spec: ProcessSpec) -> Result<String, Error> {
    let plan = plan(spec)?;
    let texts = plan
        .env
        .vars
        .iter()
        .map(|(_, value)| value.as_str())
        .chain(plan.args.iter().map(String::as_str));
    if let Err(foreign) =
        crate::rewards::check_payout_addresses(texts, gate.wallet_address().unwrap_or_default())
    {
        return Err(gate.refuse(HostRule::PayoutAddress, foreign));
    }
    gate.decide(&Request::SpawnProcess(&plan.request))?;
    let held = gate.processes_held(&plan.request.name);
    let quota = gate.processes_quota();
    if held as u64 >= quota.value {
        return Err(gate.over_quota(
            &quota,
            format!("provider runs {held} processes and may not start another"),
        ));
    }
    let mut view = gate.permit(Request::SpawnProcess(&plan.request))?;
    if view
        .find(&plan.request.name)
        .is_some_and(|r| process::liveness(&r) == Liveness::Alive)
    {
        return Err(Error::Failed(format!(
            "process '{}' of this session is already running: stop it first",
            plan.request.name
        )));
    }
    let secrets = plan.request.secrets.clone();
    let env = plan.env.resolve(|var| view.missing_secret(var))?;
    for port in &plan.request.ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            return Err(Error::Failed(format!(
                "port {port} is already in use; free it or choose another port in [mining.extra]"
            )));
        }
    }
    view.start(&plan.request, &plan.args, env, secrets)?;
    Ok(plan.request.name)
}

/// A validated spec: what the policy is asked about, and what the host
/// will give the process once it decided.
struct Plan {
    request: SpawnRequest,
    args: Vec<String>,
    env: Env,
}

/// Checks a provider's spec as text, touching nothing on the host.
fn plan(spec: ProcessSpec) -> Result<Plan, Error> {
    check_name(&spec.name)?;
    let program = Program::parse(&spec.program).ok_or_else(|| {
        let known: Vec<&str> = Program::ALL.iter().map(|p| p.name()).collect();
        Error::Invalid(format!(
            "program {:?} is not one the host runs; the host runs {}",
            truncated(&spec.program),
            known.join(", ")
        ))
    })?;
    if spec.args.len() > MAX_ARGS || spec.args.iter().any(|a| a.len() > MAX_TEXT) {
        return Err(Error::Invalid(format!(
            "at most {MAX_ARGS} arguments of {MAX_TEXT} bytes each"
        )));
    }
    program.check_args(&spec.args).map_err(Error::Invalid)?;
    if spec.env.len() > MAX_ENV {
        return Err(Error::Invalid(format!(
            "at most {MAX_ENV} environment variables"
        )));
    }
    let env = Env::parse(spec.env, MAX_TEXT, |name| {
        if program.takes_env(name) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{} does not take the environment variable {:?}",
                program.name(),
                truncated(name)
            )))
        }
    })?;
    let mut ports = spec.ports;
    ports.sort_unstable();
    ports.dedup();
    if ports.len() > MAX_PORTS || ports.contains(&0) {
        return Err(Error::Invalid(format!(
            "at most {MAX_PORTS} ports, none of them 0"
        )));
    }
    Ok(Plan {
        request: SpawnRequest {
            name: spec.name,
            program,
            env_names: env.names(),
            secrets: env.secrets(),
            ports,
        },
        args: spec.args,
        env,
    })
}

/// A process name: its handle and the stem of its log file.
fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "process name {:?} is not valid: use 1-64 of a-z, A-Z, 0-9, '_', '.', '-', starting with a letter or digit",
            truncated(name)
        )))
    }
}

fn not_found(handle: &str) -> Error {
    Error::Invalid(format!("no process '{handle}' in this session"))
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}
