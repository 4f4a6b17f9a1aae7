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
//! Files: `decide.rs` the rule; `start.rs`, `reload.rs` and this file's
//! `look_at_files` and `swap` its inputs; `supervise.rs` the rollout
//! supervisor; `load.rs` reading and compiling; `store.rs` what outlives
//! the process; `answers.rs` what the admin API is told.

mod answers;
mod decide;
mod known;
mod load;
mod reload;
mod start;
mod store;
mod supervise;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{Mutex, watch};
use wasmtime::{Result, format_err};

use crate::app::{App, Endpoint};
use crate::config::{Config, RouteConfig, Settings};
use crate::engine::{LoadedComponent, WasmEngine};
use crate::judge::{Decision, Policy, Reason};
use crate::metrics::Metrics;
use crate::rollout::{Rollout, Serving, Verdict, Version};

use answers::{Decided, Served, Swapped, file_of, held_on, route_info, unix_seconds};
pub use answers::{Source, SwapError};
use decide::{Action, Known, Observed, Offer, decide};
use known::{RouteState, held_instead};
use load::{FileOffer, newest_of};
use store::{Held, HoldReason, Store, UnderWay};

/// The owner of what serves.
pub struct Control {
    /// The routes served and their endpoints (changed here only).
    app: Arc<App>,
    engine: Arc<WasmEngine>,
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
    shown: std::sync::Mutex<(u64, HashMap<String, RouteState>)>,
}

/// The owner's own knowledge, under its lock.
struct Owned {
    /// Grows by one with every applied change.
    generation: u64,
    /// Per route path.
    routes: HashMap<String, RouteState>,
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

    /// Copies the owner's knowledge for `GET /routes`, and publishes the
    /// held-back versions per route.
    fn show(&self, owned: &Owned) {
        *self.shown.lock().expect("shown lock") = (owned.generation, owned.routes.clone());
        let held = self.store.held_back();
        for (path, state) in &owned.routes {
            let count = held_on(&held, path, state).len();
            self.app.metrics().set_held_back(path, Some(count));
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
        for endpoint in self.app.routes().endpoints() {
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
            self.store.keep_bytes(&stable.digest, &stable.bytes);
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
        self.store.record_under_way(&under_way);
    }

    /// `GET /routes`: what serves now, and what is held back.
    pub fn served(&self) -> Served {
        let (generation, states) = self.shown.lock().expect("shown lock").clone();
        let held = self.store.held_back();
        let routes = self
            .app
            .routes()
            .endpoints()
            .iter()
            .map(|e| {
                let state = states.get(e.path.as_ref()).cloned().unwrap_or_default();
                let held_back = held_on(&held, &e.path, &state);
                route_info(e, &state, held_back)
            })
            .collect();
        Served { generation, routes }
    }

    /// Serves `source` on route `path` (admin API): whole, or with
    /// `canary`, as a candidate serving that share (1-99 percent) of the
    /// route's requests. Naming a version releases a hold on it. A rollout
    /// under way on the route ends first (rolled back, `superseded`).
    pub async fn swap(
        &self,
        path: &str,
        source: Source,
        canary: Option<u8>,
    ) -> Result<Swapped, SwapError> {
        let mut owned = self.owned.lock().await;
        let kind = source.name();
        let endpoint = self.endpoint(path)?;
        let started = Instant::now();
        let engine = self.engine.clone();
        let base = self.config_folder().to_path_buf();
        let loaded = load::blocking(move || match source {
            Source::File(file) => {
                let file = base.join(file);
                let bytes =
                    crate::component_file::read(&file, crate::component_file::MAX_COMPONENT_BYTES)
                        .map_err(wasmtime::Error::msg)?;
                load::load(&engine, &bytes, Some(file))
            }
            Source::Upload(bytes) => load::load(&engine, &bytes, None),
        })
        .await;
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
        let Action::Serve { canary } = decide(&Known::default(), Offer::Admin { canary }) else {
            unreachable!("a version an operator names always serves")
        };
        let component = self.accepted(path, kind, started, loaded)?;
        let digest = component.digest.clone();
        self.store.release(path, |h| h.digest == digest);
        if let Some(state) = owned.routes.get_mut(path)
            && state
                .interrupted
                .as_ref()
                .is_some_and(|(c, _)| *c == digest)
        {
            state.interrupted = None;
        }
        Ok(self.change(&mut owned, &endpoint, component, canary, kind, started))
    }

    /// Counts a loaded (or refused) new version; the refusal is answered.
    fn accepted(
        &self,
        path: &str,
        kind: &str,
        started: Instant,
        loaded: Result<Arc<LoadedComponent>, String>,
    ) -> Result<Arc<LoadedComponent>, SwapError> {
        let metrics = self.app.metrics();
        let elapsed = started.elapsed();
        metrics.observe_swap(path, loaded.is_ok(), elapsed);
        metrics.observe_change(kind, loaded.is_ok());
        loaded.map_err(|e| {
            tracing::warn!(
                route = %path,
                "new component rejected ({kind}), the previous one keeps serving: {e}"
            );
            SwapError::Rejected(e)
        })
    }

    /// Serves `component` on `endpoint`, whole or as a canary, ending the
    /// rollout under way (superseded); logs and answers the change.
    fn change(
        &self,
        owned: &mut Owned,
        endpoint: &Endpoint,
        component: Arc<LoadedComponent>,
        canary: Option<u8>,
        kind: &str,
        started: Instant,
    ) -> Swapped {
        let elapsed = started.elapsed();
        let path = &endpoint.path;
        let current = endpoint.serving();
        let from_cache = component.origin != crate::cache::Origin::Compiled;
        let file = file_of(&component);
        self.supersede(owned, path, &current);
        let version = Version::serving(path, component, self.app.metrics());
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
        self.serve(endpoint, next);
        let generation = self.applied(owned);
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
        Swapped {
            path: path.to_string(),
            digest,
            previous_digest: stable.clone(),
            seconds: elapsed.as_secs_f64(),
            from_cache,
            canary,
            generation,
        }
    }

    /// Ends the rollout on `path` by hand (admin API). A version rolled
    /// back by hand is held back like any other.
    pub async fn decide(&self, path: &str, decision: Decision) -> Result<Decided, SwapError> {
        let mut owned = self.owned.lock().await;
        let endpoint = self.endpoint(path)?;
        let serving = endpoint.serving();
        let Some((_, rollout)) = &serving.candidate else {
            return Err(SwapError::NoRollout(path.to_owned()));
        };
        if !rollout.end() {
            return Err(SwapError::Deciding(path.to_owned()));
        }
        let verdict = Verdict::of(rollout, decision, Reason::Manual);
        Ok(self.carry_out(&mut owned, &endpoint, &serving, &verdict))
    }

    /// Ends the rollout `serving` holds with `verdict`: the one place a
    /// rollout's decision is applied, counted and logged. A rollback holds
    /// the candidate back on the route.
    fn carry_out(
        &self,
        owned: &mut Owned,
        endpoint: &Endpoint,
        serving: &Serving,
        verdict: &Verdict,
    ) -> Decided {
        let (candidate, rollout) = serving.candidate.as_ref().expect("a rollout to end");
        // Another host on this config rolled the candidate back meanwhile:
        // its verdict holds here too, and a healthy period is no promotion.
        let held_elsewhere = verdict.reason == Reason::Healthy
            && owned
                .routes
                .get(endpoint.path.as_ref())
                .is_some_and(|state| {
                    held_instead(
                        &self.store.held_back(),
                        state,
                        &endpoint.path,
                        &candidate.component.digest,
                    )
                    .is_some()
                });
        let overruled;
        let verdict = if held_elsewhere {
            tracing::warn!(
                route = %endpoint.path,
                candidate = %candidate.id,
                "not promoted: the candidate is held back on this route (another host on this \
                 config rolled it back)"
            );
            overruled = Verdict::of(rollout, Decision::Rollback, Reason::Superseded);
            &overruled
        } else {
            verdict
        };
        let stays = match verdict.decision {
            Decision::Promote => candidate.clone(),
            Decision::Rollback => serving.stable.clone(),
        };
        if verdict.decision == Decision::Rollback {
            self.hold_back(owned, &endpoint.path, serving);
        }
        let digest = stays.component.digest.clone();
        self.serve(endpoint, Serving::stable(stays));
        let generation = self.applied(owned);
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

    /// Holds the candidate of `serving` back on `path`, with its stable
    /// version recorded (and its bytes kept) to serve instead.
    fn hold_back(&self, owned: &Owned, path: &str, serving: &Serving) {
        let (Some((candidate, _)), Some(state)) = (&serving.candidate, owned.routes.get(path))
        else {
            return;
        };
        let stable = &serving.stable.component;
        self.store.keep_bytes(&stable.digest, &stable.bytes);
        self.store.hold(Held {
            route: path.to_owned(),
            entry: state.entry.clone(),
            digest: candidate.component.digest.clone(),
            instead: stable.digest.clone(),
            reason: HoldReason::RolledBack,
            since: unix_seconds(SystemTime::now()),
        });
    }

    /// Ends the rollout `serving` holds, if any, because a change replaces
    /// it: a rollback, `superseded`, counted and logged, holding nothing
    /// back; unless the supervisor had already reached a verdict on it and
    /// was waiting for the lock to carry it out: then that verdict is what
    /// ends it (counted as itself, and a rollback holds the candidate back).
    fn supersede(&self, owned: &Owned, path: &str, serving: &Serving) {
        let Some((candidate, rollout)) = &serving.candidate else {
            return;
        };
        rollout.end();
        let verdict = self
            .take_pending(rollout)
            .unwrap_or_else(|| Verdict::of(rollout, Decision::Rollback, Reason::Superseded));
        if verdict.decision == Decision::Rollback && verdict.reason != Reason::Superseded {
            self.hold_back(owned, path, serving);
        }
        self.count_decision(path, &candidate.id, &verdict);
    }

    /// The verdict the supervisor reached on `rollout` and has not carried
    /// out yet, taken (so it is carried out once).
    fn take_pending(&self, rollout: &Arc<Rollout>) -> Option<Verdict> {
        let mut pending = self.pending.lock().expect("pending lock");
        let at = pending.iter().position(|(r, _)| Arc::ptr_eq(r, rollout))?;
        Some(pending.swap_remove(at).1)
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

    /// Looks at every route's file again (the watcher's only call): under
    /// the lock, each route's file is read *now* and the rule decides.
    pub async fn look_at_files(&self, look: Look) {
        let mut owned = self.owned.lock().await;
        for endpoint in self.app.routes().endpoints() {
            self.look_at_file(&mut owned, endpoint, look).await;
        }
        self.show(&owned);
    }

    /// Looks at one route's file again, and acts on what the rule says.
    async fn look_at_file(&self, owned: &mut Owned, endpoint: &Arc<Endpoint>, look: Look) {
        let source = endpoint.source.clone();
        // Missing for a moment while a file is renamed into place, or a
        // core module about to be converted: the next event brings it.
        let Ok(Ok(Some(offer))) =
            tokio::task::spawn_blocking(move || load::read_offer(&source)).await
        else {
            return;
        };
        let Some(state) = owned.routes.get_mut(endpoint.path.as_ref()) else {
            return;
        };
        if state
            .interrupted
            .as_ref()
            .is_some_and(|(candidate, _)| *candidate != offer.digest)
        {
            state.interrupted = None; // The file moved on.
        }
        let held = self.store.held_back();
        let instead = held_instead(&held, state, &endpoint.path, &offer.digest);
        let serving = endpoint.serving();
        let known = Known {
            serving: Some(observed(&serving)),
            file_seen: state.file_seen.as_deref(),
            canary_on_rebuild: endpoint.rollout.canary,
        };
        let action = decide(
            &known,
            Offer::File {
                digest: &offer.digest,
                held_back: instead.is_some(),
            },
        );
        let first_offer = state.file_seen.as_deref() != Some(offer.digest.as_str());
        state.file_seen = Some(offer.digest.clone());
        let path = endpoint.path.clone();
        match action {
            Action::Keep => {}
            Action::HoldBack => {
                if first_offer {
                    tracing::warn!(
                        route = %path,
                        file = %offer.resolved.file.display(),
                        "the file now holds {}, held back on this route: not served (name it \
                         through the admin API, or change the route's entry, to serve it)",
                        &offer.digest[..12]
                    );
                }
            }
            Action::EndRollout => {
                tracing::info!(
                    route = %path,
                    "the file went back to the stable version: the rollout ends"
                );
                self.supersede(owned, &path, &serving);
                self.serve(endpoint, Serving::stable(serving.stable.clone()));
                self.applied(owned);
            }
            Action::Serve { canary } => {
                tracing::info!(
                    route = %path,
                    file = %offer.resolved.file.display(),
                    "component file changed{} ({look:?})",
                    newest_of(&offer.resolved)
                );
                let started = Instant::now();
                let engine = self.engine.clone();
                let file = offer.resolved.file.clone();
                let loaded = load::blocking(move || load::load(&engine, &offer.bytes, Some(file)))
                    .await
                    .map_err(|e| format!("{e:#}"));
                if let Ok(component) = self.accepted(&path, "watch", started, loaded) {
                    self.change(owned, endpoint, component, canary, "watch", started);
                }
            }
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

/// An error naming the route, its place in the config file, and its file.
fn route_error(route: &RouteConfig, e: &dyn std::fmt::Display) -> wasmtime::Error {
    format_err!(
        "{}: route `{}`: cannot load component `{}`: {e}",
        route.defined_at,
        route.path,
        route.component.display()
    )
}

/// Compiles and links what a route's file offers, and logs which file serves.
fn load_offer(
    engine: &WasmEngine,
    route: &RouteConfig,
    offer: FileOffer,
) -> Result<Arc<LoadedComponent>> {
    let started = Instant::now();
    let component = load::load(engine, &offer.bytes, Some(offer.resolved.file.clone()))
        .map_err(|e| route_error(route, &format_args!("{e:#}")))?;
    tracing::info!(
        route = %route.path,
        file = %offer.resolved.file.display(),
        digest = %&component.digest[..12],
        "serving, loaded in {:.0?} ({}){}",
        started.elapsed(),
        component.origin.name(),
        newest_of(&offer.resolved),
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
