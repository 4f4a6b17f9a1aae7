//! What happened, per path: answers by status, errors by kind, latency.
//!
//! Each worker fills its own [`Stats`] (no locks on the hot path); they are
//! merged at the end into a [`Summary`] that is printed as a table or JSON.
//! Shared [`Progress`] counters feed the live progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the request timeout.
    Timeout,
    /// The target refused the connection (nothing listening).
    Refused,
    /// Anything else: reset, DNS failure, protocol error...
    Other,
}

/// Latencies are recorded in microseconds, from 1 µs to 1 hour, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone)]
struct PathStats {
    statuses: BTreeMap<u16, u64>,
    timeouts: u64,
    refused: u64,
    other: u64,
    latency_us: Histogram<u64>,
}

impl PathStats {
    fn new() -> Self {
        Self {
            statuses: BTreeMap::new(),
            timeouts: 0,
            refused: 0,
            other: 0,
            latency_us: new_histogram(),
        }
    }

    fn merge(&mut self, other: &PathStats) {
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.refused += other.refused;
        self.other += other.other;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share their bounds");
    }
}

/// One worker's (or the run's) results, indexed like the mix's paths.
#[derive(Debug, Clone)]
pub struct Stats {
    paths: Vec<PathStats>,
}

impl Stats {
    pub fn new(paths: usize) -> Self {
        Self {
            paths: vec![PathStats::new(); paths],
        }
    }

    pub fn answered(&mut self, path: usize, status: u16, latency: Duration) {
        let p = &mut self.paths[path];
        *p.statuses.entry(status).or_default() += 1;
        p.latency_us
            .saturating_record(latency.as_micros().max(1).try_into().unwrap_or(u64::MAX));
    }

    pub fn failed(&mut self, path: usize, kind: ErrorKind) {
        let p = &mut self.paths[path];
        match kind {
            ErrorKind::Timeout => p.timeouts += 1,
            ErrorKind::Refused => p.refused += 1,
            ErrorKind::Other => p.other += 1,
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.paths.iter_mut().zip(&other.paths) {
            mine.merge(theirs);
        }
    }

    pub fn summary(
        &self,
        paths: &[String],
        elapsed: Duration,
        requested_rate: Option<f64>,
    ) -> Summary {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut total = PathStats::new();
        let mut rows = Vec::with_capacity(paths.len());
        for (path, stats) in paths.iter().zip(&self.paths) {
            total.merge(stats);
            rows.push(PathSummary::new(path, stats, seconds));
        }
        Summary {
            elapsed_seconds: seconds,
            requested_rate,
            total: PathSummary::new("all", &total, seconds),
            paths: rows,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub elapsed_seconds: f64,
    /// The open-loop rate asked for, if any.
    pub requested_rate: Option<f64>,
    pub total: PathSummary,
    pub paths: Vec<PathSummary>,
}

#[derive(Debug, Serialize)]
pub struct PathSummary {
    pub path: String,
    /// Requests sent: answered plus failed.
    pub requests: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    pub errors: Errors,
    /// Latency of answered requests, in milliseconds.
    pub latency_ms: Latency,
    /// Requests per second over the whole run.
    pub rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Errors {
    pub timeout: u64,
    pub refused: u64,
    pub other: u64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl PathSummary {
    fn new(path: &str, s: &PathStats, seconds: f64) -> Self {
        let answered: u64 = s.statuses.values().sum();
        let requests = answered + s.timeouts + s.refused + s.other;
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |quantile: f64| {
            if answered == 0 {
                0.0
            } else {
                ms(s.latency_us.value_at_quantile(quantile))
            }
        };
        Self {
            path: path.to_owned(),
            requests,
            statuses: s.statuses.clone(),
            errors: Errors {
                timeout: s.timeouts,
                refused: s.refused,
                other: s.other,
            },
            latency_ms: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                max: if answered == 0 {
                    0.0
                } else {
                    ms(s.latency_us.max())
                },
            },
            rate: requests as f64 / seconds,
        }
    }
}

/// Live counters for the progress line. Each worker writes its own slot,
/// padded to a cache line, so workers on different cores never contend;
/// the reporter sums them.
#[derive(Debug)]
pub struct Progress {
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    answered: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    pub fn count(&self, slot: usize, answered: bool) {
        let slot = &self.slots[slot % self.slots.len()];
        let counter = if answered {
            &slot.answered
        } else {
            &slot.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (answered, failed) over all slots.
    pub fn snapshot(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |(a, f), slot| {
            (
                a + slot.answered.load(Ordering::Relaxed),
                f + slot.failed.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_answers_errors_and_quantiles() {
        let mut a = Stats::new(2);
        let mut b = Stats::new(2);
        for ms in 1..=100 {
            a.answered(0, 200, Duration::from_millis(ms));
        }
        b.answered(1, 500, Duration::from_millis(5));
        b.failed(1, ErrorKind::Timeout);
        b.failed(1, ErrorKind::Refused);
        b.failed(0, ErrorKind::Other);
        a.merge(&b);
        let s = a.summary(&["/a".into(), "/b".into()], Duration::from_secs(2), None);
        assert_eq!(s.paths[0].requests, 101);
        assert_eq!(s.paths[0].statuses[&200], 100);
        assert_eq!(s.paths[0].errors.other, 1);
        assert!(
            (s.paths[0].latency_ms.p50 - 50.0).abs() < 0.1,
            "{:?}",
            s.paths[0].latency_ms
        );
        assert!((s.paths[0].latency_ms.p99 - 99.0).abs() < 0.1);
        assert!((s.paths[0].latency_ms.max - 100.0).abs() < 0.1);
        assert_eq!(s.paths[1].requests, 3);
        assert_eq!(
            (s.paths[1].errors.timeout, s.paths[1].errors.refused),
            (1, 1)
        );
        assert_eq!(s.total.requests, 104);
        assert_eq!(s.total.rate, 52.0);
    }

    #[test]
    fn progress_sums_every_slot() {
        let p = Progress::new(3);
        p.count(0, true);
        p.count(2, true);
        p.count(5, false);
        assert_eq!(p.snapshot(), (2, 1));
    }

    #[test]
    fn a_path_without_answers_reports_zero_latency() {
        let mut a = Stats::new(1);
        a.failed(0, ErrorKind::Refused);
        let s = a.summary(&["/a".into()], Duration::from_secs(1), Some(10.0));
        assert_eq!(s.paths[0].latency_ms.max, 0.0);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["paths"][0]["errors"]["refused"], 1);
        assert_eq!(json["requested_rate"], 10.0);
    }
}
