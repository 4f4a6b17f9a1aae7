//! Watching component files, so a rebuilt, copied-over or renamed-into-place
//! file is swapped in by itself.
//!
//! The folders holding routed files are watched (not the files: renaming a
//! new file into place replaces the inode, and Kubernetes volumes swap a
//! symlink); for a route named by a pattern, every folder its matches may
//! live in (`component_file::folders_to_watch`), re-read after each event
//! so a build folder that appears later is watched too. Events are only
//! triggers: after a moment of quiet every route is resolved again (the
//! newest match serves) and a route is swapped when that file's content
//! differs from what was last seen there. So a half-written file is at
//! worst rejected (the old version serves on) and picked up once complete,
//! and a version uploaded through the admin API is not undone by an
//! unrelated change next to it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use wasmtime::Result;

use crate::app::Endpoint;
use crate::cache;
use crate::component_file;
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
    let mut generations = control.generations();
    let mut watched = BTreeSet::new();
    let mut seen = HashMap::new();
    loop {
        let folders: BTreeSet<PathBuf> = control
            .app()
            .routes()
            .endpoints()
            .iter()
            .flat_map(|e| component_file::folders_to_watch(&e.source))
            .filter_map(|folder| folder.canonicalize().ok())
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
            seen.entry(seen_key(endpoint))
                .or_insert_with(|| control.seen_at_start(endpoint));
        }

        tokio::select! {
            Some(()) = changed.recv() => rescan(&control, &mut seen).await,
            Ok(()) = generations.changed() => {}
            else => return Ok(()),
        }
    }
}

/// What `seen` remembers a digest for: a route as the config names it
/// (a reload that points a route elsewhere starts afresh).
type SeenKey = (String, PathBuf);

fn seen_key(endpoint: &Endpoint) -> SeenKey {
    (endpoint.path.to_string(), endpoint.source.clone())
}

/// Swaps every route whose file changed since it was last seen.
async fn rescan(control: &Control, seen: &mut HashMap<SeenKey, String>) {
    for endpoint in control.app().routes().endpoints() {
        // Missing for a moment while a file is renamed into place: the next
        // event brings it.
        let source = endpoint.source.clone();
        let read = tokio::task::spawn_blocking(move || {
            let resolved = component_file::resolve(&source)?;
            component_file::read(&resolved.file, component_file::MAX_COMPONENT_BYTES)
                .map(|bytes| (resolved, bytes))
        })
        .await;
        let Ok(Ok((resolved, bytes))) = read else {
            continue;
        };
        if component_file::is_core_module(&bytes) {
            // `cargo component build` writes the core module first, then
            // converts it in place: the conversion brings another event.
            tracing::debug!(
                route = %endpoint.path,
                file = %resolved.file.display(),
                "a core module, not (yet) a component: waiting for it to be converted"
            );
            continue;
        }
        let digest = cache::digest(&bytes);
        let key = seen_key(endpoint);
        if seen.get(&key) == Some(&digest) {
            continue;
        }
        // Already serving (a reload may have loaded it first): nothing to
        // do, unless a canary serves beside it: a build back to the stable
        // version ends the rollout (the latest change wins).
        let serving = endpoint.serving();
        let back_to_stable = serving.stable.component.digest == digest;
        let is_candidate = serving
            .candidate
            .as_ref()
            .is_some_and(|(c, _)| c.component.digest == digest);
        seen.insert(key, digest);
        if is_candidate || (back_to_stable && serving.candidate.is_none()) {
            continue;
        }
        tracing::info!(
            route = %endpoint.path,
            file = %resolved.file.display(),
            "component file changed{}",
            crate::swap::newest_of(&resolved)
        );
        // Counted and logged by the swap, whatever its result; as a canary
        // if the route says so.
        let file = resolved.file;
        let _ = control
            .swap(
                &endpoint.path,
                Source::Rebuilt { file, bytes },
                endpoint.rollout.canary.filter(|_| !back_to_stable),
            )
            .await;
    }
}
