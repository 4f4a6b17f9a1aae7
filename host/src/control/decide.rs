//! The rule for what should serve a route: one pure function, asked by
//! every input alike (start, reload, a file event, the periodic look, the
//! admin API), always with what the owner knows *now*.
//!
//! In words: a version the route's file offers serves, unless it is
//! already serving (as stable or candidate), or the file offered it before
//! (so a version the admin API put there, or a hold, is not undone by the
//! same bytes again), or it is *held back* on the route (rolled back
//! there, or interrupted by a restart): then what serves stays, and with
//! nothing serving yet, the version recorded to serve instead does. A file
//! going back to the stable version ends the rollout beside it (the latest
//! change wins). A version an operator names through the admin API serves,
//! held back or not: naming it is the explicit ask that releases a hold.

/// What serves a route now.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The stable version's digest.
    pub stable: &'a str,
    /// The candidate's digest, during a rollout.
    pub candidate: Option<&'a str>,
}

/// What the owner knows of one route when deciding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// What serves now; `None` before anything does (start, a route a
    /// reload adds or whose entry it changes).
    pub serving: Option<Observed<'a>>,
    /// The digest the route's file offered when it was last looked at.
    pub file_seen: Option<&'a str>,
    /// The share a new version from the file starts with as a canary
    /// (`[route.rollout] canary`); `None`: whole.
    pub canary_on_rebuild: Option<u8>,
}

/// A version offered to a route.
#[derive(Debug, Clone, Copy)]
pub enum Offer<'a> {
    /// The route's file holds this version now; `held_back`: whether it is
    /// held back on the route.
    File { digest: &'a str, held_back: bool },
    /// An operator names this version through the admin API.
    Admin { canary: Option<u8> },
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changes.
    Keep,
    /// The offered version serves: whole, or as a canary of this share.
    Serve { canary: Option<u8> },
    /// The offered version is held back: what serves stays (log it); with
    /// nothing serving, the version recorded instead of it serves.
    HoldBack,
    /// The file went back to the stable version: the rollout beside it
    /// ends (superseded) and the stable version serves alone.
    EndRollout,
}

/// The one decision: what `offer` changes on a route the owner knows as
/// `known`.
pub fn decide(known: &Known<'_>, offer: Offer<'_>) -> Action {
    let (digest, held_back) = match offer {
        Offer::Admin { canary } => return Action::Serve { canary },
        Offer::File { digest, held_back } => (digest, held_back),
    };
    let Some(serving) = known.serving else {
        return if held_back {
            Action::HoldBack
        } else {
            Action::Serve { canary: None }
        };
    };
    if serving.candidate == Some(digest) {
        return Action::Keep;
    }
    let offered_before = known.file_seen == Some(digest);
    if serving.stable == digest {
        return if serving.candidate.is_some() && !offered_before {
            Action::EndRollout
        } else {
            Action::Keep
        };
    }
    if offered_before {
        return Action::Keep;
    }
    if held_back {
        Action::HoldBack
    } else {
        Action::Serve {
            canary: known.canary_on_rebuild,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(digest: &str) -> Offer<'_> {
        Offer::File {
            digest,
            held_back: false,
        }
    }

    fn held(digest: &str) -> Offer<'_> {
        Offer::File {
            digest,
            held_back: true,
        }
    }

    fn serving<'a>(stable: &'a str, candidate: Option<&'a str>) -> Known<'a> {
        Known {
            serving: Some(Observed { stable, candidate }),
            file_seen: Some(stable),
            canary_on_rebuild: None,
        }
    }

    #[test]
    fn at_start_the_file_serves_unless_held_back() {
        let fresh = Known::default();
        assert_eq!(decide(&fresh, file("a")), Action::Serve { canary: None });
        assert_eq!(decide(&fresh, held("x")), Action::HoldBack);
        // A canary needs a stable version to compare with: never at start.
        let canary = Known {
            canary_on_rebuild: Some(10),
            ..fresh
        };
        assert_eq!(decide(&canary, file("a")), Action::Serve { canary: None });
    }

    #[test]
    fn a_new_build_serves_as_the_route_says() {
        let known = serving("a", None);
        assert_eq!(decide(&known, file("b")), Action::Serve { canary: None });
        let canary = Known {
            canary_on_rebuild: Some(20),
            ..known
        };
        assert_eq!(
            decide(&canary, file("b")),
            Action::Serve { canary: Some(20) }
        );
    }

    #[test]
    fn what_serves_or_was_offered_before_changes_nothing() {
        assert_eq!(decide(&serving("a", None), file("a")), Action::Keep);
        assert_eq!(decide(&serving("a", Some("b")), file("b")), Action::Keep);
        // An admin version serves; the file still holds what it held.
        let admin = Known {
            file_seen: Some("f"),
            ..serving("u", None)
        };
        assert_eq!(decide(&admin, file("f")), Action::Keep);
        // ...until the file offers something new: the latest change wins.
        assert_eq!(decide(&admin, file("g")), Action::Serve { canary: None });
    }

    #[test]
    fn a_rolled_back_version_is_held_back_whenever_offered_again() {
        // Rolled back: stable `a` serves, the file still holds `x`.
        let after = Known {
            file_seen: Some("x"),
            ..serving("a", None)
        };
        assert_eq!(decide(&after, held("x")), Action::Keep);
        // The file moved on, then came back to `x`.
        let moved = Known {
            file_seen: Some("y"),
            ..serving("y", None)
        };
        assert_eq!(decide(&moved, held("x")), Action::HoldBack);
        // A restart or a second host: nothing serves yet.
        assert_eq!(decide(&Known::default(), held("x")), Action::HoldBack);
    }

    #[test]
    fn a_build_back_to_stable_ends_the_rollout() {
        let canary = Known {
            file_seen: Some("b"),
            ..serving("a", Some("b"))
        };
        assert_eq!(decide(&canary, file("a")), Action::EndRollout);
        // An admin canary beside an unchanged file is not ended by it.
        let admin_canary = serving("a", Some("u"));
        assert_eq!(decide(&admin_canary, file("a")), Action::Keep);
    }

    #[test]
    fn an_operator_naming_a_version_is_served() {
        let known = serving("a", None);
        assert_eq!(
            decide(&known, Offer::Admin { canary: Some(5) }),
            Action::Serve { canary: Some(5) }
        );
        assert_eq!(
            decide(&Known::default(), Offer::Admin { canary: None }),
            Action::Serve { canary: None }
        );
    }
}
