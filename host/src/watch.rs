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
//!
//! Looks that may wait on a registry (a config look, which pulls what a
//! new table names; the periodic look, which retries a refused table and
//! refreshes tags) run in tasks of their own, one per kind, each one at a
//! time with asks made meanwhile coalesced into one more run: a slow or
//! hung registry never holds up a file event, nor does a hung retry hold
//! up the look at a config event (which may drop the hung reference).
//!
//! The config file's folder is watched too, as named (a mounted ConfigMap
//! swaps its `..data` symlink there), and an event about the file, or about
//! `..data`, that may have ended a change asks the owner to look at the
//! file (`Control::look_at_config`), which reloads the route table when the
//! text differs. Only events that end a change count: the file closed after
//! writing, renamed into place or removed, `..data` renamed over. A file
//! being written (data changed, not yet closed) or just created is not read,
//! and the 30 s look skips a file modified in the last 2 s. So a file
//! renamed into place (the kubelet's way, `mv`, most editors) or written in
//! one open is never read half way; a writer that closes and reopens the
//! file between pieces can be (write a temporary file and rename it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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

/// Whether an event may have ended a change of a file as a reader sees
/// it: the file closed after writing, a name renamed (`mv`, the kubelet's
/// `..data` swap) or removed. Not a write still under way, nor a creation
/// (an empty file, about to be written).
fn may_end_a_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => true,
        EventKind::Access(_) | EventKind::Create(_) | EventKind::Modify(_) => false,
        EventKind::Any | EventKind::Other => true,
    }
}

/// Watches the folder holding the config file (as named), telling
/// `changed` of every event about the file or `..data` that may end a
/// change.
fn watch_config(
    config_path: &Path,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let name = config_path.file_name().map(|n| n.to_os_string());
    let about_the_file = move |path: &PathBuf| {
        let file = path.file_name();
        file.is_some() && (file == name.as_deref() || file == Some("..data".as_ref()))
    };
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event)
                if may_end_a_change(&event.kind) && event.paths.iter().any(&about_the_file) =>
            {
                let _ = changed.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("config file watching: {e}"),
        })?;
    let folder = match config_path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    };
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    tracing::info!(
        "watching {} for changes of the config file",
        folder.display()
    );
    Ok(watcher)
}

/// A look run in a task of its own, one at a time: asked while it runs,
/// it runs once more after (asks coalesce: one running, at most one due).
struct Coalesced {
    due: Arc<tokio::sync::Notify>,
}

impl Coalesced {
    fn spawn<F, Fut>(look: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let due = Arc::new(tokio::sync::Notify::new());
        let woken = due.clone();
        tokio::spawn(async move {
            loop {
                // `notify_one` keeps one permit while nothing waits.
                woken.notified().await;
                look().await;
            }
        });
        Self { due }
    }

    fn ask(&self) {
        self.due.notify_one();
    }
}

/// What to watch.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// The routes' component files (`watch`).
    pub files: bool,
    /// The config file (`watch_config`).
    pub config: bool,
}

/// Watches until the process ends.
pub async fn run(control: Arc<Control>, what: Watched) -> Result<()> {
    let (events, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Err(e) = &result {
            tracing::warn!("file watching: {e}");
        }
        let _ = events.send(());
    })?;
    let (config_events, mut config_changed) = tokio::sync::mpsc::unbounded_channel();
    let _config_watcher = if what.config {
        match watch_config(control.config_path(), config_events) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(
                    "cannot watch the config file {}: {e}; `POST /reload` and the periodic look \
                     still read it",
                    control.config_path().display()
                );
                None
            }
        }
    } else {
        None
    };
    let mut generations = control.generations();
    let mut watched = BTreeSet::new();
    let mut periodic =
        tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
    let mut look = Some(Look::Periodic); // the first look, once watching
    // Looks that may wait on a registry, each kind in a task of its own.
    let config_looks = Coalesced::spawn({
        let control = control.clone();
        move || {
            let control = control.clone();
            async move { control.look_at_config(Look::Event).await }
        }
    });
    let periodic_looks = Coalesced::spawn({
        let control = control.clone();
        move || {
            let control = control.clone();
            async move {
                // The config first: a new table may re-point routes, whose
                // files are then looked at as the new table names them.
                if what.config {
                    control.look_at_config(Look::Periodic).await;
                }
                if what.files {
                    control.look_at_files(Look::Periodic).await;
                }
            }
        }
    });
    let mut config_only = false;
    loop {
        let folders: BTreeSet<PathBuf> = if what.files {
            control
                .app()
                .routes()
                .endpoints()
                .iter()
                .filter_map(|e| e.source.file())
                .flat_map(component_file::folders_to_watch)
                .filter_map(|folder| folder.canonicalize().ok())
                .collect()
        } else {
            BTreeSet::new()
        };
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
        match look.take() {
            // A config event: the owner reloads, and then looks at the
            // files of the routes it kept, by itself. In its own task: it
            // may wait on a registry (a component the new table names).
            Some(_) if config_only => config_looks.ask(),
            // A file event: read from disk only, never a registry.
            Some(look @ Look::Event) if what.files => control.look_at_files(look).await,
            Some(Look::Event) => {}
            // Only periodically does a files look read the config too: a
            // component's event says nothing of the config file, which may
            // be half written right now. In its own task: both may wait on
            // a registry (a retried table, a tag refresh).
            Some(Look::Periodic) => periodic_looks.ask(),
            None => {}
        }
        tokio::select! {
            Some(()) = changed.recv() => {
                look = Some(Look::Event);
                config_only = false;
            }
            Some(()) = config_changed.recv() => {
                // One update brings several events: one look for them all.
                while config_changed.try_recv().is_ok() {}
                look = Some(Look::Event);
                config_only = true;
            }
            _ = periodic.tick() => {
                look = Some(Look::Periodic);
                config_only = false;
            }
            Ok(()) = generations.changed() => {}
            else => return Ok(()),
        }
    }
}
