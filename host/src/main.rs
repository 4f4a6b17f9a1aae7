//! `host`: serves each HTTP route from a WebAssembly component.
//!
//! Wiring only. The pieces, each in its own module:
//! `cli` + `config` (settings, parsed once), `engine` (wasmtime engine,
//! linker, component loading), `state` (per-request store data and limits),
//! `guest` (one request through one component), `body` (request and
//! response body guards), `routes` + `labels` (pure rules),
//! `metrics` + `process` (what /metrics shows), `app` (one request end to
//! end), `server` (connections and graceful stop).

mod app;
mod body;
mod cli;
mod config;
mod engine;
mod guest;
mod labels;
mod metrics;
mod process;
mod routes;
mod server;
mod state;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wasmtime::{Result, format_err};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &cli::Args) -> Result<()> {
    let config = config::Config::load(&args.config, &args.overrides())?;
    let fuel = config.routes.iter().any(|r| r.limits.fuel.is_some());
    let engine = engine::WasmEngine::new(&config.pool, fuel)?;
    let metrics = Arc::new(metrics::Metrics::new(&config.metrics_prefix)?);
    let app = Arc::new(app::App::load(&config, &engine, metrics)?);

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format_err!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        println!("webapp listening on http://{addr} (metrics at http://{addr}/metrics)");
        server::serve(listener, app, server::stop_signal(), &config).await;
        Ok(())
    })
}
