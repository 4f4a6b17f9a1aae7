//! Reading what a route's source offers and loading versions: the
//! blocking part of every change, run off the async threads by the owner
//! (`mod.rs`).

use std::sync::Arc;

use wasmtime::{Result, format_err};

use crate::component_file::{self, Resolved};
use crate::engine::{LoadedComponent, WasmEngine};
use crate::registry::Registry;
use crate::source::ComponentSource;

/// What a route's source holds now.
pub struct SourceOffer {
    /// Where the bytes came from, as shown and logged: the file the route's
    /// pattern resolves to, or the registry reference.
    pub from: String,
    /// For a pattern matching several files, which others it matched (for
    /// the log); empty otherwise.
    pub newest_of: String,
    pub bytes: Arc<Vec<u8>>,
    pub digest: String,
}

/// Reads what `source` (a route's file or pattern, or its reference, as
/// `registry` keeps it: no network) offers now. `Ok(None)`: nothing yet (a
/// core module that `cargo component` is about to convert in place; the
/// conversion brings another event).
pub fn read_offer(
    source: &ComponentSource,
    registry: &Registry,
) -> Result<Option<SourceOffer>, String> {
    let file = match source {
        ComponentSource::Oci(reference) => {
            let (bytes, digest) = registry.offer(reference)?;
            return Ok(Some(SourceOffer {
                from: reference.to_string(),
                newest_of: String::new(),
                bytes,
                digest,
            }));
        }
        ComponentSource::File(file) => file,
    };
    let resolved = component_file::resolve(file)?;
    let bytes = component_file::read(&resolved.file, component_file::MAX_COMPONENT_BYTES)?;
    if component_file::is_core_module(&bytes) {
        tracing::debug!(
            file = %resolved.file.display(),
            "a core module, not (yet) a component: waiting for it to be converted"
        );
        return Ok(None);
    }
    let digest = crate::cache::digest(&bytes);
    Ok(Some(SourceOffer {
        from: resolved.file.display().to_string(),
        newest_of: newest_of(&resolved),
        bytes: Arc::new(bytes),
        digest,
    }))
}

/// Compiles (or finds compiled) and links `bytes`, read `from` a file or reference.
pub fn load(
    engine: &WasmEngine,
    bytes: &[u8],
    from: Option<String>,
) -> Result<Arc<LoadedComponent>> {
    let mut loaded = engine.load_bytes(bytes)?;
    loaded.from = from;
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
fn newest_of(resolved: &Resolved) -> String {
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
