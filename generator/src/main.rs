//! `generator`: realistic mixed traffic for the webapp.
//!
//! Wiring only: `cli` (flags into a plan), `mix` (weighted paths), `target`
//! (where and how to connect), `load` (closed and open loops), `backoff`
//! (behaving when the target is down), `stats` (per-path results),
//! `report` (progress and summary).

mod backoff;
mod cli;
mod load;
mod mix;
mod report;
mod stats;
mod target;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let plan = match args.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let target = plan.target.url.clone();
    let paths = plan.mix.paths().to_vec();
    let requested_rate = plan.rate;

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let progress = Arc::new(stats::Progress::new(plan.workers));
    let interactive = std::io::stdout().is_terminal() && !args.json;
    let reporter = report::Reporter::start(progress.clone(), interactive, args.report_every);
    tracing::info!("sending traffic to {target}");

    let (stats, elapsed) = load::run(plan, stop, progress).await;
    reporter.finish().await;

    let summary = stats.summary(&paths, elapsed, requested_rate);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("serialisable")
        );
    } else {
        print!("{}", report::table(&summary, &target));
    }
    ExitCode::SUCCESS
}

/// Cancels `stop` on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
async fn stop_on_signal(stop: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing requests in flight");
    stop.cancel();
}
