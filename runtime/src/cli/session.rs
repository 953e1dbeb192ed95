//! What the lifecycle commands share: loading config, sandbox, providers and
//! the Docker client, and turning their failures into exit codes.

use super::{CliError, exit};
use crate::audit::AuditLog;
use crate::config::{Config, ConfigError};
use crate::docker::Docker;
use crate::lifecycle::{MineError, Miner};
use crate::paths::Paths;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::sandbox::{Sandbox, SandboxLimits};
use crate::session::LockError;
use std::sync::Arc;

pub struct Opened {
    pub paths: Paths,
    pub config: Config,
    /// Why the config could not be read ([`open_tolerant`] only).
    pub config_error: Option<String>,
    pub sandbox: Sandbox,
    pub registry: Registry,
    pub docker: Result<Arc<Docker>, String>,
}

impl Opened {
    pub fn miner(&self) -> Miner<'_> {
        Miner {
            paths: &self.paths,
            mining: self.config.mining.as_ref(),
            config_error: self.config_error.clone(),
            sandbox: &self.sandbox,
            registry: &self.registry,
            docker: self.docker.clone(),
        }
    }
}

/// The home (canonical; a home that cannot be made is bad input, exit 2).
pub fn paths() -> Result<Paths, CliError> {
    Paths::from_env().map_err(|err| CliError::invalid_input(err.to_string()))
}

pub fn paths_and_config() -> Result<(Paths, Config), CliError> {
    let paths = paths()?;
    let config = load_config(&paths)?;
    Ok((paths, config))
}

/// The config, its warnings (unknown keys) printed once, here.
fn load_config(paths: &Paths) -> Result<Config, CliError> {
    let config = Config::load(paths.config_file()).map_err(|err| {
        let code = match err {
            ConfigError::Invalid {
                unknown_model: true,
                ..
            } => super::exit::UNKNOWN_MODEL,
            _ => super::exit::INVALID_INPUT,
        };
        CliError {
            code,
            message: err.to_string(),
        }
    })?;
    for warning in &config.warnings {
        super::output::eprintln!("{warning}");
    }
    Ok(config)
}

/// The policy files; a broken user policy is the user's to fix (exit 2).
pub fn policy(paths: &Paths) -> Result<Policy, CliError> {
    Policy::load(paths).map_err(|err| CliError::invalid_input(err.to_string()))
}

/// The sandbox (recording privileged calls in the audit log) and the
/// providers the policy admits.
pub fn sandbox_and_registry(
    paths: &Paths,
    limits: SandboxLimits,
) -> Result<(Sandbox, Registry, Policy), CliError> {
    // The engine does not depend on the policy: build it while the policy
    // files are parsed.
    let (policy, sandbox) = std::thread::scope(|scope| {
        let policy = scope.spawn(|| policy(paths));
        let sandbox = Sandbox::new(limits, Some(paths.component_cache()));
        (
            policy
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            sandbox,
        )
    });
    let policy = policy?;
    let sandbox = sandbox
        .map_err(|err| CliError::failure(format!("cannot start the provider sandbox: {err:#}")))?
        .with_audit(Arc::new(AuditLog::new(paths.audit_log())));
    let registry = Registry::load(&sandbox, Some(&paths.installed_providers()), &policy);
    Ok((sandbox, registry, policy))
}

/// Everything `start` needs; a config that cannot be read is an error.
pub fn open(limits: SandboxLimits) -> Result<Opened, CliError> {
    let (paths, config) = paths_and_config()?;
    opened(paths, config, None, limits)
}

/// For `stop` and `status`, which must work while a miner runs even when
/// the config has a typo: an unreadable config is a warning (printed here,
/// once) and the commands work from the session record.
pub fn open_tolerant(limits: SandboxLimits) -> Result<Opened, CliError> {
    let paths = paths()?;
    let (config, config_error) = match load_config(&paths) {
        Ok(config) => (config, None),
        Err(CliError { message: err, .. }) => {
            let warning = format!(
                "cannot read the config, so this works from the session record alone: {err}"
            );
            super::output::eprintln!("warning: {warning}");
            (Config::default(), Some(warning))
        }
    };
    opened(paths, config, config_error, limits)
}

fn opened(
    paths: Paths,
    config: Config,
    config_error: Option<String>,
    limits: SandboxLimits,
) -> Result<Opened, CliError> {
    let (sandbox, registry, _) = sandbox_and_registry(&paths, limits)?;
    let docker = Docker::connect()
        .map(Arc::new)
        .map_err(|err| err.to_string());
    Ok(Opened {
        paths,
        config,
        config_error,
        sandbox,
        registry,
        docker,
    })
}

/// Each kind of failure has its own exit code (docs/user-guide.md).
pub fn mine_error(err: MineError) -> CliError {
    use crate::bindings::Error as E;
    use crate::host::Refusal;
    let code = match &err {
        MineError::NotConfigured | MineError::UnknownProvider(_) => exit::INVALID_INPUT,
        MineError::Lock(LockError::Busy { .. })
        | MineError::SessionLive { .. }
        | MineError::Attached { .. } => exit::BUSY,
        MineError::Docker(_) => exit::DOCKER_UNAVAILABLE,
        // The host's own refusal decides; the guest's error kind only when
        // the host refused nothing.
        MineError::Refused {
            refusal: Some(refusal),
            ..
        } => match **refusal {
            Refusal::Denied(_) => exit::DENIED,
            Refusal::MissingSecret { .. } => exit::MISSING_SECRET,
        },
        MineError::Refused {
            error: E::Invalid(_),
            refusal: None,
            ..
        } => exit::INVALID_INPUT,
        MineError::Refused {
            error: E::Unavailable(_),
            refusal: None,
            ..
        } => exit::DOCKER_UNAVAILABLE,
        _ => exit::FAILURE,
    };
    CliError {
        code,
        message: err.to_string(),
    }
}

/// The Docker client, or exit code 3 with the reason.
pub fn open_docker() -> Result<Docker, CliError> {
    Docker::connect().map_err(|err| CliError {
        code: exit::DOCKER_UNAVAILABLE,
        message: format!("Docker unavailable: {err}"),
    })
}
