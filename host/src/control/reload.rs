//! A reload: the config file read again, each route's entry compared with
//! what serves, each route's file looked at under the same rule as every
//! other change (`decide.rs`); everything read, decided and loaded before
//! anything changes, so a bad file changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use super::answers::{Reloaded, SwapError};
use super::decide::Action;
use super::known::{RouteState, file_offers, held_instead};
use super::load::{self, SourceOffer};
use super::store::entry_key;
use super::{Control, Look, Owned, load_offer, new_endpoint, observed, publish, route_error};
use crate::app::RouteSet;
use crate::config::{Config, RouteConfig};
use crate::rollout::{Rollout, Serving, Version};

/// What a reload does to one route.
enum Plan {
    /// What serves stays.
    Keep,
    /// This serves from now on.
    Serve(Serving),
}

impl Control {
    /// Re-reads the config file and serves its route table: routes added,
    /// removed, or changed (component or limits); each kept route's file
    /// is looked at again under the same rule. Any other setting is fixed
    /// at start: a file that changes one is refused, naming it. A bad file
    /// changes nothing.
    pub async fn reload(&self) -> Result<Reloaded, SwapError> {
        // An operator's reload looks again at everything: tags alone due
        // to be resolved again (`registry.tag_refresh`) are too.
        let (mut owned, read) = self.lock_fetched(true, |_, _| true).await;
        tracing::info!(
            "reloading the route table from {}",
            self.config_path.display()
        );
        let result = match read {
            Ok((text, digest)) => self.reload_text(&mut owned, &text, digest).await,
            Err(e) => Err(SwapError::Rejected(format!("{e:#}"))),
        };
        self.app.metrics().observe_change("reload", result.is_ok());
        if let Err(e) = &result {
            tracing::warn!("reload refused, nothing changed: {e}");
        }
        result
    }

    /// Looks at the config file (the watcher's call, on an event in its
    /// folder or periodically): when its text differs from the text last
    /// read, the route table is reloaded from it, as `POST /reload` does. A
    /// text that cannot be served is refused once (logged, counted as a
    /// `config` change `rejected`) and the last good table serves on;
    /// periodic looks try it again quietly (a component it names may
    /// arrive later), counting only its success.
    pub async fn look_at_config(&self, look: Look) {
        if matches!(look, Look::Periodic) && recently_modified(&self.config_path) {
            // Maybe being written right now: the next look, or the event
            // when its writer is done, reads it.
            return;
        }
        // Unless this text has been looked at already (and is not to be
        // tried again), the components it names are fetched first.
        let (mut owned, read) = self
            .lock_fetched(false, |owned, digest| {
                owned.config_seen != digest
                    || (owned.config_refused && matches!(look, Look::Periodic))
            })
            .await;
        if matches!(look, Look::Periodic) && recently_modified(&self.config_path) {
            return; // written while the components were fetched: as above
        }
        let (text, digest) = match read {
            Ok(read) => read,
            Err(e) => {
                // Said once per state of the file, like a text.
                let seen = format!("unreadable: {e:#}");
                if owned.config_seen != seen {
                    tracing::warn!("config file: {e:#}; the route table serves on as it is");
                    owned.config_seen = seen;
                }
                return;
            }
        };
        let retry = owned.config_seen == digest;
        if retry && !(owned.config_refused && matches!(look, Look::Periodic)) {
            return;
        }
        if !retry {
            tracing::info!(
                "config file {} changed ({look:?}): reloading the route table",
                self.config_path.display()
            );
        }
        let result = self.reload_text(&mut owned, &text, digest).await;
        if retry && result.is_err() {
            return;
        }
        self.app.metrics().observe_change("config", result.is_ok());
        match result {
            Ok(report) => tracing::info!(
                generation = report.generation,
                added = ?report.added,
                removed = ?report.removed,
                changed = ?report.changed,
                "config file applied"
            ),
            Err(e) => tracing::warn!(
                "config file refused, nothing changed (tried again quietly at each periodic \
                 look): {e}"
            ),
        }
    }

    /// The owner's lock, taken once the components the config file's text
    /// names from registries are fetched (if `wanted(owned, digest of the
    /// text)`, asked under the lock). Fetching is done without the lock;
    /// if the text changed meanwhile, the new one's are fetched in turn (up
    /// to three texts: a file changing faster than that is read as it is,
    /// and what is missing refuses it with the reason). `refresh`: as
    /// `Control::fetch`.
    ///
    /// Returns the guard with the file's text as read under it, and the
    /// text's digest: what the caller decides on.
    async fn lock_fetched(
        &self,
        refresh: bool,
        wanted: impl Fn(&Owned, &str) -> bool,
    ) -> (
        tokio::sync::MutexGuard<'_, Owned>,
        wasmtime::Result<(String, String)>,
    ) {
        let read = || {
            crate::config::read_text(&self.config_path).map(|text| {
                let digest = crate::cache::digest(text.as_bytes());
                (text, digest)
            })
        };
        let mut fetched = None;
        for _ in 0..3 {
            let owned = self.owned.lock().await;
            let (text, digest) = match read() {
                Ok(read) => read,
                Err(e) => return (owned, Err(e)),
            };
            if fetched.as_ref() == Some(&digest) || !wanted(&owned, &digest) {
                return (owned, Ok((text, digest)));
            }
            drop(owned);
            self.fetch_named_in(&text, refresh).await;
            fetched = Some(digest);
        }
        let owned = self.owned.lock().await;
        (owned, read())
    }

    /// Fetches the components config `text` names from registries. A text
    /// that does not parse names nothing: the reload says what is wrong
    /// with it.
    async fn fetch_named_in(&self, text: &str, refresh: bool) {
        let Ok(config) = Config::parse(text, &self.config_path, &self.overrides) else {
            return;
        };
        self.fetch(&config.references(), refresh).await;
    }

    /// Serves the route table of the config `text` (read from the file;
    /// `digest` its digest), remembered as the text last read whether it is
    /// served or refused.
    async fn reload_text(
        &self,
        owned: &mut Owned,
        text: &str,
        digest: String,
    ) -> Result<Reloaded, SwapError> {
        owned.config_seen = digest;
        let result = self.reload_parsed(owned, text).await;
        owned.config_refused = result.is_err();
        // Whether the routes are on their declared versions depends on it.
        self.show(owned);
        result
    }

    async fn reload_parsed(&self, owned: &mut Owned, text: &str) -> Result<Reloaded, SwapError> {
        let rejected = |e: wasmtime::Error| SwapError::Rejected(format!("{e:#}"));
        let config =
            Config::from_text(text, &self.config_path, &self.overrides).map_err(rejected)?;
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
        let held = self.store.held_back();
        // Everything is read, decided and loaded before anything changes.
        let mut plans = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let entry = entry_key(&route.component);
            // The route as it serves now, if its limits are unchanged: what
            // serves is what the new declaration's version is offered
            // against, so a new component rolls out as the route's
            // `[route.rollout]` says (a canary, or whole). What the owner
            // knows of the route stays if its component is the same too; a
            // new component is a new declaration (holds on the old one no
            // longer apply).
            let before = current
                .endpoint(&route.path)
                .filter(|e| e.limits == route.limits);
            let same_component =
                before.is_some_and(|e| e.source.identity() == route.component.identity());
            let mut state = if same_component {
                owned.routes.get(&route.path).cloned().unwrap_or_default()
            } else {
                RouteState {
                    entry,
                    ..RouteState::default()
                }
            };
            let source = route.component.clone();
            let registry = self.registry.clone();
            let offer = load::blocking(move || {
                load::read_offer(&source, &registry).map_err(wasmtime::Error::msg)
            })
            .await
            .map_err(|e| route_error(route, &e))
            .map_err(rejected)?;
            let serving = before.map(|e| e.serving());
            let plan = match offer {
                // The same declaration's file, mid-conversion: it stays.
                None if same_component => Plan::Keep,
                None => {
                    return Err(rejected(route_error(
                        route,
                        &"a core module, not a component",
                    )));
                }
                Some(offer) => {
                    let (action, instead) = file_offers(
                        &mut state,
                        &held,
                        &route.path,
                        serving.as_deref().map(observed),
                        route.rollout.canary,
                        &offer.digest,
                    );
                    let digest = offer.digest.clone();
                    let plan = self
                        .plan(route, serving.as_deref(), action, instead, offer)
                        .await?;
                    match (plan, serving.as_deref()) {
                        // A new declaration whose version does not serve
                        // (held back there): a rollout of the old one's
                        // candidate ends, not to go on under the new one.
                        (Plan::Keep, Some(now))
                            if !same_component
                                && now
                                    .candidate
                                    .as_ref()
                                    .is_some_and(|(c, _)| c.component.digest != digest) =>
                        {
                            Plan::Serve(Serving::stable(now.stable.clone()))
                        }
                        (plan, _) => plan,
                    }
                }
            };
            plans.push((route, before.cloned(), state, plan));
        }

        let mut report = Reloaded::default();
        let metrics = self.app.metrics();
        let mut endpoints = Vec::with_capacity(plans.len());
        let mut states = HashMap::new();
        for (route, before, state, plan) in plans {
            let path = route.path.clone();
            let old = current.endpoint(&path).map(|e| e.serving());
            let endpoint = match (before, plan) {
                (Some(kept), plan) => {
                    let serving = kept.serving();
                    let endpoint =
                        if kept.rollout == route.rollout && kept.source == route.component {
                            kept
                        } else {
                            Arc::new(new_endpoint(route, serving.clone()))
                        };
                    match plan {
                        Plan::Keep if serving.candidate.is_some() => report.kept_rollout.push(path),
                        Plan::Keep
                            if state.file_seen.as_deref()
                                != Some(serving.stable.component.digest.as_str()) =>
                        {
                            if state.interrupted.is_some()
                                || held_instead(
                                    &held,
                                    &state,
                                    &route.path,
                                    state.file_seen.as_deref().unwrap_or_default(),
                                )
                                .is_some()
                            {
                                report.held_back.push(path)
                            } else {
                                report.kept_admin_version.push(path)
                            }
                        }
                        Plan::Keep => report.unchanged.push(path),
                        Plan::Serve(next) => {
                            self.supersede(owned, &route.path, &serving);
                            self.serve(&endpoint, next);
                            report.changed.push(path)
                        }
                    }
                    endpoint
                }
                (None, Plan::Serve(next)) => {
                    let next = Arc::new(next);
                    match &old {
                        None => {
                            metrics.route_added(&route.path);
                            report.added.push(path);
                        }
                        // Its limits changed (else it was kept above).
                        Some(old) => {
                            self.supersede(owned, &route.path, old);
                            report.changed.push(path)
                        }
                    }
                    publish(metrics, &route.path, old.as_deref(), Some(&next));
                    Arc::new(new_endpoint(route, next))
                }
                (None, Plan::Keep) => unreachable!("a new route always gets a version"),
            };
            states.insert(route.path.clone(), state);
            endpoints.push(endpoint);
        }
        for old in current.endpoints() {
            if !states.contains_key(old.path.as_ref()) {
                report.removed.push(old.path.to_string());
                let serving = old.serving();
                self.supersede(owned, &old.path, &serving);
                publish(metrics, &old.path, Some(&serving), None);
                metrics.route_removed(&old.path);
                metrics.set_route_state(&old.path, None);
            }
        }
        self.app.replace_routes(RouteSet::new(endpoints));
        owned.routes = states;
        report.generation = self.applied(owned);
        tracing::info!(
            generation = report.generation,
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            unchanged = ?report.unchanged,
            kept_admin_version = ?report.kept_admin_version,
            kept_rollout = ?report.kept_rollout,
            held_back = ?report.held_back,
            "route table reloaded"
        );
        Ok(report)
    }

    /// What a reload does to one route, loaded: the rule's action made
    /// concrete (a new version compiled, or the one to serve instead).
    async fn plan(
        &self,
        route: &RouteConfig,
        serving: Option<&Serving>,
        action: Action,
        instead: Option<String>,
        offer: SourceOffer,
    ) -> Result<Plan, SwapError> {
        let rejected = |e: wasmtime::Error| SwapError::Rejected(format!("{e:#}"));
        let metrics = self.app.metrics();
        match (action, serving) {
            (Action::Keep, _) | (Action::HoldBack, Some(_)) => Ok(Plan::Keep),
            (Action::EndRollout, Some(serving)) => {
                Ok(Plan::Serve(Serving::stable(serving.stable.clone())))
            }
            (Action::HoldBack, None) => {
                let instead = instead.expect("a held-back version has one to serve instead");
                let Some(bytes) = self.store.bytes(&instead) else {
                    return Err(rejected(route_error(
                        route,
                        &format!(
                            "its file holds {}, held back on this route, and the version to \
                             serve instead ({}) is no longer kept",
                            &offer.digest[..12],
                            &instead[..12]
                        ),
                    )));
                };
                let engine = self.engine.clone();
                let component = load::blocking(move || load::load(&engine, &bytes, None))
                    .await
                    .map_err(|e| rejected(route_error(route, &e)))?;
                let version = Version::serving(&route.path, component, metrics);
                Ok(Plan::Serve(Serving::stable(version)))
            }
            (Action::Serve { canary }, serving) => {
                let engine = self.engine.clone();
                let route_owned = route.clone();
                let component = load::blocking(move || load_offer(&engine, &route_owned, offer))
                    .await
                    .map_err(rejected)?;
                let version = Version::serving(&route.path, component, metrics);
                Ok(Plan::Serve(match (canary, serving) {
                    (Some(share), Some(current)) => Serving {
                        stable: current.stable.clone(),
                        candidate: Some((
                            version,
                            Arc::new(Rollout::new(share, route.rollout.policy)),
                        )),
                    },
                    _ => Serving::stable(version),
                }))
            }
            (Action::EndRollout, None) => unreachable!("nothing serves, nothing to end"),
        }
    }
}

/// How long the config file must have been left alone for a periodic look
/// to read it (an event-driven look comes when its writer closes it).
pub const CONFIG_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the file at `path` was modified within [`CONFIG_QUIET`].
fn recently_modified(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < CONFIG_QUIET))
}
