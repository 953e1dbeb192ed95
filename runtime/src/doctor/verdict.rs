//! The last word of a doctor run: "Ready to mine with vllm-pearl on GPU 0
//! (NVIDIA H100 80GB HBM3)", or "Not ready: 2 problems block vllm-pearl",
//! each problem with its fix, and the numbered next steps.

use super::checks::{HostFacts, gpu_qualifies, selected_gpus};
use super::{Check, Need, ProviderRow, SelectedBy, Status};
use serde::Serialize;

/// One thing that blocks mining, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The row (or provider) it comes from; rows sharing one fix are named together.
    pub check: String,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub ready: bool,
    pub provider: String,
    /// The one-line verdict.
    pub summary: String,
    pub problems: Vec<Problem>,
    /// Needed checks whose facts are unknown (neither OK nor FAIL).
    pub unknown: Vec<String>,
}

/// What the verdict is made from.
pub(super) struct Judged<'a> {
    pub provider: &'a str,
    pub selected_by: SelectedBy,
    pub checks: &'a [Check],
    /// The provider's `detect` row; `None` for an unknown provider id.
    pub row: Option<&'a ProviderRow>,
    pub host: &'a HostFacts<'a>,
    pub model: &'a str,
}

impl Verdict {
    pub(super) fn new(judged: &Judged) -> Verdict {
        let mut problems: Vec<Problem> = Vec::new();
        for check in judged.checks.iter().filter(|c| c.status == Status::Fail) {
            let fix = check
                .fix
                .clone()
                .unwrap_or_else(|| "see `jarvis mine doctor -v`".to_owned());
            match problems.iter_mut().find(|p| p.fix == fix) {
                Some(same) => same.check = format!("{}, {}", same.check, check.name),
                None => problems.push(Problem {
                    check: check.name.clone(),
                    problem: check.info.clone(),
                    fix,
                }),
            }
        }
        if let Some(row) = judged.row {
            if let Some(error) = &row.error {
                problems.push(Problem {
                    check: row.id.clone(),
                    problem: format!("the provider failed: {error}"),
                    fix: format!(
                        "see `jarvis mine providers inspect {}`, or reinstall it",
                        row.id
                    ),
                });
            } else if !row.supported && !explained(judged.checks) {
                problems.push(Problem {
                    check: row.id.clone(),
                    problem: row
                        .reason
                        .clone()
                        .unwrap_or_else(|| "its detect says it cannot mine here".into()),
                    fix: "see the reason above; `jarvis mine models` lists what each model needs"
                        .to_owned(),
                });
            }
        }
        let unknown: Vec<String> = judged
            .checks
            .iter()
            .filter(|c| c.needed && c.status == Status::Unknown)
            .map(|c| c.name.clone())
            .collect();
        let provider = judged.provider.to_owned();
        let ready = problems.is_empty();
        let summary = if ready {
            let mut summary = format!("Ready to mine with {provider}{}", on_what(judged));
            if !unknown.is_empty() {
                summary.push_str(&format!(
                    " (if the {} unknown check{} pass{})",
                    unknown.len(),
                    plural(unknown.len()),
                    if unknown.len() == 1 { "es" } else { "" }
                ));
            }
            summary
        } else {
            let n = problems.len();
            let block = format!(
                "{n} problem{} block{} {provider}",
                plural(n),
                if n == 1 { "s" } else { "" }
            );
            if judged.selected_by == SelectedBy::Hardware {
                format!("Not ready: no provider can mine on this host; {block}, the one it suits")
            } else {
                format!("Not ready: {block}")
            }
        };
        Verdict {
            ready,
            provider,
            summary,
            problems,
            unknown,
        }
    }

    /// What to do next, in order: the fixes, or how to start.
    pub fn next_steps(&self) -> Vec<String> {
        if self.ready {
            vec![
                "run `jarvis mine start` to begin mining".to_owned(),
                "run `jarvis mine status` to watch it".to_owned(),
            ]
        } else {
            self.problems.iter().map(|p| p.fix.clone()).collect()
        }
    }
}

/// Whether a failing row accounts for an unsupported `detect` verdict: the
/// setup rows (config, node, wallet, policy) never do, as `detect` judges the
/// hardware and tools.
fn explained(checks: &[Check]) -> bool {
    checks.iter().any(|c| {
        c.status == Status::Fail
            && !matches!(
                c.need,
                Some(Need::Config | Need::PearlNode | Need::Wallet | Need::Policy)
            )
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// " on GPU 0 (NVIDIA H100 80GB HBM3)", " on the CPU (16 cores)", or "".
fn on_what(judged: &Judged) -> String {
    let facts = judged.host.facts;
    match judged.provider {
        "vllm-pearl" => {
            let gpus: Vec<_> = selected_gpus(judged.host)
                .into_iter()
                .filter(|gpu| gpu_qualifies(gpu, judged.model))
                .collect();
            match gpus.as_slice() {
                [] => String::new(),
                [gpu] => format!(" on GPU {} ({})", gpu.index, gpu.name),
                many => {
                    let indexes: Vec<String> = many.iter().map(|g| g.index.to_string()).collect();
                    let names: Vec<&str> = many.iter().map(|g| g.name.as_str()).collect();
                    let what = if names.iter().all(|n| *n == names[0]) {
                        format!("{}× {}", many.len(), names[0])
                    } else {
                        names.join(", ")
                    };
                    format!(" on GPUs {} ({what})", indexes.join(", "))
                }
            }
        }
        "apple-mps-pearl" => match facts.gpus.iter().find(|g| g.vendor == "apple") {
            Some(gpu) => format!(" on the Apple GPU ({}, MPS)", gpu.name),
            None => " on the Apple GPU (MPS)".to_owned(),
        },
        "cpu-pearl" => match facts.cpu_cores {
            Some(cores) => format!(" on the CPU ({cores} cores)"),
            None => " on the CPU".to_owned(),
        },
        _ => String::new(),
    }
}
