//! Which version of a route serves a request: the stable one, or during a
//! canary rollout, a candidate taking a share of the requests, judged
//! against the stable version as both serve.
//!
//! A route serves one [`Serving`], replaced whole (by `control/`) whenever
//! a version starts or stops serving. A request picks its version once, at
//! its start, and runs wholly on it. The split is exact, not random: of
//! every 100 requests in a row, `share` go to the candidate.
//!
//! Judging (`judge.rs`) compares the two versions over the same period,
//! since the rollout started: the candidate is rolled back as soon as a
//! sequential test finds it worse than stable by more than the route's
//! margins (5xx share, or latency in its typical answers or its slowest
//! tenth), and promoted once `healthy_for` has passed with both versions
//! having answered `min_requests` and no test against it. This module
//! records the answers and asks; `control/` carries decisions out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::StatusCode;
use serde::Serialize;

use crate::engine::LoadedComponent;
use crate::judge::{self, Decision, Evidence, Policy, Reason};
use crate::metrics::{Metrics, VersionMeters};

/// One component version serving a route, with its per-version series.
pub struct Version {
    /// The compiled, linked component requests run on.
    pub component: Arc<LoadedComponent>,
    /// The digest's first 12 hex digits: the `version` label.
    pub id: String,
    /// `None` with per-request metrics off.
    pub meters: Option<Arc<VersionMeters>>,
}

impl Version {
    /// `component` starting to serve `path`, with its series from `metrics`.
    pub fn serving(path: &str, component: Arc<LoadedComponent>, metrics: &Metrics) -> Arc<Self> {
        let id = short_id(&component.digest);
        Arc::new(Self {
            meters: metrics.version_meters(path, &id),
            id,
            component,
        })
    }
}

/// The `version` label of a digest.
pub fn short_id(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// What serves one route: the stable version, and during a rollout the
/// candidate version with the rollout splitting and judging.
pub struct Serving {
    /// Serves every request without a rollout, the rest during one.
    pub stable: Arc<Version>,
    /// During a rollout: the new version, and the rollout splitting the
    /// requests and judging it.
    pub candidate: Option<(Arc<Version>, Arc<Rollout>)>,
}

/// Which of the two versions a request ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Stable,
    Candidate,
}

impl Serving {
    pub fn stable(version: Arc<Version>) -> Self {
        Self {
            stable: version,
            candidate: None,
        }
    }

    /// The version the next request runs on, and the rollout judging it.
    pub fn pick(&self) -> (&Arc<Version>, Option<(&Arc<Rollout>, Arm)>) {
        match &self.candidate {
            None => (&self.stable, None),
            Some((candidate, rollout)) => match rollout.pick() {
                Arm::Stable => (&self.stable, Some((rollout, Arm::Stable))),
                Arm::Candidate => (candidate, Some((rollout, Arm::Candidate))),
            },
        }
    }

    /// Every version serving, with its share of requests in percent.
    pub fn shares(&self) -> Vec<(&Arc<Version>, u8)> {
        match &self.candidate {
            None => vec![(&self.stable, 100)],
            Some((candidate, r)) => vec![(&self.stable, 100 - r.share), (candidate, r.share)],
        }
    }
}

/// The split of a route's requests between the stable version and a
/// candidate serving `share` % of them, and what both answered since it
/// started.
pub struct Rollout {
    /// Percent of requests the candidate serves, 1-99.
    pub share: u8,
    /// How it is judged (the route's, when it started).
    pub policy: Policy,
    /// When it started: its age, and the healthy period's start.
    pub started: Instant,
    /// The same moment on the wall clock, for `GET /routes`.
    pub started_at: SystemTime,
    /// Requests split so far: the split's position.
    next: AtomicU64,
    /// Set by the first verdict: from then on every request is stable's.
    ended: AtomicBool,
    /// When the candidate got its first request.
    first_request: std::sync::OnceLock<Instant>,
    /// What each version answered since the start.
    stable_answers: Answers,
    candidate_answers: Answers,
}

/// Where a rollout stands, for `GET /routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A version has answered fewer than `min_requests`: not promoted yet
    /// (a rollback may already come).
    Gathering,
    /// Enough evidence and judged healthy so far; promoted once
    /// `healthy_for` has passed.
    Healthy,
    /// Decided; the decision is being carried out.
    Ended,
}

/// What one version answered during a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub requests: u64,
    /// Answers with a 5xx status (guest failures included).
    pub errors: u64,
    /// Latency quantiles (the judge's tail test is about the p90).
    pub p90_seconds: f64,
    pub p99_seconds: f64,
}

impl Figures {
    fn of(evidence: &Evidence) -> Self {
        Self {
            requests: evidence.requests,
            errors: evidence.errors,
            p90_seconds: evidence.latency_at(0.9).as_secs_f64(),
            p99_seconds: evidence.latency_at(0.99).as_secs_f64(),
        }
    }

    fn error_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} 5xx ({:.1} %), p90 {:.1} ms, p99 {:.1} ms",
            self.requests,
            self.errors,
            self.error_share() * 100.0,
            self.p90_seconds * 1e3,
            self.p99_seconds * 1e3
        )
    }
}

/// What one version answered, as the judge weighs it. One short lock per
/// answer (counts and histogram together); the judge copies it out.
struct Answers(Mutex<Evidence>);

impl Answers {
    fn new() -> Self {
        Self(Mutex::new(Evidence::new()))
    }

    /// Records one answer; returns the answers recorded now.
    fn record(&self, status: StatusCode, elapsed: Duration) -> u64 {
        self.0
            .lock()
            .expect("answers lock")
            .record(status.is_server_error(), elapsed)
    }

    fn snapshot(&self) -> Evidence {
        self.0.lock().expect("answers lock").clone()
    }

    fn requests(&self) -> u64 {
        self.0.lock().expect("answers lock").requests
    }
}

/// A verdict on a rollout, with the figures that made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    /// What made it (the `reason` label).
    pub reason: Reason,
    /// Both versions' figures when it was made.
    pub stable: Figures,
    pub candidate: Figures,
    /// How long the rollout had run.
    pub age: Duration,
    /// How long since the candidate's first request (`None`: it had none).
    pub since_first_request: Option<Duration>,
}

impl Verdict {
    /// `decision` for `reason` on `rollout`, with its figures now.
    pub fn of(rollout: &Rollout, decision: Decision, reason: Reason) -> Self {
        let (stable, candidate) = rollout.figures();
        rollout.verdict(decision, reason, stable, candidate)
    }
}

impl Rollout {
    /// A rollout giving a candidate `share` percent (1-99).
    pub fn new(share: u8, policy: Policy) -> Self {
        assert!((1..=99).contains(&share), "share {share} out of 1-99");
        Self {
            share,
            policy,
            started: Instant::now(),
            started_at: SystemTime::now(),
            next: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            first_request: std::sync::OnceLock::new(),
            stable_answers: Answers::new(),
            candidate_answers: Answers::new(),
        }
    }

    /// The arm of the next request: the candidate exactly `share` times in
    /// every 100 requests in a row, spread evenly; once ended, stable.
    fn pick(&self) -> Arm {
        if self.ended.load(Ordering::Relaxed) {
            return Arm::Stable;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let share = u64::from(self.share);
        if (i + 1) * share / 100 > i * share / 100 {
            self.first_request.get_or_init(Instant::now);
            Arm::Candidate
        } else {
            Arm::Stable
        }
    }

    /// Records one answer; true when a verdict may be due now: after each
    /// of the candidate's first answers, then on the judge's schedule
    /// ([`judge::look_due`]). Stable's answers alone wait for the
    /// supervisor's timer.
    pub fn record(&self, arm: Arm, status: StatusCode, elapsed: Duration) -> bool {
        match arm {
            Arm::Stable => {
                self.stable_answers.record(status, elapsed);
                false
            }
            Arm::Candidate => judge::look_due(self.candidate_answers.record(status, elapsed)),
        }
    }

    /// Both versions' evidence since the start: (stable, candidate).
    fn evidence(&self) -> (Evidence, Evidence) {
        (
            self.stable_answers.snapshot(),
            self.candidate_answers.snapshot(),
        )
    }

    /// Both versions' figures since the start: (stable, candidate).
    pub fn figures(&self) -> (Figures, Figures) {
        let (stable, candidate) = self.evidence();
        (Figures::of(&stable), Figures::of(&candidate))
    }

    pub fn phase(&self) -> Phase {
        let evidence = self
            .stable_answers
            .requests()
            .min(self.candidate_answers.requests());
        if self.ended.load(Ordering::Relaxed) {
            Phase::Ended
        } else if evidence < self.policy.min_requests {
            Phase::Gathering
        } else {
            Phase::Healthy
        }
    }

    /// The verdict the evidence gives now, if any (`judge::verdict`).
    pub fn judge(&self) -> Option<Verdict> {
        let (stable, candidate) = self.evidence();
        let healthy_period_over = self.started.elapsed() >= self.policy.healthy_for;
        let (decision, reason) =
            judge::verdict(&self.policy, &stable, &candidate, healthy_period_over)?;
        Some(self.verdict(
            decision,
            reason,
            Figures::of(&stable),
            Figures::of(&candidate),
        ))
    }

    fn verdict(
        &self,
        decision: Decision,
        reason: Reason,
        stable: Figures,
        candidate: Figures,
    ) -> Verdict {
        Verdict {
            decision,
            reason,
            stable,
            candidate,
            age: self.started.elapsed(),
            since_first_request: self.first_request.get().map(Instant::elapsed),
        }
    }

    /// Stops the split (every later request is stable's); true for the
    /// first caller only, who then carries the decision out.
    pub fn end(&self) -> bool {
        !self.ended.swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::DEFAULT_POLICY;

    fn rollout(share: u8, policy: Policy) -> Rollout {
        Rollout::new(share, policy)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_split_is_exact_in_every_hundred() {
        for share in [1u8, 10, 33, 50, 99] {
            let r = rollout(share, DEFAULT_POLICY);
            for _ in 0..3 {
                let candidates = (0..100).filter(|_| r.pick() == Arm::Candidate).count();
                assert_eq!(candidates, usize::from(share), "share {share}");
            }
        }
        // Spread evenly: 10 % is every tenth request.
        let r = rollout(10, DEFAULT_POLICY);
        let arms: Vec<Arm> = (0..20).map(|_| r.pick()).collect();
        assert_eq!(arms[9], Arm::Candidate);
        assert_eq!(arms[19], Arm::Candidate);
        assert_eq!(arms.iter().filter(|a| **a == Arm::Candidate).count(), 2);
    }

    #[test]
    fn an_ended_rollout_sends_everything_to_stable() {
        let r = rollout(99, DEFAULT_POLICY);
        assert!(r.end());
        assert!(!r.end(), "only the first caller ends it");
        assert!((0..100).all(|_| r.pick() == Arm::Stable));
        assert_eq!(r.phase(), Phase::Ended);
    }

    #[test]
    fn a_failing_candidate_is_rolled_back_within_a_few_answers() {
        let r = rollout(50, DEFAULT_POLICY);
        let mut answered = 0;
        let verdict = loop {
            r.record(Arm::Stable, StatusCode::OK, ms(10));
            answered += 1;
            assert!(r.record(Arm::Candidate, StatusCode::INTERNAL_SERVER_ERROR, ms(1)));
            if let Some(verdict) = r.judge() {
                break verdict;
            }
            assert!(answered < 10, "not rolled back after {answered} answers");
        };
        assert_eq!(
            (verdict.decision, verdict.reason),
            (Decision::Rollback, Reason::Errors)
        );
        assert_eq!(verdict.candidate.errors, answered);
        assert_eq!(r.phase(), Phase::Gathering);
    }

    #[test]
    fn client_errors_are_not_the_candidates() {
        let r = rollout(50, DEFAULT_POLICY);
        for _ in 0..200 {
            r.record(Arm::Stable, StatusCode::OK, ms(10));
            r.record(Arm::Candidate, StatusCode::NOT_FOUND, ms(10));
        }
        assert_eq!(r.judge(), None);
        assert_eq!(r.phase(), Phase::Healthy);
        // 30 5xx of 230 answers (13 %) against none of 200.
        for _ in 0..30 {
            r.record(Arm::Candidate, StatusCode::GATEWAY_TIMEOUT, ms(10));
        }
        assert_eq!(r.judge().map(|v| v.reason), Some(Reason::Errors));
    }

    #[test]
    fn the_supervisor_is_woken_on_the_judges_schedule() {
        let r = rollout(50, DEFAULT_POLICY);
        let woken = (0..1000)
            .filter(|_| r.record(Arm::Candidate, StatusCode::OK, ms(10)))
            .count();
        // Every one of the first 128, then 16 per doubling.
        assert_eq!(woken, 128 + 16 + 16 + 15);
        assert!(!r.record(Arm::Stable, StatusCode::INTERNAL_SERVER_ERROR, ms(10)));
    }

    #[test]
    fn the_figures_are_what_each_version_answered() {
        let r = rollout(50, DEFAULT_POLICY);
        for i in 0..100 {
            r.record(Arm::Stable, StatusCode::OK, ms(i + 1));
            let status = if i % 4 == 0 {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::OK
            };
            r.record(Arm::Candidate, status, ms(10));
        }
        let (stable, candidate) = r.figures();
        assert_eq!((stable.requests, stable.errors), (100, 0));
        assert_eq!((candidate.requests, candidate.errors), (100, 25));
        assert!((stable.p90_seconds - 0.090).abs() < 0.001, "{stable}");
        assert!((stable.p99_seconds - 0.099).abs() < 0.001, "{stable}");
        assert!((candidate.p99_seconds - 0.010).abs() < 0.001, "{candidate}");
        assert!(
            candidate.to_string().contains("25 5xx (25.0 %)"),
            "{candidate}"
        );
    }

    #[test]
    fn a_healthy_candidate_is_promoted_after_its_period_with_evidence_on_both() {
        let policy = Policy {
            healthy_for: Duration::ZERO,
            ..DEFAULT_POLICY
        };
        let r = rollout(10, policy);
        for _ in 0..DEFAULT_POLICY.min_requests {
            r.record(Arm::Candidate, StatusCode::OK, ms(10));
        }
        assert_eq!(r.judge(), None, "no answers from stable yet");
        for _ in 0..DEFAULT_POLICY.min_requests {
            r.record(Arm::Stable, StatusCode::OK, ms(10));
        }
        let verdict = r.judge().expect("healthy long enough");
        assert_eq!(
            (verdict.decision, verdict.reason),
            (Decision::Promote, Reason::Healthy)
        );
        // Not before the minimum, however long it has been.
        assert_eq!(rollout(10, policy).judge(), None);
    }
}
