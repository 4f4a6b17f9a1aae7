//! Command-line flags (each with an environment variable twin, for pods)
//! parsed and checked into a [`Plan`].

use std::time::Duration;

use clap::Parser;

use crate::load::Plan;
use crate::mix::{DEFAULT_PATHS, Mix};
use crate::target::Target;

/// Send realistic mixed HTTP traffic to the webapp and report what came back.
///
/// By default it does what the original demo's generator did: 4 workers, each
/// sending GET to a random one of the five endpoints in a closed loop with a
/// 1 s timeout, forever, against http://webapp:5000. Unlike it, it backs off
/// when the target is down, and on Ctrl-C/SIGTERM or at a limit it prints a
/// per-path summary (statuses, errors by kind, latency p50/p90/p99/max).
/// Logs go to stderr, filtered by RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Base URL of the app under load (http only).
    #[arg(
        long,
        short,
        env = "GENERATOR_TARGET",
        default_value = "http://webapp:5000"
    )]
    pub target: String,

    /// Paths to request, with relative weights: PATH[=WEIGHT],... (no weight = 1).
    #[arg(long, env = "GENERATOR_PATHS", default_value = DEFAULT_PATHS)]
    pub paths: String,

    /// Closed loop: workers, each with one connection, each sending its next
    /// request as soon as the previous one is answered.
    #[arg(long, short, env = "GENERATOR_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// Open loop instead: send this many requests per second on a fixed
    /// schedule whatever the latency. Latency is measured from each request's
    /// scheduled time, so a slow server is not hidden.
    #[arg(long, short, env = "GENERATOR_RATE")]
    pub rate: Option<f64>,

    /// Open loop: most requests in flight at once; beyond it sending waits,
    /// and the wait counts as latency.
    #[arg(long, env = "GENERATOR_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,

    /// Stop after this long, e.g. `30s`, `5m` [default: run until stopped].
    #[arg(long, short, env = "GENERATOR_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests [default: no limit].
    #[arg(long, short = 'n', env = "GENERATOR_REQUESTS")]
    pub requests: Option<u64>,

    /// Give up on a request not fully answered within this long.
    #[arg(long, env = "GENERATOR_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Seed for the path choices, for a reproducible sequence of requests.
    #[arg(long, env = "GENERATOR_SEED")]
    pub seed: Option<u64>,

    /// Print the final summary as JSON on stdout instead of a table.
    #[arg(long, env = "GENERATOR_JSON")]
    pub json: bool,

    /// When stdout is not a terminal (e.g. in a pod), log progress this often.
    #[arg(long, env = "GENERATOR_REPORT_EVERY", default_value = "10s", value_parser = humantime::parse_duration)]
    pub report_every: Duration,
}

/// Bounds that keep every value within what the load loops can schedule
/// and allocate (a rate so low its next request overflows the clock, a
/// billion workers' progress slots).
const MAX_WORKERS: usize = 100_000;
const MAX_IN_FLIGHT: usize = 1_000_000;
const RATES: std::ops::RangeInclusive<f64> = 0.01..=10_000_000.0;

impl Args {
    pub fn plan(&self) -> Result<Plan, String> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(format!(
                "--workers must be between 1 and {MAX_WORKERS}, not {}",
                self.workers
            ));
        }
        if let Some(rate) = self.rate
            && !RATES.contains(&rate)
        {
            return Err(format!(
                "--rate must be between {} and {} requests per second, not {rate}",
                RATES.start(),
                RATES.end()
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(format!(
                "--max-in-flight must be between 1 and {MAX_IN_FLIGHT}, not {}",
                self.max_in_flight
            ));
        }
        if self.timeout.is_zero() || self.report_every.is_zero() {
            return Err("--timeout and --report-every must be above zero".into());
        }
        Ok(Plan {
            target: Target::parse(&self.target).map_err(|e| format!("--target: {e}"))?,
            mix: Mix::parse(&self.paths).map_err(|e| format!("--paths: {e}"))?,
            workers: self.workers,
            rate: self.rate,
            max_in_flight: self.max_in_flight,
            duration: self.duration,
            requests: self.requests,
            timeout: self.timeout,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Plan, String> {
        let mut all = vec!["generator"];
        all.extend_from_slice(args);
        Args::try_parse_from(all).map_err(|e| e.to_string())?.plan()
    }

    #[test]
    fn every_flag_is_documented() {
        Args::command().debug_assert();
        for arg in Args::command().get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn defaults_reproduce_the_original_generator() {
        let plan = parse(&[]).unwrap();
        assert_eq!(plan.target.authority, "webapp:5000");
        assert_eq!(plan.workers, 4);
        assert_eq!(plan.rate, None);
        assert_eq!(plan.timeout, Duration::from_secs(1));
        assert_eq!((plan.duration, plan.requests), (None, None));
        assert_eq!(plan.mix.paths().len(), 5);
    }

    #[test]
    fn limits_and_modes_are_read() {
        let plan = parse(&[
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "50",
            "-d",
            "2s",
            "-n",
            "10",
            "--seed",
            "3",
        ])
        .unwrap();
        assert_eq!(plan.rate, Some(50.0));
        assert_eq!(plan.duration, Some(Duration::from_secs(2)));
        assert_eq!(plan.requests, Some(10));
        assert_eq!(plan.seed, Some(3));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--rate", "-1"]).is_err());
        assert!(parse(&["--rate", "NaN"]).is_err());
        assert!(parse(&["--target", "ftp://x"]).is_err());
        assert!(parse(&["--paths", "nope"]).is_err());
        assert!(parse(&["--timeout", "0s"]).is_err());
        assert!(parse(&["--rate", "1e-300"]).is_err());
        assert!(parse(&["--workers", "100000000"]).is_err());
        let e = parse(&["--paths", "/a b"]).unwrap_err();
        assert!(e.contains("--paths") && e.contains("/a b"), "{e}");
    }
}
