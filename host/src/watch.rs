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
//! so a build folder that appears later is watched too.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use wasmtime::Result;

use crate::component_file;
use crate::control::{Control, Look};

/// How long a new file must be quiet before it is looked at.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often every route's file is looked at without an event.
pub const LOOK_EVERY: Duration = Duration::from_secs(30);

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
    let mut periodic =
        tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
    let mut look = Some(Look::Periodic); // the first look, once watching
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
        if let Some(look) = look.take() {
            control.look_at_files(look).await;
        }
        tokio::select! {
            Some(()) = changed.recv() => look = Some(Look::Event),
            _ = periodic.tick() => look = Some(Look::Periodic),
            Ok(()) = generations.changed() => {}
            else => return Ok(()),
        }
    }
}
