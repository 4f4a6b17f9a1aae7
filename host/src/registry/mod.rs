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
//! Without a cache folder all of it is kept in memory only.

mod credentials;
mod pull;
mod reference;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_wasm::WasmClient;
use serde::{Deserialize, Serialize};

pub use reference::{OciRef, SCHEME};

use crate::component_file::{self, MAX_COMPONENT_BYTES};

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

/// What the registry side keeps in memory.
#[derive(Default)]
struct Kept {
    /// Tag resolutions (`OciRef::tag_key` → resolution); on disk too with a folder.
    tags: HashMap<String, Resolution>,
    /// Without a folder: manifest digest → component digest.
    manifests: HashMap<String, String>,
    /// Without a folder: component digest → bytes.
    blobs: HashMap<String, Arc<Vec<u8>>>,
    /// The last failed pull of each reference (its text), for the error
    /// a change that needs it is refused with.
    failures: HashMap<String, String>,
}

/// Pulls components and keeps them.
pub struct Registry {
    client: WasmClient,
    config: RegistryConfig,
    /// `CACHE/oci`; `None`: memory only.
    dir: Option<PathBuf>,
    kept: Mutex<Kept>,
    /// One pull of a reference at a time: a second asker waits for the
    /// first and then finds it kept.
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
            Err(e) if self.new_failure => tracing::warn!("{e}; what serves stays"),
            Err(e) => tracing::debug!("{e} (again)"),
        }
    }
}

impl Registry {
    /// A registry side keeping what it pulls under `cache_dir/oci` (memory
    /// only without one).
    pub fn new(config: RegistryConfig, cache_dir: Option<&Path>) -> Self {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            connect_timeout: Some(config.timeout.min(Duration::from_secs(10))),
            read_timeout: Some(config.timeout),
            ..ClientConfig::default()
        });
        let dir = cache_dir.map(|d| d.join("oci"));
        let mut kept = Kept::default();
        if let Some(dir) = &dir
            && let Ok(bytes) = component_file::read(&dir.join("tags.json"), 1 << 20)
        {
            match serde_json::from_slice(&bytes) {
                Ok(tags) => kept.tags = tags,
                Err(e) => tracing::warn!("ignoring {}: {e}", dir.join("tags.json").display()),
            }
        }
        Self {
            client: WasmClient::new(client),
            config,
            dir,
            kept: Mutex::new(kept),
            pulling: Mutex::default(),
        }
    }

    /// The component `reference` names, as kept: its bytes and digest. No
    /// network: an error says it is not kept (and why its last pull failed).
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
    pub async fn fetch(&self, references: &[OciRef], refresh: bool) -> Vec<Fetched> {
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

    async fn fetch_one(&self, reference: &OciRef, refresh: bool) -> Option<Fetched> {
        let key = reference.to_string();
        let lock = self
            .pulling
            .lock()
            .expect("pulling lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if !self.due(reference, refresh) {
            return None;
        }
        tracing::info!("pulling {reference}");
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.config.timeout, self.pull(reference)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no whole answer within {:?} (registry.timeout)",
                self.config.timeout
            )),
        };
        let result = result.map_err(|e| format!("cannot pull {reference}: {e}"));
        let mut kept = self.kept.lock().expect("kept lock");
        let before = match &result {
            Ok(_) => kept.failures.remove(&key),
            Err(e) => kept.failures.insert(key, e.clone()),
        };
        drop(kept);
        Some(Fetched {
            reference: reference.clone(),
            new_failure: result.as_ref().err() != before.as_ref(),
            result,
            elapsed: started.elapsed(),
        })
    }

    /// Whether `reference` needs a pull now.
    fn due(&self, reference: &OciRef, refresh: bool) -> bool {
        if reference.digest.is_none()
            && refresh
            && let Some(every) = self.config.tag_refresh
        {
            let kept = self.kept.lock().expect("kept lock");
            let resolved_at = reference
                .tag_key()
                .and_then(|key| kept.tags.get(&key).map(|r| r.at))
                .unwrap_or(0);
            if unix_now().saturating_sub(resolved_at) >= every.as_secs() {
                return true;
            }
        }
        self.offer(reference).is_err()
    }

    /// Pulls `reference` and keeps what it brought.
    async fn pull(&self, reference: &OciRef) -> Result<String, String> {
        let auth = match self
            .config
            .credentials
            .clone()
            .or_else(credentials::default_file)
        {
            Some(file) => credentials::for_registry(&file, &reference.registry)?,
            None => RegistryAuth::Anonymous,
        };
        let pulled = pull::pull(&self.client, reference, &auth, MAX_COMPONENT_BYTES)
            .await
            .map_err(|e| self.explain(reference, e))?;
        if component_file::is_core_module(&pulled.bytes) {
            return Err("it holds a core Wasm module, not a component".into());
        }
        tracing::debug!(
            reference = %reference,
            manifest = %pulled.manifest,
            bytes = pulled.bytes.len(),
            "pulled"
        );
        self.keep(reference, &pulled.manifest, &pulled.digest, pulled.bytes);
        Ok(pulled.digest)
    }

    /// An error of a pull from `reference`'s registry, with the likely
    /// cause when the registry is not listed as plain HTTP.
    fn explain(&self, reference: &OciRef, mut e: String) -> String {
        if let Some(file) = &self.config.credentials
            && !file.exists()
        {
            e += &format!(
                " (pulled anonymously: registry.credentials {} does not exist)",
                file.display()
            );
        }
        if !self.config.insecure.contains(&reference.registry) {
            e += &format!(
                " (reached over HTTPS: a plain-HTTP registry must be listed in \
                 registry.insecure, `--registry-insecure {}`)",
                reference.registry
            );
        }
        e
    }

    /// Keeps a pulled component (and, for a tag alone, the resolution).
    fn keep(&self, reference: &OciRef, manifest: &str, digest: &str, bytes: Vec<u8>) {
        let mut kept = self.kept.lock().expect("kept lock");
        if let Some(key) = reference.tag_key().filter(|_| reference.digest.is_none()) {
            kept.tags.insert(
                key,
                Resolution {
                    manifest: manifest.to_owned(),
                    at: unix_now(),
                },
            );
        }
        let manifest_hex = manifest.trim_start_matches("sha256:").to_owned();
        let Some(dir) = &self.dir else {
            kept.manifests.insert(manifest_hex, digest.to_owned());
            kept.blobs.insert(digest.to_owned(), Arc::new(bytes));
            return;
        };
        // The blob before the manifest naming it, the manifest before the
        // tag naming that: a crash between leaves nothing that points at
        // what is not there.
        let written = component_file::write_durably(&dir.join("blobs").join(digest), &bytes)
            .and_then(|()| {
                component_file::write_durably(
                    &dir.join("manifests").join(&manifest_hex),
                    digest.as_bytes(),
                )
            })
            .and_then(|()| {
                let tags = serde_json::to_vec_pretty(&kept.tags).map_err(std::io::Error::other)?;
                component_file::write_durably(&dir.join("tags.json"), &tags)
            });
        if let Err(e) = written {
            // Served from memory this run; a restart pulls it again.
            tracing::warn!("cannot keep {reference} in {}: {e}", dir.display());
            kept.manifests.insert(manifest_hex, digest.to_owned());
            kept.blobs.insert(digest.to_owned(), Arc::new(bytes));
        }
    }

    /// The manifest digest `reference` names now: its own, or its tag's resolution.
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
        reference::is_hex_digest(&digest).then_some(digest)
    }

    /// A kept component's bytes, checked against its digest.
    fn blob(&self, digest: &str) -> Option<Arc<Vec<u8>>> {
        if let Some(bytes) = self.kept.lock().expect("kept lock").blobs.get(digest) {
            return Some(bytes.clone());
        }
        let file = self.dir.as_ref()?.join("blobs").join(digest);
        let bytes = component_file::read(&file, MAX_COMPONENT_BYTES).ok()?;
        if crate::cache::digest(&bytes) != digest {
            tracing::warn!("{} does not match its digest: discarded", file.display());
            let _ = std::fs::remove_file(&file);
            return None;
        }
        Some(Arc::new(bytes))
    }

    /// Why `reference` is not kept.
    fn missing(&self, reference: &OciRef) -> String {
        let kept = self.kept.lock().expect("kept lock");
        match kept.failures.get(&reference.to_string()) {
            Some(failure) => failure.clone(),
            None => format!("{reference} has not been pulled"),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
