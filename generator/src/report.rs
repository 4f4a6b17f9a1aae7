//! What a person (or a script) sees: live progress while running, and the
//! summary at the end.
//!
//! On a terminal the progress is one live line (indicatif) on stderr; when
//! stdout is not a terminal (a pod, a CI log) it is a plain log line every
//! `--report-every`. The summary goes to stdout: a table, or JSON.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stats::{Progress, Summary};

pub struct Reporter {
    done: CancellationToken,
    task: JoinHandle<()>,
}

impl Reporter {
    pub fn start(progress: Arc<Progress>, interactive: bool, every: Duration) -> Self {
        let done = CancellationToken::new();
        let task = if interactive {
            tokio::spawn(live_line(progress, done.clone()))
        } else {
            tokio::spawn(log_lines(progress, done.clone(), every))
        };
        Self { done, task }
    }

    pub async fn finish(self) {
        self.done.cancel();
        let _ = self.task.await;
    }
}

fn status_line(progress: &Progress, last: &mut (Instant, u64)) -> String {
    let (answered, failed) = progress.snapshot();
    let now = Instant::now();
    let total = answered + failed;
    let rate = (total - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
    *last = (now, total);
    format!("{answered} answered, {failed} failed, {rate:.0} req/s")
}

async fn live_line(progress: Arc<Progress>, done: CancellationToken) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    let mut last = (Instant::now(), 0);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                bar.set_message(status_line(&progress, &mut last));
                bar.tick();
            }
            () = done.cancelled() => break,
        }
    }
    bar.finish_and_clear();
}

async fn log_lines(progress: Arc<Progress>, done: CancellationToken, every: Duration) {
    let mut last = (Instant::now(), 0);
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => tracing::info!("{}", status_line(&progress, &mut last)),
            () = done.cancelled() => break,
        }
    }
}

/// The summary as a fixed-width table.
pub fn table(summary: &Summary, target: &str) -> String {
    let mut out = String::new();
    let rate = match summary.requested_rate {
        Some(r) => format!(", open loop at {r} req/s"),
        None => ", closed loop".into(),
    };
    let _ = writeln!(out, "{target}: {:.1} s{rate}", summary.elapsed_seconds);
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:<22} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path",
        "requests",
        "statuses",
        "timeout",
        "refused",
        "other",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "req/s"
    );
    for row in summary.paths.iter().chain([&summary.total]) {
        let statuses = row
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}:{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let l = &row.latency_ms;
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:<22} {:>7} {:>7} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            row.path,
            row.requests,
            statuses,
            row.errors.timeout,
            row.errors.refused,
            row.errors.other,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            row.rate
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    #[test]
    fn the_table_has_a_row_per_path_and_a_total() {
        let mut stats = Stats::new(2);
        stats.answered(0, 200, Duration::from_millis(20));
        stats.answered(1, 500, Duration::from_millis(2));
        let summary = stats.summary(
            &["/ep_one".into(), "/error".into()],
            Duration::from_secs(1),
            None,
        );
        let text = table(&summary, "http://x:1");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[2].starts_with("/ep_one") && lines[2].contains("200:1"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("/error") && lines[3].contains("500:1"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("all") && lines[4].contains("200:1 500:1"),
            "{text}"
        );
    }
}
