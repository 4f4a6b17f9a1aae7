//! Compiled code, kept so a component is compiled once per engine.
//!
//! Keyed by the component's SHA-256 and the engine's compatibility hash
//! (wasmtime version and every setting that shapes code, such as fuel), so
//! a restart, or swapping back to a version seen before, skips
//! compilation: in memory within a run, on disk across runs.
//!
//! Loading native code from disk is only as safe as the cache folder: it
//! must be writable by the host alone. wasmtime still refuses files made by
//! another version or configuration.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Result};

/// A component's identity: lowercase hex SHA-256 of its bytes.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    MemoryCache,
    DiskCache,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::MemoryCache => "memory-cache",
            Self::DiskCache => "disk-cache",
        }
    }
}

pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
    memory: Mutex<HashMap<String, Component>>,
}

impl CompileCache {
    /// A cache for `engine`, on disk in `dir` when given.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
            memory: Mutex::default(),
        }
    }

    /// The compiled form of `bytes` (whose digest is `digest`).
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Origin)> {
        if let Some(component) = self.memory.lock().expect("cache lock").get(digest) {
            return Ok((component.clone(), Origin::MemoryCache));
        }
        let file = self
            .dir
            .as_ref()
            .map(|dir| dir.join(format!("{digest}-{}.cwasm", self.engine_key)));
        let from_disk = file.as_ref().filter(|f| f.is_file()).and_then(|f| {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with this compatibility hash, into a folder only the
            // host writes (see the module docs); wasmtime checks the header.
            match unsafe { Component::deserialize_file(engine, f) } {
                Ok(component) => Some(component),
                Err(e) => {
                    tracing::warn!("ignoring compile cache entry {}: {e}", f.display());
                    None
                }
            }
        });
        let (component, origin) = match from_disk {
            Some(component) => (component, Origin::DiskCache),
            None => {
                let component = Component::new(engine, bytes)?;
                if let Some(file) = &file
                    && let Err(e) = write_atomically(file, &component.serialize()?)
                {
                    tracing::warn!("cannot write compile cache entry {}: {e}", file.display());
                }
                (component, Origin::Compiled)
            }
        };
        self.memory
            .lock()
            .expect("cache lock")
            .insert(digest.to_owned(), component.clone());
        Ok((component, origin))
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache files live in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
