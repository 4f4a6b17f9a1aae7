//! The rollout supervisor: judges every rollout when a request says a
//! verdict may be due, and every [`JUDGE_EVERY`] (the promotion after the
//! healthy period is found within that).
//!
//! Each pass judges every route and stops the split of every rollout with
//! a verdict at once (`Rollout::end`: from then on each request goes to the
//! stable version); a task of its own then waits for the owner's lock to
//! carry the decisions out, while judging goes on: a reload or upload
//! compiling for seconds cannot hold a failing candidate at its share. A
//! verdict waiting for the lock is pending (`Control::pending`): a change
//! that supersedes its rollout meanwhile carries it out instead.

use std::sync::Arc;
use std::time::Duration;

use super::Control;
use crate::rollout::Serving;

/// How often rollouts are judged when no request says a verdict is due.
const JUDGE_EVERY: Duration = Duration::from_millis(250);

impl Control {
    /// Judges every rollout until the process ends.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.app.verdict_due().notified() => {}
                () = tokio::time::sleep(JUDGE_EVERY) => {}
            }
            let mut due = Vec::new();
            for endpoint in self.app.routes().endpoints() {
                let serving = endpoint.serving();
                let Some((_, rollout)) = &serving.candidate else {
                    continue;
                };
                let Some(verdict) = rollout.judge() else {
                    continue;
                };
                if rollout.end() {
                    self.pending
                        .lock()
                        .expect("pending lock")
                        .push((rollout.clone(), verdict));
                    due.push((endpoint.path.clone(), serving.clone()));
                } // else someone else is ending it.
            }
            if !due.is_empty() {
                // Carried out on a task of its own: judging goes on while
                // it waits for the lock.
                tokio::spawn(self.clone().carry_out_due(due));
            }
        }
    }

    /// Carries out the verdicts on `due` rollouts, under the lock, unless a
    /// change carried one out meanwhile (it took the pending verdict).
    async fn carry_out_due(self: Arc<Self>, due: Vec<(Arc<str>, Arc<Serving>)>) {
        let mut owned = self.owned.lock().await;
        for (path, serving) in due {
            let rollout = &serving.candidate.as_ref().expect("judged a rollout").1;
            let Some(verdict) = self.take_pending(rollout) else {
                continue;
            };
            // A reload that kept the rollout may have made a new endpoint:
            // look it up again, now.
            let routes = self.app.routes();
            let still = routes.endpoint(&path).filter(|e| {
                e.serving()
                    .candidate
                    .as_ref()
                    .is_some_and(|(_, r)| Arc::ptr_eq(r, rollout))
            });
            if let Some(current) = still {
                self.carry_out(&mut owned, current, &serving, &verdict);
            }
        }
    }
}
