//! Which version of a route serves a request: the stable one, or during a
//! canary rollout, a candidate taking a share of the requests, judged
//! against the stable version as both serve.
//!
//! A route serves one [`Serving`], replaced whole (by `swap.rs`) whenever
//! a version starts or stops serving. A request picks its version once, at
//! its start, and runs wholly on it. The split is exact, not random: of
//! every 100 requests in a row, `share` go to the candidate.
//!
//! Judging compares the two versions over the same period (since the
//! rollout started): the candidate is rolled back when its share of 5xx
//! answers, or its p99 latency, is above the stable version's by more than
//! the route's margin, once it has answered `min_requests` (one early error
//! is not a verdict); it is promoted once `healthy_for` has passed since the
//! rollout started, if it has answered `min_requests` by then and every
//! judgement since found it healthy (any that did not rolled it back). This
//! module decides; `swap.rs` carries decisions out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde::Serialize;

use crate::engine::LoadedComponent;
use crate::metrics::{Metrics, VersionMeters};

/// How a route's canaries are judged (`[route.rollout]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Requests the candidate must answer before any verdict.
    pub min_requests: u64,
    /// Rolled back when the candidate's 5xx share exceeds the stable
    /// version's by more than this (a fraction: 0.05 is 5 points).
    pub error_margin: f64,
    /// Rolled back when the candidate's p99 exceeds the stable version's by
    /// more than this fraction of it (0.5: 50 % slower).
    pub p99_margin: f64,
    /// Promoted once this long has passed since the rollout started, with
    /// `min_requests` answered and every judgement healthy.
    pub healthy_for: Duration,
}

pub const DEFAULT_POLICY: Policy = Policy {
    min_requests: 50,
    error_margin: 0.05,
    p99_margin: 0.5,
    healthy_for: Duration::from_secs(60),
};

/// Latency differences below this are noise, whatever the margin says: a
/// version answering in 1 ms is not "slower" than one answering in 0.5 ms.
pub const P99_NOISE: Duration = Duration::from_millis(5);

/// The stable version needs this many requests before its p99 is compared.
const MIN_STABLE_SAMPLES: u64 = 20;

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

/// What decided a rollout; the `reason` label of the decision metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Too many more 5xx answers than the stable version.
    Errors,
    /// p99 latency too far above the stable version's.
    Latency,
    /// Healthy for the whole healthy period.
    Healthy,
    /// Asked for through the admin API.
    Manual,
    /// Another change to the route replaced the rollout.
    Superseded,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Errors,
        Reason::Latency,
        Reason::Healthy,
        Reason::Manual,
        Reason::Superseded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Errors => "errors",
            Self::Latency => "latency",
            Self::Healthy => "healthy",
            Self::Manual => "manual",
            Self::Superseded => "superseded",
        }
    }
}

/// The end of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The candidate becomes the stable version.
    Promote,
    /// The candidate stops serving; the stable version takes every request.
    Rollback,
}

impl Decision {
    pub const ALL: [Decision; 2] = [Decision::Promote, Decision::Rollback];

    pub fn name(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }
}

/// Where a rollout stands, for `GET /routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The candidate has answered fewer than `min_requests`.
    Gathering,
    /// Judged healthy so far; promoted once `healthy_for` has passed.
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
    pub p99_seconds: f64,
}

impl Figures {
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
            "{} requests, {} 5xx ({:.1} %), p99 {:.1} ms",
            self.requests,
            self.errors,
            self.error_share() * 100.0,
            self.p99_seconds * 1e3
        )
    }
}

/// Answers of one version: counts, and latencies for the p99.
struct Answers {
    /// Answers recorded.
    requests: AtomicU64,
    /// Of which 5xx.
    errors: AtomicU64,
    /// Microseconds, 1 µs to 1 hour at 2 significant digits (a few KiB).
    latency: Mutex<Histogram<u64>>,
}

impl Answers {
    fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds"),
            ),
        }
    }

    fn record(&self, status: StatusCode, elapsed: Duration) -> u64 {
        if status.is_server_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency
            .lock()
            .expect("latency lock")
            .saturating_record(micros.max(1));
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn figures(&self) -> Figures {
        let p99 = self
            .latency
            .lock()
            .expect("latency lock")
            .value_at_quantile(0.99);
        Figures {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p99_seconds: p99 as f64 / 1e6,
        }
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
        Self {
            decision,
            reason,
            stable,
            candidate,
            age: rollout.started.elapsed(),
            since_first_request: rollout.first_request.get().map(Instant::elapsed),
        }
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

    /// Records one answer; true when a verdict may now be due (the
    /// candidate has answered enough to be judged).
    pub fn record(&self, arm: Arm, status: StatusCode, elapsed: Duration) -> bool {
        match arm {
            Arm::Stable => {
                self.stable_answers.record(status, elapsed);
                false
            }
            Arm::Candidate => {
                self.candidate_answers.record(status, elapsed) >= self.policy.min_requests
            }
        }
    }

    /// Both versions' figures since the start: (stable, candidate).
    pub fn figures(&self) -> (Figures, Figures) {
        (
            self.stable_answers.figures(),
            self.candidate_answers.figures(),
        )
    }

    pub fn phase(&self) -> Phase {
        if self.ended.load(Ordering::Relaxed) {
            Phase::Ended
        } else if self.candidate_answers.requests.load(Ordering::Relaxed) < self.policy.min_requests
        {
            Phase::Gathering
        } else {
            Phase::Healthy
        }
    }

    /// The verdict the figures give now, if any.
    pub fn judge(&self) -> Option<Verdict> {
        let (stable, candidate) = self.figures();
        let verdict = |decision, reason| {
            Some(Verdict {
                decision,
                reason,
                stable,
                candidate,
                age: self.started.elapsed(),
                since_first_request: self.first_request.get().map(Instant::elapsed),
            })
        };
        if candidate.requests < self.policy.min_requests {
            return None;
        }
        if candidate.error_share() > stable.error_share() + self.policy.error_margin {
            return verdict(Decision::Rollback, Reason::Errors);
        }
        let slower = candidate.p99_seconds - stable.p99_seconds;
        if stable.requests >= MIN_STABLE_SAMPLES
            && slower > stable.p99_seconds * self.policy.p99_margin
            && slower > P99_NOISE.as_secs_f64()
        {
            return verdict(Decision::Rollback, Reason::Latency);
        }
        if self.started.elapsed() >= self.policy.healthy_for {
            return verdict(Decision::Promote, Reason::Healthy);
        }
        None
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
    fn no_verdict_before_the_minimum() {
        let r = rollout(50, DEFAULT_POLICY);
        for _ in 0..DEFAULT_POLICY.min_requests - 1 {
            assert!(!r.record(Arm::Candidate, StatusCode::INTERNAL_SERVER_ERROR, ms(1)));
        }
        assert_eq!(r.phase(), Phase::Gathering);
        assert_eq!(r.judge(), None);
        assert!(r.record(Arm::Candidate, StatusCode::INTERNAL_SERVER_ERROR, ms(1)));
        let verdict = r.judge().expect("a verdict at the minimum");
        assert_eq!(
            (verdict.decision, verdict.reason),
            (Decision::Rollback, Reason::Errors)
        );
        assert_eq!(verdict.candidate.errors, DEFAULT_POLICY.min_requests);
    }

    #[test]
    fn errors_are_judged_against_the_stable_versions() {
        let r = rollout(50, DEFAULT_POLICY);
        // Both fail 10 %: no worse than stable.
        for i in 0..100 {
            let status = if i % 10 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            r.record(Arm::Stable, status, ms(10));
            r.record(Arm::Candidate, status, ms(10));
        }
        assert_eq!(r.judge(), None);
        assert_eq!(r.phase(), Phase::Healthy);
        // 4xx answers are the client's: not errors.
        for _ in 0..100 {
            r.record(Arm::Candidate, StatusCode::NOT_FOUND, ms(10));
        }
        assert_eq!(r.judge(), None);
        // 10 + 20 errors of 220 answers: 13.6 %, within 5 points of 10 %...
        for _ in 0..20 {
            r.record(Arm::Candidate, StatusCode::GATEWAY_TIMEOUT, ms(10));
        }
        assert_eq!(r.judge(), None);
        // ...but 10 + 40 of 240 (20.8 %) is not.
        for _ in 0..20 {
            r.record(Arm::Candidate, StatusCode::GATEWAY_TIMEOUT, ms(10));
        }
        let verdict = r.judge().expect("too many errors");
        assert_eq!(verdict.reason, Reason::Errors);
    }

    #[test]
    fn latency_is_judged_against_the_stable_versions_p99() {
        let r = rollout(50, DEFAULT_POLICY);
        for _ in 0..100 {
            r.record(Arm::Stable, StatusCode::OK, ms(100));
            r.record(Arm::Candidate, StatusCode::OK, ms(140));
        }
        assert_eq!(r.judge(), None, "40 % slower is within a 50 % margin");
        for _ in 0..10 {
            r.record(Arm::Candidate, StatusCode::OK, ms(400));
        }
        let verdict = r.judge().expect("p99 4x the stable one");
        assert_eq!(verdict.reason, Reason::Latency);
        assert!((verdict.candidate.p99_seconds - 0.4).abs() < 0.01);
        assert!((verdict.stable.p99_seconds - 0.1).abs() < 0.01);
    }

    #[test]
    fn tiny_latency_differences_are_noise() {
        let r = rollout(50, DEFAULT_POLICY);
        for _ in 0..100 {
            r.record(Arm::Stable, StatusCode::OK, Duration::from_micros(500));
            r.record(Arm::Candidate, StatusCode::OK, ms(2));
        }
        assert_eq!(r.judge(), None, "4x, but 1.5 ms is below the noise floor");
    }

    #[test]
    fn a_healthy_candidate_is_promoted_after_its_period() {
        let policy = Policy {
            healthy_for: Duration::ZERO,
            ..DEFAULT_POLICY
        };
        let r = rollout(10, policy);
        for _ in 0..DEFAULT_POLICY.min_requests {
            r.record(Arm::Stable, StatusCode::OK, ms(10));
            r.record(Arm::Candidate, StatusCode::OK, ms(10));
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
