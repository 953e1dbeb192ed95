//! The one gate every privileged import passes, before any side effect:
//! the call must be a lifecycle call, the capability declared in `info()`
//! and granted, the audit log writable, the call within its budgets, and
//! the import must get the policy's permit for the specifics of its
//! request, described as plain data. Only [`Gate::permit`] turns a
//! decision into a view of the host. Each call leaves one audit record.

use super::context::{
    Clock, Containers, GpuTelemetry, HostContext, Interface, Metrics, Processes, Sidecar,
};
use super::log::GuestLog;
use super::{describe, error_kind};
use crate::audit::{self, CallAudit};
use crate::bindings::openjarvis::mining::types::Error;
use crate::policy::{Denial, HostRule, Quota, Request};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The import whose time is not charged to the host-time budget.
pub const IMPORT_ENSURE_IMAGE: &str = "containers.ensure-image";

/// The host part of one call's store.
pub struct CallHost {
    log: GuestLog,
    /// Present for lifecycle calls only.
    lifecycle: Option<HostContext>,
    /// Who is calling, for audit records.
    provider: String,
    component: String,
    /// This call's records (collapsed and bounded, `audit::CallAudit`).
    audit: CallAudit,
    /// Privileged imports called so far in this call, and the quota.
    privileged_calls: u32,
    privileged_quota: Option<Quota>,
    /// What is left of `SandboxLimits::host_time`.
    host_time_left: Duration,
    /// Time spent in admitted privileged calls: not charged to the guest.
    privileged_time: Duration,
}

impl CallHost {
    pub fn new(
        provider: &str,
        component: &str,
        log_bytes: usize,
        host_time: Duration,
        lifecycle: Option<HostContext>,
        audit: CallAudit,
    ) -> CallHost {
        let privileged_quota = lifecycle
            .as_ref()
            .map(|host| host.policy().privileged_calls_quota());
        CallHost {
            log: GuestLog::new(provider, log_bytes),
            lifecycle,
            provider: provider.to_owned(),
            component: component.to_owned(),
            audit,
            privileged_calls: 0,
            privileged_quota,
            host_time_left: host_time,
            privileged_time: Duration::ZERO,
        }
    }

    pub fn log(&mut self) -> &mut GuestLog {
        &mut self.log
    }

    /// `info()` named the provider: the call's records take its id.
    pub fn identify(&mut self, id: &str) {
        self.audit.identify(id);
    }

    /// Writes what the call's records still hold (the call is over).
    pub fn finish_audit(&mut self) {
        self.audit.finish();
    }

    /// Time spent in admitted privileged calls so far.
    pub fn privileged_time(&self) -> Duration {
        self.privileged_time
    }

    /// Keeps a denial for the command that made the call (through the
    /// session's [`super::Refusals`]).
    fn refuse(&self, denial: Denial) {
        if let Some(host) = &self.lifecycle {
            host.refusals().push(super::Refusal::Denied(denial));
        }
    }

    /// Calls the clock or another import that needs no capability, only a
    /// lifecycle call; not audited (it touches nothing).
    pub(super) fn lifecycle_only<T>(
        &mut self,
        import: &str,
        act: impl FnOnce() -> T,
    ) -> Result<T, Error> {
        match self.lifecycle.as_mut() {
            Some(host) => {
                let () = Clock::view(host);
                Ok(act())
            }
            None => {
                let denial = Denial::host(
                    None,
                    HostRule::PureCalls,
                    format!("{import} is not available here: info() and detect() are pure"),
                );
                let error = Error::Denied(denial.reason.clone());
                self.refuse(denial);
                Err(error)
            }
        }
    }

    /// Runs one privileged import through the gate (see the module docs).
    pub(super) fn privileged<I: Interface, T>(
        &mut self,
        import: &str,
        act: impl FnOnce(&mut Gate<'_, I>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let capability = I::CAPABILITY
            .expect("a privileged interface names its capability")
            .name();
        let started = Instant::now();
        self.privileged_calls += 1;
        let mut record = audit::Record::new(
            &self.provider,
            &self.component,
            capability,
            import.to_owned(),
        );
        let (result, denial, admitted) = match self.admit::<I>(import) {
            Err(denial) => (
                Err(Error::Denied(denial.reason.clone())),
                Some(denial),
                false,
            ),
            Ok(()) => {
                let host = self
                    .lifecycle
                    .as_mut()
                    .expect("admit checked the host context");
                let mut gate = Gate {
                    host,
                    summary: String::new(),
                    denial: None,
                    time_left: self.host_time_left,
                    interface: PhantomData,
                };
                let result = act(&mut gate);
                if !gate.summary.is_empty() {
                    record.action = format!("{import} {}", gate.summary);
                }
                (result, gate.denial, true)
            }
        };
        record.duration_us = started.elapsed().as_micros() as u64;
        match (&denial, &result) {
            (Some(denial), _) => {
                record.decision = audit::Decision::Deny;
                record.reason = Some(denial.reason.clone());
                record.rule = Some(denial.rule_name());
                record.policy_file = denial.file().map(|f| f.display().to_string());
            }
            (None, Ok(_)) => record.outcome = Some("ok".into()),
            (None, Err(err)) => {
                record.outcome = Some(error_kind(err).into());
                record.reason = Some(describe(err).to_owned());
            }
        }
        if let Some(denial) = denial {
            self.refuse(denial);
        }
        // Repeats collapse into one record with a count, and one call
        // writes a bounded number of records (`audit::CallAudit`).
        self.audit.record(record);
        if admitted {
            // Host work, the audit append included, is not the guest's
            // time: it is charged to the host-time budget instead, except
            // image acquisition, which has its own progress and can take
            // most of an hour. A denied call costs the guest, so a loop of
            // them runs out of guest time.
            let elapsed = started.elapsed();
            self.privileged_time += elapsed;
            if import != IMPORT_ENSURE_IMAGE {
                self.host_time_left = self.host_time_left.saturating_sub(elapsed);
            }
        }
        result
    }

    /// [`privileged`](Self::privileged) for a batch of `items` requests
    /// (`grep-logs-all`, `scrape-all`): each counts against the
    /// privileged-calls quota as a call of its own would, so a batch is no
    /// way around it. Past [`super::MAX_BATCH`] the import refuses the
    /// batch itself.
    pub(super) fn privileged_batch<I: Interface, T>(
        &mut self,
        import: &str,
        items: usize,
        act: impl FnOnce(&mut Gate<'_, I>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // `privileged` counts the call itself.
        let more = items.clamp(1, super::MAX_BATCH) - 1;
        self.privileged_calls = self.privileged_calls.saturating_add(more as u32);
        self.privileged(import, act)
    }

    /// The checks before the policy's specifics.
    fn admit<I: Interface>(&mut self, import: &str) -> Result<(), Denial> {
        let capability = I::CAPABILITY.expect("a privileged interface names its capability");
        let name = Some(capability.name());
        if let Some(quota) = &self.privileged_quota
            && u64::from(self.privileged_calls) > quota.value
        {
            return Err(quota.deny(
                capability.name(),
                format!("{import}: more privileged calls than allowed in one provider call"),
            ));
        }
        let Some(host) = self.lifecycle.as_ref() else {
            return Err(Denial::host(
                name,
                HostRule::PureCalls,
                format!(
                    "{import} is not available here: info() and detect() are pure and may not use host capabilities"
                ),
            ));
        };
        if !host.requested(capability) {
            return Err(Denial::host(
                name,
                HostRule::DeclaredCapabilities,
                format!(
                    "{import} needs the '{}' capability, which provider '{}' did not request in info()",
                    capability.name(),
                    host.provider_id()
                ),
            ));
        }
        // The capability itself, before the import looks at its arguments.
        if let Some(withheld) = host.policy().withheld(capability) {
            return Err(withheld);
        }
        if host.dry_run().is_some() && super::dry_run::REFUSED.contains(&import) {
            return Err(Denial::host(
                name,
                HostRule::DryRun,
                format!(
                    "{import} is not run by `jarvis mine start --dry-run`, which changes nothing on the host"
                ),
            ));
        }
        if self.host_time_left.is_zero() {
            return Err(Denial::host(
                name,
                HostRule::HostTime,
                format!(
                    "{import}: this call has used its host-time budget; raise limits.host_time_ms in the policy if the provider needs more"
                ),
            ));
        }
        self.audit
            .ready()
            .map_err(|err| Denial::host(name, HostRule::AuditLog, err))
    }
}

/// The policy's view of one privileged call in progress: the host is
/// reachable only through [`Gate::permit`], whose view is the interface's.
pub struct Gate<'a, I: Interface> {
    host: &'a mut HostContext,
    /// What the call asked for, for the audit record (names, never values).
    summary: String,
    denial: Option<Denial>,
    time_left: Duration,
    interface: PhantomData<I>,
}

impl<I: Interface> Gate<'_, I> {
    /// Asks the policy about this request; on a grant, returns the view the
    /// import acts through.
    pub fn permit(&mut self, request: Request<'_>) -> Result<I::View<'_>, Error> {
        self.decide(&request)?;
        Ok(I::view(self.host))
    }

    /// [`permit`](Self::permit) for a batch: every request is decided, in
    /// order, before the view is handed out, so one refusal refuses the
    /// batch (naming the request) before anything is acted on.
    pub fn permit_all(&mut self, requests: &[Request<'_>]) -> Result<I::View<'_>, Error> {
        let mut summaries = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            if let Err(error) = self.decide(request) {
                let error = super::in_request(index, error);
                if let Some(denial) = &mut self.denial {
                    denial.reason = format!("request {index}: {}", denial.reason);
                }
                return Err(error);
            }
            summaries.push(std::mem::take(&mut self.summary));
        }
        self.summary = summaries.join(" ");
        Ok(I::view(self.host))
    }

    /// Asks the policy without acting: a first decision on part of a
    /// request (the image before its digests are looked up), or a re-check
    /// of what the host resolved after the first permit.
    pub fn decide(&mut self, request: &Request<'_>) -> Result<(), Error> {
        self.summary = summarize(request);
        let capability = I::CAPABILITY.expect("a privileged interface names its capability");
        self.host
            .policy()
            .check(capability, request)
            .map_err(|denial| self.deny(denial))
    }

    /// The plan's recorder, in a dry run (`jarvis mine start --dry-run`).
    pub fn dry_run(&self) -> Option<super::dry_run::Recorder> {
        self.host.dry_run().cloned()
    }

    /// What the last decision was about, for the call's audit record.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The call's audit record describes `summary` (a call that made
    /// several requests describes them all).
    pub fn describe(&mut self, summary: String) {
        self.summary = summary;
    }

    /// A refusal by one of the host's own rules.
    pub fn refuse(&mut self, rule: HostRule, reason: impl std::fmt::Display) -> Error {
        let capability = I::CAPABILITY.map(|c| c.name());
        self.deny(Denial::host(capability, rule, reason))
    }

    /// A refusal by a quota.
    pub fn over_quota(&mut self, quota: &Quota, what: impl std::fmt::Display) -> Error {
        let capability = I::CAPABILITY.map_or("", |c| c.name());
        self.deny(quota.deny(capability, what))
    }

    fn deny(&mut self, denial: Denial) -> Error {
        let error = Error::Denied(denial.reason.clone());
        self.denial = Some(denial);
        error
    }

    /// Wall time host work in this call may still take.
    pub fn time_left(&self) -> Duration {
        self.time_left
    }
}

impl Gate<'_, Sidecar> {
    /// Whether the session record is another provider's.
    pub fn foreign_session(&self) -> bool {
        self.host.foreign_session()
    }

    /// The largest record this provider may write.
    pub fn sidecar_quota(&self) -> Quota {
        self.host.policy().sidecar_quota()
    }
}

impl Gate<'_, Metrics> {
    /// Loopback ports the host published for this provider's session.
    pub fn session_ports(&self) -> Vec<u16> {
        self.host.session_ports()
    }
}

impl Gate<'_, GpuTelemetry> {
    /// The GPUs to ask NVML about (see `HostContext::gpus_to_read`).
    pub fn gpus_to_read(&self) -> Option<Vec<String>> {
        self.host.gpus_to_read()
    }
}

impl Gate<'_, Containers> {
    /// `[mining].wallet_address`, for the payout rule.
    pub fn wallet_address(&self) -> Option<&str> {
        self.host.wallet_address()
    }

    /// The Docker name of a container the provider names `requested`.
    pub fn docker_name(&self, requested: &str) -> String {
        self.host.docker_name(requested)
    }

    /// Containers this provider holds (see `HostContext::containers_held`).
    pub fn containers_held(&self, names: &[&str]) -> Result<usize, Error> {
        self.host.containers_held(names)
    }

    pub fn containers_quota(&self) -> Quota {
        self.host.containers_quota()
    }

    /// Whether the policy pins image digests (see [`Gate::image_digests`]).
    pub fn pins_digests(&self) -> bool {
        self.host.policy().pins_digests()
    }

    /// The local image's id and repo digests, for a digest-pinning policy;
    /// call only after [`Gate::decide`] granted the image by name.
    pub fn image_digests(&self, image: &str) -> Result<Vec<String>, Error> {
        self.host.image_digests(image)
    }
}

impl Gate<'_, Processes> {
    /// `[mining].wallet_address`, for the payout rule.
    pub fn wallet_address(&self) -> Option<&str> {
        self.host.wallet_address()
    }

    /// Running processes this provider holds (see `HostContext::processes_held`).
    pub fn processes_held(&self, name: &str) -> usize {
        self.host.processes_held(name)
    }

    pub fn processes_quota(&self) -> Quota {
        self.host.policy().processes_quota()
    }
}

/// Names only: env values and secrets never reach a record.
fn summarize(request: &Request<'_>) -> String {
    match request {
        Request::Own { target } => target.to_string(),
        Request::EnsureImage { image } => format!("image={image}"),
        Request::RunContainer(run) => {
            let mut parts = vec![
                format!("name={}", run.name),
                format!("image={}", run.image),
                format!("gpus={:?}", run.gpus),
                format!("network={}", run.network),
            ];
            let list = |items: Vec<String>| items.join(",");
            let mounts = run
                .mounts
                .iter()
                .map(|(p, ro)| format!("{}:{}", p.display(), if *ro { "ro" } else { "rw" }));
            for (key, value) in [
                ("mounts", list(mounts.collect())),
                (
                    "ports",
                    list(run.host_ports.iter().map(u16::to_string).collect()),
                ),
                ("env", run.env_names.join(",")),
                ("secrets", run.secrets.join(",")),
            ] {
                if !value.is_empty() {
                    parts.push(format!("{key}={value}"));
                }
            }
            parts.join(" ")
        }
        Request::Scrape(scrape) => format!("url=http://{}:{}", scrape.host, scrape.port),
        Request::SpawnProcess(spawn) => {
            let mut parts = vec![
                format!("name={}", spawn.name),
                format!("program={}", spawn.program.name()),
            ];
            let ports: Vec<String> = spawn.ports.iter().map(u16::to_string).collect();
            for (key, value) in [
                ("ports", ports.join(",")),
                ("env", spawn.env_names.join(",")),
                ("secrets", spawn.secrets.join(",")),
            ] {
                if !value.is_empty() {
                    parts.push(format!("{key}={value}"));
                }
            }
            parts.join(" ")
        }
    }
}
