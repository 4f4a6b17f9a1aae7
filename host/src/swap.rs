//! Changing what is served while serving: one route's component, or the
//! whole route table. The one owner of those changes.
//!
//! Every change comes here, whoever asks (the admin API's upload and named
//! file, the file watcher, a reload), and takes the same lock for its whole
//! duration: changes happen one at a time, in the order they arrive, and
//! none builds on a route set that another is about to replace. Each applied
//! change bumps the generation number (shown by `GET /routes` and the
//! `routes_generation` metric), and is counted, logged and answered one way.
//!
//! A new version is compiled off the async threads and linked before
//! anything changes, so a file that is not a wasi:http proxy component, or
//! that does not link, is rejected and the previous version keeps serving.
//!
//! The rule for a reload and the admin API: a version swapped in through
//! the admin API keeps serving across reloads as long as the reload leaves
//! its route's entry (`component` and limits) as it was; a reload that
//! changes the entry serves what the file now names. The reload's answer
//! lists such routes under `kept_admin_version`. A rebuilt file, seen by the
//! watcher, replaces whatever serves its route: the latest change wins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Mutex, watch};
use wasmtime::{Result, format_err};

use crate::app::{App, Endpoint, RouteSet};
use crate::component_file;
use crate::config::{Config, RouteConfig, Settings};
use crate::engine::{LoadedComponent, WasmEngine};

/// What to swap in.
pub enum Source {
    /// A file named through the admin API (read with bounds; a relative
    /// path is taken from the config file's folder, like route files).
    File(PathBuf),
    /// Bytes uploaded through the admin API.
    Upload(Vec<u8>),
    /// A routed file the watcher saw change, already read.
    Rebuilt { file: PathBuf, bytes: Vec<u8> },
}

impl Source {
    /// The bounded `source` label of the change metrics.
    fn name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Upload(_) => "upload",
            Self::Rebuilt { .. } => "watch",
        }
    }
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
    /// The generation this change made.
    pub generation: u64,
}

/// What a reload did to each route.
#[derive(Debug, Serialize, Default)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// New component or new limits.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Routes serving a version from the admin API that the reload kept.
    pub kept_admin_version: Vec<String>,
    /// The generation this change made.
    pub generation: u64,
}

/// `GET /routes`: what is served now.
#[derive(Debug, Serialize)]
pub struct Served {
    /// Grows by one with every change to what is served.
    pub generation: u64,
    pub routes: Vec<RouteInfo>,
}

#[derive(Debug, Serialize)]
pub struct RouteInfo {
    pub path: String,
    /// The component file or pattern the config names.
    pub component: String,
    /// The file the serving version was read from, or `upload`.
    pub file: String,
    pub digest: String,
    /// Whether the serving version came through the admin API.
    pub admin_version: bool,
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
    /// The configuration the host started with: a reload may change only
    /// its routes (`Config::fixed_settings_changed`).
    config: Config,
    config_path: PathBuf,
    /// The flags and environment, laid over the file again on a reload.
    overrides: Settings,
    /// Taken for the whole of every change; holds the generation.
    changes: Mutex<u64>,
    /// The generation, published for the watcher (which re-reads what to
    /// watch after each change).
    generation: watch::Sender<u64>,
}

impl Control {
    pub fn new(
        app: Arc<App>,
        engine: Arc<WasmEngine>,
        config: Config,
        config_path: PathBuf,
        overrides: Settings,
    ) -> Self {
        app.metrics().set_generation(0);
        Self {
            app,
            engine,
            config,
            config_path,
            overrides,
            changes: Mutex::new(0),
            generation: watch::Sender::new(0),
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Changes whenever what is served changes.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Records an applied change: the next generation.
    fn applied(&self, generation: &mut u64) -> u64 {
        *generation += 1;
        self.generation.send_replace(*generation);
        self.app.metrics().set_generation(*generation);
        *generation
    }

    pub fn served(&self) -> Served {
        let generation = *self.generation.borrow();
        let routes = self
            .app
            .routes()
            .endpoints()
            .iter()
            .map(|e| {
                let c = e.component();
                RouteInfo {
                    path: e.path.to_string(),
                    component: e.source.display().to_string(),
                    file: c
                        .file
                        .as_ref()
                        .map_or("upload".into(), |f| f.display().to_string()),
                    digest: c.digest.clone(),
                    admin_version: c.via_admin,
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
            .collect();
        Served { generation, routes }
    }

    /// Replaces the component of route `path` with `source`.
    pub async fn swap(&self, path: &str, source: Source) -> Result<Swapped, SwapError> {
        let mut generation = self.changes.lock().await;
        let kind = source.name();
        let routes = self.app.routes();
        let endpoint = routes
            .endpoint(path)
            .cloned()
            .ok_or_else(|| SwapError::NoSuchRoute(path.to_owned()))?;
        let started = Instant::now();
        let engine = self.engine.clone();
        let base = self.config_folder().to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || match source {
            Source::File(file) => engine.load(&base.join(file)).map(|mut loaded| {
                loaded.via_admin = true;
                loaded
            }),
            Source::Upload(bytes) => engine.load_bytes(&bytes).map(|mut loaded| {
                loaded.via_admin = true;
                loaded
            }),
            Source::Rebuilt { file, bytes } => engine.load_bytes(&bytes).map(|mut loaded| {
                loaded.file = Some(file);
                loaded
            }),
        })
        .await
        .map_err(|e| SwapError::Rejected(format!("the loader failed: {e}")))?;
        let elapsed = started.elapsed();
        let metrics = self.app.metrics();
        match loaded {
            Ok(component) => {
                metrics.observe_swap(path, true, elapsed);
                metrics.observe_change(kind, true);
                let (digest, from_cache) = (
                    component.digest.clone(),
                    component.origin != crate::cache::Origin::Compiled,
                );
                let file = component
                    .file
                    .as_ref()
                    .map_or("upload".into(), |f| f.display().to_string());
                let previous = endpoint.replace(Arc::new(component));
                metrics.set_component(path, Some(&previous.digest), &digest);
                let generation = self.applied(&mut generation);
                tracing::info!(
                    route = %path,
                    file = %file,
                    from = %&previous.digest[..12],
                    to = %&digest[..12],
                    generation,
                    "swapped in {elapsed:.0?} ({kind})"
                );
                Ok(Swapped {
                    path: path.to_owned(),
                    digest,
                    previous_digest: previous.digest.clone(),
                    seconds: elapsed.as_secs_f64(),
                    from_cache,
                    generation,
                })
            }
            Err(e) => {
                metrics.observe_swap(path, false, elapsed);
                metrics.observe_change(kind, false);
                tracing::warn!(
                    route = %path,
                    "new component rejected ({kind}), the previous one keeps serving: {e:#}"
                );
                Err(SwapError::Rejected(format!("{e:#}")))
            }
        }
    }

    /// Re-reads the config file and serves its route table: routes added,
    /// removed, or changed (component or limits). Any other setting is fixed
    /// at start: a file that changes one is refused, naming it. A bad file
    /// changes nothing.
    pub async fn reload(&self) -> Result<Reloaded, SwapError> {
        let mut generation = self.changes.lock().await;
        tracing::info!(
            "reloading the route table from {}",
            self.config_path.display()
        );
        let result = self.reload_locked(&mut generation).await;
        self.app.metrics().observe_change("reload", result.is_ok());
        if let Err(e) = &result {
            tracing::warn!("reload refused, nothing changed: {e}");
        }
        result
    }

    async fn reload_locked(&self, generation: &mut u64) -> Result<Reloaded, SwapError> {
        let rejected = |e: wasmtime::Error| SwapError::Rejected(format!("{e:#}"));
        let config = Config::load(&self.config_path, &self.overrides).map_err(rejected)?;
        let fixed = self.config.fixed_settings_changed(&config);
        if !fixed.is_empty() {
            return Err(SwapError::Rejected(format!(
                "a reload changes routes only; this one also changes {}: restart the host for that",
                fixed.join(", ")
            )));
        }
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
            tokio::task::spawn_blocking(move || load_routes(&routes, &engine, Some(&previous)))
                .await
                .map_err(|e| SwapError::Rejected(format!("the loader failed: {e}")))?
                .map_err(rejected)?;

        let mut report = Reloaded::default();
        let metrics = self.app.metrics();
        for new in next.endpoints() {
            let component = new.component();
            let path = new.path.to_string();
            match current.endpoint(&new.path) {
                None => report.added.push(path),
                Some(old) if Arc::ptr_eq(&old.component(), &component) && component.via_admin => {
                    report.kept_admin_version.push(path)
                }
                Some(old)
                    if old.component().digest == component.digest && old.limits == new.limits =>
                {
                    report.unchanged.push(path)
                }
                Some(_) => report.changed.push(path),
            }
            let previous = current
                .endpoint(&new.path)
                .map(|e| e.component().digest.clone());
            metrics.set_component(&new.path, previous.as_deref(), &component.digest);
        }
        for old in current.endpoints() {
            if next.endpoint(&old.path).is_none() {
                report.removed.push(old.path.to_string());
                metrics.remove_component(&old.path, &old.component().digest);
            }
        }
        self.app.replace_routes(next);
        report.generation = self.applied(generation);
        tracing::info!(
            generation = report.generation,
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            unchanged = ?report.unchanged,
            kept_admin_version = ?report.kept_admin_version,
            "route table reloaded"
        );
        Ok(report)
    }

    /// Relative files named to the admin API are taken from here, like
    /// the route table's own.
    fn config_folder(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new(""))
    }
}

/// Loads every route's component; any failure stops the whole load, naming
/// the route's place in the config file. From `previous`: a route whose
/// entry is unchanged and that serves a version from the admin API keeps
/// it; a route whose file is unchanged keeps its compiled component.
pub fn load_routes(
    routes: &[RouteConfig],
    engine: &WasmEngine,
    previous: Option<&RouteSet>,
) -> Result<RouteSet> {
    let mut endpoints = Vec::with_capacity(routes.len());
    for route in routes {
        let before = previous.and_then(|p| p.endpoint(&route.path));
        let kept_admin = before.filter(|e| {
            e.source == route.component && e.limits == route.limits && e.component().via_admin
        });
        let component = match kept_admin {
            Some(endpoint) => endpoint.component(),
            None => load_route(route, engine, before.map(|e| e.component()))?,
        };
        endpoints.push(Arc::new(Endpoint::new(
            route.path.as_str(),
            route.limits,
            route.component.clone(),
            component,
        )));
    }
    Ok(RouteSet::new(endpoints))
}

/// Resolves, reads and loads one route's component (reusing `previous` when
/// the bytes are the same), and logs which file serves.
fn load_route(
    route: &RouteConfig,
    engine: &WasmEngine,
    previous: Option<Arc<LoadedComponent>>,
) -> Result<Arc<LoadedComponent>> {
    let started = Instant::now();
    let fail = |e: &dyn std::fmt::Display| {
        format_err!(
            "{}: route `{}`: cannot load component `{}`: {e}",
            route.defined_at,
            route.path,
            route.component.display()
        )
    };
    let resolved = component_file::resolve(&route.component).map_err(|e| fail(&e))?;
    let bytes = component_file::read(&resolved.file, component_file::MAX_COMPONENT_BYTES)
        .map_err(|e| fail(&e))?;
    let digest = crate::cache::digest(&bytes);
    let component = match previous.filter(|c| c.digest == digest && !c.via_admin) {
        Some(component) => component,
        None => {
            let mut loaded = engine
                .load_bytes(&bytes)
                .map_err(|e| fail(&format_args!("{e:#}")))?;
            loaded.file = Some(resolved.file.clone());
            Arc::new(loaded)
        }
    };
    tracing::info!(
        route = %route.path,
        file = %resolved.file.display(),
        digest = %&component.digest[..12],
        "serving, loaded in {:.0?} ({}){}",
        started.elapsed(),
        component.origin.name(),
        newest_of(&resolved),
    );
    Ok(component)
}

/// How a log line says which of several builds was picked, if there were several.
pub fn newest_of(resolved: &component_file::Resolved) -> String {
    if resolved.others.is_empty() {
        return String::new();
    }
    let others: Vec<String> = resolved
        .others
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "; the newest of {} matching files (also: {})",
        others.len() + 1,
        others.join(", ")
    )
}

/// How long a new file must be quiet before it is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
