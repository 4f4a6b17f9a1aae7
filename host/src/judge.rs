//! The canary judge: whether a candidate version is worse than the stable
//! one it is rolled out beside, from what both answered since the rollout
//! started. Pure: counts and latency histograms in, a decision out; the
//! rollout (`rollout.rs`) records the answers and asks.
//!
//! Three one-sided tests, each asking "is the candidate worse than stable
//! by more than the policy tolerates?", and each rolling back when its
//! z-score reaches [`BOUNDARY`]:
//!
//! - **errors**: the candidate's 5xx share against stable's plus
//!   `error_margin` (a two-proportion z-test, both shares smoothed by one
//!   error and one success, Agresti-Caffo, so a handful of answers is not
//!   taken for certainty);
//! - **latency, typical answer**: a Mann-Whitney U test (from the histogram
//!   buckets, tie-corrected) of the candidate's latencies against stable's
//!   made slower by the tolerance: `stable × (1 + latency_margin) +`
//!   [`LATENCY_NOISE`];
//! - **latency, tail**: a p90 exceedance test: of both samples pooled (the
//!   stable one made slower as above), the slowest 10 %, and whether the
//!   candidate has more than its share of them (hypergeometric z-test: a
//!   permutation test, whatever the latency distribution).
//!
//! The judge looks again after every new answer while the candidate has
//! answered few, then on a schedule ([`look_due`]), and on a timer. Repeated
//! looks are accounted for by one boundary for every look (Pocock's way),
//! set by the seeded simulation at the bottom of this file so that an
//! identical candidate is rolled back in well under 1 % of rollouts over
//! 1,000 candidate answers looked at after every one of them (more looks than
//! the schedule takes). Past that the tolerances keep a version no worse than
//! stable drifting away from the boundary: more evidence makes a false
//! rollback less likely, not more.
//!
//! A rollout is promoted once its healthy period is over and both versions
//! answered at least `min_requests` (evidence on stable's latency too), with
//! no test having reached the boundary.
//!
//! Measured at the default policy (BENCHMARKS.md, "Canary judge: error
//! rates", shares 10 % and 50 %): an identical candidate rolled back in at
//! most 0.3 % of rollouts; one failing every request at its 3rd to 5th
//! answer; 5xx 0 % -> 20 %, or every latency 1.5x (uniform 0-200 ms), within
//! 200 answers in every rollout.
//!
//! Latencies are kept in log-linear buckets of our own rather than an
//! HdrHistogram: the tests walk every bucket at every look, and a plain
//! vector walked with a plain loop keeps that cheap.

use std::time::Duration;

use serde::Serialize;

/// How a route's canaries are judged (`[route.rollout]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Answers each version must have given before the candidate may be
    /// promoted (a rollback needs no minimum: the tests weigh the evidence).
    pub min_requests: u64,
    /// Tolerated excess of the candidate's 5xx share over stable's (a
    /// fraction: 0.02 is 2 points).
    pub error_margin: f64,
    /// Tolerated slowdown of the candidate against stable (a fraction: 0.1
    /// is 10 % slower), on top of [`LATENCY_NOISE`].
    pub latency_margin: f64,
    /// Promoted once this long has passed since the rollout started, with
    /// enough evidence and no test against it.
    pub healthy_for: Duration,
}

pub const DEFAULT_POLICY: Policy = Policy {
    min_requests: 50,
    error_margin: 0.02,
    latency_margin: 0.1,
    healthy_for: Duration::from_secs(60),
};

/// Latency differences below this are noise, whatever the margin says: a
/// version answering in 1 ms is not "slower" than one answering in 0.5 ms.
pub const LATENCY_NOISE: Duration = Duration::from_millis(1);

/// The z-score at which a test rolls the candidate back, at every look;
/// from the simulation below (`judge::simulation`).
pub const BOUNDARY: f64 = 3.5;

/// Each version needs this many answers before latencies are compared: a
/// normal approximation of a rank test on fewer is not to be trusted.
const MIN_LATENCY_SAMPLES: u64 = 10;

/// The quantile the tail test is about.
const TAIL_QUANTILE: f64 = 0.9;

/// Whether the judge should look after the candidate's `answers`-th answer:
/// after every one of the first 128, then 16 times per doubling (every 8th
/// up to 256, every 16th up to 512, ...), so the per-request cost stays one
/// comparison and the supervisor is not woken for every answer of a busy
/// route.
pub fn look_due(answers: u64) -> bool {
    if answers <= 128 {
        return true;
    }
    let step = 1u64 << (answers.ilog2() - 4);
    answers.is_multiple_of(step)
}

/// What decided a rollout; the `reason` label of the decision metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The candidate's 5xx share is above stable's by more than tolerated.
    Errors,
    /// The candidate is slower than stable by more than tolerated, in its
    /// typical answers or in its slowest tenth.
    Latency,
    /// Healthy for the whole healthy period, with enough evidence.
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

/// What one version answered during a rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Answers recorded.
    pub requests: u64,
    /// Of which 5xx (guest failures included).
    pub errors: u64,
    /// Their latencies: answers per bucket (see [`bucket_of`]), up to the
    /// slowest bucket recorded (at most 896 buckets, 7 KiB, for an hour).
    latency: Vec<u64>,
}

/// Latency buckets per doubling of the latency: neighbouring buckets are
/// at most 1/32 (3.1 %) apart, finer than any margin worth setting, and
/// few enough that the judge walks them all at every look.
const SUB_BUCKETS: u64 = 32;

/// Latencies are recorded up to this (an hour, in µs); longer counts as it.
const MAX_MICROS: u64 = 3_600_000_000;

/// The bucket of a latency in µs: exact below 32 µs, then 32 buckets per
/// doubling (log-linear, as HdrHistogram lays them out).
fn bucket_of(micros: u64) -> usize {
    let micros = micros.min(MAX_MICROS);
    if micros < SUB_BUCKETS {
        return micros as usize;
    }
    let octave = micros.ilog2() - SUB_BUCKETS.ilog2();
    let sub = (micros >> octave) - SUB_BUCKETS;
    (SUB_BUCKETS * u64::from(octave + 1) + sub) as usize
}

/// The latency in µs a bucket stands for: the middle of its range.
fn bucket_micros(bucket: usize) -> f64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket as f64;
    }
    let octave = bucket / SUB_BUCKETS - 1;
    let low = (SUB_BUCKETS + bucket % SUB_BUCKETS) << octave;
    low as f64 + ((1u64 << octave) - 1) as f64 / 2.0
}

impl Evidence {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one answer; returns the answers recorded now.
    pub fn record(&mut self, error: bool, elapsed: Duration) -> u64 {
        self.errors += u64::from(error);
        let bucket = bucket_of(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        if bucket >= self.latency.len() {
            self.latency.resize(bucket + 1, 0);
        }
        self.latency[bucket] += 1;
        self.requests += 1;
        self.requests
    }

    /// The latency at `quantile` (0-1), to its bucket; zero without answers.
    pub fn latency_at(&self, quantile: f64) -> Duration {
        let rank = ((quantile.clamp(0.0, 1.0) * self.requests as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_secs_f64(bucket_micros(bucket) / 1e6);
            }
        }
        Duration::ZERO
    }

    /// Every bucket holding answers, ascending: (µs made `slower`, answers).
    /// Plain loops: this runs at every look, thousands of times a second in
    /// the simulation's debug build.
    fn buckets(&self, slower: impl Fn(f64) -> f64) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(self.latency.len());
        for (bucket, &n) in self.latency.iter().enumerate() {
            if n > 0 {
                out.push((slower(bucket_micros(bucket)), n));
            }
        }
        out
    }
}

/// The three tests' z-scores: above [`BOUNDARY`], the candidate is worse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// 5xx share against stable's plus the margin.
    pub errors: f64,
    /// Mann-Whitney, latencies against stable's made slower by the tolerance.
    pub latency_rank: f64,
    /// p90 exceedance, the same way.
    pub latency_tail: f64,
}

/// The z-scores of `candidate` against `stable` under `policy`; a test
/// without the evidence it needs scores zero.
pub fn scores(policy: &Policy, stable: &Evidence, candidate: &Evidence) -> Scores {
    let errors = error_score(policy.error_margin, stable, candidate);
    let (latency_rank, latency_tail) =
        if stable.requests >= MIN_LATENCY_SAMPLES && candidate.requests >= MIN_LATENCY_SAMPLES {
            latency_scores(policy.latency_margin, stable, candidate)
        } else {
            (0.0, 0.0)
        };
    Scores {
        errors,
        latency_rank,
        latency_tail,
    }
}

/// The decision the evidence gives now, if any: a rollback when a test
/// reaches the boundary; a promotion once `healthy_period_over` with both
/// versions at `min_requests`.
pub fn verdict(
    policy: &Policy,
    stable: &Evidence,
    candidate: &Evidence,
    healthy_period_over: bool,
) -> Option<(Decision, Reason)> {
    let scores = scores(policy, stable, candidate);
    if scores.errors >= BOUNDARY {
        return Some((Decision::Rollback, Reason::Errors));
    }
    if scores.latency_rank >= BOUNDARY || scores.latency_tail >= BOUNDARY {
        return Some((Decision::Rollback, Reason::Latency));
    }
    let enough = stable.requests.min(candidate.requests) >= policy.min_requests;
    (healthy_period_over && enough).then_some((Decision::Promote, Reason::Healthy))
}

/// Two-proportion z-score of "the candidate's 5xx share exceeds stable's by
/// more than `margin`", each share smoothed by one error and one success
/// (Agresti-Caffo): with no answers a share is 1/2 with a wide spread, so
/// a few errors on either side decide nothing.
fn error_score(margin: f64, stable: &Evidence, candidate: &Evidence) -> f64 {
    let smoothed = |e: &Evidence| {
        let n = e.requests as f64 + 2.0;
        let p = (e.errors as f64 + 1.0) / n;
        (p, p * (1.0 - p) / n)
    };
    let (pc, vc) = smoothed(candidate);
    let (ps, vs) = smoothed(stable);
    (pc - ps - margin) / (vc + vs).sqrt()
}

/// Mann-Whitney and p90-exceedance z-scores of the candidate's latencies
/// against stable's made slower by the tolerance (`× (1 + margin)` plus the
/// noise floor). Both are rank tests on the pooled buckets, so they hold
/// whatever the latency distribution; both take continuity corrections.
fn latency_scores(margin: f64, stable: &Evidence, candidate: &Evidence) -> (f64, f64) {
    let noise = LATENCY_NOISE.as_micros() as f64;
    let tolerated = stable.buckets(|v| v * (1.0 + margin) + noise);
    let pooled = merge(&candidate.buckets(|v| v), &tolerated);
    let (nc, ns) = (candidate.requests as f64, stable.requests as f64);
    let n = nc + ns;

    // Mann-Whitney: pairs where the candidate is slower, ties counting half.
    let mut u = 0.0;
    let mut stable_below = 0.0;
    let mut ties = 0.0;
    for &(_, c, s) in &pooled {
        let (c, s) = (c as f64, s as f64);
        u += c * (stable_below + s / 2.0);
        stable_below += s;
        let t = c + s;
        ties += t * t * t - t;
    }
    let variance = nc * ns / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let rank = z((u - nc * ns / 2.0).abs() - 0.5, u - nc * ns / 2.0, variance);

    // Exceedance: the slowest tenth of the pooled answers (the whole tie
    // group at the threshold included), and the candidate's part of it.
    let wanted = ((1.0 - TAIL_QUANTILE) * n).ceil();
    let (mut above, mut candidate_above) = (0.0, 0.0);
    for &(_, c, s) in pooled.iter().rev() {
        above += (c + s) as f64;
        candidate_above += c as f64;
        if above >= wanted {
            break;
        }
    }
    let share = above / n;
    let expected = nc * share;
    let variance = nc * share * (1.0 - share) * (n - nc) / (n - 1.0);
    let excess = candidate_above - expected;
    let tail = z(excess.abs() - 0.5, excess, variance);
    (rank, tail)
}

/// A z-score from a deviation already reduced by its continuity correction
/// (`corrected`, of the sign of `raw`); zero without spread.
fn z(corrected: f64, raw: f64, variance: f64) -> f64 {
    if variance <= 0.0 {
        0.0
    } else {
        corrected.max(0.0).copysign(raw) / variance.sqrt()
    }
}

/// Two ascending bucket lists merged: (µs, candidate's, stable's).
fn merge(candidate: &[(f64, u64)], stable: &[(f64, u64)]) -> Vec<(f64, u64, u64)> {
    let mut out = Vec::with_capacity(candidate.len() + stable.len());
    let (mut i, mut j) = (0, 0);
    while i < candidate.len() || j < stable.len() {
        let c = candidate.get(i).map_or(f64::INFINITY, |b| b.0);
        let s = stable.get(j).map_or(f64::INFINITY, |b| b.0);
        if c <= s {
            let tied = if c == s { stable[j].1 } else { 0 };
            out.push((c, candidate[i].1, tied));
            i += 1;
            j += usize::from(c == s);
        } else {
            out.push((s, 0, stable[j].1));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Evidence of `n` answers, `errors` of them 5xx, latencies from `latency(i)`.
    fn answers(n: u64, errors: u64, latency: impl Fn(u64) -> Duration) -> Evidence {
        let mut e = Evidence::new();
        for i in 0..n {
            e.record(i < errors, latency(i));
        }
        e
    }

    /// Spread evenly over 0-`max` ms.
    fn spread(max: u64, n: u64) -> impl Fn(u64) -> Duration {
        move |i| Duration::from_micros(max * 1000 * (i * 7919 % n) / n)
    }

    #[test]
    fn a_candidate_failing_everything_is_rolled_back_within_a_few_answers() {
        let stable = answers(50, 0, |_| ms(10));
        let at = (1..=10)
            .find(|&n| {
                verdict(&DEFAULT_POLICY, &stable, &answers(n, n, |_| ms(1)), false)
                    == Some((Decision::Rollback, Reason::Errors))
            })
            .expect("rolled back within 10 answers");
        assert!(at <= 5, "rolled back at {at}");
        // A few errors alone, against a stable version with few answers,
        // decide nothing.
        let few = answers(3, 0, |_| ms(10));
        assert_eq!(
            verdict(&DEFAULT_POLICY, &few, &answers(2, 2, |_| ms(10)), false),
            None
        );
    }

    #[test]
    fn errors_are_judged_against_the_stable_versions_with_the_margin() {
        let stable = answers(1000, 100, spread(200, 1000));
        let same = answers(1000, 100, spread(200, 1000));
        assert_eq!(verdict(&DEFAULT_POLICY, &stable, &same, false), None);
        // 11 % against 10 %: within the 2-point margin, however much evidence.
        let a_bit_worse = answers(1000, 110, spread(200, 1000));
        assert!(scores(&DEFAULT_POLICY, &stable, &a_bit_worse).errors < 0.0);
        // 20 % against 10 %.
        let worse = answers(1000, 200, spread(200, 1000));
        assert_eq!(
            verdict(&DEFAULT_POLICY, &stable, &worse, true),
            Some((Decision::Rollback, Reason::Errors))
        );
        // 4xx answers are the client's: `record` is told what counts.
    }

    #[test]
    fn a_slower_candidate_is_rolled_back_for_latency() {
        let stable = answers(400, 0, spread(200, 400));
        let slower = answers(200, 0, spread(300, 200));
        let s = scores(&DEFAULT_POLICY, &stable, &slower);
        assert!(
            s.latency_rank >= BOUNDARY && s.latency_tail >= BOUNDARY,
            "{s:?}"
        );
        assert_eq!(
            verdict(&DEFAULT_POLICY, &stable, &slower, false),
            Some((Decision::Rollback, Reason::Latency))
        );
        // Only the slowest fifth slower (its p90 twice stable's): the tail
        // test sees it.
        let tail = answers(400, 0, |i| {
            if i % 5 == 0 {
                ms(400)
            } else {
                spread(200, 400)(i)
            }
        });
        let s = scores(&DEFAULT_POLICY, &stable, &tail);
        assert!(s.latency_tail >= BOUNDARY, "{s:?}");
        // 5 % slower is within the 10 % margin, however much evidence.
        let a_bit = answers(4000, 0, |i| spread(210, 4000)(i));
        let stable = answers(4000, 0, spread(200, 4000));
        let s = scores(&DEFAULT_POLICY, &stable, &a_bit);
        assert!(s.latency_rank < 0.0 && s.latency_tail < 0.0, "{s:?}");
    }

    #[test]
    fn tiny_latency_differences_are_noise() {
        let stable = answers(500, 0, |_| Duration::from_micros(100));
        let candidate = answers(500, 0, |_| Duration::from_micros(900));
        let s = scores(&DEFAULT_POLICY, &stable, &candidate);
        assert!(s.latency_rank < 0.0 && s.latency_tail <= 0.0, "{s:?}");
        assert_eq!(verdict(&DEFAULT_POLICY, &stable, &candidate, false), None);
    }

    #[test]
    fn promotion_needs_the_period_and_evidence_on_both_versions() {
        let enough = answers(DEFAULT_POLICY.min_requests, 0, |_| ms(10));
        let few = answers(DEFAULT_POLICY.min_requests - 1, 0, |_| ms(10));
        let promote = Some((Decision::Promote, Reason::Healthy));
        assert_eq!(verdict(&DEFAULT_POLICY, &enough, &enough, true), promote);
        assert_eq!(verdict(&DEFAULT_POLICY, &enough, &enough, false), None);
        assert_eq!(verdict(&DEFAULT_POLICY, &enough, &few, true), None);
        // Without latency evidence on stable, no promotion.
        assert_eq!(verdict(&DEFAULT_POLICY, &few, &enough, true), None);
        assert_eq!(
            verdict(&DEFAULT_POLICY, &Evidence::new(), &enough, true),
            None
        );
    }

    #[test]
    fn identical_samples_score_about_zero() {
        let policy = Policy {
            latency_margin: 0.0,
            ..DEFAULT_POLICY
        };
        let e = answers(300, 30, spread(200, 300));
        let s = scores(&policy, &e, &e.clone());
        // The noise floor alone leans towards the candidate.
        assert!((-1.0..=0.0).contains(&s.latency_rank), "{s:?}");
        assert!((-1.0..=0.0).contains(&s.latency_tail), "{s:?}");
        assert!(s.errors < 0.0, "{s:?}");
    }

    #[test]
    fn looks_are_every_answer_then_sixteen_per_doubling() {
        assert!((1..=128).all(look_due));
        let looks = |from: u64, to: u64| (from..to).filter(|&n| look_due(n)).count();
        assert_eq!(looks(129, 257), 16);
        assert_eq!(looks(257, 513), 16);
        assert_eq!(looks(1 << 20, 1 << 21), 16);
        assert!(look_due(1 << 20) && !look_due((1 << 20) + 1));
    }
}

/// Seeded simulated rollouts: the judge fed synthetic answers of both
/// versions, interleaved by share as `Rollout` splits requests, and looking
/// after every candidate answer (more looks than [`look_due`] takes). The
/// quick test runs in debug; the big one prints the table of BENCHMARKS.md:
/// `cargo test -p host --release --bin host judge::simulation::table -- --ignored
/// --nocapture`.
#[cfg(test)]
mod simulation {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A latency distribution.
    #[derive(Debug, Clone, Copy)]
    enum Latency {
        /// Uniform from 0 to this many ms (the demo endpoints).
        Uniform(f64),
        /// Log-normal: median in ms, and sigma of its logarithm (1.0: the
        /// p99 is 10 times the median, a heavy tail).
        LogNormal(f64, f64),
    }

    impl Latency {
        fn sample(self, rng: &mut StdRng) -> Duration {
            let ms = match self {
                Latency::Uniform(max) => rng.random::<f64>() * max,
                Latency::LogNormal(median, sigma) => {
                    // Box-Muller: a standard normal from two uniforms.
                    let u1 = 1.0 - rng.random::<f64>();
                    let u2 = rng.random::<f64>();
                    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    median * (sigma * normal).exp()
                }
            };
            Duration::from_secs_f64(ms / 1e3)
        }

        /// The same distribution `factor` times slower.
        fn times(self, factor: f64) -> Self {
            match self {
                Latency::Uniform(max) => Latency::Uniform(max * factor),
                Latency::LogNormal(median, sigma) => Latency::LogNormal(median * factor, sigma),
            }
        }
    }

    /// How one version answers.
    #[derive(Debug, Clone, Copy)]
    struct Behaviour {
        /// Chance an answer is a 5xx.
        errors: f64,
        latency: Latency,
    }

    /// A simulated rollout: both versions' behaviour.
    #[derive(Debug, Clone, Copy)]
    struct Case {
        name: &'static str,
        stable: Behaviour,
        candidate: Behaviour,
    }

    const UNIFORM: Latency = Latency::Uniform(200.0);
    const HEAVY_TAIL: Latency = Latency::LogNormal(50.0, 1.0);

    fn case(name: &'static str, stable: (f64, Latency), candidate: (f64, Latency)) -> Case {
        Case {
            name,
            stable: Behaviour {
                errors: stable.0,
                latency: stable.1,
            },
            candidate: Behaviour {
                errors: candidate.0,
                latency: candidate.1,
            },
        }
    }

    /// Candidates no worse than stable: any rollback is a false one.
    fn identical() -> [Case; 3] {
        [
            case(
                "identical, uniform 0-200 ms",
                (0.0, UNIFORM),
                (0.0, UNIFORM),
            ),
            case("identical, 20 % 5xx", (0.2, UNIFORM), (0.2, UNIFORM)),
            case(
                "identical, log-normal (median 50 ms, sigma 1)",
                (0.0, HEAVY_TAIL),
                (0.0, HEAVY_TAIL),
            ),
        ]
    }

    /// Candidates worse than stable, each to be rolled back.
    fn worse() -> [Case; 6] {
        [
            case("fails every request", (0.0, UNIFORM), (1.0, UNIFORM)),
            case("5xx 0 % -> 20 %", (0.0, UNIFORM), (0.2, UNIFORM)),
            case("5xx 20 % -> 40 %", (0.2, UNIFORM), (0.4, UNIFORM)),
            case(
                "1.5x slower, uniform 0-300 ms",
                (0.0, UNIFORM),
                (0.0, UNIFORM.times(1.5)),
            ),
            case(
                "1.5x slower, log-normal",
                (0.0, HEAVY_TAIL),
                (0.0, HEAVY_TAIL.times(1.5)),
            ),
            case(
                "p90 1.5x, slowest fifth only",
                (0.0, UNIFORM),
                (0.0, UNIFORM),
            ),
        ]
    }

    /// One rollout of `case` at `share` %, judged after the candidate's
    /// answers that `looks` says, up to `answers` of them: the candidate's
    /// answers at the rollback and why, or `None` (not rolled back).
    fn rollout(
        case: &Case,
        share: u64,
        answers: u64,
        looks: fn(u64) -> bool,
        seed: u64,
    ) -> Option<(u64, Reason)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut stable, mut candidate) = (Evidence::new(), Evidence::new());
        let tail_only = case.name.contains("slowest fifth");
        for i in 0.. {
            if (i + 1) * share / 100 > i * share / 100 {
                let b = case.candidate;
                let error = rng.random::<f64>() < b.errors;
                let mut latency = b.latency.sample(&mut rng);
                if tail_only && latency > Duration::from_millis(160) {
                    latency = latency.mul_f64(1.5);
                }
                let n = candidate.record(error, latency);
                if looks(n)
                    && let Some((Decision::Rollback, reason)) =
                        verdict(&DEFAULT_POLICY, &stable, &candidate, false)
                {
                    return Some((n, reason));
                }
                if n == answers {
                    return None;
                }
            } else {
                let b = case.stable;
                let error = rng.random::<f64>() < b.errors;
                stable.record(error, b.latency.sample(&mut rng));
            }
        }
        unreachable!()
    }

    /// What `runs` rollouts of a case did.
    struct Outcome {
        runs: u64,
        /// Candidate answers at each rollback, ascending.
        rolled_back_at: Vec<u64>,
        /// Rollbacks for the wrong reason (errors for a slower candidate...).
        other_reason: u64,
    }

    impl Outcome {
        fn percent(&self, within: u64) -> f64 {
            let n = self.rolled_back_at.iter().filter(|&&n| n <= within).count();
            n as f64 * 100.0 / self.runs as f64
        }

        fn answers_at(&self, quantile: f64) -> String {
            if self.rolled_back_at.is_empty() {
                return "-".into();
            }
            let i = ((self.rolled_back_at.len() - 1) as f64 * quantile).round() as usize;
            self.rolled_back_at[i].to_string()
        }
    }

    fn simulate(
        case: &Case,
        share: u64,
        answers: u64,
        looks: fn(u64) -> bool,
        runs: u64,
    ) -> Outcome {
        let expected = if case.name.contains("5xx") || case.name.contains("fails") {
            Reason::Errors
        } else {
            Reason::Latency
        };
        let mut outcome = Outcome {
            runs,
            rolled_back_at: Vec::new(),
            other_reason: 0,
        };
        for run in 0..runs {
            let seed = share << 32 | run;
            if let Some((n, reason)) = rollout(case, share, answers, looks, seed) {
                outcome.rolled_back_at.push(n);
                outcome.other_reason += u64::from(reason != expected);
            }
        }
        outcome.rolled_back_at.sort_unstable();
        outcome
    }

    /// Rollouts per case in the quick tests: judged on the host's schedule,
    /// quick enough for a debug build.
    const QUICK_RUNS: u64 = 150;

    #[test]
    fn an_identical_candidate_is_rarely_rolled_back() {
        for share in [10, 50] {
            for case in identical() {
                let o = simulate(&case, share, 1000, look_due, QUICK_RUNS);
                assert!(
                    o.percent(1000) <= 1.0,
                    "{}, share {share}: {} % rolled back",
                    case.name,
                    o.percent(1000)
                );
            }
        }
    }

    #[test]
    fn a_worse_candidate_is_rolled_back_soon() {
        for share in [10, 50] {
            let [fails, errors, _, slower, ..] = worse();
            let o = simulate(&fails, share, 10, look_due, QUICK_RUNS);
            assert_eq!(o.percent(10), 100.0, "{}, share {share}", fails.name);
            for case in [errors, slower] {
                let o = simulate(&case, share, 200, look_due, QUICK_RUNS);
                assert!(
                    o.percent(200) >= 99.0 && o.other_reason * 100 <= o.runs,
                    "{}, share {share}: {} % within 200, {} for another reason",
                    case.name,
                    o.percent(200),
                    o.other_reason
                );
            }
        }
    }

    /// The table in BENCHMARKS.md: every case judged after every candidate
    /// answer, up to 1,000 of them.
    #[test]
    #[ignore = "a long run (minutes in release) printing the error-rate table"]
    fn table() {
        const RUNS: u64 = 2000;
        println!(
            "{RUNS} rollouts per row, default policy ({DEFAULT_POLICY:?}), boundary z >= {BOUNDARY}"
        );
        println!(
            "| candidate | share | rolled back (by 1,000 answers) | within 10 | within 200 | \
             for another reason | answers to rollback: median, p99 |"
        );
        println!("|---|---|---|---|---|---|---|");
        for case in identical().into_iter().chain(worse()) {
            for share in [10, 50] {
                let o = simulate(&case, share, 1000, |_| true, RUNS);
                println!(
                    "| {} | {share} % | {:.2} % | {:.2} % | {:.2} % | {} | {}, {} |",
                    case.name,
                    o.percent(1000),
                    o.percent(10),
                    o.percent(200),
                    o.other_reason,
                    o.answers_at(0.5),
                    o.answers_at(0.99),
                );
            }
        }
    }
}
