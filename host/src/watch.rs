//! Watching component files, so a rebuilt, copied-over or renamed-into-place
//! file is served by itself.
//!
//! The watcher decides nothing: an event only asks the owner
//! (`control::Control::look_at_files`) to look at every route's file
//! again, and the owner reads the files under its lock and decides from the
//! state as it is then. The watcher also looks once when it starts (a
//! build finishing between loading and watching is not missed) and every
//! [`LOOK_EVERY`] (the safety net for an event lost).
//!
//! The folders holding routed files are watched (not the files: renaming a
//! new file into place replaces the inode, and Kubernetes volumes swap a
//! symlink); for a route named by a pattern, every folder its matches may
//! live in (`component_file::folders_to_watch`), re-read after each change
//! so a build folder that appears later is watched too. Each folder is
//! watched as named and as it resolves: a mounted ConfigMap's files resolve
//! into a timestamped folder that the next update deletes.
//!
//! The config file's folder is watched too (as named: a mounted ConfigMap
//! swaps its `..data` symlink there), and an event that may have changed
//! the file asks the owner to look at it (`Control::look_at_config`), which
//! reloads the route table when the text differs. Only events that end a
//! change count: a file closed after writing, a name renamed or removed.
//! A file being written (data changed, not yet closed) or just created is
//! not read, so a writer that writes the file in pieces is never read half
//! way; the periodic look skips a file modified in the last
//! `control::CONFIG_QUIET`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::event::{AccessKind, AccessMode, ModifyKind};
use notify_debouncer_mini::notify::{self, EventKind, RecursiveMode, Watcher};
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use wasmtime::Result;

use crate::component_file;
use crate::control::{Control, Look};

/// How long a new file must be quiet before it is looked at.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often every route's file is looked at without an event.
pub const LOOK_EVERY: Duration = Duration::from_secs(30);

/// Whether an event in the config file's folder may have ended a change of
/// the file as a reader sees it: a file closed after writing, a name
/// renamed (`mv`, the kubelet's `..data` swap) or removed. Not a write
/// still under way, nor a creation (an empty file, about to be written).
fn may_end_a_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => true,
        EventKind::Access(_) | EventKind::Create(_) | EventKind::Modify(_) => false,
        EventKind::Any | EventKind::Other => true,
    }
}

/// Watches the folders holding the config file (as named, and as it
/// resolves), telling `changed` of every event that may end a change.
fn watch_config(
    control: &Control,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if may_end_a_change(&event.kind) => {
                let _ = changed.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("config file watching: {e}"),
        })?;
    let path = control.config_path();
    let named = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let resolved = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from));
    let folders: BTreeSet<PathBuf> = std::iter::once(named).chain(resolved).collect();
    for folder in folders {
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        tracing::info!(
            "watching {} for changes of the config file",
            folder.display()
        );
    }
    Ok(watcher)
}

/// Watches until the process ends.
pub async fn run(control: Arc<Control>) -> Result<()> {
    let (events, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Err(e) = &result {
            tracing::warn!("file watching: {e}");
        }
        let _ = events.send(());
    })?;
    let (config_events, mut config_changed) = tokio::sync::mpsc::unbounded_channel();
    let _config_watcher = match watch_config(&control, config_events) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                "cannot watch the config file {}: {e}; `POST /reload` and the periodic look \
                 still read it",
                control.config_path().display()
            );
            None
        }
    };
    let mut generations = control.generations();
    let mut watched = BTreeSet::new();
    let mut periodic =
        tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
    let mut look = Some(Look::Periodic); // the first look, once watching
    let mut look_at_config = true;
    loop {
        let folders: BTreeSet<PathBuf> = control
            .app()
            .routes()
            .endpoints()
            .iter()
            .flat_map(|e| component_file::folders_to_watch(&e.source))
            .filter(|folder| folder.is_dir())
            .flat_map(|folder| {
                let resolved = folder.canonicalize().ok();
                [Some(folder), resolved]
            })
            .flatten()
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
        if let Some(look) = look.take() {
            // The config first: a new table may re-point routes, whose files
            // are then looked at as the new table names them.
            if look_at_config {
                control.look_at_config(look).await;
            }
            control.look_at_files(look).await;
        }
        look_at_config = false;
        tokio::select! {
            Some(()) = changed.recv() => look = Some(Look::Event),
            Some(()) = config_changed.recv() => {
                look = Some(Look::Event);
                look_at_config = true;
            }
            _ = periodic.tick() => {
                look = Some(Look::Periodic);
                look_at_config = true;
            }
            Ok(()) = generations.changed() => {}
            else => return Ok(()),
        }
    }
}
