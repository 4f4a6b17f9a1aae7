//! `host`: serves each HTTP route from a WebAssembly component.
//!
//! Wiring only. The pieces, each in its own module:
//! `cli` + `config` (settings, parsed once), `source` (what a route's `component` names) with `component_file` (which file
//! serves a route, read with bounds) and `registry` (components pulled from
//! OCI registries, kept by digest), `engine` + `cache` (wasmtime
//! engine, linker, component loading, compiled-code cache), `state`
//! (per-request store data and limits), `guest` (one request through one
//! component), `rollout` + `judge` (canary versions: the split; the verdict), `body` (request and response body guards), `routes` +
//! `labels` (pure rules), `usage` (what a guest costs), `metrics` +
//! `process` (what /metrics shows), `app`
//! (the routes served and one request end to end), `client` (what a
//! client did, so whose a failure is), `server` + `connection`
//! (listeners, connections and their bounds, graceful stop), `control` (the one owner of what serves: the rule,
//! the rollout supervisor, what outlives a restart) with its inputs `watch`
//! and `admin`.

mod admin;
mod app;
mod body;
mod cache;
mod cli;
mod client;
mod component_file;
mod config;
mod connection;
mod control;
mod engine;
mod guest;
mod judge;
mod kernel_limits;
mod labels;
mod metrics;
mod process;
mod registry;
mod rollout;
mod routes;
mod server;
mod source;
mod state;
mod usage;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wasmtime::{Result, format_err};

/// Every request allocates and frees a few dozen small objects across
/// threads (store, WASI context, instances, bodies): mimalloc does that
/// faster than glibc's malloc, and with 10,000 requests in flight it holds
/// less memory (arena commit on demand: `.cargo/config.toml`). The feature
/// `system-allocator` keeps glibc's, for heap profilers that see only it
/// (valgrind's DHAT: where the bytes of a request in flight go).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
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
    let text = config::read_text(&args.config)?;
    let mut config = config::Config::from_text(&text, &args.config, &args.settings)?;
    kernel_limits::fit(&mut config)?;
    let fuel = config.routes.iter().any(|r| r.limits.fuel.is_some());
    let engine = Arc::new(engine::WasmEngine::new(
        &config.pool,
        fuel,
        config.cache_dir.clone(),
        config.cache_max_bytes,
    )?);
    let metrics = Arc::new(metrics::Metrics::new(
        &config.metrics_prefix,
        config.request_metrics,
    )?);
    let registry = Arc::new(registry::Registry::new(
        config.registry.clone(),
        config.cache_dir.as_deref(),
    ));
    let runtime = tokio::runtime::Runtime::new()?;
    // Components from registries are pulled before the routes load (those
    // kept from an earlier run are not: a registry down serves them still).
    for fetched in runtime.block_on(registry.fetch(&config.references(), false)) {
        metrics.observe_change("pull", fetched.result.is_ok());
        fetched.log();
    }
    let control = Arc::new(control::Control::start(
        config.clone(),
        args.config.clone(),
        &text,
        args.settings.clone(),
        engine,
        registry,
        metrics,
    )?);
    let app = control.app().clone();

    runtime.block_on(async {
        if let Some(addr) = config.admin_listen {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format_err!("cannot listen on {addr} (admin API): {e}"))?;
            println!("admin API listening on http://{}", admin.local_addr()?);
            tokio::spawn(admin::serve(
                admin,
                control.clone(),
                config.admin_token.clone(),
                config.http,
            ));
        }
        if let Some(addr) = config.ops_listen {
            let ops = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format_err!("cannot listen on {addr} (ops_listen): {e}"))?;
            println!(
                "probes and metrics listening on http://{} (/metrics, /healthz, /readyz)",
                ops.local_addr()?
            );
            tokio::spawn(server::serve_operator(ops, app.clone(), config.http));
        }
        tokio::spawn(control.clone().supervise());
        if config.watch || config.watch_config {
            let control = control.clone();
            let what = watch::Watched {
                files: config.watch,
                config: config.watch_config,
            };
            tokio::spawn(async move {
                if let Err(e) = watch::run(control, what).await {
                    tracing::error!("file watching stopped: {e:#}");
                }
            });
        }
        let listener = server::listen(config.listen)
            .map_err(|e| format_err!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let stop =
            server::stop_signal().map_err(|e| format_err!("cannot handle stop signals: {e}"))?;
        println!("webapp listening on http://{addr} (metrics at http://{addr}/metrics)");
        server::serve(listener, app, stop, &config).await;
        Ok(())
    })
}
