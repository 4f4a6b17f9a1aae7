//! A real OCI registry for tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) serving a folder of its own on 127.0.0.1, and pushes
//! in the layout `wkg oci push` makes (oci-wasm, the crate wkg pushes with).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_wasm::{WasmClient, WasmConfig};

/// A running `docker-registry`, stopped when dropped.
pub struct OciRegistry {
    child: Child,
    /// Where it listens: `host:port` as references and `--registry-insecure` name it.
    pub addr: SocketAddr,
    /// Its storage and config, kept across `restart`.
    dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts a registry on 127.0.0.1 with a port it binds itself (port 0:
    /// the address is read from its "listening on" line). `None` when
    /// `docker-registry` is not installed and tools are not required.
    pub fn start() -> Option<Self> {
        let binary = crate::tool("docker-registry")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:0\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        Some(Self::spawn(&binary, dir))
    }

    fn spawn(binary: &Path, dir: tempfile::TempDir) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting docker-registry");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on ") {
                    let addr = line[at + 13..].split('"').next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("docker-registry said where it listens within 30 s")
            .expect("docker-registry's address");
        Self { child, addr, dir }
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the registry (its storage stays, for `start_again`).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on its storage (on a new port).
    pub fn start_again(mut self) -> Self {
        self.stop();
        let binary = crate::tool("docker-registry").expect("installed, it ran before");
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::spawn(&binary, dir)
    }

    fn client() -> WasmClient {
        WasmClient::new(Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        }))
    }

    /// Pushes `component` to `repo:tag` as `wkg oci push` does; returns the
    /// reference a route names it by, `oci://HOST/REPO:TAG@sha256:MANIFEST`.
    pub async fn push(&self, repo: &str, tag: &str, component: &[u8]) -> String {
        let image = Reference::with_tag(self.host(), repo.into(), tag.into());
        let (config, layer) = WasmConfig::from_raw_component(component.to_vec(), None)
            .expect("a component oci-wasm can describe");
        let client = Self::client();
        client
            .push(&image, &RegistryAuth::Anonymous, layer, config, None)
            .await
            .expect("pushing to the test registry");
        self.reference(&client, &image).await
    }

    /// Pushes `bytes` as an ordinary container image layer (a tarball media
    /// type, an image config): an artifact that is not a Wasm component.
    pub async fn push_image(&self, repo: &str, tag: &str, bytes: &[u8]) -> String {
        let image = Reference::with_tag(self.host(), repo.into(), tag.into());
        let layers = vec![ImageLayer::new(
            bytes.to_vec(),
            "application/vnd.oci.image.layer.v1.tar".into(),
            None,
        )];
        let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
        let manifest = OciImageManifest::build(&layers, &config, None);
        let client = Self::client();
        client
            .as_ref()
            .push(
                &image,
                &layers,
                config,
                &RegistryAuth::Anonymous,
                Some(manifest),
            )
            .await
            .expect("pushing to the test registry");
        self.reference(&client, &image).await
    }

    /// `oci://HOST/REPO:TAG@sha256:MANIFEST` for what `image` (a tag) names
    /// now, the digest as the registry reports it.
    async fn reference(&self, client: &WasmClient, image: &Reference) -> String {
        let digest = client
            .fetch_manifest_digest(image, &RegistryAuth::Anonymous)
            .await
            .expect("the pushed manifest's digest");
        format!(
            "oci://{}/{}:{}@{digest}",
            self.host(),
            image.repository(),
            image.tag().unwrap()
        )
    }
}

/// What a [`tampering_proxy`] changes in the registry's answers.
#[derive(Debug, Clone, Copy)]
pub enum Tamper {
    /// A byte of every manifest: its digest no longer matches.
    Manifest,
    /// The last byte of every blob (the component, the config).
    Blob,
}

/// A plain-HTTP proxy on 127.0.0.1 in front of `registry` that passes
/// every request through and changes what `tamper` says in the answers:
/// a registry (or a path to it) serving bytes other than those named.
/// Serves until the test's runtime ends; returns its `host:port`.
pub async fn tampering_proxy(registry: &OciRegistry, tamper: Tamper) -> String {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let upstream = registry.host();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, upstream) = (client.clone(), upstream.clone());
            let serve = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("http://{upstream}{path}").parse().unwrap();
                    parts.headers.insert("host", upstream.parse().unwrap());
                    let body = body.collect().await?.to_bytes();
                    let is = |kind: &str| parts.uri.path().contains(kind);
                    let change = match tamper {
                        Tamper::Manifest => is("/manifests/"),
                        Tamper::Blob => is("/blobs/"),
                    } && parts.method == hyper::Method::GET;
                    let answer = client
                        .request(Request::from_parts(parts, Full::new(body)))
                        .await
                        .expect("the registry answers the proxy");
                    let (parts, body) = answer.into_parts();
                    let mut bytes = body.collect().await?.to_bytes().to_vec();
                    if change && let Some(last) = bytes.last_mut() {
                        *last ^= 0x01;
                    }
                    Ok::<_, hyper::Error>(Response::from_parts(
                        parts,
                        Full::new(Bytes::from(bytes)),
                    ))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), serve),
            );
        }
    });
    addr
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
