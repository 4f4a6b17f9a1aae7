//! An operator's new version (the admin API's upload or named file): it
//! serves, whole or as a canary, whatever the route's file holds; naming
//! a version releases a hold on it. Also how any new version is counted,
//! logged and answered (`change`), the watcher's included.

use std::sync::Arc;
use std::time::Instant;

use super::answers::{Swapped, file_of};
use super::decide::{Action, Known, Offer, decide};
use super::load;
use super::{Control, Owned, Source, SwapError, describe};
use crate::app::Endpoint;
use crate::engine::LoadedComponent;
use crate::rollout::{Rollout, Serving, Version};

impl Control {
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
                load::load(&engine, &bytes, Some(file.display().to_string()))
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
    pub(super) fn accepted(
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
    pub(super) fn change(
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
}
