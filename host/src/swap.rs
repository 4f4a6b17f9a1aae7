//! Changing what is served while serving: one route's component, or the
//! whole route table.
//!
//! The file watcher and the admin API both come here, so a swap is done,
//! checked, counted and logged one way. A new version is compiled off the
//! async threads and linked before anything changes, so a file that is not
//! a wasi:http proxy component, or that does not link, is rejected and the
//! previous version keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use crate::app::{App, RouteSet};
use crate::config::{Config, Overrides};
use crate::engine::WasmEngine;

/// What to swap in.
pub enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub enum SwapError {
    NoSuchRoute(String),
    /// The new version or configuration was refused; the old one serves on.
    Rejected(String),
}

impl std::fmt::Display for SwapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchRoute(path) => write!(f, "no route `{path}`"),
            Self::Rejected(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Swapped {
    pub path: String,
    pub digest: String,
    pub previous_digest: String,
    /// Compile (or cache lookup) and link time.
    pub seconds: f64,
    pub from_cache: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteInfo {
    pub path: String,
    pub file: String,
    pub digest: String,
    /// Seconds since the Unix epoch when the serving version was loaded.
    pub loaded_at: f64,
    /// How the serving version was obtained: compiled, memory-cache, disk-cache.
    pub origin: &'static str,
    pub timeout_seconds: f64,
    pub max_memory_bytes: u64,
    pub fuel: Option<u64>,
}

pub struct Control {
    app: Arc<App>,
    engine: Arc<WasmEngine>,
    config_path: PathBuf,
    overrides: Overrides,
    /// Bumped on every route-table reload, so the watcher re-reads what to watch.
    reloads: watch::Sender<u64>,
}

impl Control {
    pub fn new(
        app: Arc<App>,
        engine: Arc<WasmEngine>,
        config_path: PathBuf,
        overrides: Overrides,
    ) -> Self {
        Self {
            app,
            engine,
            config_path,
            overrides,
            reloads: watch::Sender::new(0),
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    pub fn routes(&self) -> Vec<RouteInfo> {
        self.app
            .routes()
            .endpoints()
            .iter()
            .map(|e| {
                let c = e.component();
                RouteInfo {
                    path: e.path.to_string(),
                    file: e.file.display().to_string(),
                    digest: c.digest.clone(),
                    loaded_at: c
                        .loaded_at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64(),
                    origin: c.origin.name(),
                    timeout_seconds: e.limits.timeout.as_secs_f64(),
                    max_memory_bytes: e.limits.max_memory_bytes,
                    fuel: e.limits.fuel,
                }
            })
            .collect()
    }

    /// Replaces the component of route `path` with `source`.
    pub async fn swap(&self, path: &str, source: Source) -> Result<Swapped, SwapError> {
        let routes = self.app.routes();
        let endpoint = routes
            .endpoint(path)
            .cloned()
            .ok_or_else(|| SwapError::NoSuchRoute(path.to_owned()))?;
        let started = Instant::now();
        let engine = self.engine.clone();
        let loaded = tokio::task::spawn_blocking(move || match source {
            Source::File(file) => engine.load(&file),
            Source::Bytes(bytes) => engine.load_bytes(&bytes),
        })
        .await
        .map_err(|e| SwapError::Rejected(format!("the loader failed: {e}")))?;
        let elapsed = started.elapsed();
        let metrics = self.app.metrics();
        match loaded {
            Ok(component) => {
                metrics.observe_swap(path, true, elapsed);
                let (digest, from_cache) = (
                    component.digest.clone(),
                    component.origin != crate::cache::Origin::Compiled,
                );
                let previous = endpoint.replace(Arc::new(component));
                metrics.set_component(path, Some(&previous.digest), &digest);
                tracing::info!(
                    route = path,
                    from = &previous.digest[..12],
                    to = &digest[..12],
                    "swapped in {elapsed:.0?}"
                );
                Ok(Swapped {
                    path: path.to_owned(),
                    digest,
                    previous_digest: previous.digest.clone(),
                    seconds: elapsed.as_secs_f64(),
                    from_cache,
                })
            }
            Err(e) => {
                metrics.observe_swap(path, false, elapsed);
                tracing::warn!(
                    route = path,
                    "new component rejected, the previous one keeps serving: {e:#}"
                );
                Err(SwapError::Rejected(format!("{e:#}")))
            }
        }
    }

    /// Re-reads the config file and serves its route table: routes added,
    /// removed, or changed (component or limits). Other settings need a
    /// restart. A bad file changes nothing.
    pub async fn reload(&self) -> Result<Reloaded, SwapError> {
        let config = Config::load(&self.config_path, &self.overrides)
            .map_err(|e| SwapError::Rejected(format!("{e:#}")))?;
        if !self.engine.meters_fuel() && config.routes.iter().any(|r| r.limits.fuel.is_some()) {
            return Err(SwapError::Rejected(
                "a route now sets `fuel`, but fuel metering is chosen at start: restart the host"
                    .into(),
            ));
        }
        let current = self.app.routes();
        let engine = self.engine.clone();
        let previous = current.clone();
        let routes = config.routes.clone();
        let next =
            tokio::task::spawn_blocking(move || RouteSet::load(&routes, &engine, Some(&previous)))
                .await
                .map_err(|e| SwapError::Rejected(format!("the loader failed: {e}")))?
                .map_err(|e| SwapError::Rejected(format!("{e:#}")))?;

        let mut report = Reloaded::default();
        let metrics = self.app.metrics();
        for new in next.endpoints() {
            let digest = new.component().digest.clone();
            match current.endpoint(&new.path) {
                None => report.added.push(new.path.to_string()),
                Some(old) if old.component().digest == digest && old.limits == new.limits => {
                    report.unchanged.push(new.path.to_string())
                }
                Some(_) => report.changed.push(new.path.to_string()),
            }
            let previous = current
                .endpoint(&new.path)
                .map(|e| e.component().digest.clone());
            metrics.set_component(&new.path, previous.as_deref(), &digest);
        }
        for old in current.endpoints() {
            if next.endpoint(&old.path).is_none() {
                report.removed.push(old.path.to_string());
                metrics.remove_component(&old.path, &old.component().digest);
            }
        }
        self.app.replace_routes(next);
        self.reloads.send_modify(|n| *n += 1);
        tracing::info!(?report.added, ?report.removed, ?report.changed, "route table reloaded");
        Ok(report)
    }
}

/// How long a new file must be quiet before it is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
