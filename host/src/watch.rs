//! Watching component files, so a rebuilt, copied-over or renamed-into-place
//! file is swapped in by itself.
//!
//! The folders holding routed files are watched (not the files: renaming a
//! new file into place replaces the inode, and Kubernetes volumes swap a
//! symlink). Events are debounced: only after the folder has been quiet for
//! a moment are the routed files hashed, and a route is swapped when its
//! file's content differs from what was last seen there. So a half-written
//! file is at worst rejected (the old version serves on) and picked up once
//! complete, and a version uploaded through the admin API is not undone by an
//! unrelated change next to it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use wasmtime::Result;

use crate::cache;
use crate::swap::{Control, DEBOUNCE, Source};

/// Watches until the process ends.
pub async fn run(control: Arc<Control>) -> Result<()> {
    let (events, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Err(e) = &result {
            tracing::warn!("file watching: {e}");
        }
        let _ = events.send(());
    })?;
    let mut reloads = control.reloads();
    let mut watched = BTreeSet::new();
    let mut seen = HashMap::new();
    loop {
        let folders: BTreeSet<PathBuf> = control
            .app()
            .routes()
            .endpoints()
            .iter()
            .filter_map(|e| e.file.parent()?.canonicalize().ok())
            .collect();
        for folder in watched.difference(&folders) {
            let _ = debouncer.watcher().unwatch(folder);
        }
        for folder in folders.difference(&watched) {
            match debouncer
                .watcher()
                .watch(folder, RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    tracing::info!("watching {} for new component versions", folder.display())
                }
                Err(e) => tracing::warn!("cannot watch {}: {e}", folder.display()),
            }
        }
        watched = folders;
        for endpoint in control.app().routes().endpoints() {
            seen.entry(endpoint.path.to_string())
                .or_insert_with(|| endpoint.component().digest.clone());
        }

        tokio::select! {
            Some(()) = changed.recv() => rescan(&control, &mut seen).await,
            Ok(()) = reloads.changed() => {}
            else => return Ok(()),
        }
    }
}

/// Swaps every route whose file changed since it was last seen.
async fn rescan(control: &Control, seen: &mut HashMap<String, String>) {
    for endpoint in control.app().routes().endpoints() {
        // Missing for a moment while a file is renamed into place: the next
        // event brings it.
        let Ok(bytes) = tokio::fs::read(&endpoint.file).await else {
            continue;
        };
        let digest = cache::digest(&bytes);
        if seen.get(endpoint.path.as_ref()) == Some(&digest) {
            continue;
        }
        seen.insert(endpoint.path.to_string(), digest);
        tracing::info!(route = %endpoint.path, file = %endpoint.file.display(), "component file changed");
        // Counted and logged by the swap, whatever its result.
        let _ = control.swap(&endpoint.path, Source::Bytes(bytes)).await;
    }
}
