//! Components from OCI registries: pulled with the ecosystem's crates
//! (`oci-client`, `oci-wasm`), checked, and kept by digest beside the
//! compile cache, so a restart with the registry down serves what it
//! served.
//!
//! The registry never decides what serves: it *fetches*, the owner
//! (`control`) decides. Every input that may need a component from a
//! registry (start, a reload, a config look, the periodic look) first asks
//! [`Registry::fetch`] for it, without holding the owner's lock, so a slow
//! or hung registry delays only the change that needs it, never another
//! route, a request, or an admin call; then, under the lock, the owner asks
//! [`Registry::offer`], which only reads what was kept (no network). A
//! component a pull failed to bring is not there: the change that needs it
//! is refused with the pull's error, and what serves stays.
//!
//! A reference with a digest (`@sha256:`, the manifest's) names one
//! artifact forever: once kept it is never pulled again. A tag alone is
//! resolved once, when first needed, and the resolution is kept with the
//! bytes (so neither a restart nor the tag being pushed again changes what
//! serves) until `registry.tag_refresh` asks for it to be resolved again.
//! `registry.require_digest` refuses tags alone (a fleet should pin: each
//! pod resolves a tag for itself, maybe at different times).
//!
//! On disk, under the cache folder's `oci/`: `blobs/HEX` (a component,
//! named by its digest and checked against it when read), `manifests/HEX`
//! (the component digest a manifest names) and `tags.json` (resolutions).
//! Without a cache folder all of it is kept in memory only. Components
//! kept are bounded ([`MAX_KEPT_BYTES`]), the least recently used (served,
//! looked at) evicted first; one evicted is pulled again when needed, a
//! tag's by the digest it was resolved to.
//!
//! Each pull makes a client of its own, with the credentials read for it
//! then (oci-client keeps the first credentials it sees for a registry for
//! the client's life): a Secret created or rotated later applies to the
//! next pull. Pulls of one reference are one at a time, and a caller that
//! waited for a pull that failed gets that failure rather than pulling
//! again at once.
//!
//! What is not bounded: oci-client reads a manifest and its config whole
//! (within `registry.timeout`); the component layer is bounded before a
//! byte of it is read. A registry is trusted that far.

mod credentials;
mod pull;
mod reference;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_wasm::WasmClient;
use serde::{Deserialize, Serialize};

pub use reference::{OciRef, SCHEME};

use crate::component_file::{self, MAX_COMPONENT_BYTES};

/// Components kept (on disk or in memory) beyond those in use; the least
/// recently used of the others are evicted past it. Release components
/// are ~76 KB: hundreds of versions.
pub const MAX_KEPT_BYTES: u64 = 64 << 20;

/// A component kept this recently is never evicted: a table being fetched
/// (several components, pulled at once) is decided on within it.
const SPARED_FOR: Duration = Duration::from_secs(600);

/// How registries are reached (the `[registry]` settings, checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host:port`) reached over plain HTTP; all others over HTTPS.
    pub insecure: Vec<String>,
    /// The docker config file credentials come from, if any.
    pub credentials: Option<PathBuf>,
    /// Longest one pull may take, from the first byte asked to the last received.
    pub timeout: Duration,
    /// Whether a route must name a digest (a tag alone is refused).
    pub require_digest: bool,
    /// How often a tag alone is resolved again; `None`: once.
    pub tag_refresh: Option<Duration>,
}

/// A tag's resolution, as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resolution {
    /// The manifest digest the tag named, `sha256:...`.
    manifest: String,
    /// Seconds since the Unix epoch when it was resolved.
    at: u64,
}

/// A failed pull, remembered.
struct Failure {
    /// Why, as a change needing the component is refused with.
    why: String,
    /// What was pulled (`Pull::target`): a caller that waited for that
    /// very pull takes its failure as its own.
    target: String,
    /// When it failed.
    at: Instant,
}

/// What the registry side keeps in memory.
#[derive(Default)]
struct Kept {
    /// Tag resolutions (`OciRef::tag_key` → resolution); on disk too with a folder.
    tags: HashMap<String, Resolution>,
    /// Without a folder: manifest digest (hex) → component digest.
    manifests: HashMap<String, String>,
    /// Without a folder: component digest → bytes, and when last used.
    blobs: HashMap<String, (Arc<Vec<u8>>, Instant)>,
    /// The last failed pull of each reference (its text).
    failures: HashMap<String, Failure>,
    /// The digests of the components serving now (`Registry::in_use`):
    /// never evicted.
    in_use: std::collections::HashSet<String>,
}

/// Pulls components and keeps them.
pub struct Registry {
    config: RegistryConfig,
    /// `CACHE/oci`; `None`: memory only.
    dir: Option<PathBuf>,
    kept: Mutex<Kept>,
    /// Held while `tags.json` is read, changed and written back.
    tags_file: Mutex<()>,
    /// One pull of a reference at a time.
    pulling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The outcome of one pull, for the caller to count and log.
pub struct Fetched {
    pub reference: OciRef,
    /// `Ok(component digest)`, or why it failed.
    pub result: Result<String, String>,
    /// A failure unlike the reference's last (worth a warning).
    pub new_failure: bool,
    pub elapsed: Duration,
}

impl Fetched {
    /// Logs the outcome: a failure as a warning when it is new.
    pub fn log(&self) {
        match &self.result {
            Ok(digest) => tracing::info!(
                reference = %self.reference,
                digest = %&digest[..12],
                "pulled in {:.0?}",
                self.elapsed
            ),
            Err(e) if self.new_failure => tracing::warn!("{e}"),
            Err(e) => tracing::debug!("{e} (again)"),
        }
    }
}

/// What a pull is to do.
enum Pull {
    /// Pull this reference (by its digest, or a tag to resolve).
    Whole(OciRef),
    /// Resolve this tag again: only its manifest's digest is asked for,
    /// and the component pulled only if it is not kept already.
    Refresh(OciRef),
}

impl Pull {
    /// What it asks the registry for, to tell pulls of one reference apart.
    fn target(&self) -> String {
        match self {
            Self::Whole(reference) => reference.to_string(),
            Self::Refresh(tag) => format!("{tag} (resolved again)"),
        }
    }
}

impl Registry {
    /// A registry side keeping what it pulls under `cache_dir/oci` (memory
    /// only without one).
    pub fn new(config: RegistryConfig, cache_dir: Option<&Path>) -> Self {
        let dir = cache_dir.map(|d| d.join("oci"));
        let mut kept = Kept::default();
        if let Some(dir) = &dir {
            kept.tags = read_tags(dir);
        }
        Self {
            config,
            dir,
            kept: Mutex::new(kept),
            tags_file: Mutex::default(),
            pulling: Mutex::default(),
        }
    }

    /// A client for one pull, with the credentials for `registry` read now.
    fn client(&self, registry: &str) -> Result<(WasmClient, RegistryAuth), String> {
        let auth = match self
            .config
            .credentials
            .clone()
            .or_else(credentials::default_file)
        {
            Some(file) => credentials::for_registry(&file, registry)?,
            None => RegistryAuth::Anonymous,
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.config.insecure.clone()),
            connect_timeout: Some(self.config.timeout.min(Duration::from_secs(10))),
            read_timeout: Some(self.config.timeout),
            ..ClientConfig::default()
        });
        Ok((WasmClient::new(client), auth))
    }

    /// Records the digests of the components serving now (the owner's
    /// call, after every change): they are never evicted.
    pub fn in_use(&self, digests: std::collections::HashSet<String>) {
        self.kept.lock().expect("kept lock").in_use = digests;
    }

    /// The component `reference` names, as kept: its bytes and digest. No
    /// network, but disk: call it off the async threads. An error says it
    /// is not kept (and why its last pull failed).
    pub fn offer(&self, reference: &OciRef) -> Result<(Arc<Vec<u8>>, String), String> {
        let manifest = self
            .manifest_of(reference)
            .ok_or_else(|| self.missing(reference))?;
        let digest = self
            .component_of(&manifest)
            .ok_or_else(|| self.missing(reference))?;
        let bytes = self.blob(&digest).ok_or_else(|| self.missing(reference))?;
        Ok((bytes, digest))
    }

    /// Makes sure each of `references` is kept, pulling those that are not
    /// (all at once, each within `registry.timeout`); with `refresh`, tags
    /// alone resolved longer than `registry.tag_refresh` ago are resolved
    /// again. Returns one outcome per pull made.
    pub async fn fetch(self: &Arc<Self>, references: &[OciRef], refresh: bool) -> Vec<Fetched> {
        let mut unique: Vec<&OciRef> = references.iter().collect();
        unique.sort();
        unique.dedup();
        let pulls = unique.into_iter().map(|r| self.fetch_one(r, refresh));
        futures::future::join_all(pulls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn fetch_one(self: &Arc<Self>, reference: &OciRef, refresh: bool) -> Option<Fetched> {
        let key = reference.to_string();
        let asked = Instant::now();
        let lock = self
            .pulling
            .lock()
            .expect("pulling lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        let pull = self.due(reference, refresh)?;
        let target = pull.target();
        let failed_meanwhile = {
            let kept = self.kept.lock().expect("kept lock");
            let failure = kept.failures.get(&key);
            failure.is_some_and(|f| f.at > asked && f.target == target)
        };
        if failed_meanwhile {
            return None; // the same pull, waited for, failed just now: its error stands
        }
        tracing::info!("pulling {reference}");
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.timeout, self.pull(pull)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no whole answer within {:?} (registry.timeout)",
                self.config.timeout
            )),
        };
        let result = result.map_err(|e| format!("cannot pull {reference}: {e}"));
        let mut kept = self.kept.lock().expect("kept lock");
        let before = match &result {
            Ok(_) => kept.failures.remove(&key).map(|f| f.why),
            Err(e) => kept
                .failures
                .insert(
                    key,
                    Failure {
                        why: e.clone(),
                        target,
                        at: Instant::now(),
                    },
                )
                .map(|f| f.why),
        };
        drop(kept);
        Some(Fetched {
            reference: reference.clone(),
            new_failure: result.as_ref().err() != before.as_ref(),
            result,
            elapsed: started.elapsed(),
        })
    }

    /// What `reference` needs pulled now, if anything.
    fn due(&self, reference: &OciRef, refresh: bool) -> Option<Pull> {
        if reference.digest.is_some() {
            return (!self.is_kept(reference)).then(|| Pull::Whole(reference.clone()));
        }
        let key = reference.tag_key()?;
        let resolution = self.kept.lock().expect("kept lock").tags.get(&key).cloned();
        let Some(resolution) = resolution else {
            return Some(Pull::Whole(reference.clone())); // resolved the first time
        };
        let refresh_due = refresh
            && self
                .config
                .tag_refresh
                .is_some_and(|every| unix_now().saturating_sub(resolution.at) >= every.as_secs());
        if refresh_due {
            return Some(Pull::Refresh(reference.clone()));
        }
        // Resolved once: what it resolved to, by digest (never the tag
        // again: it may name something else by now).
        let pinned = OciRef {
            digest: Some(resolution.manifest),
            ..reference.clone()
        };
        (!self.is_kept(&pinned)).then_some(Pull::Whole(pinned))
    }

    /// Whether `reference`'s component is kept (not checked: a cheap look).
    fn is_kept(&self, reference: &OciRef) -> bool {
        let Some(manifest) = self.manifest_of(reference) else {
            return false;
        };
        let Some(digest) = self.component_of(&manifest) else {
            return false;
        };
        match &self.dir {
            Some(dir) => dir.join("blobs").join(&digest).is_file(),
            None => self
                .kept
                .lock()
                .expect("kept lock")
                .blobs
                .contains_key(&digest),
        }
    }

    /// Makes `pull`, keeping what it brought.
    async fn pull(self: &Arc<Self>, pull: Pull) -> Result<String, String> {
        let (reference, resolving) = match pull {
            Pull::Whole(reference) => {
                let resolving = reference.digest.is_none();
                (reference, resolving)
            }
            Pull::Refresh(tag) => {
                let (client, auth) = self.client(&tag.registry)?;
                let manifest = client
                    .fetch_manifest_digest(&tag.to_client(), &auth)
                    .await
                    .map_err(|e| self.explain(&tag, format!("{e:#}")))?;
                check_manifest_digest(&manifest)?;
                let pinned = OciRef {
                    digest: Some(manifest.clone()),
                    ..tag.clone()
                };
                if self.is_kept(&pinned)
                    && let Some(digest) = self.component_of(manifest.trim_start_matches("sha256:"))
                {
                    self.resolved_off_thread(&tag, &manifest).await?;
                    return Ok(digest); // the tag names what is kept
                }
                (pinned, true)
            }
        };
        let (client, auth) = self.client(&reference.registry)?;
        let pulled = pull::pull(&client, &reference, &auth, MAX_COMPONENT_BYTES)
            .await
            .map_err(|e| self.explain(&reference, e))?;
        if component_file::is_core_module(&pulled.bytes) {
            return Err("it holds a core Wasm module, not a component".into());
        }
        // A reference's own digest names the manifest (the registry's may
        // be of another algorithm, or of an index the client resolved).
        let manifest = match &reference.digest {
            Some(digest) if !resolving => digest.clone(),
            _ => pulled.manifest.clone(),
        };
        check_manifest_digest(&manifest)?;
        let this = self.clone();
        let digest = pulled.digest.clone();
        tokio::task::spawn_blocking(move || this.keep(&manifest, &pulled.digest, pulled.bytes))
            .await
            .map_err(|e| format!("keeping it failed: {e}"))?;
        if resolving {
            self.resolved_off_thread(&reference, &pulled.manifest)
                .await?;
        }
        Ok(digest)
    }

    /// An error of a pull from `reference`'s registry, with the likely
    /// cause of a failed connection or refused access.
    fn explain(&self, reference: &OciRef, mut e: String) -> String {
        let unauthorized = ["401", "403", "nauthorized", "denied"]
            .iter()
            .any(|w| e.contains(w));
        if unauthorized
            && let Some(file) = &self.config.credentials
            && !file.exists()
        {
            e += &format!(
                " (pulled anonymously: registry.credentials {} does not exist)",
                file.display()
            );
        }
        let connecting = ["(Connect)", "tls", "certificate"]
            .iter()
            .any(|w| e.contains(w));
        if connecting && !self.config.insecure.contains(&reference.registry) {
            e += &format!(
                " (reached over HTTPS: a plain-HTTP registry must be listed in \
                 registry.insecure, `--registry-insecure {}`)",
                reference.registry
            );
        }
        e
    }

    /// Keeps a pulled component, named by `manifest` (`sha256:...`): the
    /// blob before the manifest naming it, so a crash between leaves
    /// nothing that points at what is not there. Blocking.
    fn keep(&self, manifest: &str, digest: &str, bytes: Vec<u8>) {
        let manifest_hex = manifest.trim_start_matches("sha256:").to_owned();
        let in_memory = |kept: &mut Kept, bytes: Vec<u8>| {
            kept.manifests
                .insert(manifest_hex.clone(), digest.to_owned());
            kept.blobs
                .insert(digest.to_owned(), (Arc::new(bytes), Instant::now()));
            let in_use = kept.in_use.clone();
            evict_from_memory(&mut kept.blobs, |d, used| {
                in_use.contains(d) || used.elapsed() < SPARED_FOR
            });
        };
        let Some(dir) = &self.dir else {
            in_memory(&mut self.kept.lock().expect("kept lock"), bytes);
            return;
        };
        let blob = dir.join("blobs").join(digest);
        let written = component_file::write_durably(&blob, &bytes).and_then(|()| {
            component_file::write_durably(
                &dir.join("manifests").join(&manifest_hex),
                digest.as_bytes(),
            )
        });
        match written {
            Ok(()) => {
                let in_use = self.kept.lock().expect("kept lock").in_use.clone();
                let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
                crate::cache::evict_least_recently_used(
                    &dir.join("blobs"),
                    MAX_KEPT_BYTES,
                    "components pulled",
                    // Kept components only (not a temporary file being written).
                    |p| name(p).is_some_and(|n| crate::cache::is_digest(&n)),
                    |p, modified| {
                        p == blob
                            || name(p).is_some_and(|n| in_use.contains(&n))
                            || modified.elapsed().is_ok_and(|age| age < SPARED_FOR)
                    },
                );
            }
            Err(e) => {
                // Served from memory this run; a restart pulls it again.
                tracing::warn!("cannot keep {manifest} in {}: {e}", dir.display());
                in_memory(&mut self.kept.lock().expect("kept lock"), bytes);
            }
        }
    }

    /// [`Self::resolved`], off the async threads.
    async fn resolved_off_thread(
        self: &Arc<Self>,
        tag: &OciRef,
        manifest: &str,
    ) -> Result<(), String> {
        let (this, tag, manifest) = (self.clone(), tag.clone(), manifest.to_owned());
        tokio::task::spawn_blocking(move || this.resolved(&tag, &manifest))
            .await
            .map_err(|e| format!("recording the tag's resolution failed: {e}"))
    }

    /// Records that `tag` resolved to `manifest` (after its component is
    /// kept: a resolution never names what is not there), on disk merged
    /// with what other hosts on the folder recorded. Blocking.
    fn resolved(&self, tag: &OciRef, manifest: &str) {
        let Some(key) = tag.tag_key() else { return };
        let resolution = Resolution {
            manifest: manifest.to_owned(),
            at: unix_now(),
        };
        let mut kept = self.kept.lock().expect("kept lock");
        kept.tags.insert(key.clone(), resolution.clone());
        drop(kept);
        if let Some(dir) = &self.dir {
            let _one_writer = self.tags_file.lock().expect("tags file lock");
            let mut tags = read_tags(dir);
            tags.insert(key, resolution);
            let written = serde_json::to_vec_pretty(&tags)
                .map_err(std::io::Error::other)
                .and_then(|json| component_file::write_durably(&dir.join("tags.json"), &json));
            if let Err(e) = written {
                tracing::warn!("cannot keep the resolution of {tag}: {e}; kept in memory");
            }
        }
    }

    /// The manifest digest (hex) `reference` names now: its own, or its
    /// tag's resolution.
    fn manifest_of(&self, reference: &OciRef) -> Option<String> {
        if let Some(digest) = &reference.digest {
            return Some(digest.trim_start_matches("sha256:").to_owned());
        }
        let kept = self.kept.lock().expect("kept lock");
        let resolution = kept.tags.get(&reference.tag_key()?)?;
        Some(resolution.manifest.trim_start_matches("sha256:").to_owned())
    }

    /// The component digest a kept manifest names.
    fn component_of(&self, manifest_hex: &str) -> Option<String> {
        if !crate::cache::is_digest(manifest_hex) {
            return None;
        }
        if let Some(digest) = self
            .kept
            .lock()
            .expect("kept lock")
            .manifests
            .get(manifest_hex)
        {
            return Some(digest.clone());
        }
        let file = self.dir.as_ref()?.join("manifests").join(manifest_hex);
        let text = component_file::read(&file, 64).ok()?;
        let digest = String::from_utf8(text).ok()?;
        crate::cache::is_digest(&digest).then_some(digest)
    }

    /// A kept component's bytes, checked against its digest, and marked used.
    fn blob(&self, digest: &str) -> Option<Arc<Vec<u8>>> {
        if let Some((bytes, used)) = self.kept.lock().expect("kept lock").blobs.get_mut(digest) {
            *used = Instant::now();
            return Some(bytes.clone());
        }
        let file = self.dir.as_ref()?.join("blobs").join(digest);
        let bytes = component_file::read(&file, MAX_COMPONENT_BYTES).ok()?;
        if crate::cache::digest(&bytes) != digest {
            tracing::warn!("{} does not match its digest: discarded", file.display());
            let _ = std::fs::remove_file(&file);
            return None;
        }
        crate::cache::mark_used(&file, crate::cache::TOUCH_EVERY);
        Some(Arc::new(bytes))
    }

    /// Why `reference` is not kept.
    fn missing(&self, reference: &OciRef) -> String {
        let kept = self.kept.lock().expect("kept lock");
        match kept.failures.get(&reference.to_string()) {
            Some(failure) => failure.why.clone(),
            None => format!("{reference} is not kept here, and has not been pulled yet"),
        }
    }
}

/// Refuses a manifest digest that is not `sha256:` and 64 hex digits (what
/// the host keys on, and names files after).
fn check_manifest_digest(manifest: &str) -> Result<(), String> {
    let hex = manifest.strip_prefix("sha256:").unwrap_or_default();
    if crate::cache::is_digest(hex) {
        Ok(())
    } else {
        Err(format!(
            "the registry names its manifest `{manifest}`: only sha256 digests are taken"
        ))
    }
}

/// Drops the least recently used components kept in memory beyond
/// [`MAX_KEPT_BYTES`], sparing those `spared(digest, last used)`.
fn evict_from_memory(
    blobs: &mut HashMap<String, (Arc<Vec<u8>>, Instant)>,
    spared: impl Fn(&str, Instant) -> bool,
) {
    let mut total: u64 = blobs.values().map(|(b, _)| b.len() as u64).sum();
    while total > MAX_KEPT_BYTES {
        let Some(oldest) = blobs
            .iter()
            .filter(|(digest, (_, used))| !spared(digest, *used))
            .min_by_key(|(_, (_, used))| *used)
            .map(|(digest, _)| digest.clone())
        else {
            return;
        };
        if let Some((bytes, _)) = blobs.remove(&oldest) {
            total -= bytes.len() as u64;
        }
    }
}

/// The tag resolutions kept in `dir`; a damaged file or entry is ignored,
/// with a warning (its tags are resolved again when needed).
fn read_tags(dir: &Path) -> HashMap<String, Resolution> {
    let file = dir.join("tags.json");
    if !file.exists() {
        return HashMap::new();
    }
    let read = component_file::read(&file, 16 << 20).and_then(|bytes| {
        serde_json::from_slice::<HashMap<String, Resolution>>(&bytes).map_err(|e| e.to_string())
    });
    match read {
        Ok(mut tags) => {
            tags.retain(|_, r| check_manifest_digest(&r.manifest).is_ok());
            tags
        }
        Err(e) => {
            tracing::warn!("ignoring {}: {e}; tags are resolved again", file.display());
            HashMap::new()
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_kept_in_memory_are_bounded_least_recently_used_first() {
        let mut blobs = HashMap::new();
        let t0 = Instant::now();
        let chunk = (MAX_KEPT_BYTES / 3) as usize + 1;
        for (n, name) in ["a", "b", "c"].iter().enumerate() {
            let used = t0 + Duration::from_secs(n as u64);
            blobs.insert(name.to_string(), (Arc::new(vec![0u8; chunk]), used));
        }
        // Over the bound by one chunk: the oldest goes, never the one kept.
        evict_from_memory(&mut blobs, |digest, _| digest == "a");
        let mut left: Vec<_> = blobs.keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["a", "c"]);
    }

    #[test]
    fn kept_resolutions_naming_anything_but_a_sha256_digest_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let good = format!("sha256:{}", "ab".repeat(32));
        let json = format!(
            r#"{{"r/a:1": {{"manifest": "{good}", "at": 1}},
                "r/b:1": {{"manifest": "sha256:../../etc", "at": 1}}}}"#
        );
        std::fs::write(dir.path().join("tags.json"), json).unwrap();
        let tags = read_tags(dir.path());
        assert_eq!(tags.len(), 1);
        assert_eq!(tags["r/a:1"].manifest, good);
        std::fs::write(dir.path().join("tags.json"), b"{torn").unwrap();
        assert!(read_tags(dir.path()).is_empty());
        assert!(check_manifest_digest("sha512:00").is_err());
    }
}
