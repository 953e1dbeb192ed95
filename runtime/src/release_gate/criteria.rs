//! The gate's pass criteria, its verdict, and `summary.json` (schema 1).
//!
//! A criterion passes, fails, or is skipped with the reason it could not
//! be judged here (no CUDA image to run, facts from a file, `--start` not
//! given, an earlier step that failed). The verdict passes when no
//! criterion failed and at least one passed; every skipped criterion is
//! listed beside it, so a pass with skips says what was not verified.

use serde::Serialize;
use std::collections::BTreeMap;

/// `summary.json`'s schema version.
pub const SCHEMA_VERSION: u64 = 1;

/// The criteria, in the runbook's order (reference §8.3). Each name fits
/// the row's 22 columns.
pub const GPUS: &str = "NVIDIA GPUs";
pub const DOCKER: &str = "Docker daemon";
pub const NVIDIA_RUNTIME: &str = "NVIDIA runtime";
pub const GPU_SMOKE: &str = "GPU container";
pub const DISK: &str = "Model cache disk";
pub const DOCTOR: &str = "Doctor";
pub const CONFIG: &str = "Mining config";
pub const IMAGE: &str = "Miner image";
pub const START: &str = "Start";
pub const MODELS: &str = "vLLM /models";
pub const CHAT: &str = "Chat completion";
pub const SHARES: &str = "Share evidence";
pub const PEARLD: &str = "pearld probe";
pub const STOP: &str = "Stop";
pub const CLEANUP: &str = "Cleanup";

/// The criteria of the pre-flight (steps 1 to 6), then those of `--start`.
pub const PREFLIGHT: [&str; 8] = [
    GPUS,
    DOCKER,
    NVIDIA_RUNTIME,
    GPU_SMOKE,
    DISK,
    DOCTOR,
    CONFIG,
    IMAGE,
];
pub const SESSION: [&str; 7] = [START, MODELS, CHAT, SHARES, PEARLD, STOP, CLEANUP];

/// One pass criterion and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Criterion {
    pub name: String,
    /// It was judged and holds.
    pub passed: bool,
    /// It could not be judged here; `detail` says why.
    pub skipped: bool,
    pub detail: String,
}

impl Criterion {
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Criterion::new(name, true, false, detail)
    }

    pub fn fail(name: &str, detail: impl Into<String>) -> Self {
        Criterion::new(name, false, false, detail)
    }

    pub fn skip(name: &str, detail: impl Into<String>) -> Self {
        Criterion::new(name, false, true, detail)
    }

    pub fn judged(name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Criterion::new(name, passed, false, detail)
    }

    fn new(name: &str, passed: bool, skipped: bool, detail: impl Into<String>) -> Self {
        Criterion {
            name: name.to_owned(),
            passed,
            skipped,
            detail: detail.into(),
        }
    }

    pub fn failed(&self) -> bool {
        !self.passed && !self.skipped
    }

    /// `PASS`, `FAIL` or `SKIP`.
    pub fn word(&self) -> &'static str {
        match (self.passed, self.skipped) {
            (true, _) => "PASS",
            (false, true) => "SKIP",
            (false, false) => "FAIL",
        }
    }
}

/// The gate's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    /// Pass when no criterion failed and at least one passed.
    pub fn of(criteria: &[Criterion]) -> Verdict {
        let any_passed = criteria.iter().any(|c| c.passed);
        if any_passed && !criteria.iter().any(Criterion::failed) {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// What was run: the pre-flight only, or the miner too (`--start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Preflight,
    Full,
}

/// Where the GPU (and disk) facts came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactsOrigin {
    /// `nvml` (this host, probed) or `file`.
    pub source: &'static str,
    pub file: Option<String>,
}

/// `summary.json`: keys sorted when written.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: u64,
    pub verdict: Verdict,
    pub scope: Scope,
    pub criteria: Vec<Criterion>,
    /// Names of the criteria that failed, in order.
    pub failed: Vec<String>,
    /// Names of the criteria that were skipped, in order.
    pub skipped: Vec<String>,
    pub facts: FactsOrigin,
    pub home: String,
    pub config_file: String,
    pub output_dir: String,
    /// Each artifact's file name: `written`, or why not.
    pub artifacts: BTreeMap<String, String>,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    /// This tool's version.
    pub jarvis_version: &'static str,
}

impl Summary {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// One line: `PASS`, `FAIL: A, B`, with what was skipped.
    pub fn headline(&self) -> String {
        let mut line = match self.verdict {
            Verdict::Pass => "PASS".to_owned(),
            Verdict::Fail if self.failed.is_empty() => "FAIL: nothing was verified".to_owned(),
            Verdict::Fail => format!("FAIL: {}", self.failed.join(", ")),
        };
        if self.scope == Scope::Preflight {
            line.push_str(" (pre-flight only; the full gate runs the miner with --start)");
        }
        if !self.skipped.is_empty() {
            line.push_str(&format!("; not verified here: {}", self.skipped.join(", ")));
        }
        line
    }
}

/// The names of the failed and the skipped criteria, in order.
pub fn failed_and_skipped(criteria: &[Criterion]) -> (Vec<String>, Vec<String>) {
    let names = |keep: fn(&Criterion) -> bool| {
        criteria
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.clone())
            .collect()
    };
    (names(Criterion::failed), names(|c| c.skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_passes_with_skips_but_not_with_a_failure_or_nothing() {
        let pass = Criterion::pass(GPUS, "H100");
        let skip = Criterion::skip(GPU_SMOKE, "no CUDA image");
        let fail = Criterion::fail(CONFIG, "no [mining]");
        assert_eq!(Verdict::of(&[pass.clone(), skip.clone()]), Verdict::Pass);
        assert_eq!(Verdict::of(&[pass, skip.clone(), fail]), Verdict::Fail);
        assert_eq!(Verdict::of(&[skip]), Verdict::Fail);
        assert_eq!(Verdict::of(&[]), Verdict::Fail);
    }

    #[test]
    fn words_and_lists() {
        let criteria = [
            Criterion::pass(GPUS, ""),
            Criterion::skip(GPU_SMOKE, ""),
            Criterion::fail(CONFIG, ""),
        ];
        let words: Vec<&str> = criteria.iter().map(Criterion::word).collect();
        assert_eq!(words, ["PASS", "SKIP", "FAIL"]);
        assert_eq!(
            failed_and_skipped(&criteria),
            (vec![CONFIG.to_owned()], vec![GPU_SMOKE.to_owned()])
        );
    }

    #[test]
    fn names_fit_the_rows() {
        for name in PREFLIGHT.iter().chain(&SESSION) {
            assert!(name.chars().count() <= 22, "{name}");
        }
    }
}
