//! What the owner knows of each route beyond what serves it: the entry it
//! was declared with, what its file offered last, and a candidate a
//! restart held back; and the question every input asks of it, "is this
//! version held back here, and what serves instead?".

use super::decide::{Action, Known, Observed, Offer, decide};
use super::store::Held;

/// What the owner knows of one route beyond what serves it.
#[derive(Debug, Clone, Default)]
pub struct RouteState {
    /// The entry (component and limits) this state belongs to.
    pub entry: String,
    /// The digest the route's file offered when last looked at.
    pub file_seen: Option<String>,
    /// A candidate a restart held back on this host (its rollout was
    /// interrupted), and the version serving instead: released when the
    /// file offers another version.
    pub interrupted: Option<(String, String)>,
    /// Seconds since the Unix epoch when this host started holding it.
    pub interrupted_since: f64,
}

/// The version to serve instead of `digest` on `route`, if it is held
/// back there: rolled back (any host, same entry) or interrupted here.
pub fn held_instead(
    held: &[Held],
    state: &RouteState,
    route: &str,
    digest: &str,
) -> Option<String> {
    held.iter()
        .find(|h| h.route == route && h.entry == state.entry && h.digest == digest)
        .map(|h| h.instead.clone())
        .or_else(|| {
            state
                .interrupted
                .as_ref()
                .filter(|(candidate, _)| candidate == digest)
                .map(|(_, instead)| instead.clone())
        })
}

/// Asks the rule what `digest`, which route `route`'s file holds now,
/// changes, with what the owner knows of the route (`state`: its offer is
/// recorded there, and an interrupted hold the file moved on from is
/// released), the holds recorded (`held`), what serves (`None` before
/// anything does) and the share a rebuild starts with. The same question
/// for start, reload and the watcher. Returns the action and, for a
/// held-back version, the version recorded to serve instead.
pub fn file_offers(
    state: &mut RouteState,
    held: &[Held],
    route: &str,
    serving: Option<Observed<'_>>,
    canary_on_rebuild: Option<u8>,
    digest: &str,
) -> (Action, Option<String>) {
    if state
        .interrupted
        .as_ref()
        .is_some_and(|(candidate, _)| candidate != digest)
    {
        state.interrupted = None; // The file moved on.
    }
    let instead = held_instead(held, state, route, digest);
    let known = Known {
        serving,
        file_seen: state.file_seen.as_deref(),
        canary_on_rebuild,
    };
    let action = decide(
        &known,
        Offer::File {
            digest,
            held_back: instead.is_some(),
        },
    );
    state.file_seen = Some(digest.to_owned());
    (action, instead)
}
