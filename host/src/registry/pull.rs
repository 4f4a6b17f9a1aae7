//! One pull: the manifest (the Wasm artifact layout only), then its one
//! layer, bounded in size and checked against its digest.
//!
//! oci-client checks the manifest's bytes against the reference's digest
//! (and the registry's `Docker-Content-Digest`), and the layer's bytes
//! against the manifest; oci-wasm checks the layout (an OCI image manifest
//! whose config is `application/vnd.wasm.config.v0+json`, one layer). The
//! layer's media type and size are checked here before a byte of it is
//! read, and the read stops at the size the manifest announced.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_client::secrets::RegistryAuth;
use oci_wasm::{WASM_LAYER_MEDIA_TYPE, WasmClient};

use super::reference::OciRef;

/// What a pull brought.
pub struct Pulled {
    /// The manifest's digest, `sha256:...`: what `@sha256:` in a reference names.
    pub manifest: String,
    /// The component's bytes (the layer).
    pub bytes: Vec<u8>,
    /// The component's digest (lowercase hex SHA-256 of `bytes`).
    pub digest: String,
}

/// Pulls `reference` with `auth`, refusing a component over `max` bytes.
pub async fn pull(
    client: &WasmClient,
    reference: &OciRef,
    auth: &RegistryAuth,
    max: u64,
) -> Result<Pulled, String> {
    let image = reference.to_client();
    let (manifest, _config, manifest_digest) = client
        .pull_manifest_and_config(&image, auth)
        .await
        .map_err(|e| {
            let e = format!("{e:#}");
            // oci-wasm's words for an artifact of another layout.
            if e.starts_with("Wasm components must") {
                format!("not a Wasm component artifact: {e}")
            } else {
                e
            }
        })?;
    let layer = &manifest.layers[0]; // oci-wasm: exactly one
    if layer.media_type != WASM_LAYER_MEDIA_TYPE {
        return Err(format!(
            "not a Wasm component artifact: its layer is `{}`, not `{WASM_LAYER_MEDIA_TYPE}`",
            layer.media_type
        ));
    }
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if size > max {
        return Err(format!(
            "its component is {size} bytes, over the {max}-byte limit for components"
        ));
    }
    let mut out = Bounded {
        bytes: Vec::with_capacity(size as usize),
        max: size as usize,
    };
    client
        .pull_blob(&image, layer, &mut out)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let digest = crate::cache::digest(&out.bytes);
    // oci-client checked it already; this is the digest the host keys on.
    if layer.digest != format!("sha256:{digest}") {
        return Err(format!(
            "the component's bytes have digest sha256:{digest}, not the manifest's {}",
            layer.digest
        ));
    }
    Ok(Pulled {
        manifest: manifest_digest,
        bytes: out.bytes,
        digest,
    })
}

/// Collects a blob, failing past `max` bytes (a registry sending more
/// than its manifest announced).
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.max {
            return Poll::Ready(Err(io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest announced",
                self.max
            ))));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
