//! How rollouts end: by an operator's decision, the supervisor's verdict,
//! or a change superseding them; each counted and logged once, and a
//! rollback holds the candidate back on its route (`store.rs`).

use std::sync::Arc;
use std::time::SystemTime;

use super::answers::{Decided, unix_seconds};
use super::known::held_instead;
use super::store::{Held, HoldReason};
use super::{Control, Owned, SwapError};
use crate::app::Endpoint;
use crate::judge::{Decision, Reason};
use crate::rollout::{Rollout, Serving, Verdict};

impl Control {
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
    pub(super) fn carry_out(
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
        // Counted before the change shows: whoever sees the rollout gone
        // (GET /routes) finds its decision counted.
        self.count_decision(&endpoint.path, &candidate.id, verdict);
        self.serve(endpoint, Serving::stable(stays));
        let generation = self.applied(owned);
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
    pub(super) fn hold_back(&self, owned: &Owned, path: &str, serving: &Serving) {
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
    pub(super) fn supersede(&self, owned: &Owned, path: &str, serving: &Serving) {
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
    pub(super) fn take_pending(&self, rollout: &Arc<Rollout>) -> Option<Verdict> {
        let mut pending = self.pending.lock().expect("pending lock");
        let at = pending.iter().position(|(r, _)| Arc::ptr_eq(r, rollout))?;
        Some(pending.swap_remove(at).1)
    }

    /// Counts and logs the end of a rollout of `candidate` on `path`.
    pub(super) fn count_decision(&self, path: &str, candidate: &str, verdict: &Verdict) {
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
}
