//! The `processes` capability's keys (`[providers.ID.processes]`): which
//! host programs a provider may run, which environment variables and
//! secrets they may be given, and which loopback ports they may serve.

use super::containers::PortRange;
use super::values::{FromPolicyText, Pattern, text_value};
use super::{Denial, ProviderPolicy};
use crate::process::Program;
use serde::{Deserialize, Serialize};

const CAPABILITY: Option<&str> = Some("processes");

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRules {
    /// Programs by the host's names: `pearl-gateway`, `pearl-miner-loop`.
    pub programs: Option<Vec<ProgramName>>,
    /// Environment variable names (patterns) a process may be given.
    pub env: Option<Vec<Pattern>>,
    /// Host environment variables (patterns) a provider may reference as secrets.
    pub secrets: Option<Vec<Pattern>>,
    /// Loopback ports a process may serve: numbers or `"low-high"` ranges.
    pub ports: Option<Vec<PortRange>>,
}

fn rules(grant: &super::Grant) -> Option<&ProcessRules> {
    grant.processes.as_ref()
}

/// A program the host knows, as a policy file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramName(Program);

impl FromPolicyText for ProgramName {
    fn from_text(text: &str) -> Result<Self, String> {
        Program::parse(text).map(ProgramName).ok_or_else(|| {
            let known: Vec<&str> = Program::ALL.iter().map(|p| p.name()).collect();
            format!(
                "program {text:?} is not one the host runs: {}",
                known.join(", ")
            )
        })
    }
    fn text(&self) -> &str {
        self.0.name()
    }
}
text_value!(ProgramName);

/// A process launch as the policy sees it: names, never values.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub name: String,
    pub program: Program,
    pub env_names: Vec<String>,
    pub secrets: Vec<String>,
    pub ports: Vec<u16>,
}

impl ProviderPolicy {
    pub(super) fn spawn(&self, spawn: &SpawnRequest) -> Result<(), Denial> {
        self.each(
            CAPABILITY,
            "processes.programs",
            |g| rules(g)?.programs.as_ref(),
            |programs| programs.contains(&ProgramName(spawn.program)),
            || format!("program '{}'", spawn.program.name()),
        )?;
        self.ports_granted(
            CAPABILITY,
            "processes.ports",
            |g| rules(g)?.ports.as_ref(),
            &spawn.ports,
        )?;
        self.names_granted(
            CAPABILITY,
            "processes.env",
            |g| rules(g)?.env.as_ref(),
            &spawn.env_names,
            "environment variable",
        )?;
        self.names_granted(
            CAPABILITY,
            "processes.secrets",
            |g| rules(g)?.secrets.as_ref(),
            &spawn.secrets,
            "secret",
        )
    }
}
