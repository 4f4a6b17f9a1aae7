//! Compiled code, kept so a component is compiled once per engine.
//!
//! Keyed by the component's SHA-256 and a stable key of the engine's
//! compatibility hash (wasmtime version and every setting that shapes code,
//! such as fuel), so a restart, or swapping back to a version seen before,
//! skips compilation: in memory within a run (the most recently used few),
//! on disk across runs (up to a size bound, least recently used evicted).
//!
//! A disk entry cannot lie: it carries the digest of the component it was
//! compiled from and the digest of its own compiled bytes, both checked
//! before the bytes are handed to wasmtime; an entry that fails either check
//! (torn, truncated, renamed, written by someone else's bug) is discarded,
//! logged and recompiled, never run. Entries are written to a temporary file
//! of their own and renamed into place, so concurrent compiles cannot mix
//! their bytes. One compile per digest at a time: a second request for the
//! same new version waits for the first and gets its result, a failure too
//! (compiling the same bytes on the same engine fails the same way again).
//! A failure is remembered only for the loads that waited on that compile:
//! a load after it tries again, so failures cost no memory.
//!
//! "Recently used" on disk is the entry's modification time. Reading an
//! entry sets it, and so does a memory hit (a reload loading the version
//! that has served all along), at most once per `TOUCH_EVERY` per entry: the
//! version serving for days must not be the first evicted when a rollout
//! churns through others, or a restart mid-rollout could not serve it.
//!
//! Loading native code from disk is still only as safe as the cache folder:
//! it must be writable by the host alone (the checks catch accidents, not an
//! attacker who can write both the bytes and their digest).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Result};

/// A component's identity: lowercase hex SHA-256 of its bytes.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether `text` is a digest as [`digest`] writes them (64 lowercase hex
/// digits): what names files in the cache, state and registry folders.
pub fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Compiled components kept in memory (most recently used first out last).
const MEMORY_ENTRIES: usize = 64;

/// A memory hit marks the disk entry as used at most this often. The mark
/// is the file's modification time rather than a map in memory, so it
/// outlives the process (a restart ranks entries by real use) and any
/// process sharing the folder sees it; the interval bounds it to one small
/// write per entry a minute however often reloads load it, while a minute
/// is nothing against eviction, which ranks entries by use across rollouts.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The first bytes of every disk entry (and its format's version).
const MAGIC: &[u8; 8] = b"WHCWASM1";
/// Magic, the source component's SHA-256, the compiled bytes' SHA-256.
const HEADER_LEN: usize = 8 + 32 + 32;

pub struct CompileCache {
    /// The disk folder; `None` keeps compiled code in memory only.
    dir: Option<PathBuf>,
    /// Upper bound of the disk entries' total size.
    max_disk_bytes: u64,
    /// Hex key of the engine's compatibility hash, stable across toolchains.
    engine_key: String,
    /// Recently used components by digest, with a use stamp for eviction.
    memory: Mutex<MemoryCache>,
    /// One gate per digest being loaded: the single flight. Its slot holds
    /// the load's outcome for the loads waiting on it.
    loading: Mutex<HashMap<String, Gate>>,
    /// How often a memory hit marks the disk entry used (`TOUCH_EVERY`;
    /// tests shorten it).
    touch_every: Duration,
    /// Compilations started (what the single flight saves; read by tests).
    compiles: AtomicU64,
}

/// The single flight of one digest: whoever holds the lock loads it and
/// leaves the outcome in the slot for those who waited on the lock.
type Gate = Arc<Mutex<Option<Outcome>>>;

/// A finished load as its waiters get it.
type Outcome = std::result::Result<Component, FailedCompile>;

/// A compile's error, kept as text so every waiter gets its own copy
/// (`wasmtime::Error` cannot be cloned).
struct FailedCompile {
    /// The error's messages, outermost first (its `chain()`).
    chain: Vec<String>,
}

impl FailedCompile {
    fn of(error: &wasmtime::Error) -> Self {
        Self {
            chain: error.chain().map(ToString::to_string).collect(),
        }
    }

    /// The same error again: same message, same causes.
    fn error(&self) -> wasmtime::Error {
        let mut messages = self.chain.iter().rev();
        let root = messages.next().cloned().unwrap_or_default();
        messages.fold(wasmtime::Error::msg(root), |error, outer| {
            error.context(outer.clone())
        })
    }
}

/// One component in memory.
struct Remembered {
    /// The compiled component (cloning shares it).
    component: Component,
    /// The cache's clock at its last use: the least recently used goes.
    used: u64,
    /// When its disk entry was last marked used (read, written or touched).
    touched: Instant,
}

#[derive(Default)]
struct MemoryCache {
    /// By digest, at most `MEMORY_ENTRIES`.
    entries: HashMap<String, Remembered>,
    /// Counts uses, to order them.
    clock: u64,
}

impl MemoryCache {
    /// The component `digest`, and whether its disk entry is due to be
    /// marked used (then counted as marked now).
    fn get(&mut self, digest: &str, touch_every: Duration) -> Option<(Component, bool)> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(digest).map(|remembered| {
            remembered.used = clock;
            let due = remembered.touched.elapsed() >= touch_every;
            if due {
                remembered.touched = Instant::now();
            }
            (remembered.component.clone(), due)
        })
    }

    /// Remembers `component`, whose disk entry (if any) was just read or written.
    fn insert(&mut self, digest: &str, component: Component) {
        self.clock += 1;
        let remembered = Remembered {
            component,
            used: self.clock,
            touched: Instant::now(),
        };
        self.entries.insert(digest.to_owned(), remembered);
        while self.entries.len() > MEMORY_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, remembered)| remembered.used)
                .map(|(digest, _)| digest.clone())
                .expect("not empty");
            self.entries.remove(&oldest);
        }
    }
}

/// Feeds whatever is hashed into SHA-256: a key that, unlike
/// `DefaultHasher`, does not change with the Rust release.
struct StableHasher(Sha256);

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 state is read")
    }
}

/// The engine's part of a cache entry's name.
pub fn engine_key(engine: &Engine) -> String {
    let mut hasher = StableHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

impl CompileCache {
    /// A cache for `engine`, on disk in `dir` (at most `max_disk_bytes`) when given.
    pub fn new(engine: &Engine, dir: Option<PathBuf>, max_disk_bytes: u64) -> Self {
        Self {
            dir,
            max_disk_bytes,
            engine_key: engine_key(engine),
            memory: Mutex::default(),
            loading: Mutex::default(),
            touch_every: TOUCH_EVERY,
            compiles: AtomicU64::new(0),
        }
    }

    /// The component `digest` if memory holds it, its disk entry marked
    /// used when due (see `TOUCH_EVERY`).
    fn in_memory(&self, digest: &str) -> Option<Component> {
        let (component, touch) = self
            .memory
            .lock()
            .expect("cache lock")
            .get(digest, self.touch_every)?;
        if touch {
            self.touch(digest);
        }
        Some(component)
    }

    /// Marks `digest`'s disk entry as used now, for eviction (if it exists:
    /// an evicted entry is not brought back empty).
    fn touch(&self, digest: &str) {
        let Some(entry) = self.entry_path(digest) else {
            return;
        };
        let touched = std::fs::File::options()
            .write(true)
            .open(&entry)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = touched
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!("cannot mark {} used: {e}", entry.display());
        }
    }

    /// The compiled form of `bytes` (whose digest is `digest`).
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Origin)> {
        if let Some(component) = self.in_memory(digest) {
            return Ok((component, Origin::MemoryCache));
        }
        let gate = self
            .loading
            .lock()
            .expect("cache lock")
            .entry(digest.to_owned())
            .or_default()
            .clone();
        // A load that panicked leaves no outcome: the next one loads again.
        let mut outcome = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Whoever held the gate before loaded it: take its result, even a
        // failure (the same bytes fail the same way).
        match &*outcome {
            Some(Ok(component)) => return Ok((component.clone(), Origin::MemoryCache)),
            Some(Err(failed)) => return Err(failed.error()),
            None => {}
        }
        let loaded = self.load_uncached(engine, bytes, digest);
        match &loaded {
            Ok((component, _)) => {
                self.memory
                    .lock()
                    .expect("cache lock")
                    .insert(digest, component.clone());
                *outcome = Some(Ok(component.clone()));
            }
            Err(e) => *outcome = Some(Err(FailedCompile::of(e))),
        }
        // Loads from now on start afresh; those holding the gate already
        // read the outcome, and it goes with the last of them.
        self.loading.lock().expect("cache lock").remove(digest);
        loaded
    }

    /// The disk entry of `digest`, checked, and marked as recently used
    /// (for eviction); `None` without a cache folder or a valid entry.
    fn read_disk(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let entry = self.entry_path(digest)?;
        let component = read_entry(engine, &entry, digest)?;
        self.touch(digest);
        Some(component)
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    fn load_uncached(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Origin)> {
        if let Some(component) = self.read_disk(engine, digest) {
            return Ok((component, Origin::DiskCache));
        }
        let entry = self.entry_path(digest);
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(engine, bytes)?;
        if let Some(entry) = &entry {
            let written = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|compiled| write_entry(entry, digest, &compiled));
            match written {
                Ok(()) => self.evict(entry),
                Err(e) => {
                    tracing::warn!("cannot write compile cache entry {}: {e}", entry.display())
                }
            }
        }
        Ok((component, Origin::Compiled))
    }

    /// Deletes the least recently used entries until the folder fits its
    /// bound, keeping `keep` (just written) unless it alone is too large.
    fn evict(&self, keep: &Path) {
        if let Some(dir) = &self.dir {
            evict_least_recently_used(
                dir,
                self.max_disk_bytes,
                "compile cache",
                |p| p.extension().is_some_and(|x| x == "cwasm"),
                |p, _| p == keep,
            );
        }
    }
}

/// Removes files of `dir` that `is_entry`, least recently modified first,
/// until they total at most `max_bytes`, sparing those `spared(path,
/// modified)` (they count, but stay). `what` names the folder in the log.
pub fn evict_least_recently_used(
    dir: &Path,
    max_bytes: u64,
    what: &str,
    is_entry: impl Fn(&Path) -> bool,
    spared: impl Fn(&Path, SystemTime) -> bool,
) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = listing
        .filter_map(Result::ok)
        .filter(|e| is_entry(&e.path()))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then_some(())?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort_by_key(|(used, _, _)| *used); // oldest first
    for (used, len, path) in entries {
        if total <= max_bytes {
            break;
        }
        if spared(&path, used) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                total -= len;
                tracing::info!("{what} over {max_bytes} bytes: evicted {}", path.display());
            }
            Err(e) => tracing::warn!("cannot evict {}: {e}", path.display()),
        }
    }
}

/// Marks the file at `path` used now (its modification time, which
/// eviction ranks by), unless it was marked within `every`.
pub fn mark_used(path: &Path, every: Duration) {
    let stale = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= every));
    if stale {
        let _ = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()));
    }
}

/// The component in `entry`, if the entry is there and passes every check;
/// an entry that fails one is logged and deleted.
fn read_entry(engine: &Engine, entry: &Path, digest: &str) -> Option<Component> {
    let data = std::fs::read(entry).ok()?;
    let checked = check_entry(&data, digest).and_then(|compiled| {
        // SAFETY: `compiled` is exactly what `Component::serialize` wrote
        // for the component whose digest is `digest` (both digests were
        // checked just now), in a folder only the host writes (see the
        // module docs); wasmtime also checks its own header.
        unsafe { Component::deserialize(engine, compiled) }.map_err(|e| format!("{e:#}"))
    });
    match checked {
        Ok(component) => Some(component),
        Err(why) => {
            tracing::warn!(
                "discarding compile cache entry {}: {why}; compiling again",
                entry.display()
            );
            let _ = std::fs::remove_file(entry);
            None
        }
    }
}

/// The compiled bytes inside an entry, if its header says it holds the
/// component `digest` and its bytes are intact.
fn check_entry<'a>(data: &'a [u8], digest: &str) -> Result<&'a [u8], String> {
    if data.len() < HEADER_LEN || &data[..8] != MAGIC {
        return Err("not a cache entry of this host (truncated or foreign)".into());
    }
    let (source, sum, compiled) = (&data[8..40], &data[40..72], &data[HEADER_LEN..]);
    if hex(source) != digest {
        return Err(format!(
            "compiled from component {}, not {digest}",
            hex(source)
        ));
    }
    if Sha256::digest(compiled).as_slice() != sum {
        return Err("its compiled bytes are damaged (checksum mismatch)".into());
    }
    Ok(compiled)
}

/// Writes an entry through a temporary file of its own and a rename, so a
/// reader never sees half a file and concurrent writers never mix.
fn write_entry(path: &Path, digest: &str, compiled: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache files live in a folder");
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::with_prefix_in(".entry-", dir)?;
    let source = (0..digest.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digest[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(std::io::Error::other)?;
    file.write_all(MAGIC)?;
    file.write_all(&source)?;
    file.write_all(&Sha256::digest(compiled))?;
    file.write_all(compiled)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
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

    fn entry(digest: &str, compiled: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.cwasm");
        write_entry(&path, digest, compiled).unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn an_entry_gives_back_its_bytes_only_to_its_own_digest() {
        let (a, b) = (digest(b"component a"), digest(b"component b"));
        let data = entry(&a, b"compiled code");
        assert_eq!(check_entry(&data, &a).unwrap(), b"compiled code");
        let e = check_entry(&data, &b).unwrap_err();
        assert!(e.contains(&format!("not {b}")), "{e}");
    }

    #[test]
    fn damaged_entries_are_refused() {
        let a = digest(b"component a");
        let data = entry(&a, b"compiled code");
        let truncated = &data[..data.len() - 1];
        assert!(check_entry(truncated, &a).unwrap_err().contains("damaged"));
        assert!(
            check_entry(&data[..20], &a)
                .unwrap_err()
                .contains("truncated")
        );
        let mut flipped = data.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(check_entry(&flipped, &a).unwrap_err().contains("damaged"));
        assert!(check_entry(b"", &a).is_err());
    }

    #[test]
    fn the_engine_key_is_stable_for_one_configuration() {
        let engine = Engine::default();
        assert_eq!(engine_key(&engine), engine_key(&Engine::default()));
        assert_eq!(engine_key(&engine).len(), 16);
        let mut fuel = wasmtime::Config::new();
        fuel.consume_fuel(true);
        assert_ne!(
            engine_key(&engine),
            engine_key(&Engine::new(&fuel).unwrap())
        );
    }

    #[test]
    fn eviction_drops_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(&Engine::default(), Some(dir.path().into()), 25);
        let put = |name: &str, secs: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, [0u8; 10]).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .unwrap();
            path
        };
        let (old, mid, new) = (put("a.cwasm", 1), put("b.cwasm", 2), put("c.cwasm", 3));
        cache.evict(&old);
        // 30 bytes over a 25-byte bound: `mid` is the oldest not just written.
        assert!(old.exists() && !mid.exists() && new.exists());
    }

    /// A valid, empty component whose bytes (and so digest) depend on `tag`:
    /// the component header and a custom section named `tag`.
    fn tiny_component(tag: &str) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        let name = tag.as_bytes();
        assert!(name.len() < 127, "one-byte LEB128 lengths");
        bytes.extend([0, name.len() as u8 + 1, name.len() as u8]);
        bytes.extend(name);
        bytes
    }

    /// Sets `path`'s modification time `secs` seconds in the past.
    fn age(path: &Path, secs: u64) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn a_version_used_from_memory_stays_on_disk_while_others_churn() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let load = |cache: &CompileCache, tag: &str| {
            let bytes = tiny_component(tag);
            let digest = digest(&bytes);
            let (_, origin) = cache.get_or_compile(&engine, &bytes, &digest).unwrap();
            (digest, origin)
        };
        // Room for two entries, not three (entries differ by a byte or two).
        let probe = CompileCache::new(&engine, Some(dir.path().join("probe")), u64::MAX);
        let (probe_digest, _) = load(&probe, "probe");
        let size = std::fs::metadata(probe.entry_path(&probe_digest).unwrap())
            .unwrap()
            .len();
        let mut cache = CompileCache::new(&engine, Some(dir.path().join("c")), size * 5 / 2);
        cache.touch_every = Duration::ZERO;

        let (stable, _) = load(&cache, "stable");
        let (other, _) = load(&cache, "canary 1");
        // The stable version was compiled long ago, the canary lately...
        age(&cache.entry_path(&stable).unwrap(), 100);
        age(&cache.entry_path(&other).unwrap(), 10);
        // ...and the stable version is used again (a reload loads it).
        assert_eq!(load(&cache, "stable").1, Origin::MemoryCache);
        // Another canary passes the bound: the least recently *used* goes.
        load(&cache, "canary 2");
        assert!(
            cache.entry_path(&stable).unwrap().exists(),
            "the stable version, used from memory, was evicted"
        );
        assert!(!cache.entry_path(&other).unwrap().exists());
    }

    #[test]
    fn memory_hits_touch_the_disk_entry_at_most_once_a_while() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(&engine, Some(dir.path().into()), u64::MAX);
        let bytes = tiny_component("a");
        let digest = digest(&bytes);
        cache.get_or_compile(&engine, &bytes, &digest).unwrap();
        let entry = cache.entry_path(&digest).unwrap();
        age(&entry, 100);
        let before = std::fs::metadata(&entry).unwrap().modified().unwrap();
        // Just written: a memory hit now leaves the file alone.
        cache.get_or_compile(&engine, &bytes, &digest).unwrap();
        assert_eq!(
            std::fs::metadata(&entry).unwrap().modified().unwrap(),
            before
        );
        // Once the interval has passed, the next hit refreshes it.
        for remembered in cache.memory.lock().unwrap().entries.values_mut() {
            remembered.touched = remembered
                .touched
                .checked_sub(cache.touch_every)
                .expect("a monotonic clock older than the interval");
        }
        cache.get_or_compile(&engine, &bytes, &digest).unwrap();
        assert!(std::fs::metadata(&entry).unwrap().modified().unwrap() > before);
    }

    #[test]
    fn a_failed_compile_is_shared_with_the_loads_waiting_on_it() {
        let engine = Engine::default();
        let cache = CompileCache::new(&engine, None, u64::MAX);
        let broken = b"\0asm\x0d\x00\x01\x00 not a component".to_vec();
        let digest = digest(&broken);
        const LOADS: usize = 8;
        // Hold the digest's gate, as a compile in flight does, until every
        // load waits on it: then they all wait on one compile.
        let gate = cache
            .loading
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_default()
            .clone();
        let held = gate.lock().unwrap();
        std::thread::scope(|s| {
            let loads: Vec<_> = (0..LOADS)
                .map(|_| s.spawn(|| cache.get_or_compile(&engine, &broken, &digest)))
                .collect();
            let deadline = Instant::now() + Duration::from_secs(30);
            // The map's, ours, and one per waiting load.
            while Arc::strong_count(&gate) < LOADS + 2 {
                assert!(Instant::now() < deadline, "loads never waited");
                std::thread::yield_now();
            }
            drop(held);
            let errors: Vec<String> = loads
                .into_iter()
                .map(|l| match l.join().unwrap() {
                    Ok(_) => panic!("a broken component compiled"),
                    Err(e) => format!("{e:#}"),
                })
                .collect();
            assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
        });
        assert_eq!(
            cache.compiles.load(Ordering::Relaxed),
            1,
            "compile attempts"
        );
        // The failure is not remembered past its waiters: a new load tries again.
        assert!(cache.get_or_compile(&engine, &broken, &digest).is_err());
        assert_eq!(cache.compiles.load(Ordering::Relaxed), 2);
        assert!(cache.loading.lock().unwrap().is_empty());
    }
}
