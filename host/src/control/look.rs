//! Looking at the routes' files again: the watcher's only input. Under
//! the owner's lock each route's file is read *now*, and the rule
//! (`decide.rs`) says what it changes.

use std::sync::Arc;
use std::time::Instant;

use super::decide::Action;
use super::known::file_offers;
use super::load;
use super::store::Held;
use super::{Control, Look, Owned, observed};
use crate::app::Endpoint;
use crate::rollout::Serving;

impl Control {
    /// Looks at every route's file again (the watcher's only call): under
    /// the lock, each route's file is read *now* and the rule decides.
    pub async fn look_at_files(&self, look: Look) {
        if matches!(look, Look::Periodic) {
            // Tags alone due to be resolved again (`registry.tag_refresh`),
            // before the lock: a registry's answer is waited for there.
            let references: Vec<_> = self
                .app
                .routes()
                .endpoints()
                .iter()
                .filter_map(|e| e.source.oci().cloned())
                .collect();
            self.fetch(&references, true).await;
        }
        let mut owned = self.owned.lock().await;
        let held = self.store.held_back();
        for endpoint in self.app.routes().endpoints() {
            self.look_at_file(&mut owned, &held, endpoint, look).await;
        }
        self.show(&owned);
    }

    /// Looks at one route's file again, and acts on what the rule says.
    async fn look_at_file(
        &self,
        owned: &mut Owned,
        held: &[Held],
        endpoint: &Arc<Endpoint>,
        look: Look,
    ) {
        let source = endpoint.source.clone();
        let registry = self.registry.clone();
        // Missing for a moment while a file is renamed into place, or a
        // core module about to be converted: the next event brings it.
        let Ok(Ok(Some(offer))) =
            tokio::task::spawn_blocking(move || load::read_offer(&source, &registry)).await
        else {
            return;
        };
        let Some(state) = owned.routes.get_mut(endpoint.path.as_ref()) else {
            return;
        };
        let serving = endpoint.serving();
        let first_offer = state.file_seen.as_deref() != Some(offer.digest.as_str());
        let (action, _) = file_offers(
            state,
            held,
            &endpoint.path,
            Some(observed(&serving)),
            endpoint.rollout.canary,
            &offer.digest,
        );
        let path = endpoint.path.clone();
        match action {
            Action::Keep => {}
            Action::HoldBack => {
                if first_offer {
                    tracing::warn!(
                        route = %path,
                        file = %offer.from,
                        "the file now holds {}, held back on this route: not served (name it \
                         through the admin API, or give the route another component, to serve it)",
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
                    file = %offer.from,
                    "new version {}{} ({look:?})",
                    &offer.digest[..12],
                    offer.newest_of
                );
                let started = Instant::now();
                let engine = self.engine.clone();
                let from = offer.from.clone();
                let loaded = load::blocking(move || load::load(&engine, &offer.bytes, Some(from)))
                    .await
                    .map_err(|e| format!("{e:#}"));
                if let Ok(component) = self.accepted(&path, "watch", started, loaded) {
                    self.change(owned, endpoint, component, canary, "watch", started);
                }
            }
        }
    }
}
