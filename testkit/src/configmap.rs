//! A folder laid out and updated exactly as the kubelet's atomic writer
//! lays out a mounted ConfigMap (Kubernetes `pkg/volume/util/atomic_writer.go`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A folder laid out and updated exactly as the kubelet's atomic writer
/// does for a mounted ConfigMap.
pub struct ConfigMapVolume {
    pub dir: tempfile::TempDir,
    /// Timestamped folders written so far, to name the next one.
    written: AtomicUsize,
}

impl ConfigMapVolume {
    pub fn new(files: &[(&str, &[u8])]) -> Self {
        let volume = Self {
            dir: tempfile::tempdir().unwrap(),
            written: AtomicUsize::new(0),
        };
        volume.update(files);
        volume
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The kubelet's sequence: write a new `..<timestamp>` folder, point
    /// `..data_tmp` at it, rename that over `..data`, make sure every
    /// `name -> ..data/name` link exists, delete the previous folder.
    pub fn update(&self, files: &[(&str, &[u8])]) {
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        let folder = format!("..2026_12_01_21_00_{n:02}.{}", 100_000 + n);
        std::fs::create_dir(self.path(&folder)).unwrap();
        for (name, bytes) in files {
            std::fs::write(self.path(&folder).join(name), bytes).unwrap();
        }
        let previous = std::fs::read_link(self.path("..data")).ok();
        std::os::unix::fs::symlink(&folder, self.path("..data_tmp")).unwrap();
        std::fs::rename(self.path("..data_tmp"), self.path("..data")).unwrap();
        for (name, _) in files {
            let link = self.path(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        if let Some(previous) = previous {
            std::fs::remove_dir_all(self.path(&previous.to_string_lossy())).unwrap();
        }
    }
}
