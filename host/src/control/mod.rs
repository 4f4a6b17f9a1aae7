//! The control plane: the one owner of what serves each route.
//!
//! Modelled on a Kubernetes controller. The owner keeps, per route, what
//! is *declared* (the config entry, and the digest its file offered when
//! last looked at), the verdicts (versions held back, `store.rs`) and what
//! *serves* (the endpoint's stable version and candidate). Every input, a
//! file event, the watcher's periodic look, a reload, an admin call, a
//! rollout verdict, only asks the owner to look again; the owner takes its
//! lock, reads the route's file *then*, and decides with the one rule
//! (`decide.rs`) from the state as it is under the lock, never from a
//! snapshot taken before waiting for it. Changes happen one at a time, in
//! arrival order; each applied change bumps the generation (`GET /routes`,
//! the `routes_generation` metric) and is counted, logged and answered one
//! way.
//!
//! A new version is compiled off the async threads and linked before
//! anything changes, so a file that is not a wasi:http proxy component, or
//! that does not link, is rejected and the previous version keeps serving.
//!
//! A new version may come as a canary (`rollout.rs`): it serves a share of
//! the route's requests next to the stable version until a decision ends
//! the rollout: promote, or roll back. A rolled-back version is *held
//! back* on its route: no reload, restart, file event of the same bytes or
//! second host on the same config serves it again, until the route's entry
//! changes or an operator names it through the admin API. Every rollout
//! ends in exactly one counted, logged decision; a change that replaces a
//! rollout before it ended counts as a rollback, `superseded` (which holds
//! nothing back: nothing was judged).
//!
//! Files: `decide.rs` the rule and `known.rs` what it is asked with; the
//! inputs `start.rs`, `reload.rs`, `look.rs` (the watcher), `swap.rs` (an
//! operator's version) and `supervise.rs` (the rollout supervisor);
//! `verdicts.rs` how rollouts end; `load.rs` reading and compiling;
//! `store.rs` what outlives the process; `answers.rs` what the admin API is
//! told. This file: the owner and the one place what serves changes.

mod answers;
mod decide;
mod known;
mod load;
mod look;
mod reload;
mod start;
mod store;
mod supervise;
mod swap;
mod verdicts;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, watch};
use wasmtime::{Result, format_err};

use crate::app::{App, Endpoint};
use crate::config::{Config, RouteConfig, Settings};
use crate::engine::{LoadedComponent, WasmEngine};
use crate::judge::Policy;
use crate::metrics::Metrics;
use crate::registry::{OciRef, Registry};
use crate::rollout::{Rollout, Serving, Verdict};

use answers::{Served, held_on, route_info};
pub use answers::{Source, SwapError};
use decide::Observed;
use known::RouteState;
use load::SourceOffer;
use store::{Store, UnderWay};

/// The owner of what serves.
pub struct Control {
    /// The routes served and their endpoints (changed here only).
    app: Arc<App>,
    engine: Arc<WasmEngine>,
    /// Components named by registry references, pulled and kept.
    registry: Arc<Registry>,
    /// The configuration the host started with: a reload may change only
    /// its routes (`Config::fixed_settings_changed`).
    config: Config,
    config_path: PathBuf,
    /// The flags and environment, laid over the file again on a reload.
    overrides: Settings,
    /// What the owner decides from beyond what serves; taken for the whole
    /// of every change.
    owned: Mutex<Owned>,
    /// The generation, published for the watcher (which re-reads what to
    /// watch after each change).
    generation: watch::Sender<u64>,
    /// Held-back versions and this host's rollouts, kept for a restart.
    store: Store,
    /// Verdicts the supervisor reached (and stopped the split for) but has
    /// not carried out yet: a change superseding such a rollout in the
    /// meantime carries its verdict out instead.
    pending: std::sync::Mutex<Vec<(Arc<Rollout>, Verdict)>>,
    /// A copy of the owner's knowledge for `GET /routes`, made at the end
    /// of every change: the answer never waits for a change to finish.
    shown: std::sync::Mutex<Shown>,
}

/// The owner's own knowledge, under its lock.
struct Owned {
    /// Grows by one with every applied change.
    generation: u64,
    /// The digest of the config file's text as last read (at start, by a
    /// reload, or by a look at the file), applied or refused: a look
    /// reloads only when the text differs.
    config_seen: String,
    /// Whether that text was refused: periodic looks try it again quietly
    /// (a component it names may arrive later).
    config_refused: bool,
    /// Per route path.
    routes: HashMap<String, RouteState>,
}

/// Whether `serving` is, whole, the version the route's declaration names:
/// the config file's text was applied (not `config_refused`), and the
/// route serves the digest its file offered last, with no rollout under way.
fn on_declared(state: &RouteState, serving: &Serving, config_refused: bool) -> bool {
    !config_refused
        && serving.candidate.is_none()
        && state.file_seen.as_deref() == Some(serving.stable.component.digest.as_str())
}

/// A copy of the owner's knowledge for `GET /routes`.
#[derive(Debug, Clone, Default)]
struct Shown {
    generation: u64,
    routes: HashMap<String, RouteState>,
    /// The config file's current text was refused.
    config_refused: bool,
}

/// Who asked for a look at the files: the bounded `source` label.
#[derive(Debug, Clone, Copy)]
pub enum Look {
    /// The watcher saw a file event.
    Event,
    /// The watcher's periodic look (and its first, at start).
    Periodic,
}

impl Control {
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Makes sure the components `references` name are kept, pulling
    /// those that are not (without the owner's lock: a slow registry delays
    /// only the change that needs it); with `refresh`, tags alone are
    /// resolved again when `registry.tag_refresh` says. Each pull is counted
    /// (`route_changes_total{source="pull"}`); a failure is logged when
    /// it is new, and is the error a change needing the component is
    /// refused with.
    pub async fn fetch(&self, references: &[OciRef], refresh: bool) {
        for fetched in self.registry.fetch(references, refresh).await {
            self.app
                .metrics()
                .observe_change("pull", fetched.result.is_ok());
            fetched.log();
        }
    }

    /// The config file the route table is read from.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Changes whenever what is served changes.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Records an applied change: the next generation.
    fn applied(&self, owned: &mut Owned) -> u64 {
        owned.generation += 1;
        self.generation.send_replace(owned.generation);
        self.app.metrics().set_generation(owned.generation);
        self.record(owned);
        self.show(owned);
        owned.generation
    }

    /// Copies the owner's knowledge for `GET /routes`, publishes per
    /// route the versions held back and whether it serves its declared
    /// version, and tells the registry side which components serve.
    fn show(&self, owned: &Owned) {
        *self.shown.lock().expect("shown lock") = Shown {
            generation: owned.generation,
            routes: owned.routes.clone(),
            config_refused: owned.config_refused,
        };
        let held = self.store.held_back();
        let routes = self.app.routes();
        // What serves is never evicted from the components kept.
        let serving = routes.endpoints().iter().flat_map(|e| {
            let serving = e.serving();
            let candidate = serving
                .candidate
                .as_ref()
                .map(|(c, _)| c.component.digest.clone());
            std::iter::once(serving.stable.component.digest.clone()).chain(candidate)
        });
        self.registry.in_use(serving.collect());
        for endpoint in routes.endpoints() {
            let Some(state) = owned.routes.get(endpoint.path.as_ref()) else {
                continue;
            };
            let published = crate::metrics::RouteState {
                held_back: held_on(&held, &endpoint.path, state).len(),
                on_declared: on_declared(state, &endpoint.serving(), owned.config_refused),
            };
            self.app
                .metrics()
                .set_route_state(&endpoint.path, Some(published));
        }
    }

    /// Makes `next` serve `endpoint`'s requests and publishes its versions'
    /// shares: the one place a serving route's versions change.
    fn serve(&self, endpoint: &Endpoint, next: Serving) -> Arc<Serving> {
        let next = Arc::new(next);
        let previous = endpoint.replace(next.clone());
        publish(
            self.app.metrics(),
            &endpoint.path,
            Some(&previous),
            Some(&next),
        );
        previous
    }

    /// Writes down this host's rollouts under way and interrupted holds
    /// (for a restart).
    fn record(&self, owned: &Owned) {
        let mut under_way = BTreeMap::new();
        let routes = self.app.routes();
        let mut stables = Vec::new();
        for endpoint in routes.endpoints() {
            let Some(state) = owned.routes.get(endpoint.path.as_ref()) else {
                continue;
            };
            let serving = endpoint.serving();
            let stable = &serving.stable.component;
            let (candidate, share) = match (&serving.candidate, &state.interrupted) {
                (Some((candidate, rollout)), _) => {
                    (candidate.component.digest.clone(), rollout.share)
                }
                (None, Some((candidate, instead))) if *instead == stable.digest => {
                    (candidate.clone(), 0)
                }
                _ => continue,
            };
            stables.push(stable.clone());
            under_way.insert(
                endpoint.path.to_string(),
                UnderWay {
                    entry: state.entry.clone(),
                    stable: stable.digest.clone(),
                    candidate,
                    share,
                },
            );
        }
        let stables: Vec<(&str, &[u8])> = stables
            .iter()
            .map(|c| (c.digest.as_str(), &*c.bytes))
            .collect();
        self.store.record_under_way(&under_way, &stables);
    }

    /// `GET /routes`: what serves now, and what is held back.
    pub fn served(&self) -> Served {
        let Shown {
            generation,
            routes: states,
            config_refused,
        } = self.shown.lock().expect("shown lock").clone();
        let held = self.store.held_back();
        let routes = self
            .app
            .routes()
            .endpoints()
            .iter()
            .map(|e| {
                let state = states.get(e.path.as_ref()).cloned().unwrap_or_default();
                let held_back = held_on(&held, &e.path, &state);
                route_info(e, &state, held_back, config_refused)
            })
            .collect();
        Served {
            generation,
            config_refused,
            routes,
        }
    }

    /// The endpoint of route `path`, or the error naming it.
    fn endpoint(&self, path: &str) -> Result<Arc<Endpoint>, SwapError> {
        self.app
            .routes()
            .endpoint(path)
            .cloned()
            .ok_or_else(|| SwapError::NoSuchRoute(path.to_owned()))
    }

    /// Relative files named to the admin API are taken from here, like
    /// the route table's own.
    fn config_folder(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new(""))
    }
}

/// What serves, as the rule sees it.
fn observed(serving: &Serving) -> Observed<'_> {
    Observed {
        stable: &serving.stable.component.digest,
        candidate: serving
            .candidate
            .as_ref()
            .map(|(c, _)| c.component.digest.as_str()),
    }
}

/// An error naming the route, its place in the config file, and its file
/// or reference.
fn route_error(route: &RouteConfig, e: &dyn std::fmt::Display) -> wasmtime::Error {
    format_err!(
        "{}: route `{}`: cannot load component `{}`: {e}",
        route.defined_at,
        route.path,
        route.component
    )
}

/// Compiles and links what a route's source offers, and logs where it came from.
fn load_offer(
    engine: &WasmEngine,
    route: &RouteConfig,
    offer: SourceOffer,
) -> Result<Arc<LoadedComponent>> {
    let started = Instant::now();
    let component = load::load(engine, &offer.bytes, Some(offer.from.clone()))
        .map_err(|e| route_error(route, &format_args!("{e:#}")))?;
    tracing::info!(
        route = %route.path,
        file = %offer.from,
        digest = %&component.digest[..12],
        "serving, loaded in {:.0?} ({}){}",
        started.elapsed(),
        component.origin.name(),
        offer.newest_of,
    );
    Ok(component)
}

fn new_endpoint(route: &RouteConfig, serving: Arc<Serving>) -> Endpoint {
    Endpoint::new(
        route.path.as_str(),
        route.limits,
        route.component.clone(),
        route.rollout,
        serving,
    )
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

/// A policy in words, for the log.
fn describe(policy: &Policy) -> String {
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
