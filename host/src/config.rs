//! The host's configuration: one definition, three layers, checked once.
//!
//! Every setting is defined once, as a field of [`Settings`] (or of one of
//! its sections): the field is the TOML key, its clap attributes the flag
//! and the environment variable, its doc comment the `--help`. The file is
//! read into a `Settings`, the flags and environment into another, and the
//! second is laid over the first ([`Settings::layered`]): file, then
//! environment, then flags (clap lets a flag win over its variable). Each
//! section then has one check that turns it into the plain values the host
//! runs with ([`Config`]), so a typo or a missing component file stops the
//! host before it listens, with an error naming the key (and, for what the
//! file says, its line).
//!
//! A reload may change the routes (and `request_timeout`, their default
//! timeout) only: [`Config::fixed_settings_changed`] names any other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;
use wasmtime::{Result, bail, format_err};

use crate::component_file;
use crate::judge::{DEFAULT_POLICY, Policy};
use crate::registry::RegistryConfig;
use crate::routes::check_route_path;
use crate::source::ComponentSource;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:5000";
pub const DEFAULT_METRICS_PREFIX: &str = "webapp";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 64;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// A request body may pause this long between bytes (nginx's
/// `client_body_timeout` is 60 s; a guest waiting longer than this on its
/// client holds a place under `max_in_flight` for nothing).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A write to a client may make no progress this long (nginx's
/// `send_timeout` is 60 s; a client that stops reading pins a connection
/// and megabytes of socket buffers until then).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:5001";
/// Room for the largest upload (64 MiB) at about 1 MiB/s, e.g. through
/// `kubectl port-forward` from afar.
pub const DEFAULT_ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Fits the Kubernetes cache volume (256 MiB) with room to spare.
pub const DEFAULT_CACHE_MAX_MIB: u64 = 200;

/// The largest config file read: route tables are a few KiB; a path
/// naming something endless or huge is refused rather than read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of the config file at `path`, if it is a regular file within
/// [`MAX_CONFIG_BYTES`] (read as component files are: never waiting on a
/// FIFO, never reading an endless file).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = component_file::read_bounded(path, MAX_CONFIG_BYTES, "a config file")
        .map_err(|e| format_err!("cannot read config file: {e}"))?;
    String::from_utf8(bytes)
        .map_err(|e| format_err!("cannot read config file `{}`: {e}", path.display()))
}

/// Settings of the host: every one a key of the config file, a flag and an
/// environment variable. Unset means "from the next layer down", at the
/// bottom the default named in each doc comment.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to serve HTTP (and /metrics) on [key: listen; default 0.0.0.0:5000].
    #[arg(long, env = "WEBAPP_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// A second address serving only /metrics, /healthz and /readyz, with
    /// connections of its own: probes and Prometheus are answered there even
    /// when clients hold every connection or place of `listen`
    /// [key: ops_listen; default off].
    #[arg(long, env = "WEBAPP_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,

    /// Prefix of the HTTP metric names; `flask` gives exactly the names of
    /// prometheus_flask_exporter [key: metrics_prefix; default webapp].
    #[arg(long, env = "WEBAPP_METRICS_PREFIX")]
    pub metrics_prefix: Option<String>,

    /// Longest a component may take to answer a request before it is
    /// stopped and the client gets 504, e.g. `10s`, `500ms`; a route may set
    /// its own `timeout` [key: request_timeout; default 10s; a reload may change it].
    #[arg(long, env = "WEBAPP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,

    /// After SIGINT/SIGTERM, how long in-flight requests may take to finish
    /// before the host exits anyway [key: shutdown_grace; default 30s].
    #[arg(long, env = "WEBAPP_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_grace: Option<Duration>,

    /// After SIGINT/SIGTERM, how long to keep serving while /readyz answers
    /// 503, so load balancers stop routing here first [key: drain_delay; default 0s].
    #[arg(long, env = "WEBAPP_DRAIN_DELAY", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub drain_delay: Option<Duration>,

    /// Folder for compiled components, so restarts and swaps back skip
    /// compiling; in the file, relative to the file's folder [key: cache_dir;
    /// default $XDG_CACHE_HOME/webapp-host or ~/.cache/webapp-host].
    #[arg(long, env = "WEBAPP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// `--no-cache`: keep compiled components in memory only [key: cache = false].
    #[arg(
        long = "no-cache",
        env = "WEBAPP_CACHE",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub cache: Option<bool>,

    /// Largest total size of the compile cache folder, in MiB; the least
    /// recently used entries are evicted beyond it [key: cache_max_mib; default 200].
    #[arg(long, env = "WEBAPP_CACHE_MAX_MIB")]
    pub cache_max_mib: Option<u64>,

    /// `--no-watch`: do not watch component files for new versions
    /// [key: watch = false].
    #[arg(
        long = "no-watch",
        env = "WEBAPP_WATCH",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub watch: Option<bool>,

    /// `--no-watch-config`: do not reload the route table when the config
    /// file changes; only `POST /reload` does [key: watch_config = false].
    #[arg(
        long = "no-watch-config",
        env = "WEBAPP_WATCH_CONFIG",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub watch_config: Option<bool>,

    /// `--no-request-metrics`: do not record per-request metrics (process
    /// and component metrics stay); only useful to measure what metrics
    /// cost [key: request_metrics = false].
    #[arg(
        long = "no-request-metrics",
        env = "WEBAPP_REQUEST_METRICS",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub request_metrics: Option<bool>,

    #[command(flatten)]
    #[serde(default)]
    pub admin: AdminSettings,

    #[command(flatten)]
    #[serde(default)]
    pub pool: PoolSettings,

    #[command(flatten)]
    #[serde(default)]
    pub http: HttpSettings,

    #[command(flatten)]
    #[serde(default)]
    pub registry: RegistrySettings,

    /// The route table: `[[route]]` tables, in the file only.
    #[arg(skip)]
    #[serde(default, rename = "route", skip_serializing)]
    pub routes: Vec<FileRoute>,
}

/// `[admin]`: the admin API (routes, swaps, reloads).
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `--no-admin`: turn the admin API off [key: admin.enabled = false].
    #[arg(
        id = "admin_enabled",
        long = "no-admin",
        env = "WEBAPP_ADMIN",
        num_args = 0,
        default_missing_value = "false"
    )]
    pub enabled: Option<bool>,

    /// Address of the admin API [key: admin.listen; default 127.0.0.1:5001].
    #[arg(
        id = "admin_listen",
        long = "admin-listen",
        env = "WEBAPP_ADMIN_LISTEN"
    )]
    pub listen: Option<SocketAddr>,

    /// Bearer token the admin API requires; mandatory when it listens
    /// beyond loopback [key: admin.token].
    #[arg(
        id = "admin_token",
        long = "admin-token",
        env = "WEBAPP_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// An admin request's body (an upload, a JSON request) must arrive
    /// within this long after its head; a slower one gets 408 and its
    /// connection is closed [key: admin.body_timeout; default 60s].
    #[arg(
        id = "admin_body_timeout",
        long = "admin-body-timeout",
        env = "WEBAPP_ADMIN_BODY_TIMEOUT",
        value_parser = humantime::parse_duration
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub body_timeout: Option<Duration>,
}

/// `[pool]`: the instance pool, sized once at start.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Component instances alive at once (requests inside guests at once);
    /// sizes the pooling allocator [key: pool.max_instances; default 1000].
    #[arg(long, env = "WEBAPP_MAX_INSTANCES")]
    pub max_instances: Option<u32>,

    /// Largest linear memory of one instance, in MiB; a route may set a
    /// lower `max_memory_mib` [key: pool.max_memory_mib; default 64].
    #[arg(long, env = "WEBAPP_MAX_MEMORY_MIB")]
    pub max_memory_mib: Option<u64>,
}

/// `[http]`: what one client may cost the server.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// A request head must arrive within this long; also the keep-alive
    /// idle timeout [key: http.header_read_timeout; default 10s].
    #[arg(long, env = "WEBAPP_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub header_read_timeout: Option<Duration>,

    /// Largest request head in bytes, at least 8192; larger gets 431
    /// [key: http.max_header_bytes; default 16384].
    #[arg(long, env = "WEBAPP_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,

    /// Longest pause between the bytes of a request body while its
    /// component waits for them; then 408, counted as the client's
    /// [key: http.body_read_timeout; default 10s].
    #[arg(long, env = "WEBAPP_BODY_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub body_read_timeout: Option<Duration>,

    /// Longest a write to a client may make no progress (a client that
    /// stops reading); then the connection is closed and its request counted
    /// as 499 [key: http.send_timeout; default 10s].
    #[arg(long, env = "WEBAPP_SEND_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub send_timeout: Option<Duration>,

    /// Largest request body in bytes; larger gets 413 [key: http.max_body_bytes; default 1048576].
    #[arg(long, env = "WEBAPP_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<u64>,

    /// Client connections open at once; beyond it a connection gets 503
    /// and is closed. Lowered, with a warning, to fit the limit on open
    /// files (`ulimit -n`, raised to its hard value first)
    /// [key: http.max_connections; default 10000].
    #[arg(long, env = "WEBAPP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Requests inside components at once; beyond it requests get 503.
    /// Lowered, with a warning, to what the kernel can map
    /// (`vm.max_map_count`) [key: http.max_in_flight; default pool.max_instances].
    #[arg(long, env = "WEBAPP_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
}

/// `[registry]`: how components named `oci://...` are pulled.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// A registry (`host:port`) reached over plain HTTP, not HTTPS; every
    /// other is HTTPS only. The flag may be given several times; the
    /// variable takes a comma-separated list [key: registry.insecure = [..]; default none].
    #[arg(
        id = "registry_insecure",
        long = "registry-insecure",
        env = "WEBAPP_REGISTRY_INSECURE",
        value_delimiter = ','
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<Vec<String>>,

    /// A docker config file with registry credentials (`auths`), such as a
    /// mounted `kubernetes.io/dockerconfigjson` Secret; in the file,
    /// relative to the file's folder [key: registry.credentials; default
    /// $DOCKER_CONFIG/config.json or ~/.docker/config.json, if there].
    #[arg(
        id = "registry_credentials",
        long = "registry-credentials",
        env = "WEBAPP_REGISTRY_CREDENTIALS"
    )]
    pub credentials: Option<PathBuf>,

    /// Longest one pull may take; a registry that is down or hangs is
    /// given up on then, and what serves stays [key: registry.timeout; default 30s].
    #[arg(
        id = "registry_timeout",
        long = "registry-timeout",
        env = "WEBAPP_REGISTRY_TIMEOUT",
        value_parser = humantime::parse_duration
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,

    /// `--require-digest`: refuse a route naming a tag alone; every
    /// `oci://` reference must carry `@sha256:` (as a fleet should: each
    /// host resolves a tag for itself) [key: registry.require_digest = true].
    #[arg(
        id = "registry_require_digest",
        long = "require-digest",
        env = "WEBAPP_REQUIRE_DIGEST",
        num_args = 0,
        default_missing_value = "true"
    )]
    pub require_digest: Option<bool>,

    /// Resolve a tag alone again this often (at the periodic look), so a
    /// tag pushed again is served; without it a tag is resolved once and
    /// kept, across restarts too [key: registry.tag_refresh; default never].
    #[arg(
        id = "registry_tag_refresh",
        long = "tag-refresh",
        env = "WEBAPP_TAG_REFRESH",
        value_parser = humantime::parse_duration
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag_refresh: Option<Duration>,
}

/// One `[[route]]` table as the file has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    path: Spanned<String>,
    component: Spanned<String>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_memory_mib: Option<u64>,
    fuel: Option<u64>,
    rollout: Option<FileRollout>,
}

/// A route's `[route.rollout]` table as the file has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRollout {
    canary: Option<i64>,
    min_requests: Option<u64>,
    error_margin_percent: Option<f64>,
    latency_margin_percent: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    healthy_for: Option<Duration>,
    /// The key `latency_margin_percent` replaced: read only to say so.
    p99_margin_percent: Option<toml::Value>,
}

/// Everything the host needs to start, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_prefix: String,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// After a stop signal, how long to keep accepting while `/readyz`
    /// says 503, so load balancers stop sending before the listener closes.
    pub drain_delay: Duration,
    pub pool: PoolConfig,
    pub http: HttpLimits,
    /// Where the admin API listens; `None` when it is off.
    pub admin_listen: Option<SocketAddr>,
    /// Where only /metrics, /healthz and /readyz are served, if anywhere.
    pub ops_listen: Option<SocketAddr>,
    /// The bearer token the admin API requires, if any.
    pub admin_token: Option<String>,
    /// Where compiled components are kept across runs; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Upper bound of the compile cache folder's size; least recently used entries go first.
    pub cache_max_bytes: u64,
    /// Whether routed component files are watched and swapped in when they change.
    pub watch: bool,
    /// Whether the config file is watched and its route table reloaded when
    /// its text changes.
    pub watch_config: bool,
    /// Whether per-request metrics are recorded (off only to measure their cost).
    pub request_metrics: bool,
    /// How components named `oci://...` are pulled.
    pub registry: RegistryConfig,
    pub routes: Vec<RouteConfig>,
    /// The layered settings as TOML, to tell which a reload would change.
    layered: toml::Table,
}

/// What one client may cost the server, whatever it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head must arrive within this long (slow clients are cut off);
    /// it is also how long an idle kept-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Longest pause between request body bytes a component waits for; then 408.
    pub body_read_timeout: Duration,
    /// Longest a write to a client may make no progress; then the connection closes.
    pub send_timeout: Duration,
    /// Largest request body; larger gets 413.
    pub max_body_bytes: u64,
    /// Connections open at once; beyond it a connection gets 503 and is closed.
    pub max_connections: usize,
    /// Requests inside components at once; beyond it requests get 503.
    pub max_in_flight: usize,
    /// How long an admin request's body may take to arrive after its head
    /// (`admin.body_timeout`); then 408. Here, not beside the admin address,
    /// because like the rest it bounds what one (admin) client may cost.
    pub admin_body_timeout: Duration,
}

/// What one request may cost inside its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Wall-clock deadline: past it the guest is stopped and the client gets 504.
    pub timeout: Duration,
    /// Linear memory the instance may grow to; past it the guest traps (500).
    pub max_memory_bytes: u64,
    /// Wasm fuel (roughly, instructions) the request may burn; `None` is unlimited.
    pub fuel: Option<u64>,
}

/// Linear memories one component may have in the pool (a Rust std
/// component has one; the bound leaves room for one more).
pub const MEMORIES_PER_COMPONENT: u32 = 2;

/// Sizes of wasmtime's pooling allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Component instances alive at once, i.e. requests inside guests at once.
    pub max_instances: u32,
    /// Linear memory slots in the pool: two an instance, or fewer where
    /// the kernel cannot map that many (`kernel_limits.rs`).
    pub memory_slots: u32,
    /// Upper bound of one instance's linear memory.
    pub max_memory_bytes: u64,
}

/// How new versions of a route are rolled out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutConfig {
    /// The share (percent, 1-99) a rebuilt file seen by the watcher serves
    /// as a canary; `None` swaps it in whole.
    pub canary: Option<u8>,
    /// How any canary of the route is judged (admin ones too).
    pub policy: Policy,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            canary: None,
            policy: DEFAULT_POLICY,
        }
    }
}

/// One route: a request path served by a component.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub path: String,
    /// The component file, or a glob pattern whose newest match serves
    /// (`component_file.rs`), resolved against the config file's folder;
    /// or a registry reference (`registry/`).
    pub component: ComponentSource,
    pub limits: GuestLimits,
    pub rollout: RolloutConfig,
    /// `file:line` of the route's definition, for error messages.
    pub defined_at: String,
}

impl Settings {
    /// `file` with `over` laid on top: a setting `over` has replaces the
    /// file's. The routes are the file's.
    pub fn layered(file: &Settings, over: &Settings) -> Result<Settings> {
        let mut merged = toml::Table::try_from(file)?;
        merge(&mut merged, toml::Table::try_from(over)?);
        let mut layered: Settings = merged.try_into()?;
        layered.routes = file.routes.clone();
        Ok(layered)
    }
}

/// Lays `top` over `base`, section by section.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Config {
    /// The config in `text` (read from the file at `path`, `read_text`)
    /// with `over` (flags and environment) laid on it, checked, including
    /// that every route's component file exists. Relative paths in the file
    /// are taken from the file's folder, so the host can run from anywhere.
    pub fn from_text(text: &str, path: &Path, over: &Settings) -> Result<Self> {
        let config = Self::parse(text, path, over)?;
        for route in &config.routes {
            let Some(file) = route.component.file() else {
                continue; // pulled before it serves (`registry/`)
            };
            if let Err(e) = component_file::resolve(file) {
                bail!(
                    "{}: route `{}`: {e} (build the components first: \
                     `cargo component build`, or `cargo build --target wasm32-wasip2`)",
                    route.defined_at,
                    route.path
                );
            }
        }
        Ok(config)
    }

    /// Parses and checks config text; `path` names the file in errors and
    /// anchors relative paths. Touches no file.
    pub fn parse(text: &str, path: &Path, over: &Settings) -> Result<Self> {
        let mut file: Settings = toml::from_str(text)
            .map_err(|e| format_err!("invalid config file `{}`: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        file.cache_dir = file.cache_dir.map(|dir| base.join(dir));
        file.registry.credentials = file.registry.credentials.map(|c| base.join(c));
        let s = Settings::layered(&file, over)?;

        let metrics_prefix = s
            .metrics_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_METRICS_PREFIX.into());
        check_metric_prefix(&metrics_prefix)
            .map_err(|e| format_err!("metrics_prefix (--metrics-prefix): {e}"))?;
        let request_timeout = s.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        if request_timeout.is_zero() {
            bail!("request_timeout (--request-timeout) must be above zero");
        }
        let pool = s.pool.check()?;
        let mut http = s.http.check(&pool)?;
        let (admin_listen, admin_token, admin_body_timeout) = s.admin.check()?;
        http.admin_body_timeout = admin_body_timeout;
        let cache_max_mib = s.cache_max_mib.unwrap_or(DEFAULT_CACHE_MAX_MIB);
        if cache_max_mib == 0 {
            bail!(
                "cache_max_mib (--cache-max-mib) must be at least 1 \
                 (--no-cache keeps no compiled code on disk)"
            );
        }
        let registry = s.registry.check()?;
        let routes = check_routes(&file.routes, text, path, request_timeout, &pool)?;
        if registry.require_digest
            && let Some(route) = routes
                .iter()
                .find(|r| r.component.oci().is_some_and(|o| o.digest.is_none()))
        {
            bail!(
                "{}: route `{}` names the tag {} alone, and registry.require_digest is set: \
                 add the manifest digest (`@sha256:...`, as `wkg oci push` prints it)",
                route.defined_at,
                route.path,
                route.component
            );
        }
        let listen = s
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        // The same port on the same address, or on all addresses (0.0.0.0,
        // [::]) and one of them: the second bind would fail.
        let overlap = |a: SocketAddr, b: SocketAddr| {
            a.port() != 0
                && a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        if let Some(ops) = s.ops_listen
            && (overlap(ops, listen) || admin_listen.is_some_and(|admin| overlap(ops, admin)))
        {
            bail!(
                "ops_listen (--ops-listen) {ops} is already listen or admin.listen: \
                 give it a port of its own"
            );
        }

        Ok(Config {
            listen,
            metrics_prefix,
            shutdown_grace: s.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            drain_delay: s.drain_delay.unwrap_or(Duration::ZERO),
            pool,
            http,
            admin_listen,
            ops_listen: s.ops_listen,
            admin_token,
            cache_dir: match s.cache {
                Some(false) => None,
                _ => s.cache_dir.clone().or_else(default_cache_dir),
            },
            cache_max_bytes: cache_max_mib << 20,
            watch: s.watch.unwrap_or(true),
            watch_config: s.watch_config.unwrap_or(true),
            request_metrics: s.request_metrics.unwrap_or(true),
            registry,
            routes,
            layered: toml::Table::try_from(&s)?,
        })
    }

    /// The registry references the routes name (`oci://...`).
    pub fn references(&self) -> Vec<crate::registry::OciRef> {
        self.routes
            .iter()
            .filter_map(|r| r.component.oci().cloned())
            .collect()
    }

    /// The settings that differ between `self` and `other` among those a
    /// reload cannot change (all but the routes and `request_timeout`), by key.
    pub fn fixed_settings_changed(&self, other: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        diff("", &self.layered, &other.layered, &mut changed);
        changed.retain(|key| key != "request_timeout");
        changed
    }
}

/// The keys whose values differ between `a` and `b`, dotted.
fn diff(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let name = format!("{prefix}{key}");
        match (a.get(key), b.get(key)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff(&format!("{name}."), x, y, out)
            }
            (x, y) if x != y => out.push(name),
            _ => {}
        }
    }
}

impl PoolSettings {
    fn check(&self) -> Result<PoolConfig> {
        let max_instances = self.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        if max_instances == 0 {
            bail!("pool.max_instances (--max-instances) must be at least 1");
        }
        let max_memory_mib = self.max_memory_mib.unwrap_or(DEFAULT_MAX_MEMORY_MIB);
        if !(1..=4096).contains(&max_memory_mib) {
            bail!(
                "pool.max_memory_mib (--max-memory-mib) must be between 1 and 4096, not {max_memory_mib}"
            );
        }
        Ok(PoolConfig {
            max_instances,
            memory_slots: max_instances.saturating_mul(MEMORIES_PER_COMPONENT),
            max_memory_bytes: max_memory_mib << 20,
        })
    }
}

impl HttpSettings {
    fn check(&self, pool: &PoolConfig) -> Result<HttpLimits> {
        let http = HttpLimits {
            header_read_timeout: self
                .header_read_timeout
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
            max_header_bytes: self.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES),
            body_read_timeout: self.body_read_timeout.unwrap_or(DEFAULT_BODY_READ_TIMEOUT),
            send_timeout: self.send_timeout.unwrap_or(DEFAULT_SEND_TIMEOUT),
            max_body_bytes: self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_in_flight: self.max_in_flight.unwrap_or(pool.max_instances as usize),
            // The admin section's, set by `Config::parse`.
            admin_body_timeout: DEFAULT_ADMIN_BODY_TIMEOUT,
        };
        for (value, key, flag) in [
            (
                http.header_read_timeout,
                "header_read_timeout",
                "header-read-timeout",
            ),
            (
                http.body_read_timeout,
                "body_read_timeout",
                "body-read-timeout",
            ),
            (http.send_timeout, "send_timeout", "send-timeout"),
        ] {
            if value.is_zero() {
                bail!("http.{key} (--{flag}) must be above zero");
            }
        }
        // hyper's read buffer cannot be smaller than 8 KiB.
        if http.max_header_bytes < 8192 {
            bail!(
                "http.max_header_bytes (--max-header-bytes) must be at least 8192, not {}",
                http.max_header_bytes
            );
        }
        if http.max_connections == 0 || http.max_in_flight == 0 {
            bail!("http.max_connections and http.max_in_flight must be at least 1");
        }
        Ok(http)
    }
}

/// The default `registry.timeout`: a component is a few hundred KiB; a
/// registry that has not sent it in this long is down or hung.
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);

impl RegistrySettings {
    fn check(&self) -> Result<RegistryConfig> {
        let insecure = self.insecure.clone().unwrap_or_default();
        if let Some(bad) = insecure
            .iter()
            .find(|r| r.is_empty() || r.contains('/') || r.contains("://"))
        {
            bail!(
                "registry.insecure (--registry-insecure): `{bad}` is not a registry: \
                 give host:port, as in the oci:// references"
            );
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_REGISTRY_TIMEOUT);
        if timeout.is_zero() {
            bail!("registry.timeout (--registry-timeout) must be above zero");
        }
        if self.tag_refresh.is_some_and(|t| t.is_zero()) {
            bail!("registry.tag_refresh (--tag-refresh) must be above zero");
        }
        Ok(RegistryConfig {
            insecure,
            credentials: self.credentials.clone(),
            timeout,
            require_digest: self.require_digest.unwrap_or(false),
            tag_refresh: self.tag_refresh,
        })
    }
}

impl AdminSettings {
    /// Where the admin API listens (if on), its token (if any) and how long
    /// a request body may take.
    fn check(&self) -> Result<(Option<SocketAddr>, Option<String>, Duration)> {
        let listen = self.enabled.unwrap_or(true).then(|| {
            self.listen
                .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.parse().expect("valid default"))
        });
        let token = self.token.clone().filter(|t| !t.is_empty());
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && token.is_none()
        {
            bail!(
                "the admin API on {addr} is reachable beyond this machine: set a token \
                 (admin.token, --admin-token or WEBAPP_ADMIN_TOKEN) or bind it to 127.0.0.1"
            );
        }
        let body_timeout = self.body_timeout.unwrap_or(DEFAULT_ADMIN_BODY_TIMEOUT);
        if body_timeout.is_zero() {
            bail!("admin.body_timeout (--admin-body-timeout) must be above zero");
        }
        Ok((listen, token, body_timeout))
    }
}

/// Checks the file's `[[route]]` tables into routes, naming the line of
/// each mistake.
fn check_routes(
    file_routes: &[FileRoute],
    text: &str,
    path: &Path,
    request_timeout: Duration,
    pool: &PoolConfig,
) -> Result<Vec<RouteConfig>> {
    let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
    let base = path.parent().unwrap_or(Path::new(""));
    let pool_mib = pool.max_memory_bytes >> 20;
    if file_routes.is_empty() {
        bail!(
            "config file `{}` defines no routes: add `[[route]]` tables with `path` and `component`",
            path.display()
        );
    }
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(file_routes.len());
    for route in file_routes {
        let route_path = route.path.get_ref();
        let defined_at = at(route.path.span().start);
        check_route_path(route_path).map_err(|e| format_err!("{defined_at}: {e}"))?;
        if let Some(first) = routes.iter().find(|r| &r.path == route_path) {
            bail!(
                "{defined_at}: route `{route_path}` is already defined at {}",
                first.defined_at
            );
        }
        let route_memory_mib = route.max_memory_mib.unwrap_or(pool_mib);
        if route_memory_mib == 0 || route_memory_mib > pool_mib {
            bail!(
                "{defined_at}: max_memory_mib of route `{route_path}` must be between 1 and \
                 pool.max_memory_mib ({pool_mib}), not {route_memory_mib}"
            );
        }
        if route.timeout.is_some_and(|t| t.is_zero()) || route.fuel == Some(0) {
            bail!("{defined_at}: timeout and fuel of route `{route_path}` must be above zero");
        }
        let rollout = match &route.rollout {
            None => RolloutConfig::default(),
            Some(r) => r
                .check()
                .map_err(|e| format_err!("{defined_at}: rollout of route `{route_path}`: {e}"))?,
        };
        routes.push(RouteConfig {
            path: route_path.clone(),
            rollout,
            component: ComponentSource::parse(route.component.get_ref(), base).map_err(|e| {
                format_err!(
                    "{}: component of route `{route_path}`: {e}",
                    at(route.component.span().start)
                )
            })?,
            limits: GuestLimits {
                timeout: route.timeout.unwrap_or(request_timeout),
                max_memory_bytes: route_memory_mib << 20,
                fuel: route.fuel,
            },
            defined_at,
        });
    }
    Ok(routes)
}

/// A canary share, as the admin API and the config take it: whole percent, 1-99.
pub fn check_canary_share(share: i64) -> std::result::Result<u8, String> {
    u8::try_from(share)
        .ok()
        .filter(|s| (1..=99).contains(s))
        .ok_or_else(|| format!("a canary share is a whole percent from 1 to 99, not {share}"))
}

impl FileRollout {
    fn check(&self) -> std::result::Result<RolloutConfig, String> {
        let canary = self.canary.map(check_canary_share).transpose()?;
        if self.p99_margin_percent.is_some() {
            return Err(
                "p99_margin_percent is no longer a key: the judge compares whole latency \
                        distributions now; latency_margin_percent is the slowdown it tolerates"
                    .into(),
            );
        }
        let percent = |key: &str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
            Some(v) => Err(format!("{key} must be a percentage of 0 or more, not {v}")),
        };
        let policy = Policy {
            min_requests: match self.min_requests {
                Some(0) => return Err("min_requests must be at least 1".into()),
                n => n.unwrap_or(DEFAULT_POLICY.min_requests),
            },
            error_margin: percent(
                "error_margin_percent",
                self.error_margin_percent,
                DEFAULT_POLICY.error_margin,
            )?,
            latency_margin: percent(
                "latency_margin_percent",
                self.latency_margin_percent,
                DEFAULT_POLICY.latency_margin,
            )?,
            healthy_for: match self.healthy_for {
                Some(d) if d.is_zero() => return Err("healthy_for must be above zero".into()),
                d => d.unwrap_or(DEFAULT_POLICY.healthy_for),
            },
        };
        Ok(RolloutConfig { canary, policy })
    }
}

/// `$XDG_CACHE_HOME/webapp-host`, else `$HOME/.cache/webapp-host`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("webapp-host"))
}

/// Prometheus metric names are `[a-zA-Z_:][a-zA-Z0-9_:]*`; colons are meant
/// for recording rules, so a prefix may not use them.
fn check_metric_prefix(prefix: &str) -> std::result::Result<(), String> {
    let mut chars = prefix.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "metric prefix `{prefix}` is not a valid Prometheus name (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
listen = "127.0.0.1:8080"
metrics_prefix = "flask"
request_timeout = "2s"

[pool]
max_instances = 10

[[route]]
path = "/ep_one"
component = "c/ep_one.wasm"

[[route]]
path = "/error"
component = "/abs/ep_error.wasm"
"#;

    fn parse(text: &str, over: &Settings) -> Result<Config> {
        Config::parse(text, Path::new("conf/webapp.toml"), over)
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, &Settings::default()).unwrap_err())
    }

    #[test]
    fn file_values_are_read_and_paths_resolved() {
        let c = parse(FILE, &Settings::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.metrics_prefix, "flask");
        assert_eq!(c.routes[0].limits.timeout, Duration::from_secs(2));
        assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(c.pool.max_instances, 10);
        assert_eq!(c.pool.max_memory_bytes, DEFAULT_MAX_MEMORY_MIB << 20);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].path, "/ep_one");
        assert_eq!(
            c.routes[0].component.file(),
            Some(Path::new("conf/c/ep_one.wasm"))
        );
        assert_eq!(c.routes[0].defined_at, "conf/webapp.toml:10");
        assert_eq!(
            c.routes[1].component.file(),
            Some(Path::new("/abs/ep_error.wasm"))
        );
    }

    #[test]
    fn client_bounds_and_the_ops_listener_are_checked() {
        let c = parse(FILE, &Settings::default()).unwrap();
        assert_eq!(c.http.body_read_timeout, DEFAULT_BODY_READ_TIMEOUT);
        assert_eq!(c.http.send_timeout, DEFAULT_SEND_TIMEOUT);
        assert_eq!(c.ops_listen, None);
        let set =
            format!("ops_listen = \"127.0.0.1:5002\"\n{FILE}\n[http]\nsend_timeout = \"2s\"\n");
        let c = parse(&set, &Settings::default()).unwrap();
        assert_eq!(c.ops_listen, Some("127.0.0.1:5002".parse().unwrap()));
        assert_eq!(c.http.send_timeout, Duration::from_secs(2));
        for bad in ["body_read_timeout = \"0s\"", "send_timeout = \"0ms\""] {
            let key = bad.split(' ').next().unwrap();
            let e = err(&format!("{FILE}\n[http]\n{bad}\n"));
            assert!(e.contains(&format!("http.{key}")), "{e}");
        }
        // FILE listens on 127.0.0.1:8080: the ops listener cannot share it,
        // nor take the port on every address.
        for taken in ["127.0.0.1:8080", "0.0.0.0:8080", "127.0.0.1:5001"] {
            let e = err(&format!("ops_listen = \"{taken}\"\n{FILE}"));
            assert!(e.contains("ops_listen") && e.contains(taken), "{e}");
        }
    }

    #[test]
    fn overrides_win_over_the_file() {
        let overrides = Settings {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            metrics_prefix: Some("other".into()),
            request_timeout: Some(Duration::from_millis(500)),
            shutdown_grace: Some(Duration::from_secs(1)),
            drain_delay: Some(Duration::from_secs(2)),
            pool: PoolSettings {
                max_instances: Some(3),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = parse(FILE, &overrides).unwrap();
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.metrics_prefix, "other");
        assert_eq!(c.shutdown_grace, Duration::from_secs(1));
        assert_eq!(c.drain_delay, Duration::from_secs(2));
        assert_eq!(c.pool.max_instances, 3);
        assert_eq!(c.http.max_in_flight, 3, "in-flight cap follows the pool");
        assert_eq!(c.routes[0].limits.timeout, Duration::from_millis(500));
    }

    #[test]
    fn routes_take_their_own_limits_or_the_defaults() {
        let text = r#"
request_timeout = "3s"
[pool]
max_memory_mib = 32
[http]
max_body_bytes = 100
header_read_timeout = "2s"
[[route]]
path = "/a"
component = "a.wasm"
timeout = "250ms"
max_memory_mib = 8
fuel = 1000000
[[route]]
path = "/b"
component = "b.wasm"
"#;
        let c = parse(text, &Settings::default()).unwrap();
        assert_eq!(
            c.routes[0].limits,
            GuestLimits {
                timeout: Duration::from_millis(250),
                max_memory_bytes: 8 << 20,
                fuel: Some(1_000_000)
            }
        );
        assert_eq!(
            c.routes[1].limits,
            GuestLimits {
                timeout: Duration::from_secs(3),
                max_memory_bytes: 32 << 20,
                fuel: None
            }
        );
        assert_eq!(c.http.max_body_bytes, 100);
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.http.max_connections, DEFAULT_MAX_CONNECTIONS);

        let over = text.replace("max_memory_mib = 8", "max_memory_mib = 64");
        let e = format!("{:#}", parse(&over, &Settings::default()).unwrap_err());
        assert!(
            e.contains("conf/webapp.toml:9") && e.contains("max_memory_mib"),
            "{e}"
        );
        let typo = text.replace("fuel =", "feul =");
        assert!(format!("{:#}", parse(&typo, &Settings::default()).unwrap_err()).contains("feul"));
        let tiny = text.replace("max_body_bytes = 100", "max_header_bytes = 100");
        assert!(parse(&tiny, &Settings::default()).is_err());
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = parse(
            "[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n",
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.metrics_prefix, DEFAULT_METRICS_PREFIX);
        assert_eq!(c.pool.max_instances, DEFAULT_MAX_INSTANCES);
    }

    #[test]
    fn a_typo_names_the_file_line_and_key() {
        let e = err("listn = \"0.0.0.0:1\"\n");
        assert!(e.contains("conf/webapp.toml"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("listn"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_line() {
        let e = err("\n\nlisten = \"not an address\"\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn route_mistakes_name_their_line() {
        let dup = "[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n[[route]]\npath = \"/a\"\ncomponent = \"b.wasm\"\n";
        let e = err(dup);
        assert!(e.contains("conf/webapp.toml:5"), "{e}");
        assert!(e.contains("already defined at conf/webapp.toml:2"), "{e}");

        let e = err("[[route]]\npath = \"/metrics\"\ncomponent = \"a.wasm\"\n");
        assert!(
            e.contains("conf/webapp.toml:2") && e.contains("reserved"),
            "{e}"
        );

        let e = err("[[route]]\npath = \"a\"\ncomponent = \"a.wasm\"\n");
        assert!(e.contains("must start with `/`"), "{e}");

        let e = err("[[route]]\npath = \"/a\"\n");
        assert!(e.contains("component"), "{e}");
    }

    #[test]
    fn routes_take_their_rollout_settings_or_the_defaults() {
        let text = "[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n[route.rollout]\n\
                    canary = 10\nmin_requests = 200\nerror_margin_percent = 2.5\n\
                    latency_margin_percent = 20\nhealthy_for = \"5m\"\n\
                    [[route]]\npath = \"/b\"\ncomponent = \"b.wasm\"\n";
        let c = parse(text, &Settings::default()).unwrap();
        assert_eq!(
            c.routes[0].rollout,
            RolloutConfig {
                canary: Some(10),
                policy: Policy {
                    min_requests: 200,
                    error_margin: 0.025,
                    latency_margin: 0.2,
                    healthy_for: Duration::from_secs(300),
                },
            }
        );
        assert_eq!(c.routes[1].rollout, RolloutConfig::default());
        assert_eq!(c.routes[1].rollout.policy, DEFAULT_POLICY);
    }

    #[test]
    fn rollout_mistakes_name_the_route_and_line() {
        let route = "[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n[route.rollout]\n";
        for (bad, says) in [
            ("canary = 0", "1 to 99, not 0"),
            ("canary = 100", "1 to 99, not 100"),
            ("canary = -3", "1 to 99, not -3"),
            ("min_requests = 0", "min_requests must be at least 1"),
            (
                "error_margin_percent = -1.0",
                "error_margin_percent must be",
            ),
            (
                "latency_margin_percent = nan",
                "latency_margin_percent must be",
            ),
            (
                "p99_margin_percent = 50",
                "latency_margin_percent is the slowdown",
            ),
            ("healthy_for = \"0s\"", "healthy_for must be above zero"),
        ] {
            let e = err(&format!("{route}{bad}\n"));
            assert!(
                e.contains("conf/webapp.toml:2") && e.contains("route `/a`") && e.contains(says),
                "{bad}: {e}"
            );
        }
        let e = err(&format!("{route}canary_share = 10\n"));
        assert!(e.contains("canary_share"), "{e}");
    }

    #[test]
    fn the_admin_api_beyond_loopback_needs_a_token() {
        let routes = "[[route]]\npath = \"/a\"\ncomponent = \"a\"\n";
        let c = parse(routes, &Settings::default()).unwrap();
        assert_eq!(c.admin_listen, Some(DEFAULT_ADMIN_LISTEN.parse().unwrap()));
        let open = format!("[admin]\nlisten = \"0.0.0.0:5001\"\n{routes}");
        let e = format!("{:#}", parse(&open, &Settings::default()).unwrap_err());
        assert!(e.contains("token"), "{e}");
        let with_token = Settings {
            admin: AdminSettings {
                token: Some("s3cret".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            parse(&open, &with_token).unwrap().admin_token.as_deref(),
            Some("s3cret")
        );
        let off = Settings {
            admin: AdminSettings {
                enabled: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(parse(&open, &off).unwrap().admin_listen, None);
    }

    #[test]
    fn the_admin_body_timeout_is_read_and_checked() {
        let routes = "[[route]]\npath = \"/a\"\ncomponent = \"a\"\n";
        let c = parse(routes, &Settings::default()).unwrap();
        assert_eq!(c.http.admin_body_timeout, DEFAULT_ADMIN_BODY_TIMEOUT);
        let c = parse(
            &format!("[admin]\nbody_timeout = \"5s\"\n{routes}"),
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(c.http.admin_body_timeout, Duration::from_secs(5));
        let e = err(&format!("[admin]\nbody_timeout = \"0s\"\n{routes}"));
        assert!(e.contains("admin.body_timeout"), "{e}");
    }

    #[test]
    fn the_shipped_config_parses_with_the_five_endpoints() {
        let text = include_str!("../../webapp.toml");
        let c = Config::parse(text, Path::new("webapp.toml"), &Settings::default()).unwrap();
        let paths: Vec<&str> = c.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/ep_one", "/ep_two", "/ep_three", "/ep_four", "/error"]
        );
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
    }

    #[test]
    fn a_reload_may_change_routes_only() {
        let before = parse(FILE, &Settings::default()).unwrap();
        let routes_only = FILE.replace("c/ep_one.wasm", "c/other.wasm")
            + "\n[[route]]\npath = \"/new\"\ncomponent = \"n.wasm\"\n";
        let after = parse(&routes_only, &Settings::default()).unwrap();
        assert!(before.fixed_settings_changed(&after).is_empty());
        let text = FILE
            .replace("127.0.0.1:8080", "127.0.0.1:9090")
            .replace(
                "max_instances = 10",
                "max_instances = 10\nmax_memory_mib = 32",
            )
            .replace("[pool]", "[http]\nmax_body_bytes = 5\n[pool]");
        let after = parse(&text, &Settings::default()).unwrap();
        assert_eq!(
            before.fixed_settings_changed(&after),
            ["http.max_body_bytes", "listen", "pool.max_memory_mib"]
        );
    }

    #[test]
    fn flags_lay_over_the_file_section_by_section() {
        let over = Settings {
            http: HttpSettings {
                max_body_bytes: Some(7),
                ..Default::default()
            },
            watch: Some(false),
            ..Default::default()
        };
        let text = format!("{FILE}\n[http]\nmax_connections = 3\nmax_body_bytes = 100\n");
        let c = parse(&text, &over).unwrap();
        assert_eq!(c.http.max_body_bytes, 7, "the flag wins");
        assert_eq!(c.http.max_connections, 3, "the file's other keys stay");
        assert!(!c.watch);
        assert_eq!(c.routes.len(), 2, "routes come from the file");
        let no_cache = Settings {
            cache: Some(false),
            cache_dir: Some("/somewhere".into()),
            ..Default::default()
        };
        assert_eq!(parse(FILE, &no_cache).unwrap().cache_dir, None);
        let c = parse(
            &format!("cache_dir = \"cache\"\n{FILE}"),
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(
            c.cache_dir,
            Some(PathBuf::from("conf/cache")),
            "relative to the file"
        );
    }

    #[test]
    fn no_routes_is_an_error() {
        assert!(err("listen = \"0.0.0.0:1\"\n").contains("defines no routes"));
    }

    #[test]
    fn metric_prefixes_are_checked() {
        let e = err("metrics_prefix = \"9bad\"\n[[route]]\npath = \"/a\"\ncomponent = \"a\"\n");
        assert!(e.contains("metrics_prefix") && e.contains("9bad"), "{e}");
        let overrides = Settings {
            metrics_prefix: Some("has-dash".into()),
            ..Default::default()
        };
        assert!(parse(FILE, &overrides).is_err());
        for good in ["webapp", "flask", "_x1"] {
            assert!(check_metric_prefix(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn pool_limits_are_checked() {
        assert!(
            err("[pool]\nmax_instances = 0\n[[route]]\npath = \"/a\"\ncomponent = \"a\"\n")
                .contains("max_instances")
        );
        assert!(
            err("[pool]\nmax_memory_mib = 0\n[[route]]\npath = \"/a\"\ncomponent = \"a\"\n")
                .contains("max_memory_mib")
        );
    }
}
