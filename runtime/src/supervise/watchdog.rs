//! The watchdog's decisions for one worker, as a pure function of what the
//! supervisor observed and when (seconds on a monotonic clock), so every
//! rule is unit-tested without waiting.
//!
//! - **Exited**: its container is not running (Docker's own restart policy
//!   gave up, or someone killed it): start it again.
//! - **Crash-looping**: Docker restarts it (the containers run with
//!   `unless-stopped`), which counts against the same hourly cap as ours.
//! - **Unhealthy**: running, but vLLM has not answered `/v1/models` for
//!   [`Rules::unhealthy_after`]: restart it.
//! - **Stalled**: it had load (vLLM kept serving requests, its own or
//!   idle-fill's) and submitted nothing for [`Rules::stall_after`]: restart
//!   it.
//!
//! Restarts back off exponentially ([`Rules::backoff_min`] doubling to
//! [`Rules::backoff_max`], back to the minimum once the worker has run well
//! for [`Rules::stable_after`]); past [`Rules::restarts_per_hour`] (ours and
//! Docker's together) the worker is stopped and left failed, with the reason.

use std::collections::VecDeque;
use std::time::Duration;

const HOUR: f64 = 3600.0;

/// The rules, from `jarvis mine supervise`'s options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub restarts_per_hour: u32,
    pub unhealthy_after: Duration,
    /// `None`: never restart for a stall.
    pub stall_after: Option<Duration>,
    pub stable_after: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            backoff_min: Duration::from_secs(10),
            backoff_max: Duration::from_secs(10 * 60),
            restarts_per_hour: 6,
            unhealthy_after: Duration::from_secs(5 * 60),
            stall_after: Some(Duration::from_secs(2 * 3600)),
            stable_after: Duration::from_secs(10 * 60),
        }
    }
}

/// What the supervisor saw of one worker at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    /// Monotonic seconds.
    pub at: f64,
    pub running: bool,
    /// Docker's restart count of its container.
    pub docker_restarts: u64,
    /// vLLM answered `/v1/models`; `None`: not asked this time.
    pub healthy: Option<bool>,
    /// Its share submissions and the requests its vLLM served so far, from
    /// the provider's `stats()`; `None`: not counted this time.
    pub submitted: Option<u64>,
    pub served: Option<u64>,
}

/// Why a worker needs the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Exited,
    Unhealthy,
    Stalled,
    CrashLoop,
}

impl Problem {
    /// The word in logs, audit records and the exporter.
    pub fn word(self) -> &'static str {
        match self {
            Problem::Exited => "exited",
            Problem::Unhealthy => "unhealthy",
            Problem::Stalled => "stalled",
            Problem::CrashLoop => "crash-loop",
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Fine,
    /// A problem, and the next restart may not come before `at`.
    Waiting {
        problem: Problem,
        at: f64,
    },
    Restart(Problem),
    /// Stop it and leave it failed; the reason says why, for people.
    Fail(String),
    /// Failed earlier: left alone.
    Failed,
}

/// One worker's history, as much as the rules need.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// When restarts happened (ours and Docker's), within the last hour.
    restarts: VecDeque<f64>,
    /// The last Docker restart count seen.
    docker_restarts: Option<u64>,
    backoff: Option<Duration>,
    next_attempt: f64,
    unhealthy_since: Option<f64>,
    /// Since when the worker has had load without a submission, and the
    /// counts then.
    progress: Option<Progress>,
    well_since: Option<f64>,
    failed: Option<String>,
    /// Restarts this supervisor made, for the exporter.
    total_restarts: u64,
}

/// The stall window: since when the worker has had load and submitted
/// nothing, and the counts of the last look.
#[derive(Debug, Clone, Copy)]
struct Progress {
    since: f64,
    submitted: u64,
    served: u64,
}

impl Watch {
    /// Why it was left failed, if it was.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Restarts the supervisor made.
    pub fn restarts(&self) -> u64 {
        self.total_restarts
    }

    /// The decision for what was `seen` (and records it).
    pub fn observe(&mut self, rules: &Rules, seen: Seen) -> Verdict {
        if self.failed.is_some() {
            return Verdict::Failed;
        }
        self.restarts.retain(|at| seen.at - at < HOUR);
        let crash_loop = self.count_docker_restarts(seen);
        let problem = if !seen.running {
            Some(Problem::Exited)
        } else if self.unhealthy(rules, seen) {
            Some(Problem::Unhealthy)
        } else if self.stalled(rules, seen) {
            Some(Problem::Stalled)
        } else if crash_loop {
            Some(Problem::CrashLoop)
        } else {
            None
        };
        let Some(problem) = problem else {
            let well = *self.well_since.get_or_insert(seen.at);
            if seen.at - well >= rules.stable_after.as_secs_f64() {
                self.backoff = None;
            }
            return Verdict::Fine;
        };
        self.well_since = None;
        if self.restarts.len() >= rules.restarts_per_hour as usize {
            let reason = format!(
                "{} restarts in the last hour (the cap is {}), last {}: left stopped",
                self.restarts.len(),
                rules.restarts_per_hour,
                problem.word()
            );
            self.failed = Some(reason.clone());
            return Verdict::Fail(reason);
        }
        if problem == Problem::CrashLoop {
            // Docker restarts it itself; the cap above is what we add.
            return Verdict::Fine;
        }
        if seen.at < self.next_attempt {
            return Verdict::Waiting {
                problem,
                at: self.next_attempt,
            };
        }
        let backoff = match self.backoff {
            None => rules.backoff_min,
            Some(last) => (last * 2).min(rules.backoff_max),
        };
        self.backoff = Some(backoff);
        self.next_attempt = seen.at + backoff.as_secs_f64();
        self.restarts.push_back(seen.at);
        self.total_restarts += 1;
        self.unhealthy_since = None;
        self.progress = None;
        Verdict::Restart(problem)
    }

    /// Counts Docker's restarts since the last look into the hourly window;
    /// whether it restarted it since.
    fn count_docker_restarts(&mut self, seen: Seen) -> bool {
        let before = self.docker_restarts.replace(seen.docker_restarts);
        let more = before.map_or(0, |before| seen.docker_restarts.saturating_sub(before));
        for _ in 0..more.min(64) {
            self.restarts.push_back(seen.at);
        }
        more > 0
    }

    fn unhealthy(&mut self, rules: &Rules, seen: Seen) -> bool {
        match seen.healthy {
            Some(true) => self.unhealthy_since = None,
            Some(false) => {
                let since = *self.unhealthy_since.get_or_insert(seen.at);
                return seen.at - since >= rules.unhealthy_after.as_secs_f64();
            }
            None => {}
        }
        false
    }

    /// Load (requests served at every look) without a submission for
    /// the rule's time.
    fn stalled(&mut self, rules: &Rules, seen: Seen) -> bool {
        let (Some(limit), Some(submitted), Some(served)) =
            (rules.stall_after, seen.submitted, seen.served)
        else {
            return false;
        };
        let last = self.progress.replace(Progress {
            since: seen.at,
            submitted,
            served,
        });
        // A submission, a look without new load, or a counter that went
        // back (a restart) starts the window again.
        let Some(last) = last else { return false };
        if submitted != last.submitted || served <= last.served {
            return false;
        }
        self.progress = Some(Progress {
            since: last.since,
            submitted,
            served,
        });
        seen.at - last.since >= limit.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            backoff_min: Duration::from_secs(10),
            backoff_max: Duration::from_secs(40),
            restarts_per_hour: 4,
            unhealthy_after: Duration::from_secs(60),
            stall_after: Some(Duration::from_secs(600)),
            stable_after: Duration::from_secs(300),
        }
    }

    fn running(at: f64) -> Seen {
        Seen {
            at,
            running: true,
            docker_restarts: 0,
            healthy: Some(true),
            submitted: None,
            served: None,
        }
    }

    fn exited(at: f64) -> Seen {
        Seen {
            running: false,
            ..running(at)
        }
    }

    #[test]
    fn an_exited_worker_is_restarted_with_a_growing_backoff_then_left_failed() {
        let (rules, mut watch) = (rules(), Watch::default());
        assert_eq!(watch.observe(&rules, running(0.0)), Verdict::Fine);
        assert_eq!(
            watch.observe(&rules, exited(1.0)),
            Verdict::Restart(Problem::Exited)
        );
        // 10 s, then 20 s, then 40 s (the maximum) between restarts.
        assert_eq!(
            watch.observe(&rules, exited(5.0)),
            Verdict::Waiting {
                problem: Problem::Exited,
                at: 11.0
            }
        );
        assert_eq!(
            watch.observe(&rules, exited(11.0)),
            Verdict::Restart(Problem::Exited)
        );
        assert!(matches!(
            watch.observe(&rules, exited(30.0)),
            Verdict::Waiting { at, .. } if at == 31.0
        ));
        assert_eq!(
            watch.observe(&rules, exited(31.0)),
            Verdict::Restart(Problem::Exited)
        );
        assert!(matches!(
            watch.observe(&rules, exited(32.0)),
            Verdict::Waiting { at, .. } if at == 71.0
        ));
        assert_eq!(
            watch.observe(&rules, exited(71.0)),
            Verdict::Restart(Problem::Exited)
        );
        // The fifth in an hour is past the cap of 4: stopped, for good.
        let Verdict::Fail(reason) = watch.observe(&rules, exited(200.0)) else {
            panic!("expected a failure");
        };
        assert_eq!(
            reason,
            "4 restarts in the last hour (the cap is 4), last exited: left stopped"
        );
        assert_eq!(watch.failed(), Some(reason.as_str()));
        assert_eq!(watch.observe(&rules, exited(5000.0)), Verdict::Failed);
        assert_eq!(watch.restarts(), 4);
    }

    #[test]
    fn restarts_older_than_an_hour_and_a_stable_run_reset_the_watch() {
        let (rules, mut watch) = (rules(), Watch::default());
        for at in [0.0, 10.0, 30.0, 70.0] {
            assert_eq!(
                watch.observe(&rules, exited(at)),
                Verdict::Restart(Problem::Exited)
            );
        }
        // Running well for the stable time resets the backoff.
        for at in [100.0, 300.0, 400.0] {
            assert_eq!(watch.observe(&rules, running(at)), Verdict::Fine);
        }
        // An hour after the first restarts, the cap has room again, and the
        // backoff starts from its minimum.
        assert_eq!(
            watch.observe(&rules, exited(3700.0)),
            Verdict::Restart(Problem::Exited)
        );
        assert!(matches!(
            watch.observe(&rules, exited(3701.0)),
            Verdict::Waiting { at, .. } if at == 3710.0
        ));
    }

    #[test]
    fn unhealthy_only_after_the_rules_time_without_an_answer() {
        let (rules, mut watch) = (rules(), Watch::default());
        let sick = |at| Seen {
            healthy: Some(false),
            ..running(at)
        };
        assert_eq!(watch.observe(&rules, sick(0.0)), Verdict::Fine);
        assert_eq!(watch.observe(&rules, sick(59.0)), Verdict::Fine);
        // An answer in between starts the time again.
        assert_eq!(watch.observe(&rules, running(60.0)), Verdict::Fine);
        assert_eq!(watch.observe(&rules, sick(61.0)), Verdict::Fine);
        // Not asked: no news either way.
        let unasked = Seen {
            healthy: None,
            ..running(100.0)
        };
        assert_eq!(watch.observe(&rules, unasked), Verdict::Fine);
        assert_eq!(
            watch.observe(&rules, sick(121.0)),
            Verdict::Restart(Problem::Unhealthy)
        );
    }

    fn counted(at: f64, submitted: u64, served: u64) -> Seen {
        Seen {
            submitted: Some(submitted),
            served: Some(served),
            ..running(at)
        }
    }

    #[test]
    fn a_loaded_worker_that_submits_nothing_is_stalled_an_idle_one_is_not() {
        let (rules, mut watch) = (rules(), Watch::default());
        // Idle (no new prompt tokens) for an hour: fine.
        for minute in 0..60 {
            assert_eq!(
                watch.observe(&rules, counted(f64::from(minute) * 60.0, 5, 1000)),
                Verdict::Fine
            );
        }
        // Loaded from 3600 s on, no submission: stalled after 600 s.
        assert_eq!(
            watch.observe(&rules, counted(3600.0, 5, 5000)),
            Verdict::Fine
        );
        assert_eq!(
            watch.observe(&rules, counted(4000.0, 5, 90_000)),
            Verdict::Fine
        );
        assert_eq!(
            watch.observe(&rules, counted(4200.0, 5, 120_000)),
            Verdict::Restart(Problem::Stalled)
        );
        // Load that stops is not a stall, however long nothing is submitted.
        let (rules, mut watch) = (rules, Watch::default());
        watch.observe(&rules, counted(0.0, 1, 0));
        watch.observe(&rules, counted(300.0, 1, 50_000));
        assert_eq!(
            watch.observe(&rules, counted(900.0, 1, 50_000)),
            Verdict::Fine
        );
        // A submission starts the window again.
        let (rules, mut watch) = (rules, Watch::default());
        watch.observe(&rules, counted(0.0, 1, 0));
        watch.observe(&rules, counted(500.0, 1, 50_000));
        assert_eq!(
            watch.observe(&rules, counted(550.0, 2, 60_000)),
            Verdict::Fine
        );
        assert_eq!(
            watch.observe(&rules, counted(700.0, 2, 90_000)),
            Verdict::Fine
        );
        // Stall detection off.
        let off = Rules {
            stall_after: None,
            ..rules
        };
        let mut watch = Watch::default();
        watch.observe(&off, counted(0.0, 1, 0));
        assert_eq!(
            watch.observe(&off, counted(10_000.0, 1, 900_000)),
            Verdict::Fine
        );
    }

    #[test]
    fn docker_restarts_count_against_the_hourly_cap() {
        let (rules, mut watch) = (rules(), Watch::default());
        let looping = |at, docker_restarts| Seen {
            docker_restarts,
            ..running(at)
        };
        assert_eq!(watch.observe(&rules, looping(0.0, 7)), Verdict::Fine);
        assert_eq!(watch.observe(&rules, looping(5.0, 9)), Verdict::Fine);
        assert_eq!(watch.observe(&rules, looping(9.0, 10)), Verdict::Fine);
        // Two, then one more, then the fourth: at the cap.
        let Verdict::Fail(reason) = watch.observe(&rules, looping(12.0, 11)) else {
            panic!("expected a failure");
        };
        assert!(reason.contains("last crash-loop"), "{reason}");
        assert_eq!(watch.restarts(), 0, "the restarts were Docker's");
    }
}
