//! Reading a route's file and loading versions: the blocking part of
//! every change, run off the async threads by the owner (`mod.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Result, format_err};

use crate::component_file::{self, Resolved};
use crate::engine::{LoadedComponent, WasmEngine};

/// What a route's file holds now.
pub struct FileOffer {
    /// The file the route's component (or pattern) resolves to.
    pub resolved: Resolved,
    pub bytes: Vec<u8>,
    pub digest: String,
}

/// Reads what `source` (a route's file or pattern) offers now. `Ok(None)`:
/// nothing yet (a core module that `cargo component` is about to convert
/// in place; the conversion brings another event).
pub fn read_offer(source: &Path) -> Result<Option<FileOffer>, String> {
    let resolved = component_file::resolve(source)?;
    let bytes = component_file::read(&resolved.file, component_file::MAX_COMPONENT_BYTES)?;
    if component_file::is_core_module(&bytes) {
        tracing::debug!(
            file = %resolved.file.display(),
            "a core module, not (yet) a component: waiting for it to be converted"
        );
        return Ok(None);
    }
    let digest = crate::cache::digest(&bytes);
    Ok(Some(FileOffer {
        resolved,
        bytes,
        digest,
    }))
}

/// Compiles (or finds compiled) and links `bytes`, read from `file`.
pub fn load(
    engine: &WasmEngine,
    bytes: &[u8],
    file: Option<PathBuf>,
) -> Result<Arc<LoadedComponent>> {
    let mut loaded = engine.load_bytes(bytes)?;
    loaded.file = file;
    Ok(Arc::new(loaded))
}

/// Runs blocking `work` (reads, compiles) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format_err!("the loader failed: {e}"))?
}

/// How a log line says which of several builds was picked, if there were several.
pub fn newest_of(resolved: &Resolved) -> String {
    if resolved.others.is_empty() {
        return String::new();
    }
    let others: Vec<String> = resolved
        .others
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "; the newest of {} matching files (also: {})",
        others.len() + 1,
        others.join(", ")
    )
}
