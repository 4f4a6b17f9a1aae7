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
//! A new version may come as a canary (`rollout.rs`): it serves a share of
//! the route's requests next to the stable version until a decision ends
//! the rollout: promote (it becomes the stable version) or roll back (it
//! stops serving). Decisions are made here too, under the same lock: by
//! the admin API, or by the rollout supervisor ([`Control::supervise`]),
//! which judges each rollout when a request says a verdict may be due and
//! a few times a second (for the healthy period). Every rollout ends in
//! exactly one counted, logged decision: a change that replaces a rollout
//! before it ended counts as a rollback, `superseded`. The rollouts under
//! way are recorded (`rollout_file.rs`) so a restart serves the stable
//! versions.
//!
//! The rule for a reload and the admin API: a version swapped in through
//! the admin API, and a rollout under way, keep serving across reloads as
//! long as the reload leaves the route's entry (`component` and limits) as
//! it was; a reload that changes the entry serves what the file now names.
//! The reload's answer lists such routes under `kept_admin_version` and
//! `kept_rollout`. A rebuilt file, seen by the watcher, replaces whatever
//! serves its route (as a canary if the route says so): the latest change
//! wins.

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
use crate::judge::{Decision, Reason};
use crate::metrics::Metrics;
use crate::rollout::{Figures, Phase, Rollout, Serving, Verdict, Version};
use crate::rollout_file::{RolloutFile, UnderWay};

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
    /// A promote or rollback of a route without a rollout under way.
    NoRollout(String),
    /// A promote or rollback of a rollout an automatic decision is ending.
    Deciding(String),
    /// The new version or configuration was refused; the old one serves on.
    Rejected(String),
}

impl std::fmt::Display for SwapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchRoute(path) => write!(f, "no route `{path}`"),
            Self::NoRollout(path) => write!(f, "no rollout is under way on route `{path}`"),
            Self::Deciding(path) => write!(
                f,
                "the rollout on route `{path}` is already ending by an automatic decision \
                 (see the log and GET /routes)"
            ),
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
    /// The share the new version serves as a canary; `None`: all of it.
    pub canary: Option<u8>,
    /// The generation this change made.
    pub generation: u64,
}

/// How a rollout ended.
#[derive(Debug, Serialize)]
pub struct Decided {
    pub path: String,
    pub decision: Decision,
    pub reason: Reason,
    /// The digest serving every request now.
    pub digest: String,
    /// The candidate's digest.
    pub candidate_digest: String,
    /// What each version answered during the rollout.
    pub stable: Figures,
    pub candidate: Figures,
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
    /// Routes whose rollout under way the reload kept.
    pub kept_rollout: Vec<String>,
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
    /// The file the stable version was read from, or `upload`.
    pub file: String,
    /// The stable version's digest, and its first 12 hex digits (the
    /// `version` label of the per-version metrics).
    pub digest: String,
    pub version: String,
    /// Whether the stable version is not what the route's file holds (it
    /// came through the admin API, or a restart held a candidate back): a
    /// reload keeps it while the route's entry is unchanged.
    pub admin_version: bool,
    /// Seconds since the Unix epoch when the serving version was loaded.
    pub loaded_at: f64,
    /// How the serving version was obtained: compiled, memory-cache, disk-cache.
    pub origin: &'static str,
    pub timeout_seconds: f64,
    pub max_memory_bytes: u64,
    pub fuel: Option<u64>,
    /// The share a rebuilt file seen by the watcher serves as a canary.
    pub canary_on_rebuild: Option<u8>,
    /// The rollout under way, if any.
    pub rollout: Option<RolloutInfo>,
}

/// A rollout under way, as `GET /routes` shows it.
#[derive(Debug, Serialize)]
pub struct RolloutInfo {
    pub candidate_digest: String,
    pub candidate_version: String,
    /// The file the candidate was read from, or `upload`.
    pub candidate_file: String,
    /// Percent of the route's requests the candidate serves.
    pub share: u8,
    pub phase: Phase,
    /// Seconds since the Unix epoch when the rollout started, and since.
    pub started_at: f64,
    pub age_seconds: f64,
    /// What each version answered since the rollout started.
    pub stable: Figures,
    pub candidate: Figures,
    /// How it is judged.
    pub min_requests: u64,
    pub error_margin_percent: f64,
    pub latency_margin_percent: f64,
    pub healthy_for_seconds: f64,
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
    /// Where the rollouts under way are recorded, for a restart.
    rollouts: RolloutFile,
    /// Per route, a candidate a restart held back although its file holds
    /// it: the watcher takes it as already seen, so only a new build
    /// starts a rollout again. Written once, before serving.
    held_back: std::sync::OnceLock<std::collections::HashMap<String, UnderWay>>,
}

/// How often rollouts are judged when no request says a verdict is due:
/// the promotion after the healthy period is found within this.
const JUDGE_EVERY: Duration = Duration::from_millis(250);

impl Control {
    pub fn new(
        app: Arc<App>,
        engine: Arc<WasmEngine>,
        config: Config,
        config_path: PathBuf,
        overrides: Settings,
    ) -> Self {
        let rollouts = RolloutFile::new(config.cache_dir.as_deref(), &config_path);
        let control = Self {
            app,
            engine,
            config,
            config_path,
            overrides,
            changes: Mutex::new(0),
            generation: watch::Sender::new(0),
            rollouts,
            held_back: std::sync::OnceLock::new(),
        };
        let metrics = control.app.metrics();
        metrics.set_generation(0);
        for endpoint in control.app.routes().endpoints() {
            metrics.route_added(&endpoint.path);
            publish(metrics, &endpoint.path, None, Some(&endpoint.serving()));
        }
        control
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

    /// Makes `next` serve `endpoint`'s requests: publishes its versions'
    /// shares, retires the versions no longer serving, and records the
    /// rollouts under way. The one place a route's versions change.
    fn serve(&self, endpoint: &Endpoint, next: Serving) -> Arc<Serving> {
        let next = Arc::new(next);
        let previous = endpoint.replace(next.clone());
        publish(
            self.app.metrics(),
            &endpoint.path,
            Some(&previous),
            Some(&next),
        );
        if previous.candidate.is_some() || next.candidate.is_some() {
            self.record_rollouts();
        }
        previous
    }

    /// Writes down the rollouts under way (for a restart).
    fn record_rollouts(&self) {
        if !self.rollouts.kept() {
            return;
        }
        let under_way = self
            .app
            .routes()
            .endpoints()
            .iter()
            .filter_map(|e| {
                let serving = e.serving();
                let stable = &serving.stable.component;
                let Some((candidate, rollout)) = serving.candidate.as_ref() else {
                    // Still held back since a restart: still recorded.
                    let held = self.held_back.get()?.get(e.path.as_ref())?;
                    return (held.stable == stable.digest)
                        .then(|| (e.path.to_string(), held.clone()));
                };
                Some((
                    e.path.to_string(),
                    UnderWay {
                        stable: stable.digest.clone(),
                        stable_file: stable.file.clone(),
                        candidate: candidate.component.digest.clone(),
                        share: rollout.share,
                    },
                ))
            })
            .collect();
        self.rollouts.write(&under_way);
    }

    /// At start, before serving: for each route whose rollout a stop
    /// interrupted, serves its stable version (from the compile cache if
    /// the file holds the candidate now), and says so. Rollouts are not
    /// resumed: a new build, or the admin API, starts one again. A
    /// candidate held back this way stays recorded, so a later restart
    /// holds it back too, and the stable version is kept like one from the
    /// admin API: a reload keeps it while the route's entry is unchanged.
    pub fn restore_stable_versions(&self) {
        let mut held_back = std::collections::HashMap::new();
        let interrupted = self.rollouts.read();
        let routes = self.app.routes();
        for (path, was) in &interrupted {
            let Some(endpoint) = routes.endpoint(path) else {
                continue;
            };
            let serving = endpoint.component();
            let (stable, candidate) = (
                crate::rollout::short_id(&was.stable),
                crate::rollout::short_id(&was.candidate),
            );
            let share = was.share;
            if serving.digest == was.stable {
                tracing::warn!(
                    route = %path,
                    "the host stopped during a rollout ({share}% to {candidate}): serving the \
                     stable version {stable}; the canary is not resumed"
                );
            } else if serving.digest == was.candidate {
                match self.engine.load_compiled(&was.stable) {
                    Ok(mut loaded) => {
                        loaded.via_admin = true;
                        loaded.file = was.stable_file.clone();
                        let version = Version::serving(path, Arc::new(loaded), self.app.metrics());
                        self.serve(endpoint, Serving::stable(version));
                        held_back.insert(path.clone(), was.clone());
                        tracing::warn!(
                            route = %path,
                            "the host stopped during a rollout ({share}% to {candidate}, which \
                             the component file holds): serving the stable version {stable} \
                             from the compile cache; the canary is not resumed (rebuild, or \
                             start it through the admin API)"
                        );
                    }
                    Err(e) => tracing::warn!(
                        route = %path,
                        "the host stopped during a rollout ({share}% to {candidate}, which the \
                         component file holds), but the stable version {stable} cannot be \
                         loaded ({e:#}): serving the file"
                    ),
                }
            } else {
                tracing::warn!(
                    route = %path,
                    "the host stopped during a rollout ({share}% to {candidate}); the component \
                     file has changed since: serving it"
                );
            }
        }
        let _ = self.held_back.set(held_back);
        if !interrupted.is_empty() {
            self.record_rollouts();
        }
    }

    /// The digest the watcher takes as seen in `endpoint`'s file at start:
    /// the stable version's, or the candidate a restart held back.
    pub fn seen_at_start(&self, endpoint: &Endpoint) -> String {
        self.held_back
            .get()
            .and_then(|held| held.get(endpoint.path.as_ref()))
            .map(|was| was.candidate.clone())
            .unwrap_or_else(|| endpoint.component().digest.clone())
    }

    pub fn served(&self) -> Served {
        let generation = *self.generation.borrow();
        let routes = self
            .app
            .routes()
            .endpoints()
            .iter()
            .map(|e| {
                let serving = e.serving();
                let c = &serving.stable.component;
                let rollout = serving.candidate.as_ref().map(|(candidate, rollout)| {
                    let (stable, candidate_figures) = rollout.figures();
                    let policy = rollout.policy;
                    RolloutInfo {
                        candidate_digest: candidate.component.digest.clone(),
                        candidate_version: candidate.id.clone(),
                        candidate_file: file_of(&candidate.component),
                        share: rollout.share,
                        phase: rollout.phase(),
                        started_at: unix_seconds(rollout.started_at),
                        age_seconds: rollout.started.elapsed().as_secs_f64(),
                        stable,
                        candidate: candidate_figures,
                        min_requests: policy.min_requests,
                        error_margin_percent: policy.error_margin * 100.0,
                        latency_margin_percent: policy.latency_margin * 100.0,
                        healthy_for_seconds: policy.healthy_for.as_secs_f64(),
                    }
                });
                RouteInfo {
                    path: e.path.to_string(),
                    component: e.source.display().to_string(),
                    file: file_of(c),
                    digest: c.digest.clone(),
                    version: serving.stable.id.clone(),
                    admin_version: c.via_admin,
                    loaded_at: unix_seconds(c.loaded_at),
                    origin: c.origin.name(),
                    timeout_seconds: e.limits.timeout.as_secs_f64(),
                    max_memory_bytes: e.limits.max_memory_bytes,
                    fuel: e.limits.fuel,
                    canary_on_rebuild: e.rollout.canary,
                    rollout,
                }
            })
            .collect();
        Served { generation, routes }
    }

    /// Replaces the component of route `path` with `source`: whole, or
    /// with `canary`, as a candidate serving that share (1-99 percent) of
    /// the route's requests. A rollout under way on the route ends first
    /// (rolled back, `superseded`).
    pub async fn swap(
        &self,
        path: &str,
        source: Source,
        canary: Option<u8>,
    ) -> Result<Swapped, SwapError> {
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
        let current = endpoint.serving();
        let loaded = loaded.map_err(|e| format!("{e:#}")).and_then(|component| {
            if canary.is_some() && component.digest == current.stable.component.digest {
                Err(format!(
                    "{} is already the stable version of `{path}`: nothing to roll out",
                    &component.digest[..12]
                ))
            } else {
                Ok(component)
            }
        });
        let component = match loaded {
            Ok(component) => component,
            Err(e) => {
                metrics.observe_swap(path, false, elapsed);
                metrics.observe_change(kind, false);
                tracing::warn!(
                    route = %path,
                    "new component rejected ({kind}), the previous one keeps serving: {e}"
                );
                return Err(SwapError::Rejected(e));
            }
        };
        metrics.observe_swap(path, true, elapsed);
        metrics.observe_change(kind, true);
        let from_cache = component.origin != crate::cache::Origin::Compiled;
        let file = file_of(&component);
        self.supersede(path, &current);
        let version = Version::serving(path, Arc::new(component), metrics);
        let digest = version.component.digest.clone();
        let next = match canary {
            None => Serving::stable(version),
            Some(share) => Serving {
                stable: current.stable.clone(),
                candidate: Some((
                    version,
                    Arc::new(Rollout::new(share, endpoint.rollout.policy)),
                )),
            },
        };
        self.serve(&endpoint, next);
        let generation = self.applied(&mut generation);
        let stable = &current.stable.component.digest;
        match canary {
            None => tracing::info!(
                route = %path,
                file = %file,
                from = %&stable[..12],
                to = %&digest[..12],
                generation,
                "swapped in {elapsed:.0?} ({kind})"
            ),
            Some(share) => tracing::info!(
                route = %path,
                file = %file,
                stable = %&stable[..12],
                candidate = %&digest[..12],
                generation,
                "canary started in {elapsed:.0?} ({kind}): the candidate serves {share}% of \
                 requests; {}",
                describe(&endpoint.rollout.policy)
            ),
        }
        Ok(Swapped {
            path: path.to_owned(),
            digest,
            previous_digest: stable.clone(),
            seconds: elapsed.as_secs_f64(),
            from_cache,
            canary,
            generation,
        })
    }

    /// Ends the rollout on `path` by hand (admin API).
    pub async fn decide(&self, path: &str, decision: Decision) -> Result<Decided, SwapError> {
        let mut generation = self.changes.lock().await;
        let routes = self.app.routes();
        let endpoint = routes
            .endpoint(path)
            .ok_or_else(|| SwapError::NoSuchRoute(path.to_owned()))?;
        let serving = endpoint.serving();
        let Some((_, rollout)) = &serving.candidate else {
            return Err(SwapError::NoRollout(path.to_owned()));
        };
        if !rollout.end() {
            return Err(SwapError::Deciding(path.to_owned()));
        }
        let verdict = Verdict::of(rollout, decision, Reason::Manual);
        Ok(self.carry_out(&mut generation, endpoint, &serving, &verdict))
    }

    /// Ends the rollout `serving` holds with `verdict`: the one place a
    /// rollout's decision is applied, counted and logged.
    fn carry_out(
        &self,
        generation: &mut u64,
        endpoint: &Endpoint,
        serving: &Serving,
        verdict: &Verdict,
    ) -> Decided {
        let (candidate, _) = serving.candidate.as_ref().expect("a rollout to end");
        let stays = match verdict.decision {
            Decision::Promote => candidate.clone(),
            Decision::Rollback => serving.stable.clone(),
        };
        let digest = stays.component.digest.clone();
        self.serve(endpoint, Serving::stable(stays));
        let generation = self.applied(generation);
        self.count_decision(&endpoint.path, &candidate.id, verdict);
        Decided {
            path: endpoint.path.to_string(),
            decision: verdict.decision,
            reason: verdict.reason,
            digest,
            candidate_digest: candidate.component.digest.clone(),
            stable: verdict.stable,
            candidate: verdict.candidate,
            generation,
        }
    }

    /// Ends the rollout `serving` holds, if any, because a change replaces
    /// it: a rollback, `superseded`, counted and logged.
    fn supersede(&self, path: &str, serving: &Serving) {
        if let Some((candidate, rollout)) = &serving.candidate {
            rollout.end();
            let verdict = Verdict::of(rollout, Decision::Rollback, Reason::Superseded);
            self.count_decision(path, &candidate.id, &verdict);
        }
    }

    /// Counts and logs the end of a rollout of `candidate` on `path`.
    fn count_decision(&self, path: &str, candidate: &str, verdict: &Verdict) {
        self.app
            .metrics()
            .observe_decision(path, verdict.decision, verdict.reason);
        let (decision, reason) = (verdict.decision.name(), verdict.reason.name());
        let (stable, figures) = (&verdict.stable, &verdict.candidate);
        let first = verdict
            .since_first_request
            .map(|d| format!(" ({d:.1?} after the candidate's first request)"))
            .unwrap_or_default();
        let message = format!(
            "rollout ended, {decision} ({reason}) after {:.1?}{first}: candidate {figures}; \
             stable {stable}",
            verdict.age
        );
        // An automatic rollback is news an operator should see.
        if verdict.decision == Decision::Rollback && verdict.reason != Reason::Manual {
            tracing::warn!(route = %path, candidate, decision, reason, "{message}");
        } else {
            tracing::info!(route = %path, candidate, decision, reason, "{message}");
        }
    }

    /// Judges every rollout until the process ends: when a request says a
    /// verdict may be due, and every [`JUDGE_EVERY`]. A rollback stops the
    /// candidate's share at once, before the change is made under the lock.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.app.verdict_due().notified() => {}
                () = tokio::time::sleep(JUDGE_EVERY) => {}
            }
            for endpoint in self.app.routes().endpoints() {
                let serving = endpoint.serving();
                let Some((_, rollout)) = &serving.candidate else {
                    continue;
                };
                let Some(verdict) = rollout.judge() else {
                    continue;
                };
                if !rollout.end() {
                    continue; // Someone else is ending it.
                }
                let mut generation = self.changes.lock().await;
                // A change made while waiting for the lock may have ended
                // it; a reload that kept it made a new endpoint.
                let routes = self.app.routes();
                let still = routes.endpoint(&endpoint.path).filter(|e| {
                    e.serving()
                        .candidate
                        .as_ref()
                        .is_some_and(|(_, r)| Arc::ptr_eq(r, rollout))
                });
                if let Some(current) = still {
                    self.carry_out(&mut generation, current, &serving, &verdict);
                }
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
        let app = self.app.clone();
        let next = tokio::task::spawn_blocking(move || {
            load_routes(&routes, &engine, app.metrics(), Some(&previous))
        })
        .await
        .map_err(|e| SwapError::Rejected(format!("the loader failed: {e}")))?
        .map_err(rejected)?;

        let mut report = Reloaded::default();
        let metrics = self.app.metrics();
        for new in next.endpoints() {
            let serving = new.serving();
            let path = new.path.to_string();
            let old_endpoint = current.endpoint(&new.path);
            let old = old_endpoint.map(|e| e.serving());
            match &old {
                None => {
                    metrics.route_added(&new.path);
                    report.added.push(path)
                }
                Some(old) if Arc::ptr_eq(old, &serving) && serving.candidate.is_some() => {
                    report.kept_rollout.push(path)
                }
                Some(old) if Arc::ptr_eq(old, &serving) && serving.stable.component.via_admin => {
                    report.kept_admin_version.push(path)
                }
                Some(old)
                    if old.candidate.is_none()
                        && old.stable.component.digest == serving.stable.component.digest
                        && old_endpoint.map(|e| e.limits) == Some(new.limits) =>
                {
                    report.unchanged.push(path)
                }
                Some(_) => report.changed.push(path),
            }
            if let Some(old) = &old
                && !Arc::ptr_eq(old, &serving)
            {
                self.supersede(&new.path, old);
            }
            publish(metrics, &new.path, old.as_deref(), Some(&serving));
        }
        for old in current.endpoints() {
            if next.endpoint(&old.path).is_none() {
                report.removed.push(old.path.to_string());
                let serving = old.serving();
                self.supersede(&old.path, &serving);
                publish(metrics, &old.path, Some(&serving), None);
                metrics.route_removed(&old.path);
            }
        }
        self.app.replace_routes(next);
        self.record_rollouts();
        report.generation = self.applied(generation);
        tracing::info!(
            generation = report.generation,
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            unchanged = ?report.unchanged,
            kept_admin_version = ?report.kept_admin_version,
            kept_rollout = ?report.kept_rollout,
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

/// Publishes what serves `path` now (`after`; `None`: the route is gone)
/// on `/metrics`: each serving version's share, the stable digest, and the
/// retirement of versions `before` had that `after` has not.
fn publish(metrics: &Metrics, path: &str, before: Option<&Serving>, after: Option<&Serving>) {
    let after_shares = after.map(Serving::shares).unwrap_or_default();
    for (version, _) in before.map(Serving::shares).unwrap_or_default() {
        if !after_shares.iter().any(|(v, _)| v.id == version.id) {
            metrics.retire_version(path, &version.id);
        }
    }
    for (version, share) in &after_shares {
        metrics.set_version_share(path, &version.id, *share);
    }
    let digest = |s: &Serving| s.stable.component.digest.clone();
    match (before.map(digest), after.map(digest)) {
        (before, Some(after)) => metrics.set_component(path, before.as_deref(), &after),
        (Some(before), None) => metrics.remove_component(path, &before),
        (None, None) => {}
    }
}

/// Seconds since the Unix epoch, as `GET /routes` shows times.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The file a version was read from, or `upload`, as shown and logged.
fn file_of(component: &LoadedComponent) -> String {
    component
        .file
        .as_ref()
        .map_or("upload".into(), |f| f.display().to_string())
}

/// A policy in words, for the log.
fn describe(policy: &crate::judge::Policy) -> String {
    format!(
        "rolled back once it is surely worse than the stable version by more than {:.1} points \
         of 5xx share or {:.0} % of latency; promoted after {:?} healthy, with {} answers from \
         each version",
        policy.error_margin * 100.0,
        policy.latency_margin * 100.0,
        policy.healthy_for,
        policy.min_requests,
    )
}

/// Loads every route's component; any failure stops the whole load, naming
/// the route's place in the config file. From `previous`: a route whose
/// entry is unchanged and that serves a version from the admin API, or has
/// a rollout under way, keeps what serves it; a route whose file is
/// unchanged keeps its compiled component.
pub fn load_routes(
    routes: &[RouteConfig],
    engine: &WasmEngine,
    metrics: &Metrics,
    previous: Option<&RouteSet>,
) -> Result<RouteSet> {
    let mut loaded = Vec::with_capacity(routes.len());
    for route in routes {
        let before = previous.and_then(|p| p.endpoint(&route.path));
        let kept = before
            .filter(|e| e.source == route.component && e.limits == route.limits)
            .map(|e| e.serving())
            .filter(|serving| serving.stable.component.via_admin || serving.candidate.is_some());
        loaded.push(match kept {
            Some(serving) => Ok(serving),
            None => Err(load_route(route, engine, before.map(|e| e.component()))?),
        });
    }
    // Every route loaded: only now do new versions get their series.
    let endpoints = routes
        .iter()
        .zip(loaded)
        .map(|(route, loaded)| {
            let serving = loaded.unwrap_or_else(|component| {
                Arc::new(Serving::stable(Version::serving(
                    &route.path,
                    component,
                    metrics,
                )))
            });
            Arc::new(Endpoint::new(
                route.path.as_str(),
                route.limits,
                route.component.clone(),
                route.rollout,
                serving,
            ))
        })
        .collect();
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
