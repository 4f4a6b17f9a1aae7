//! What the owner knows of each route beyond what serves it: the entry it
//! was declared with, what its file offered last, and a candidate a
//! restart held back; and the question every input asks of it, "is this
//! version held back here, and what serves instead?".

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
