//! What a lifecycle call may touch on the host, and the narrow view each
//! interface acts through. [`HostContext`]'s fields are private to this
//! file: the imports (`containers.rs`, `sidecar.rs`, ...) get a view only
//! from [`super::Gate::permit`], so none can act before the policy decided.

use super::{LABEL_HOME, LABEL_NAME, LABEL_PORTS, LABEL_PROVIDER, docker_error};
use crate::bindings::Capability;
use crate::bindings::openjarvis::mining::types::Error;
use crate::docker::{ContainerState, ContainerSummary, Docker, ImageProgress};
use crate::facts::GpuSelection;
use crate::paths::Paths;
use crate::policy::values::FromPolicyText;
use crate::policy::{Denial, ProviderPolicy, Quota, SpawnRequest};
use crate::process::{self, ProcessRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the host itself refused in a call, as a type: the CLI's exit code
/// is chosen by it, whatever the guest made of the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The policy or a host rule denied a request.
    Denied(Denial),
    /// A granted secret's variable is not set on the host.
    MissingSecret { variable: String },
}

/// The refusals of the calls made with one [`Session`], shared with the
/// command that made it (which reads them once the call returns).
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<Mutex<Vec<Refusal>>>);

impl Refusals {
    pub fn push(&self, refusal: Refusal) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(refusal);
    }

    /// The newest refusal, if any.
    pub fn last(&self) -> Option<Refusal> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }
}

/// The session a lifecycle call acts on, as the host knows it.
pub struct Session {
    pub id: String,
    pub paths: Paths,
    /// The daemon, or why it cannot be used.
    pub docker: Result<Arc<Docker>, String>,
    /// `[mining.extra].pearl_source_dir`: a Pearl checkout to build the image from.
    pub pearl_source_dir: Option<PathBuf>,
    /// `[mining].wallet_address`: the only Pearl address a container may be given.
    pub wallet_address: Option<String>,
    /// `[mining.extra].cuda_visible_devices`: with the policy's `gpus`, the
    /// GPUs this provider may see (as `detect`'s facts are narrowed).
    pub gpu_selection: GpuSelection,
    /// Where image pull/build progress goes (the CLI's progress bar).
    pub progress: Box<dyn FnMut(ImageProgress) + Send>,
    /// What the host refuses in calls with this session.
    pub refusals: Refusals,
    /// `start --dry-run`: where the plan is recorded instead of acted on.
    pub dry_run: Option<super::dry_run::Recorder>,
    /// The host's GPUs as the command read them for `start` (a facts
    /// file's in a dry run); they size the containers quota. `None`: NVML
    /// is asked when a quota needs them.
    pub host_gpus: Option<Vec<host_gpu::GpuFacts>>,
}

impl Session {
    /// A session with nothing configured beyond its id, home and Docker:
    /// no Pearl checkout, wallet or GPU selection, progress dropped, not a
    /// dry run, the host's GPUs read when needed.
    pub fn new(
        id: impl Into<String>,
        paths: Paths,
        docker: Result<Arc<Docker>, String>,
    ) -> Session {
        Session {
            id: id.into(),
            paths,
            docker,
            pearl_source_dir: None,
            wallet_address: None,
            gpu_selection: GpuSelection::default(),
            progress: Box::new(|_| {}),
            refusals: Refusals::default(),
            dry_run: None,
            host_gpus: None,
        }
    }
}

/// A lifecycle call's host: who calls, what the policy grants it, and the
/// session. Absent during `info` and `detect`, which are pure.
pub struct HostContext {
    provider_id: String,
    component_sha256: String,
    builtin: bool,
    /// Capabilities the provider requested in `info()`.
    requested: Vec<Capability>,
    policy: Arc<ProviderPolicy>,
    session: Session,
    /// Processes this call started, by PID: their exit codes can be read
    /// while this command runs (a detached process's are not kept after).
    children: BTreeMap<u32, std::process::Child>,
}

impl HostContext {
    pub fn new(
        provider_id: &str,
        component_sha256: &str,
        builtin: bool,
        requested: Vec<Capability>,
        policy: Arc<ProviderPolicy>,
        session: Session,
    ) -> HostContext {
        HostContext {
            provider_id: provider_id.to_owned(),
            component_sha256: component_sha256.to_owned(),
            builtin,
            requested,
            policy,
            session,
            children: BTreeMap::new(),
        }
    }

    pub(super) fn provider_id(&self) -> &str {
        &self.provider_id
    }

    pub(super) fn requested(&self, capability: Capability) -> bool {
        self.requested.contains(&capability)
    }

    pub(super) fn policy(&self) -> &ProviderPolicy {
        &self.policy
    }

    fn docker(&self) -> Result<Arc<Docker>, Error> {
        self.session.docker.clone().map_err(Error::Unavailable)
    }

    fn home(&self) -> String {
        self.session.paths.home().display().to_string()
    }

    /// Every container the host created for this provider in this home
    /// (running or not). The only set a provider's references resolve in.
    fn owned(&self) -> Result<Vec<ContainerSummary>, Error> {
        let docker = self.docker()?;
        let home = self.home();
        Ok(docker
            .list_labelled(LABEL_HOME, Some(&home))
            .map_err(docker_error)?
            .into_iter()
            .filter(|c| c.labels.get(LABEL_PROVIDER) == Some(&self.provider_id))
            .collect())
    }

    /// The session's own loopback ports: the host ports the host recorded
    /// for this session's running containers when it created them, and,
    /// for a miner the *user* attached (`jarvis mine attach`, or
    /// OpenJarvis's: a record without a session id, which a provider's
    /// `sidecar.write` can never produce), the ports the user gave. Never
    /// what a provider wrote.
    pub(super) fn session_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .owned()
            .unwrap_or_default()
            .iter()
            .filter(|c| {
                c.state == "running" && c.labels.get(super::LABEL_SESSION) == Some(&self.session.id)
            })
            .filter_map(|c| c.labels.get(LABEL_PORTS))
            .flat_map(|ports| ports.split(','))
            .filter_map(|port| port.parse().ok())
            .collect();
        ports.extend(
            self.own_processes()
                .iter()
                .filter(|r| crate::process::liveness(r) == crate::process::Liveness::Alive)
                .flat_map(|r| r.ports.iter().copied()),
        );
        if let Ok(Some(record)) = crate::session::sidecar::read(&self.session.paths.sidecar())
            && record.session_id.is_none()
            && record.provider == self.provider_id
        {
            ports.extend(
                [
                    record.vllm_endpoint.as_str(),
                    record.gateway_url.as_str(),
                    record.gateway_metrics_url.as_str(),
                ]
                .into_iter()
                .filter_map(|url| url.parse::<ureq::http::Uri>().ok()?.port_u16()),
            );
        }
        ports
    }

    /// Whether the session record belongs to another provider.
    pub(super) fn foreign_session(&self) -> bool {
        matches!(
            crate::session::sidecar::read(&self.session.paths.sidecar()),
            Ok(Some(current)) if current.provider != self.provider_id
        )
    }

    /// A granted secret's variable is unset: recorded for the CLI's exit
    /// code, and the error the guest gets.
    fn missing_secret(&self, variable: &str) -> Error {
        self.refusals().push(Refusal::MissingSecret {
            variable: variable.to_owned(),
        });
        Error::Unavailable(format!(
            "environment variable '{variable}' is not set; set it before running `jarvis mine start`"
        ))
    }

    /// The processes the host started for this provider in this session.
    fn own_processes(&self) -> Vec<ProcessRecord> {
        crate::process::table::read(&self.session.paths.process_table())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.provider == self.provider_id && r.session == self.session.id)
            .collect()
    }

    /// Running processes of this provider, in any session, not counting
    /// one of this session named `name` (a new one replaces it).
    pub(super) fn processes_held(&self, name: &str) -> usize {
        crate::process::table::read(&self.session.paths.process_table())
            .unwrap_or_default()
            .iter()
            .filter(|r| r.provider == self.provider_id)
            .filter(|r| !(r.session == self.session.id && r.name == name))
            .filter(|r| crate::process::liveness(r) == crate::process::Liveness::Alive)
            .count()
    }

    /// The plan's recorder, in a dry run.
    pub(super) fn dry_run(&self) -> Option<&super::dry_run::Recorder> {
        self.session.dry_run.as_ref()
    }

    pub(super) fn refusals(&self) -> &Refusals {
        &self.session.refusals
    }

    pub(super) fn wallet_address(&self) -> Option<&str> {
        self.session.wallet_address.as_deref()
    }

    /// The Docker name for what the provider asked: built-ins keep theirs
    /// (OpenJarvis's tooling looks for `openjarvis-pearl-miner`); every
    /// other provider's names live under `jm.<provider-id>.`, a prefix it
    /// cannot escape (ids hold no '.', so the first '.' after `jm.` ends it).
    pub(super) fn docker_name(&self, requested: &str) -> String {
        if self.builtin {
            requested.to_owned()
        } else {
            format!("jm.{}.{requested}", self.provider_id)
        }
    }

    /// How many containers this provider holds, not counting finished ones
    /// named in `names` (a new container of that name replaces it).
    pub(super) fn containers_held(&self, names: &[&str]) -> Result<usize, Error> {
        Ok(self
            .owned()?
            .iter()
            .filter(|c| {
                !(names.contains(&c.name.as_str())
                    && c.state != "running"
                    && c.state != "restarting")
            })
            .count())
    }

    /// Containers this provider may hold at once.
    pub(super) fn containers_quota(&self) -> Quota {
        self.policy.containers_quota(self.granted_gpus())
    }

    /// GPUs the policy lets this provider use on this host: the ones it
    /// names, else every GPU NVML reports.
    fn granted_gpus(&self) -> usize {
        let host_gpus = || {
            self.session
                .host_gpus
                .clone()
                .unwrap_or_else(|| host_gpu::nvml::gpus(None).gpus)
        };
        match self.policy.granted_gpu_ids() {
            Some(ids) => host_gpus()
                .iter()
                .filter(|gpu| {
                    ids.iter()
                        .any(|id| id.names(&gpu.index.to_string(), gpu.uuid.as_deref()))
                })
                .count(),
            None => host_gpus().len(),
        }
    }

    /// The GPUs to ask NVML about, one by one: the shorter of the policy's
    /// `gpus` and the user's selection where either names GPUs (empty: this
    /// provider may see none), `None` for every GPU. What NVML answers is
    /// then narrowed by [`GpuTelemetryView::sees`].
    pub(super) fn gpus_to_read(&self) -> Option<Vec<String>> {
        let granted = self
            .policy
            .granted_gpu_ids()
            .map(|ids| ids.iter().map(|id| id.text().to_owned()).collect());
        let selected = self
            .session
            .gpu_selection
            .ids()
            .map(|ids| ids.into_iter().map(str::to_owned).collect());
        [granted, selected]
            .into_iter()
            .flatten()
            .min_by_key(Vec::len)
    }

    /// The local image's id and repo digests (asked only for an image the
    /// policy already granted by name).
    pub(super) fn image_digests(&self, image: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .docker()?
            .image_digests(image)
            .map_err(docker_error)?
            .unwrap_or_default())
    }
}

/// One imported interface: the capability it needs (none for the clock)
/// and the view of the host it acts through once permitted.
pub trait Interface {
    const CAPABILITY: Option<Capability>;
    type View<'a>;
    fn view(host: &mut HostContext) -> Self::View<'_>;
}

/// The `containers` interface's view: Docker, restricted to what this
/// provider's session created, and what new containers are given.
pub struct ContainersView<'a> {
    host: &'a mut HostContext,
}

pub struct Containers;

impl Interface for Containers {
    const CAPABILITY: Option<Capability> = Some(Capability::Containers);
    type View<'a> = ContainersView<'a>;
    fn view(host: &mut HostContext) -> ContainersView<'_> {
        ContainersView { host }
    }
}

impl ContainersView<'_> {
    pub fn docker(&self) -> Result<Arc<Docker>, Error> {
        self.host.docker()
    }

    pub fn dry_run(&self) -> Option<&super::dry_run::Recorder> {
        self.host.dry_run()
    }

    /// Where to build the image from, and where its progress goes.
    pub fn image_source(&mut self) -> (Option<&Path>, &mut Box<dyn FnMut(ImageProgress) + Send>) {
        let session = &mut self.host.session;
        (session.pearl_source_dir.as_deref(), &mut session.progress)
    }

    /// The container a provider's reference (an id, a unique id prefix of
    /// 12 or more characters, or the name it asked for) names among its
    /// own. Absent and someone else's read the same: `None`, found without
    /// ever asking Docker about the reference itself.
    pub fn find(&self, reference: &str) -> Result<Option<ContainerState>, Error> {
        match self.find_listed(&[reference])?.pop().flatten() {
            Some(container) => self.docker()?.inspect(&container.id).map_err(docker_error),
            None => Ok(None),
        }
    }

    /// [`find`](Self::find) of each of `references`, as Docker lists the
    /// containers (one listing for all of them, no inspection).
    pub fn find_listed(&self, references: &[&str]) -> Result<Vec<Option<ContainerSummary>>, Error> {
        let owned = self.host.owned()?;
        Ok(references
            .iter()
            .map(|reference| {
                let matches: Vec<&ContainerSummary> = owned
                    .iter()
                    .filter(|c| {
                        c.id == *reference
                            || (reference.len() >= 12 && c.id.starts_with(reference))
                            || c.labels.get(LABEL_NAME).map(String::as_str) == Some(reference)
                    })
                    .collect();
                match matches.as_slice() {
                    [container] => Some((*container).clone()),
                    _ => None,
                }
            })
            .collect())
    }

    /// A finished container of this provider holding `name`, to take over.
    pub fn finished_holder(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .host
            .owned()?
            .into_iter()
            .find(|c| c.name == name && c.state != "running" && c.state != "restarting")
            .map(|c| c.id))
    }

    /// The ownership labels of a new container.
    pub fn labels(
        &self,
        requested_name: &str,
        secrets: &[&str],
        ports: &[u16],
    ) -> BTreeMap<String, String> {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        BTreeMap::from([
            (LABEL_PROVIDER.to_owned(), self.host.provider_id.clone()),
            (
                super::LABEL_COMPONENT.to_owned(),
                self.host.component_sha256.clone(),
            ),
            (
                super::LABEL_SESSION.to_owned(),
                self.host.session.id.clone(),
            ),
            (super::LABEL_SECRETS.to_owned(), secrets.join(",")),
            (LABEL_PORTS.to_owned(), ports.join(",")),
            (LABEL_NAME.to_owned(), requested_name.to_owned()),
            (LABEL_HOME.to_owned(), self.host.home()),
        ])
    }

    pub fn missing_secret(&self, variable: &str) -> Error {
        self.host.missing_secret(variable)
    }

    /// The memory limit every container of this provider gets.
    pub fn memory_limit(&self) -> Option<u64> {
        self.host.policy.container_memory_bytes()
    }
}

/// The `processes` interface's view: the host's process table, restricted
/// to this provider's session, and what new processes are given.
pub struct ProcessesView<'a> {
    host: &'a mut HostContext,
}

pub struct Processes;

impl Interface for Processes {
    const CAPABILITY: Option<Capability> = Some(Capability::Processes);
    type View<'a> = ProcessesView<'a>;
    fn view(host: &mut HostContext) -> ProcessesView<'_> {
        ProcessesView { host }
    }
}

impl ProcessesView<'_> {
    /// The process of this session the provider named `name`. Absent and
    /// someone else's read the same.
    pub fn find(&self, name: &str) -> Option<ProcessRecord> {
        self.host
            .own_processes()
            .into_iter()
            .find(|r| r.name == name)
    }

    pub fn missing_secret(&self, variable: &str) -> Error {
        self.host.missing_secret(variable)
    }

    /// The log file of a process: built-ins keep the reference's names
    /// (`pearl-gateway.log`); other providers' logs are namespaced.
    fn log_name(&self, name: &str) -> String {
        if self.host.builtin {
            format!("{name}.log")
        } else {
            format!("jm.{}.{name}.log", self.host.provider_id)
        }
    }

    pub fn log_path(&self, record: &ProcessRecord) -> crate::home::HomePath {
        process::logs::path(&self.host.session.paths, &record.log)
    }

    /// The exit code of a process this call started, once it ended.
    pub fn child_exit_code(&mut self, pid: u32) -> Option<i32> {
        let child = self.host.children.get_mut(&pid)?;
        child
            .try_wait()
            .ok()
            .flatten()
            .and_then(|status| status.code())
    }

    /// Starts a permitted process, labelled and logged, and records it.
    pub fn start(
        &mut self,
        request: &SpawnRequest,
        args: &[String],
        mut env: Vec<(String, String)>,
        secrets: Vec<String>,
    ) -> Result<(), Error> {
        let paths = &self.host.session.paths;
        let command = request
            .program
            .command(&paths.root())
            .map_err(Error::Unavailable)?;
        let log_name = self.log_name(&request.name);
        let log = process::logs::path(paths, &log_name);
        let file = process::logs::open_for_append(&log)
            .map_err(|err| Error::Failed(format!("cannot open the log {log}: {err}")))?;
        env.extend([
            (process::LABEL_HOME.to_owned(), self.host.home()),
            (
                process::LABEL_SESSION.to_owned(),
                self.host.session.id.clone(),
            ),
            (
                process::LABEL_PROVIDER.to_owned(),
                self.host.provider_id.clone(),
            ),
            (process::LABEL_NAME.to_owned(), request.name.clone()),
        ]);
        let (child, observed) =
            process::spawn::spawn(command, args, &env, file).map_err(|err| {
                Error::Failed(format!(
                    "cannot start {}: {err}; see its log ({log})",
                    request.program.name()
                ))
            })?;
        let record = ProcessRecord {
            provider: self.host.provider_id.clone(),
            component: self.host.component_sha256.clone(),
            session: self.host.session.id.clone(),
            name: request.name.clone(),
            program: request.program.name().to_owned(),
            pid: observed.pid,
            start_time: observed.start_time,
            ports: request.ports.clone(),
            secrets,
            log: log_name,
        };
        self.host.children.insert(observed.pid, child);
        let table = paths.process_table();
        let mut records = process::table::read(&table).unwrap_or_default();
        records.retain(|r| {
            !(r.provider == record.provider && r.session == record.session && r.name == record.name)
        });
        records.push(record.clone());
        if let Err(err) = process::table::write(&table, &records) {
            // Unrecorded, it would be found by its labels alone: stop it now.
            let _ = process::signal::stop(&record, std::time::Duration::ZERO);
            return Err(Error::Failed(format!(
                "cannot record the process in {table}: {err}"
            )));
        }
        Ok(())
    }
}

/// The `sidecar` interface's view: the session record's place and owner.
pub struct SidecarView<'a> {
    host: &'a HostContext,
}

pub struct Sidecar;

impl Interface for Sidecar {
    const CAPABILITY: Option<Capability> = Some(Capability::Sidecar);
    type View<'a> = SidecarView<'a>;
    fn view(host: &mut HostContext) -> SidecarView<'_> {
        SidecarView { host }
    }
}

impl SidecarView<'_> {
    pub fn dry_run(&self) -> Option<&super::dry_run::Recorder> {
        self.host.dry_run()
    }

    pub fn path(&self) -> crate::home::HomePath {
        self.host.session.paths.sidecar()
    }

    pub fn provider_id(&self) -> &str {
        &self.host.provider_id
    }

    pub fn session_id(&self) -> &str {
        &self.host.session.id
    }

    /// The running process of this session the provider named `name`.
    pub fn running_process(&self, name: &str) -> Option<ProcessRecord> {
        self.host
            .own_processes()
            .into_iter()
            .find(|r| r.name == name && process::liveness(r) == process::Liveness::Alive)
    }

    pub fn wallet_address(&self) -> Option<&str> {
        self.host.wallet_address()
    }

    /// The name of this session's recorded process with `pid`.
    pub fn process_name(&self, pid: u32) -> Option<String> {
        self.host
            .own_processes()
            .into_iter()
            .find(|r| r.pid == pid)
            .map(|r| r.name)
    }
}

/// The `metrics` interface needs nothing of the host once permitted: the
/// fetch itself is the host's.
pub struct Metrics;

impl Interface for Metrics {
    const CAPABILITY: Option<Capability> = Some(Capability::Metrics);
    type View<'a> = ();
    fn view(_: &mut HostContext) {}
}

/// The `gpu-telemetry` interface's view: which of the host's GPUs this
/// provider may see. The readings themselves are the host's (NVML).
pub struct GpuTelemetryView<'a> {
    host: &'a HostContext,
}

pub struct GpuTelemetry;

impl Interface for GpuTelemetry {
    const CAPABILITY: Option<Capability> = Some(Capability::GpuTelemetry);
    type View<'a> = GpuTelemetryView<'a>;
    fn view(host: &mut HostContext) -> GpuTelemetryView<'_> {
        GpuTelemetryView { host }
    }
}

impl GpuTelemetryView<'_> {
    /// Whether this provider may see the GPU with this NVML index and UUID:
    /// selected by `[mining.extra].cuda_visible_devices` and granted by the
    /// policy's `gpus`, the two narrowings of `detect`'s facts
    /// (`facts::to_guest`, `ProviderPolicy::gpu_visible`).
    pub fn sees(&self, index: u32, uuid: Option<&str>) -> bool {
        self.host.session.gpu_selection.includes(index, uuid)
            && self.host.policy.gpu_visible(index, uuid)
    }
}

/// The clock needs no capability, only a lifecycle call.
pub struct Clock;

impl Interface for Clock {
    const CAPABILITY: Option<Capability> = None;
    type View<'a> = ();
    fn view(_: &mut HostContext) {}
}
