//! What the control plane knows that must outlive the process: the
//! versions *held back* on each route (rolled back there, so no restart,
//! reload or second host serves them again) and this host's rollouts under
//! way (so a restart serves the stable version, not the candidate the
//! file holds), plus the bytes of every version recorded to serve instead.
//!
//! Layout, under the cache folder, one folder per config file:
//! `state/<config key>/held-back.json` is shared by every host on that
//! config (a verdict of one holds for all: read on every look at a route,
//! changed read-modify-write under `held-back.lock`);
//! `host-<listen>.json` is one host's own, owned through an exclusive lock
//! on `host-<listen>.lock` kept for the process's life: a second host on
//! the same config, cache folder and listen setting (possible with port 0)
//! keeps no record, and says so, rather than reading another's by accident;
//! `versions/<digest>.wasm` holds component bytes by digest.
//! Every file is written whole, synced, renamed into place and its folder
//! synced: a crash leaves the old or the new content, never a mix. Without
//! a cache folder nothing is kept (held-back versions then last as long as
//! the process).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cache::is_digest;
use crate::source::ComponentSource;

/// Largest state file read back (a few hundred bytes per route).
const MAX_BYTES: u64 = 1 << 20;

/// Held-back versions kept per route: the oldest go first.
pub const MAX_HELD_PER_ROUTE: usize = 16;

/// Why a version is held back on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Its rollout was rolled back (for errors, latency, or by hand).
    RolledBack,
    /// A restart interrupted its rollout (this host only): released when
    /// the file offers another version.
    Interrupted,
}

/// One version held back on one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub route: String,
    /// The route's component when it was held (`entry_key`): another
    /// component file or pattern releases it.
    pub entry: String,
    /// The version held back.
    pub digest: String,
    /// The version that served instead (its bytes are kept).
    pub instead: String,
    pub reason: HoldReason,
    /// Seconds since the Unix epoch when it was held.
    pub since: f64,
}

/// One route's rollout under way on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnderWay {
    /// The route's entry (`entry_key`).
    pub entry: String,
    pub stable: String,
    pub candidate: String,
    /// The candidate's share, in percent.
    pub share: u8,
}

/// A route's entry as holds see it: its component (file or pattern). A
/// change of limits (a longer timeout, say) releases nothing: a version
/// rolled back for its timeouts must not come back whole because the
/// timeout was raised.
pub fn entry_key(component: &ComponentSource) -> String {
    let text = component.identity();
    crate::cache::digest(text.as_bytes())[..16].to_owned()
}

/// The state of one config file's hosts, as this host sees and keeps it.
pub struct Store {
    /// The config's state folder; `None`: nothing is kept on disk.
    dir: Option<PathBuf>,
    /// This host's own record, and the lock that makes it this host's;
    /// `None` without a folder or when another host holds it.
    own: Option<(PathBuf, File)>,
    /// Held-back versions this process could not write to the shared file
    /// (or that it has no folder for).
    memory: Mutex<Vec<Held>>,
    /// This host's record as last written: an unchanged record is not
    /// written (nor its versions' bytes checked) again.
    recorded: Mutex<Option<BTreeMap<String, UnderWay>>>,
}

impl Store {
    /// The state of the hosts on `config_path` under `cache_dir`, this one
    /// known by its `listen` setting.
    pub fn open(cache_dir: Option<&Path>, config_path: &Path, listen: &str) -> Self {
        // The file's folder made absolute, not the file: a mounted
        // ConfigMap's file is a link into a timestamped folder that every
        // update replaces, and the state must outlive updates.
        let config = match (config_path.parent(), config_path.file_name()) {
            (Some(folder), Some(name)) => {
                let folder = if folder.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    folder
                };
                folder
                    .canonicalize()
                    .map(|f| f.join(name))
                    .unwrap_or_else(|_| config_path.to_path_buf())
            }
            _ => config_path.to_path_buf(),
        };
        let folder_of = |config: &Path| {
            let key = crate::cache::digest(config.as_os_str().as_encoded_bytes());
            cache_dir.map(|d| d.join("state").join(&key[..16]))
        };
        // Before, the key was the file resolved: a config file that is a
        // link of its own keeps the state it had then.
        let before = config_path.canonicalize().ok().and_then(|c| folder_of(&c));
        let dir = match (folder_of(&config), before) {
            (Some(now), Some(before)) if !now.exists() && before.exists() => Some(before),
            (now, _) => now,
        };
        let own = dir.as_ref().and_then(|dir| {
            let name: String = listen
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let claimed = std::fs::create_dir_all(dir.join("versions"))
                .and_then(|()| File::create(dir.join(format!("host-{name}.lock"))))
                .and_then(|lock| {
                    lock.try_lock()
                        .map(|()| lock)
                        .map_err(std::io::Error::other)
                });
            match claimed {
                Ok(lock) => Some((dir.join(format!("host-{name}.json")), lock)),
                Err(e) => {
                    tracing::warn!(
                        "another host on this config, cache folder and listen setting ({listen}) \
                         keeps its rollouts in {} ({e}): this one keeps none, so a restart \
                         during a rollout serves what the files hold; give it its own \
                         --cache-dir or listen address",
                        dir.display()
                    );
                    None
                }
            }
        });
        Self {
            dir,
            own,
            memory: Mutex::new(Vec::new()),
            recorded: Mutex::new(None),
        }
    }

    /// The versions held back on any route, as every host recorded them.
    pub fn held_back(&self) -> Vec<Held> {
        let mut held = self.memory.lock().expect("held-back lock").clone();
        let Some(dir) = &self.dir else {
            return held;
        };
        let recorded: Vec<Held> = read_json(&dir.join("held-back.json")).unwrap_or_default();
        for h in recorded {
            if is_digest(&h.digest)
                && is_digest(&h.instead)
                && !held
                    .iter()
                    .any(|m| m.route == h.route && m.entry == h.entry && m.digest == h.digest)
            {
                held.push(h);
            }
        }
        held
    }

    /// Changes the held-back list with `change`: the shared file, one
    /// host at a time; and this process's own copy where the file cannot
    /// be written (or there is none), so a verdict lasts at least while the
    /// host runs. `also_in_memory`: change the own copy in any case (a
    /// release must reach both).
    fn change_held(&self, change: impl Fn(&mut Vec<Held>), also_in_memory: bool) {
        let written = self.dir.as_ref().map(|dir| {
            (|| {
                let lock = File::create(dir.join("held-back.lock"))?;
                lock_within(&lock, LOCK_WITHIN)?;
                let path = dir.join("held-back.json");
                let mut held: Vec<Held> = match read_json(&path) {
                    Some(held) => held,
                    None if path.exists() => {
                        // Damaged: kept aside for a human, not overwritten blind.
                        let _ = std::fs::rename(&path, path.with_extension("json.damaged"));
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                change(&mut held);
                crate::component_file::write_durably(&path, &serde_json::to_vec_pretty(&held)?)
            })()
            .map_err(|e| (dir, e))
        });
        if let Some(Err((dir, e))) = &written {
            tracing::warn!(
                "cannot record held-back versions in {}: {e}; this host holds them back until \
                 it stops, other hosts and a restart do not know",
                dir.display()
            );
        }
        if also_in_memory || !matches!(written, Some(Ok(()))) {
            change(&mut self.memory.lock().expect("held-back lock"));
        }
    }

    /// Holds `held` back (replacing an older record of the same version on
    /// the same route under the same declaration: a hold under another
    /// component stays, for when the route goes back to it).
    pub fn hold(&self, held: Held) {
        self.change_held(
            |list| {
                list.retain(|h| {
                    !(h.route == held.route && h.entry == held.entry && h.digest == held.digest)
                });
                list.push(held.clone());
                let on_route = list.iter().filter(|h| h.route == held.route).count();
                let mut extra = on_route.saturating_sub(MAX_HELD_PER_ROUTE);
                list.retain(|h| {
                    let drop = extra > 0 && h.route == held.route;
                    extra -= usize::from(drop);
                    !drop
                });
            },
            false,
        );
    }

    /// Releases the holds on `route` that `release` picks.
    pub fn release(&self, route: &str, release: impl Fn(&Held) -> bool) {
        if !self
            .held_back()
            .iter()
            .any(|h| h.route == route && release(h))
        {
            return;
        }
        self.change_held(
            |list| list.retain(|h| !(h.route == route && release(h))),
            true,
        );
    }

    /// Keeps a version's bytes by digest (once).
    pub fn keep_bytes(&self, digest: &str, bytes: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join("versions").join(format!("{digest}.wasm"));
        if path.exists() {
            return;
        }
        if let Err(e) = crate::component_file::write_durably(&path, bytes) {
            tracing::warn!(
                "cannot keep version {} in {}: {e}",
                &digest[..12],
                path.display()
            );
        }
    }

    /// A version's bytes kept by digest, checked against it.
    pub fn bytes(&self, digest: &str) -> Option<Vec<u8>> {
        if !is_digest(digest) {
            return None;
        }
        let path = self
            .dir
            .as_ref()?
            .join("versions")
            .join(format!("{digest}.wasm"));
        let bytes =
            crate::component_file::read(&path, crate::component_file::MAX_COMPONENT_BYTES).ok()?;
        (crate::cache::digest(&bytes) == digest).then_some(bytes)
    }

    /// This host's rollouts under way when it last stopped.
    pub fn under_way(&self) -> BTreeMap<String, UnderWay> {
        let recorded: BTreeMap<String, UnderWay> = self
            .own
            .as_ref()
            .and_then(|(path, _)| read_json(path))
            .unwrap_or_default();
        recorded
            .into_iter()
            .filter(|(_, u)| is_digest(&u.stable) && is_digest(&u.candidate) && u.share <= 99)
            .collect()
    }

    /// Records this host's rollouts under way (replacing the record), once
    /// the bytes of each one's stable version (`stables`: digest, bytes) are
    /// kept; nothing when the record is unchanged since last written.
    pub fn record_under_way(
        &self,
        under_way: &BTreeMap<String, UnderWay>,
        stables: &[(&str, &[u8])],
    ) {
        let Some((path, _)) = &self.own else { return };
        let mut recorded = self.recorded.lock().expect("recorded lock");
        if recorded.as_ref() == Some(under_way) {
            return;
        }
        for (digest, bytes) in stables {
            self.keep_bytes(digest, bytes);
        }
        let written = serde_json::to_vec_pretty(under_way)
            .map_err(std::io::Error::other)
            .and_then(|json| crate::component_file::write_durably(path, &json));
        match written {
            Ok(()) => *recorded = Some(under_way.clone()),
            Err(e) => tracing::warn!(
                "cannot record the rollouts under way in {}: {e}; a restart now would serve \
                 what the component files hold",
                path.display()
            ),
        }
    }
}

/// How long a host waits for another to finish changing the shared file.
const LOCK_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes `lock` within `within`, or fails: a hung host (or any process
/// holding the lock) must not stall this one's control plane.
fn lock_within(lock: &File, within: std::time::Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

/// A state file's content; `None` if missing, and (with a warning) if
/// unreadable: state only ever makes a host more careful, so a damaged
/// file must not stop it.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    if !path.exists() {
        return None;
    }
    let read = crate::component_file::read(path, MAX_BYTES).and_then(|bytes| {
        serde_json::from_slice(&bytes).map_err(|e| format!("not a state file: {e}"))
    });
    read.inspect_err(|e| tracing::warn!("ignoring {}: {e}", path.display()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest made of the byte `tag`.
    fn d(tag: u8) -> String {
        format!("{tag:02x}").repeat(32)
    }

    fn held(route: &str, tag: u8) -> Held {
        Held {
            route: route.into(),
            entry: "e".into(),
            digest: d(tag),
            instead: "a".repeat(64),
            reason: HoldReason::RolledBack,
            since: 1.0,
        }
    }

    #[test]
    fn held_back_versions_are_shared_by_the_hosts_of_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let one = Store::open(Some(dir.path()), Path::new("/a/webapp.toml"), "127.0.0.1:0");
        let two = Store::open(Some(dir.path()), Path::new("/a/webapp.toml"), "127.0.0.1:1");
        let other = Store::open(Some(dir.path()), Path::new("/b/webapp.toml"), "127.0.0.1:0");
        one.hold(held("/x", 0xbb));
        assert_eq!(two.held_back(), vec![held("/x", 0xbb)]);
        assert!(
            other.held_back().is_empty(),
            "another config's are not read"
        );
        assert_eq!(
            two.bytes(&"a".repeat(64)),
            None,
            "bytes checked against the digest"
        );
        let bytes = b"stable bytes".to_vec();
        let digest = crate::cache::digest(&bytes);
        one.keep_bytes(&digest, &bytes);
        assert_eq!(two.bytes(&digest), Some(bytes));
        two.release("/x", |h| h.digest == d(0xbb));
        assert!(one.held_back().is_empty());
    }

    #[test]
    fn a_config_file_linked_into_a_folder_that_updates_replace_keeps_its_state() {
        // A mounted ConfigMap: `webapp.toml -> ..data/webapp.toml`, and
        // `..data` re-pointed at a new timestamped folder by every update.
        let cache = tempfile::tempdir().unwrap();
        let volume = tempfile::tempdir().unwrap();
        let link = |target: &str| {
            std::fs::create_dir_all(volume.path().join(target)).unwrap();
            std::fs::write(volume.path().join(target).join("webapp.toml"), "").unwrap();
            let _ = std::fs::remove_file(volume.path().join("..data"));
            std::os::unix::fs::symlink(target, volume.path().join("..data")).unwrap();
        };
        link("..2026_12_01_00_00_00.1");
        std::os::unix::fs::symlink("..data/webapp.toml", volume.path().join("webapp.toml"))
            .unwrap();
        let config = volume.path().join("webapp.toml");
        Store::open(Some(cache.path()), &config, "127.0.0.1:0").hold(held("/x", 0xbb));
        link("..2026_12_01_00_00_01.2");
        let after = Store::open(Some(cache.path()), &config, "127.0.0.1:0");
        assert_eq!(after.held_back(), vec![held("/x", 0xbb)]);
    }

    #[test]
    fn a_config_file_that_is_a_link_keeps_the_state_it_had_under_its_target() {
        // The state was once keyed by the file resolved; a link to a file
        // elsewhere must find it still.
        let cache = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let target = files.path().join("real.toml");
        std::fs::write(&target, "").unwrap();
        let link = files.path().join("webapp.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        Store::open(Some(cache.path()), &target, "127.0.0.1:0").hold(held("/x", 0xbb));
        let through_the_link = Store::open(Some(cache.path()), &link, "127.0.0.1:0");
        assert_eq!(through_the_link.held_back(), vec![held("/x", 0xbb)]);
    }

    #[test]
    fn holds_are_bounded_per_route() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path()), Path::new("/a/webapp.toml"), "l");
        for i in 0..MAX_HELD_PER_ROUTE + 3 {
            store.hold(held("/x", i as u8));
        }
        store.hold(held("/y", 0xff));
        let list = store.held_back();
        assert_eq!(
            list.iter().filter(|h| h.route == "/x").count(),
            MAX_HELD_PER_ROUTE
        );
        assert!(!list.iter().any(|h| h.digest == d(0)), "the oldest went");
        assert!(list.iter().any(|h| h.route == "/y"));
    }

    #[test]
    fn a_hosts_own_record_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let config = Path::new("/a/webapp.toml");
        let first = Store::open(Some(dir.path()), config, "127.0.0.1:0");
        let record = BTreeMap::from([(
            "/x".to_string(),
            UnderWay {
                entry: "e".into(),
                stable: "a".repeat(64),
                candidate: "b".repeat(64),
                share: 20,
            },
        )]);
        first.record_under_way(&record, &[]);
        // An unchanged record is not written again.
        let own = first.own.as_ref().unwrap().0.clone();
        std::fs::remove_file(&own).unwrap();
        first.record_under_way(&record, &[]);
        assert!(!own.exists());
        first.record_under_way(&BTreeMap::new(), &[]);
        first.record_under_way(&record, &[]);
        assert!(own.exists());
        // A second host on the same listen setting, while the first runs:
        // it reads and writes nothing of the first's.
        let second = Store::open(Some(dir.path()), config, "127.0.0.1:0");
        assert!(second.under_way().is_empty());
        second.record_under_way(&BTreeMap::new(), &[]);
        assert_eq!(first.under_way(), record);
        // Once the first stops, a restart on the same setting is it again.
        drop((first, second));
        let restarted = Store::open(Some(dir.path()), config, "127.0.0.1:0");
        assert_eq!(restarted.under_way(), record);
    }

    #[test]
    fn a_hold_that_cannot_be_written_lasts_while_the_host_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path()), Path::new("/a/webapp.toml"), "l");
        // The shared file's lock cannot be made: nothing can be written.
        let state = store.dir.clone().unwrap();
        std::fs::create_dir(state.join("held-back.lock")).unwrap();
        store.hold(held("/x", 0xbb));
        assert_eq!(store.held_back(), vec![held("/x", 0xbb)]);
        assert!(!state.join("held-back.json").exists());
        store.release("/x", |_| true);
        assert!(store.held_back().is_empty(), "released from memory too");
    }

    #[test]
    fn a_damaged_file_reads_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path()), Path::new("/a/webapp.toml"), "l");
        let path = store.dir.as_ref().unwrap().join("held-back.json");
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(store.held_back().is_empty());
        store.hold(held("/x", 0xbb));
        assert_eq!(store.held_back().len(), 1, "rewritten whole");
        assert!(
            path.with_extension("json.damaged").exists(),
            "the damaged file kept aside"
        );
        let memory = Store::open(None, Path::new("/a/webapp.toml"), "l");
        memory.hold(held("/x", 0xbb));
        assert_eq!(
            memory.held_back().len(),
            1,
            "kept in memory without a folder"
        );
        assert!(memory.under_way().is_empty());
    }
}
