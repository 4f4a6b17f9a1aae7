//! What one request's guest costs: CPU time, peak linear memory, time inside.
//!
//! - **CPU time** is the time spent polling the guest's futures (its
//!   instantiation and its call, wherever they are polled: on the request's
//!   task or, for a guest still streaming, on a task of its own). A poll of
//!   a guest never blocks (a guest that sleeps on the WASI clock returns
//!   Pending and costs nothing until woken; a spinning one yields at every
//!   epoch tick), so the monotonic time of a poll is, to within preemption,
//!   the CPU time the thread spent on it: 22 ns a clock read, where the
//!   thread CPU clock costs a 500 ns syscall (REFERENCE.md). It includes
//!   the host work done inside those polls for the guest: WASI calls,
//!   copying request and response bodies between the guest and its
//!   streams, instantiation. It excludes the HTTP server's own work:
//!   parsing, routing, writing the response to the socket, metrics.
//! - **Peak memory** is the largest total size of the instance's linear
//!   memories, as the resource limiter sees every growth (the initial size
//!   included).
//! - **Time inside** is the wall time from the start of instantiation to
//!   the guest's end (or its being stopped): with CPU time beside it,
//!   "slow because it sleeps" and "slow because it computes" part ways.
//!
//! A [`GuestUsage`] is shared by the request's guest futures and its
//! memory limiter; when the last of them lets go (the guest has ended) it
//! hands its figures to the report given at its creation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One request's guest's figures, handed over when the guest has ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_memory_bytes: usize,
    pub inside: Duration,
}

/// Where the figures go (counted per route by the caller).
pub type UsageReport = Box<dyn FnOnce(Usage) + Send + Sync>;

pub struct GuestUsage {
    /// Nanoseconds spent polling the guest so far.
    cpu_nanos: AtomicU64,
    /// Total bytes of the instance's linear memories now.
    memory: AtomicUsize,
    /// The largest `memory` has been.
    peak: AtomicUsize,
    /// When the guest's instantiation began.
    started: Instant,
    /// Called once, on drop.
    report: std::sync::Mutex<Option<UsageReport>>,
}

impl GuestUsage {
    pub fn new(report: UsageReport) -> Arc<Self> {
        Arc::new(Self {
            cpu_nanos: AtomicU64::new(0),
            memory: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            started: Instant::now(),
            report: std::sync::Mutex::new(Some(report)),
        })
    }

    /// A linear memory grew from `current` to `desired` bytes.
    pub fn memory_grew(&self, current: usize, desired: usize) {
        let now = self
            .memory
            .fetch_add(desired.saturating_sub(current), Ordering::Relaxed)
            + desired.saturating_sub(current);
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn usage(&self) -> Usage {
        Usage {
            cpu: Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed)),
            peak_memory_bytes: self.peak.load(Ordering::Relaxed),
            inside: self.started.elapsed(),
        }
    }
}

impl Drop for GuestUsage {
    fn drop(&mut self) {
        let report = self.report.get_mut().ok().and_then(Option::take);
        if let Some(report) = report {
            report(self.usage());
        }
    }
}

pin_project_lite::pin_project! {
    /// `inner`, with the time of each poll added to `usage` (when there is one).
    pub struct Timed<F> {
        #[pin]
        inner: F,
        usage: Option<Arc<GuestUsage>>,
    }
}

impl<F> Timed<F> {
    pub fn new(inner: F, usage: Option<Arc<GuestUsage>>) -> Self {
        Self { inner, usage }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(usage) = this.usage else {
            return this.inner.poll(cx);
        };
        let started = Instant::now();
        let polled = this.inner.poll(cx);
        let nanos = started.elapsed().as_nanos() as u64;
        usage.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Arc<GuestUsage>, Arc<std::sync::Mutex<Option<Usage>>>) {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let sink = seen.clone();
        let usage = GuestUsage::new(Box::new(move |u| *sink.lock().unwrap() = Some(u)));
        (usage, seen)
    }

    #[test]
    fn the_peak_is_the_largest_total_of_all_memories() {
        let (usage, seen) = recorder();
        usage.memory_grew(0, 1 << 20); // first memory created
        usage.memory_grew(0, 64 << 10); // second memory created
        usage.memory_grew(1 << 20, 3 << 20);
        drop(usage);
        let u = seen.lock().unwrap().unwrap();
        assert_eq!(u.peak_memory_bytes, (3 << 20) + (64 << 10));
    }

    #[tokio::test]
    async fn polls_that_compute_count_and_waits_do_not() {
        let (usage, seen) = recorder();
        Timed::new(
            async {
                // Busy for 30 ms within one poll...
                let until = Instant::now() + Duration::from_millis(30);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                // ... then waiting 100 ms (Pending, not polled meanwhile).
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
            Some(usage.clone()),
        )
        .await;
        drop(usage);
        let u = seen.lock().unwrap().unwrap();
        assert!(u.cpu >= Duration::from_millis(30), "{u:?}");
        assert!(u.cpu < Duration::from_millis(80), "{u:?}");
        assert!(u.inside >= Duration::from_millis(130), "{u:?}");
    }

    #[test]
    fn the_report_comes_once_when_the_last_holder_lets_go() {
        let (usage, seen) = recorder();
        let other = usage.clone();
        drop(usage);
        assert!(seen.lock().unwrap().is_none());
        drop(other);
        assert!(seen.lock().unwrap().is_some());
    }
}
