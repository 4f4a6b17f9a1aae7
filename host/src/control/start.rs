//! Start: every route loaded under the same rule as every later change
//! (`decide.rs`), from what the files hold and what the state folder
//! remembers (held-back versions, this host's interrupted rollouts).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{Mutex, watch};
use wasmtime::Result;

use super::answers::unix_seconds;
use super::decide::Action;
use super::known::{RouteState, file_offers};
use super::store::{Store, entry_key};
use super::{Control, Owned, load, load_offer, new_endpoint, publish, route_error};
use crate::app::{App, RouteSet};
use crate::config::{Config, Settings};
use crate::engine::WasmEngine;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rollout::{Serving, Version, short_id};

impl Control {
    /// Loads every route (a held-back version never serves: the version
    /// recorded instead does; a rollout a stop interrupted serves its
    /// stable version) and makes the app serving them.
    pub fn start(
        config: Config,
        config_path: PathBuf,
        config_text: &str,
        overrides: Settings,
        engine: Arc<WasmEngine>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let store = Store::open(
            config.cache_dir.as_deref(),
            &config_path,
            &config.listen.to_string(),
        );
        let interrupted = store.under_way();
        let held = store.held_back();
        let mut routes = HashMap::new();
        let mut endpoints = Vec::new();
        for route in &config.routes {
            let entry = entry_key(&route.component);
            let mut state = RouteState {
                entry: entry.clone(),
                ..RouteState::default()
            };
            let offer = load::read_offer(&route.component, &registry)
                .map_err(|e| route_error(route, &e))?
                .ok_or_else(|| route_error(route, &"a core module, not a component"))?;
            if let Some(was) = interrupted.get(&route.path).filter(|u| u.entry == entry)
                && was.candidate == offer.digest
            {
                state.interrupted = Some((was.candidate.clone(), was.stable.clone()));
                state.interrupted_since = unix_seconds(SystemTime::now());
            }
            // Nothing serves yet: a canary needs a stable version.
            let (action, instead) =
                file_offers(&mut state, &held, &route.path, None, None, &offer.digest);
            let interrupted = state.interrupted.is_some();
            let kept = match (action, &instead) {
                (Action::HoldBack, Some(instead)) => Some((instead.clone(), store.bytes(instead))),
                _ => None,
            };
            let (digest, file) = (short_id(&offer.digest), offer.from.clone());
            let component = match kept {
                Some((instead, Some(bytes))) => {
                    let instead = short_id(&instead);
                    if interrupted {
                        tracing::warn!(
                            route = %route.path,
                            file = %file,
                            "the host stopped during a rollout to {digest}, which the file \
                             holds: serving the stable version {instead}; the canary is not \
                             resumed (rebuild, or start it through the admin API)"
                        );
                    } else {
                        tracing::warn!(
                            route = %route.path,
                            file = %file,
                            "the file holds {digest}, held back on this route (rolled back): \
                             serving {instead} instead"
                        );
                    }
                    load::load(&engine, &bytes, None).map_err(|e| route_error(route, &e))?
                }
                Some((instead, None)) => {
                    // Not starting at all would take every route down (and
                    // the admin API with it): the file serves, loudly.
                    tracing::error!(
                        route = %route.path,
                        file = %file,
                        "the file holds {digest}, held back on this route, but the version \
                         recorded to serve instead ({}) is no longer kept: serving the file; \
                         name a version through the admin API to replace it",
                        short_id(&instead)
                    );
                    load_offer(&engine, route, offer)?
                }
                None => load_offer(&engine, route, offer)?,
            };
            routes.insert(route.path.clone(), state);
            endpoints.push((route, component));
        }
        // Every route loaded: only now do versions get their series.
        let endpoints = endpoints
            .into_iter()
            .map(|(route, component)| {
                let version = Version::serving(&route.path, component, &metrics);
                Arc::new(new_endpoint(route, Arc::new(Serving::stable(version))))
            })
            .collect();
        let app = Arc::new(App::new(
            &config,
            RouteSet::new(endpoints),
            metrics,
            engine.meters_fuel(),
        ));
        // The text `config` came from: if the file has changed since, the
        // watcher's first look reloads it.
        let config_seen = crate::cache::digest(config_text.as_bytes());
        let control = Self {
            app,
            engine,
            registry,
            config,
            config_path,
            overrides,
            owned: Mutex::new(Owned {
                generation: 0,
                config_seen,
                config_refused: false,
                routes,
            }),
            generation: watch::Sender::new(0),
            store,
            pending: Default::default(),
            shown: Default::default(),
        };
        let metrics = control.app.metrics();
        metrics.set_generation(0);
        for endpoint in control.app.routes().endpoints() {
            metrics.route_added(&endpoint.path);
            publish(metrics, &endpoint.path, None, Some(&endpoint.serving()));
        }
        let owned = control.owned.try_lock().expect("no one else yet");
        control.record(&owned);
        control.show(&owned);
        drop(owned);
        Ok(control)
    }
}
