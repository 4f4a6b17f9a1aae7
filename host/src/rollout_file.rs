//! The rollouts under way, kept on disk so that a host restarted during one
//! serves the stable version (and says so) rather than whatever the
//! component file holds now: a rebuilt file seen as a canary *is* the
//! candidate.
//!
//! One small JSON file per config file (several hosts may share a cache
//! folder), in the compile cache's folder, whose entries also hold the
//! stable version's compiled code: a restart serves it from there. Written
//! by `swap.rs` after every change, read once at start. Without a cache
//! folder nothing is kept, and a restart serves what the files hold.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest rollout file read back (a few hundred bytes per route).
const MAX_BYTES: u64 = 1 << 20;

/// One route's rollout: the versions by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnderWay {
    pub stable: String,
    /// The file the stable version was read from, if any (for `GET /routes`).
    #[serde(default)]
    pub stable_file: Option<PathBuf>,
    pub candidate: String,
    /// The candidate's share, in percent.
    pub share: u8,
}

/// Where the rollouts of one config file are kept (nowhere without a
/// cache folder).
pub struct RolloutFile {
    path: Option<PathBuf>,
}

impl RolloutFile {
    pub fn new(cache_dir: Option<&Path>, config_path: &Path) -> Self {
        let config = config_path
            .canonicalize()
            .unwrap_or_else(|_| config_path.to_path_buf());
        let key = crate::cache::digest(config.as_os_str().as_encoded_bytes());
        Self {
            path: cache_dir.map(|dir| dir.join(format!("rollouts-{}.json", &key[..16]))),
        }
    }

    /// Whether rollouts survive a restart at all.
    pub fn kept(&self) -> bool {
        self.path.is_some()
    }

    /// The rollouts recorded, by route path; none if the file is missing,
    /// and none (with a warning) if it is unreadable.
    pub fn read(&self) -> BTreeMap<String, UnderWay> {
        let Some(path) = &self.path else {
            return BTreeMap::new();
        };
        let read = crate::component_file::read(path, MAX_BYTES).and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| format!("not a rollout file: {e}"))
        });
        match read {
            Ok(under_way) => under_way,
            Err(_) if !path.exists() => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", path.display());
                BTreeMap::new()
            }
        }
    }

    /// Records `under_way` (replacing what was recorded); a failure is
    /// logged: it only matters to a restart.
    pub fn write(&self, under_way: &BTreeMap<String, UnderWay>) {
        let Some(path) = &self.path else { return };
        let written = (|| {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(&serde_json::to_vec_pretty(under_way)?)?;
            file.persist(path).map_err(|e| e.error)?;
            std::io::Result::Ok(())
        })();
        if let Err(e) = written {
            tracing::warn!(
                "cannot record the rollouts under way in {}: {e}; a restart now would serve \
                 what the component files hold",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_are_kept_per_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = RolloutFile::new(Some(dir.path()), Path::new("/a/webapp.toml"));
        let other = RolloutFile::new(Some(dir.path()), Path::new("/b/webapp.toml"));
        assert!(one.read().is_empty(), "nothing recorded yet");
        let under_way = BTreeMap::from([(
            "/ep_one".to_string(),
            UnderWay {
                stable: "a".repeat(64),
                stable_file: Some(PathBuf::from("/a/ep_one.wasm")),
                candidate: "b".repeat(64),
                share: 20,
            },
        )]);
        one.write(&under_way);
        assert_eq!(one.read(), under_way);
        assert!(other.read().is_empty());
        one.write(&BTreeMap::new());
        assert!(one.read().is_empty());
    }

    #[test]
    fn a_broken_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = RolloutFile::new(Some(dir.path()), Path::new("/a/webapp.toml"));
        std::fs::write(file.path.as_ref().unwrap(), b"{ not json").unwrap();
        assert!(file.read().is_empty());
        assert!(!RolloutFile::new(None, Path::new("/a/webapp.toml")).kept());
    }
}
