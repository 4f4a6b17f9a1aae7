//! What the integration tests of every crate need: the real components
//! built from source, the real host binary started on 127.0.0.1 with an
//! ephemeral port, a plain HTTP client, and a parsed `/metrics`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod configmap;
mod registry;

pub use configmap::ConfigMapVolume;
pub use prometheus_parse;
pub use registry::{OciRegistry, Tamper, tampering_proxy};
pub use tempfile;

/// The five endpoints of the demo: path, component file stem, status, body.
pub const ENDPOINTS: &[(&str, &str, u16, &str)] = &[
    ("/ep_one", "ep_one", 200, "1"),
    ("/ep_two", "ep_two", 200, "2"),
    ("/ep_three", "ep_three", 200, "3"),
    ("/ep_four", "ep_four", 200, "4"),
    ("/error", "ep_error", 500, "error"),
];

/// A binary of this workspace, found beside the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
/// `cargo test --workspace` builds every binary before running any test.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p {name}`; `cargo test --workspace` does)",
        path.display()
    );
    path
}

/// Whether a missing optional tool fails the test instead of skipping it.
/// CI sets REQUIRE_TOOLS after installing them all (see `.ci/run`).
pub fn tools_required() -> bool {
    std::env::var_os("REQUIRE_TOOLS").is_some()
}

/// The path of `name` on PATH; `None` (with a note) when it is absent and
/// tools are not required.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            !tools_required(),
            "{name} is required (REQUIRE_TOOLS) but not installed"
        );
        eprintln!("{name} not installed: skipping its check");
    }
    found
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Builds the guest workspace once per test binary (a no-op when up to
/// date) and returns the folder holding the `.wasm` files.
pub fn components() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The root's default members are the guest components.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(repo_root())
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("running cargo to build the components");
        assert!(status.success(), "building the components failed");
        repo_root().join("target/wasm32-wasip2/release")
    })
}

/// Builds the guest workspace with cargo-component instead (wasm32-wasip1
/// plus the preview1 adapter), if it is installed; with REQUIRE_TOOLS its
/// absence fails rather than skips.
pub fn components_via_cargo_component() -> Option<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["component", "build", "--release"])
        .current_dir(repo_root())
        .env_remove("CARGO_TARGET_DIR")
        .status();
    match status {
        Ok(status) if status.success() => Some(repo_root().join("target/wasm32-wasip1/release")),
        other => {
            assert!(!tools_required(), "cargo component build failed: {other:?}");
            eprintln!("cargo-component unavailable ({other:?}): skipping");
            None
        }
    }
}

/// A component's identity as the host reports it: lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn component(stem: &str) -> PathBuf {
    components().join(format!("{stem}.wasm"))
}

/// `component` with a custom section carrying `nonce` appended: the same
/// code under a digest never seen before (nothing compiled, nothing cached).
pub fn variant(component: &Path, nonce: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"webapp-test-variant";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(nonce.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    bytes.push(0); // custom section
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

/// A nonce no earlier run has used (the cache folder outlives no test, but
/// the test-wide memory of what was compiled must not matter either).
pub fn nonce(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{nanos}-{}", std::process::id())
}

/// Config text routing `routes` (path, component file) plus `extra` settings.
pub fn config_text(extra: &str, routes: &[(&str, PathBuf)]) -> String {
    let mut text = format!("{extra}\n");
    for (path, file) in routes {
        text.push_str(&format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n",
            file.display()
        ));
    }
    text
}

/// The five demo endpoints as config routes.
pub fn demo_routes() -> Vec<(&'static str, PathBuf)> {
    ENDPOINTS
        .iter()
        .map(|(path, stem, _, _)| (*path, component(stem)))
        .collect()
}

/// A running host process, killed when dropped.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    /// The admin API's address, when it is on.
    pub admin: Option<SocketAddr>,
    /// The probes-and-metrics listener's address, when it is on (`--ops-listen`).
    pub ops: Option<SocketAddr>,
    dir: tempfile::TempDir,
}

impl Host {
    /// Starts the host binary with `config` and extra `args`, on
    /// 127.0.0.1 with a port the OS picks, and waits until it listens.
    pub fn start(config: &str, args: &[&str]) -> Host {
        Host::start_on("127.0.0.1:0", config, args)
    }

    /// Like [`Host::start`], on a given loopback address.
    pub fn start_on(listen: &str, config: &str, args: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webapp.toml");
        std::fs::write(&path, config).unwrap();
        Host::start_with_file(listen, &path, args, dir)
    }

    /// Starts the host on the config file at `path` as it is (not a copy:
    /// the test may change it while the host runs); its log in a folder of
    /// its own.
    pub fn start_with_config_file(path: &Path, args: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        Host::start_with_file("127.0.0.1:0", path, args, dir)
    }

    /// Starts a second host on this host's config file, as a second
    /// replica on one machine would run: its own ports and log (its
    /// `config_path` is not the file it serves).
    pub fn start_beside(&self, args: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        Host::start_with_file("127.0.0.1:0", &self.config_path(), args, dir)
    }

    /// Stops this host (killed if still running) and starts it again on
    /// the same config file, so what it keeps for that file applies; the
    /// earlier log moves to `host.log.1`.
    pub fn restart(mut self, args: &[&str]) -> Host {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        let path = dir.path().join("webapp.toml");
        std::fs::rename(dir.path().join("host.log"), dir.path().join("host.log.1")).unwrap();
        Host::start_with_file("127.0.0.1:0", &path, args, dir)
    }

    /// Like [`Host::start`], in a process that may open only `limit`
    /// files (`RLIMIT_NOFILE`, soft and hard: what `ulimit -Hn` sets).
    pub fn start_with_open_files(config: &str, args: &[&str], limit: u64) -> Host {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webapp.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Host::command("127.0.0.1:0", &path, args);
        // SAFETY: only setrlimit runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let open_files = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &open_files) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Host::spawn(command, dir)
    }

    fn start_with_file(listen: &str, path: &Path, args: &[&str], dir: tempfile::TempDir) -> Host {
        Host::spawn(Host::command(listen, path, args), dir)
    }

    /// The host binary on the config file at `path`, on `listen`, with
    /// `args` and the test defaults.
    fn command(listen: &str, path: &Path, args: &[&str]) -> Command {
        assert!(
            listen.starts_with("127.0.0.1:"),
            "tests only serve on loopback"
        );
        // An admin API on its own ephemeral port, and one compile cache for
        // every test (inside target/, never the user's).
        let mut defaults = Vec::new();
        if !args
            .iter()
            .any(|a| *a == "--admin-listen" || *a == "--no-admin")
        {
            defaults.extend(["--admin-listen", "127.0.0.1:0"]);
        }
        let cache = repo_root().join("target/test-compile-cache");
        if !args
            .iter()
            .any(|a| *a == "--cache-dir" || *a == "--no-cache")
        {
            defaults.extend(["--cache-dir", cache.to_str().unwrap()]);
        }
        let mut command = Command::new(workspace_binary("host"));
        command
            .arg("--config")
            .arg(path)
            .args(["--listen", listen])
            .args(&defaults)
            .args(args)
            // The host's own info lines (loads, swaps, reloads) are what
            // tests wait for; its dependencies' only when they warn.
            .env("RUST_LOG", "warn,host=info");
        command
    }

    /// Starts the host binary exactly as `cargo run -p host` does from the
    /// folder `root`: no flags, so it serves `root/webapp.toml`. Only the
    /// environment differs: both listeners on ephemeral loopback ports, the
    /// compile cache in a fresh folder, logs at `info`.
    pub fn start_as_user(root: &Path) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(workspace_binary("host"));
        command
            .current_dir(root)
            .env("WEBAPP_LISTEN", "127.0.0.1:0")
            .env("WEBAPP_ADMIN_LISTEN", "127.0.0.1:0")
            .env("WEBAPP_CACHE_DIR", dir.path().join("cache"))
            .env("RUST_LOG", "info");
        Host::spawn(command, dir)
    }

    /// Runs `command` (the host binary) with its log in `dir`, and waits
    /// until it listens.
    fn spawn(mut command: Command, dir: tempfile::TempDir) -> Host {
        let log_path = dir.path().join("host.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting the host");
        let (addr, admin, ops) = wait_for_listen_lines(&mut child, &log_path);
        Host {
            child,
            addr,
            admin,
            ops,
            dir,
        }
    }

    /// The host serving the five demo endpoints.
    pub fn demo() -> Host {
        Host::start(&config_text("", &demo_routes()), &[])
    }

    /// The config file the host was started with (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("webapp.toml")
    }

    /// What the host has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// An admin API URL.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("the admin API is on"))
    }

    /// The host process's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for_exit(within)
    }

    /// Waits (at most `within`) for the process to exit.
    pub fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the host did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app's address, and the admin API's and the probes-and-metrics
/// listener's if it printed them first.
fn wait_for_listen_lines(
    child: &mut Child,
    log: &Path,
) -> (SocketAddr, Option<SocketAddr>, Option<SocketAddr>) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut admin, mut ops) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let addr_after = |prefix: &str| -> Option<SocketAddr> {
                line.strip_prefix(prefix)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            if let Some(addr) = addr_after("admin API listening on http://") {
                admin = Some(addr);
            }
            if let Some(addr) = addr_after("probes and metrics listening on http://") {
                ops = Some(addr);
            }
            if let Some(addr) = addr_after("webapp listening on http://") {
                let _ = tx.send((addr, admin, ops));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(addrs) => addrs,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "the host did not start; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}

/// The traffic generator sending to `host` with `args` (and `--json`, so its
/// summary comes on stdout when it ends).
pub fn start_generator(host: &Host, args: &[&str]) -> Child {
    Command::new(workspace_binary("generator"))
        .args(["--target", &host.url(""), "--json"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the generator")
}

/// Runs the host binary to completion (for start-up failures).
pub fn run_host(args: &[&str]) -> Output {
    Command::new(workspace_binary("host"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("running the host")
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

/// Sends one request and returns its status and body.
pub async fn send(client: &HttpClient, method: Method, url: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let response = client
        .request(request)
        .await
        .expect("the request is answered");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Like [`get`], for a request that may fail on the way (a body cut off,
/// a connection closed): `None` then.
pub async fn try_get(client: &HttpClient, url: &str) -> Option<(StatusCode, String)> {
    let response = client.get(url.parse().ok()?).await.ok()?;
    let status = response.status();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn get(client: &HttpClient, url: &str) -> (StatusCode, String) {
    send(client, Method::GET, url).await
}

/// Requests `path` on every host in turn while `switch` runs (a change of
/// what they serve), until each host has answered `new_body` 20 times (or
/// 20 s passed). Per host: every answer, and when its first `new_body`
/// came, counted from the start.
pub async fn answers_through_a_switch(
    hosts: &[Host],
    path: &str,
    new_body: &str,
    switch: impl std::future::Future<Output = ()>,
) -> Vec<(Vec<(StatusCode, String)>, Option<Duration>)> {
    let client = client();
    let started = std::time::Instant::now();
    let traffic = hosts.iter().map(|host| {
        let url = host.url(path);
        let client = client.clone();
        async move {
            let (mut answers, mut first_new, mut new) = (Vec::new(), None, 0);
            while new < 20 && started.elapsed() < Duration::from_secs(20) {
                let answer = get(&client, &url).await;
                if answer.1 == new_body {
                    first_new.get_or_insert_with(|| started.elapsed());
                    new += 1;
                }
                answers.push(answer);
            }
            (answers, first_new)
        }
    });
    let (answers, ()) = tokio::join!(futures::future::join_all(traffic), switch);
    answers
}

/// Asserts every demo endpoint of `host` answers its status and body.
pub async fn assert_demo_endpoints_answer(host: &Host) {
    let client = client();
    for (path, _, status, body) in ENDPOINTS {
        let answer = get(&client, &host.url(path)).await;
        let expected = (StatusCode::from_u16(*status).unwrap(), body.to_string());
        assert_eq!(answer, expected, "{path}");
    }
}

/// Sends `n` GETs to `url`, at most `concurrency` at a time, and returns
/// every (status, body).
pub async fn get_many(url: String, n: usize, concurrency: usize) -> Vec<(StatusCode, String)> {
    let client = client();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let answer = get(&client, &url).await;
            drop(permit);
            answer
        }));
    }
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// A request to the host's admin API with an optional bearer token (a
/// POST body is sent as `application/json`);
/// returns the status and the JSON answer (`Null` if it is not JSON).
pub async fn admin(
    host: &Host,
    method: &str,
    path: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(host.admin_url(path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    // A POST body is JSON, and the admin API requires it to say so.
    if method == "POST" && !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .expect("the admin API answers");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// The route `route` as `GET /routes` shows it, and the generation.
pub async fn served_route(host: &Host, route: &str) -> (serde_json::Value, u64) {
    let (status, served) = admin(host, "GET", "/routes", vec![], None).await;
    assert_eq!(status, 200, "{served}");
    let found = served["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["path"] == route)
        .unwrap_or_else(|| panic!("no {route} in {served}"))
        .clone();
    (found, served["generation"].as_u64().expect("a generation"))
}

/// Polls `check` until it holds, failing with `what` after `within`
/// (shown only then: [`WithLog`] adds the host's log at that moment).
pub async fn eventually<F, Fut>(within: Duration, what: impl std::fmt::Display, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A description that, when shown, is followed by `host`'s log so far.
pub struct WithLog<'a>(pub &'a str, pub &'a Host);

impl std::fmt::Display for WithLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; the host's log:\n{}", self.0, self.1.log())
    }
}

/// The host's `/metrics`, raw.
pub async fn metrics_text(host: &Host) -> String {
    let (status, text) = get(&client(), &host.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    text
}

/// The host's `/metrics`, parsed by a real Prometheus text parser.
pub async fn scrape(host: &Host) -> prometheus_parse::Scrape {
    let text = metrics_text(host).await;
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses")
}

/// Samples of `metric` whose labels include every pair of `labels`.
pub fn samples<'a>(
    scrape: &'a prometheus_parse::Scrape,
    metric: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
    scrape.samples.iter().filter(move |s| {
        s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

/// The single value of a counter, gauge or untyped sample (0 when absent).
pub fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric, labels)
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric} is not a single value: {other:?}"),
        })
        .sum()
}

/// The cumulative bucket counts (upper bound, count) of one histogram series.
pub fn buckets(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    let mut found = samples(scrape, metric, labels);
    let sample = found
        .next()
        .unwrap_or_else(|| panic!("no {metric} series with {labels:?}"));
    assert!(
        found.next().is_none(),
        "several {metric} series match {labels:?}"
    );
    match &sample.value {
        prometheus_parse::Value::Histogram(counts) => {
            counts.iter().map(|c| (c.less_than, c.count)).collect()
        }
        other => panic!("{metric} is not a histogram: {other:?}"),
    }
}

/// The observations of every `metric` histogram series matching `labels`
/// (0 when none does).
pub fn histogram_count(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples(scrape, metric, labels)
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(counts) => counts
                .iter()
                .find(|c| c.less_than.is_infinite())
                .map_or(0.0, |c| c.count),
            other => panic!("{metric} is not a histogram: {other:?}"),
        })
        .sum()
}

/// The cumulative count at bucket `le` of a histogram series.
pub fn bucket(buckets: &[(f64, f64)], le: f64) -> f64 {
    buckets
        .iter()
        .find(|(bound, _)| *bound == le || (*bound - le).abs() < 1e-9)
        .unwrap_or_else(|| panic!("no bucket le={le}"))
        .1
}

/// Puts `bytes` at `target` the way build tools do: write aside, rename over.
pub fn rename_into_place(bytes: &[u8], target: &Path) {
    let aside = target.with_extension("new");
    std::fs::write(&aside, bytes).unwrap();
    std::fs::rename(&aside, target).unwrap();
}

/// Sends requests to `path` on `host` until its canary has been rolled
/// back for its errors (within 30 s).
pub async fn until_rolled_back_for_errors(host: &Host, path: &str) {
    let client = client();
    eventually(
        Duration::from_secs(30),
        WithLog("the failing canary was rolled back", host),
        || async {
            for _ in 0..10 {
                get(&client, &host.url(path)).await;
            }
            rollout_decisions(&scrape(host).await, path, "rollback", "errors") == 1.0
        },
    )
    .await;
}

/// Waits until `host` says (`webapp_route_on_declared_version`) that route
/// `path` serves its declared version.
pub async fn until_on_declared_version(host: &Host, path: &str) {
    eventually(
        Duration::from_secs(10),
        WithLog(&format!("{path} back on its declared version"), host),
        || async {
            let scrape = scrape(host).await;
            value(
                &scrape,
                "webapp_route_on_declared_version",
                &[("path", path)],
            ) == 1.0
        },
    )
    .await;
}

/// Waits until `host` watches `folder` (a change before that is not seen);
/// returns the log line's text.
pub async fn until_watching(host: &Host, folder: &Path) -> String {
    let watching = format!("watching {}", folder.canonicalize().unwrap().display());
    eventually(
        Duration::from_secs(10),
        WithLog(&watching, host),
        || async { host.log().contains(&watching) },
    )
    .await;
    watching
}

/// The `version` label of a component's bytes: its digest's first 12 hex digits.
pub fn version_id(bytes: &[u8]) -> String {
    sha256_hex(bytes)[..12].to_string()
}

/// Ends of rollouts on `path` counted with `decision` and `reason`.
pub fn rollout_decisions(
    scrape: &prometheus_parse::Scrape,
    path: &str,
    decision: &str,
    reason: &str,
) -> f64 {
    value(
        scrape,
        "webapp_rollout_decisions_total",
        &[("path", path), ("decision", decision), ("reason", reason)],
    )
}

/// Everything the server sends until it closes the connection (or `within` passes),
/// and whether it closed.
pub async fn read_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&all).into_owned(), closed)
}
