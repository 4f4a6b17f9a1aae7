//! What the control plane answers: the admin API's replies and errors,
//! and `GET /routes`. Data only; `control/mod.rs` fills it in.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::known::RouteState;
use super::store::{Held, HoldReason};
use crate::app::Endpoint;
use crate::engine::LoadedComponent;
use crate::judge::{Decision, Reason};
use crate::rollout::{Figures, Phase};

/// What to swap in.
pub enum Source {
    /// A file named through the admin API (read with bounds; a relative
    /// path is taken from the config file's folder, like route files).
    File(PathBuf),
    /// Bytes uploaded through the admin API.
    Upload(Vec<u8>),
}

impl Source {
    /// The bounded `source` label of the change metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Upload(_) => "upload",
        }
    }
}

#[derive(Debug)]
pub enum SwapError {
    NoSuchRoute(String),
    /// A promote or rollback of a route without a rollout under way.
    NoRollout(String),
    /// A promote or rollback of a rollout an automatic decision is ending.
    Deciding(String),
    /// The new version or configuration was refused; the old one serves on.
    Rejected(String),
}

impl std::fmt::Display for SwapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchRoute(path) => write!(f, "no route `{path}`"),
            Self::NoRollout(path) => write!(f, "no rollout is under way on route `{path}`"),
            Self::Deciding(path) => write!(
                f,
                "the rollout on route `{path}` is already ending by an automatic decision \
                 (see the log and GET /routes)"
            ),
            Self::Rejected(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Swapped {
    pub path: String,
    pub digest: String,
    pub previous_digest: String,
    /// Compile (or cache lookup) and link time.
    pub seconds: f64,
    pub from_cache: bool,
    /// The share the new version serves as a canary; `None`: all of it.
    pub canary: Option<u8>,
    /// The generation this change made.
    pub generation: u64,
}

/// How a rollout ended.
#[derive(Debug, Serialize)]
pub struct Decided {
    pub path: String,
    pub decision: Decision,
    pub reason: Reason,
    /// The digest serving every request now.
    pub digest: String,
    /// The candidate's digest.
    pub candidate_digest: String,
    /// What each version answered during the rollout.
    pub stable: Figures,
    pub candidate: Figures,
    /// The generation this change made.
    pub generation: u64,
}

/// What a reload did to each route.
#[derive(Debug, Serialize, Default)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// New component or new limits.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Routes serving a version from the admin API that the reload kept.
    pub kept_admin_version: Vec<String>,
    /// Routes whose rollout under way the reload kept.
    pub kept_rollout: Vec<String>,
    /// Routes whose file holds a version held back there: what served
    /// before serves on.
    pub held_back: Vec<String>,
    /// The generation this change made.
    pub generation: u64,
}

/// `GET /routes`: what is served now.
#[derive(Debug, Serialize)]
pub struct Served {
    /// Grows by one with every change to what is served.
    pub generation: u64,
    /// The config file's current text was refused (the last good table
    /// serves): no route is on the version it declares.
    pub config_refused: bool,
    pub routes: Vec<RouteInfo>,
}

#[derive(Debug, Serialize)]
pub struct RouteInfo {
    pub path: String,
    /// The component file or pattern the config names.
    pub component: String,
    /// The file the stable version was read from, or `upload`.
    pub file: String,
    /// The stable version's digest, and its first 12 hex digits (the
    /// `version` label of the per-version metrics).
    pub digest: String,
    pub version: String,
    /// Whether the stable version is not what the route's file holds (it
    /// came through the admin API, or the file holds a version held back):
    /// a reload keeps it while the route's entry is unchanged.
    pub admin_version: bool,
    /// The digest the route's file held when last looked at.
    pub file_digest: Option<String>,
    /// Serving, whole, the version the declaration names (`file_digest`,
    /// no rollout): `webapp_route_on_declared_version`.
    pub on_declared_version: bool,
    /// Versions held back on this route: never served again from a file,
    /// a reload or a restart until the route's component changes or an
    /// operator names one through the admin API.
    pub held_back: Vec<HeldInfo>,
    /// Seconds since the Unix epoch when the serving version was loaded.
    pub loaded_at: f64,
    /// How the serving version was obtained: compiled, memory-cache, disk-cache.
    pub origin: &'static str,
    pub timeout_seconds: f64,
    pub max_memory_bytes: u64,
    pub fuel: Option<u64>,
    /// The share a rebuilt file seen by the watcher serves as a canary.
    pub canary_on_rebuild: Option<u8>,
    /// The rollout under way, if any.
    pub rollout: Option<RolloutInfo>,
}

/// A rollout under way, as `GET /routes` shows it.
#[derive(Debug, Serialize)]
pub struct RolloutInfo {
    pub candidate_digest: String,
    pub candidate_version: String,
    /// The file the candidate was read from, or `upload`.
    pub candidate_file: String,
    /// Percent of the route's requests the candidate serves.
    pub share: u8,
    pub phase: Phase,
    /// Seconds since the Unix epoch when the rollout started, and since.
    pub started_at: f64,
    pub age_seconds: f64,
    /// What each version answered since the rollout started.
    pub stable: Figures,
    pub candidate: Figures,
    /// How it is judged.
    pub min_requests: u64,
    pub error_margin_percent: f64,
    pub latency_margin_percent: f64,
    pub healthy_for_seconds: f64,
}

/// A version held back on a route, as `GET /routes` shows it.
#[derive(Debug, Serialize)]
pub struct HeldInfo {
    pub digest: String,
    /// The digest's first 12 hex digits (the `version` label).
    pub version: String,
    pub reason: HoldReason,
    /// Seconds since the Unix epoch when it was held back.
    pub since: f64,
    /// The version recorded to serve instead.
    pub instead: String,
}

/// The versions held back on `path` (whose state is `state`), as shown.
pub(super) fn held_on(held: &[Held], path: &str, state: &RouteState) -> Vec<HeldInfo> {
    let mut on_route: Vec<HeldInfo> = held
        .iter()
        .filter(|h| h.route == path && h.entry == state.entry)
        .map(|h| HeldInfo {
            digest: h.digest.clone(),
            version: crate::rollout::short_id(&h.digest),
            reason: h.reason,
            since: h.since,
            instead: h.instead.clone(),
        })
        .collect();
    if let Some((candidate, instead)) = &state.interrupted {
        on_route.push(HeldInfo {
            digest: candidate.clone(),
            version: crate::rollout::short_id(candidate),
            reason: HoldReason::Interrupted,
            since: state.interrupted_since,
            instead: instead.clone(),
        });
    }
    on_route
}

/// One route as `GET /routes` shows it.
pub(super) fn route_info(
    e: &Endpoint,
    state: &RouteState,
    held_back: Vec<HeldInfo>,
    config_refused: bool,
) -> RouteInfo {
    let serving = e.serving();
    let c = &serving.stable.component;
    let rollout = serving.candidate.as_ref().map(|(candidate, rollout)| {
        let (stable, candidate_figures) = rollout.figures();
        let policy = rollout.policy;
        RolloutInfo {
            candidate_digest: candidate.component.digest.clone(),
            candidate_version: candidate.id.clone(),
            candidate_file: file_of(&candidate.component),
            share: rollout.share,
            phase: rollout.phase(),
            started_at: unix_seconds(rollout.started_at),
            age_seconds: rollout.started.elapsed().as_secs_f64(),
            stable,
            candidate: candidate_figures,
            min_requests: policy.min_requests,
            error_margin_percent: policy.error_margin * 100.0,
            latency_margin_percent: policy.latency_margin * 100.0,
            healthy_for_seconds: policy.healthy_for.as_secs_f64(),
        }
    });
    RouteInfo {
        path: e.path.to_string(),
        component: e.source.to_string(),
        file: file_of(c),
        digest: c.digest.clone(),
        version: serving.stable.id.clone(),
        admin_version: state.file_seen.as_deref() != Some(c.digest.as_str()),
        on_declared_version: super::on_declared(state, &serving, config_refused),
        file_digest: state.file_seen.clone(),
        held_back,
        loaded_at: unix_seconds(c.loaded_at),
        origin: c.origin.name(),
        timeout_seconds: e.limits.timeout.as_secs_f64(),
        max_memory_bytes: e.limits.max_memory_bytes,
        fuel: e.limits.fuel,
        canary_on_rebuild: e.rollout.canary,
        rollout,
    }
}

/// Seconds since the Unix epoch, as `GET /routes` shows times.
pub(super) fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The file or reference a version was read from, or `upload`, as shown and logged.
pub(super) fn file_of(component: &LoadedComponent) -> String {
    component.from.clone().unwrap_or_else(|| "upload".into())
}
