//! The host's configuration, parsed and checked once into a plain struct.
//!
//! Values come in three layers, later ones winning: the TOML file, then
//! environment variables and command-line flags (both through clap, see
//! `cli.rs`, which hands them over as [`Overrides`]). Everything is checked
//! here before anything starts, so a typo or a missing component file stops
//! the host with an error naming the file and line, never half-way up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use wasmtime::{Result, bail, format_err};

use crate::component_file;
use crate::routes::check_route_path;

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
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:5001";
/// Fits the Kubernetes cache volume (256 MiB) with room to spare.
pub const DEFAULT_CACHE_MAX_MIB: u64 = 200;

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
    /// The bearer token the admin API requires, if any.
    pub admin_token: Option<String>,
    /// Where compiled components are kept across runs; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Upper bound of the compile cache folder's size; least recently used entries go first.
    pub cache_max_bytes: u64,
    /// Whether routed component files are watched and swapped in when they change.
    pub watch: bool,
    /// Whether per-request metrics are recorded (off only to measure their cost).
    pub request_metrics: bool,
    pub routes: Vec<RouteConfig>,
}

/// What one client may cost the server, whatever it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head must arrive within this long (slow clients are cut off);
    /// it is also how long an idle kept-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body; larger gets 413.
    pub max_body_bytes: u64,
    /// Connections open at once; beyond it a connection gets 503 and is closed.
    pub max_connections: usize,
    /// Requests inside components at once; beyond it requests get 503.
    pub max_in_flight: usize,
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
/// Sizes of wasmtime's pooling allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Component instances alive at once, i.e. requests inside guests at once.
    pub max_instances: u32,
    /// Upper bound of one instance's linear memory.
    pub max_memory_bytes: u64,
}

/// One route: a request path served by a component file.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub path: String,
    /// The component file, or a glob pattern whose newest match serves
    /// (`component_file.rs`), resolved against the config file's folder.
    pub component: PathBuf,
    pub limits: GuestLimits,
    /// `file:line` of the route's definition, for error messages.
    pub defined_at: String,
}

/// Values given on the command line or in the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub metrics_prefix: Option<String>,
    pub request_timeout: Option<Duration>,
    pub shutdown_grace: Option<Duration>,
    pub drain_delay: Option<Duration>,
    pub max_instances: Option<u32>,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub no_admin: bool,
    pub cache_dir: Option<PathBuf>,
    pub no_cache: bool,
    pub cache_max_mib: Option<u64>,
    pub no_watch: bool,
    pub no_request_metrics: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_prefix: Option<Spanned<String>>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_delay: Option<Duration>,
    #[serde(default)]
    pool: FilePool,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    admin: FileAdmin,
    cache_dir: Option<PathBuf>,
    cache_max_mib: Option<u64>,
    watch: Option<bool>,
    request_metrics: Option<bool>,
    #[serde(default, rename = "route")]
    routes: Vec<FileRoute>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilePool {
    max_instances: Option<u32>,
    max_memory_mib: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    enabled: Option<bool>,
    listen: Option<SocketAddr>,
    token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<u64>,
    max_connections: Option<usize>,
    max_in_flight: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    path: Spanned<String>,
    component: Spanned<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_memory_mib: Option<u64>,
    fuel: Option<u64>,
}

impl Config {
    /// Reads `path`, applies `overrides`, and checks the result, including
    /// that every component file exists. Relative component paths are taken
    /// relative to the config file's folder, so the host can run from anywhere.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format_err!("cannot read config file `{}`: {e}", path.display()))?;
        let config = Self::parse(&text, path, overrides)?;
        for route in &config.routes {
            if let Err(e) = component_file::resolve(&route.component) {
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
    /// anchors relative component paths. Touches no file.
    pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Self> {
        let file: FileConfig = toml::from_str(text)
            .map_err(|e| format_err!("invalid config file `{}`: {e}", path.display()))?;
        let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
        let base = path.parent().unwrap_or(Path::new(""));

        let metrics_prefix = match (&overrides.metrics_prefix, &file.metrics_prefix) {
            (Some(prefix), _) => {
                check_metric_prefix(prefix).map_err(|e| format_err!("--metrics-prefix: {e}"))?;
                prefix.clone()
            }
            (None, Some(prefix)) => {
                check_metric_prefix(prefix.get_ref())
                    .map_err(|e| format_err!("{}: {e}", at(prefix.span().start)))?;
                prefix.get_ref().clone()
            }
            (None, None) => DEFAULT_METRICS_PREFIX.to_owned(),
        };

        let max_instances = overrides
            .max_instances
            .or(file.pool.max_instances)
            .unwrap_or(DEFAULT_MAX_INSTANCES);
        if max_instances == 0 {
            bail!("pool.max_instances must be at least 1");
        }
        let max_memory_mib = file.pool.max_memory_mib.unwrap_or(DEFAULT_MAX_MEMORY_MIB);
        if max_memory_mib == 0 || max_memory_mib > 4096 {
            bail!("pool.max_memory_mib must be between 1 and 4096, not {max_memory_mib}");
        }
        let request_timeout = overrides
            .request_timeout
            .or(file.request_timeout)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        if request_timeout.is_zero() {
            bail!("request_timeout must be above zero");
        }

        if file.routes.is_empty() {
            bail!(
                "config file `{}` defines no routes: add `[[route]]` tables with `path` and `component`",
                path.display()
            );
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(file.routes.len());
        for route in &file.routes {
            let route_path = route.path.get_ref();
            let defined_at = at(route.path.span().start);
            check_route_path(route_path).map_err(|e| format_err!("{defined_at}: {e}"))?;
            if let Some(first) = routes.iter().find(|r| &r.path == route_path) {
                bail!(
                    "{defined_at}: route `{route_path}` is already defined at {}",
                    first.defined_at
                );
            }
            let route_memory_mib = route.max_memory_mib.unwrap_or(max_memory_mib);
            if route_memory_mib == 0 || route_memory_mib > max_memory_mib {
                bail!(
                    "{defined_at}: max_memory_mib of route `{route_path}` must be between 1 and \
                     pool.max_memory_mib ({max_memory_mib}), not {route_memory_mib}"
                );
            }
            if route.timeout.is_some_and(|t| t.is_zero()) || route.fuel == Some(0) {
                bail!("{defined_at}: timeout and fuel of route `{route_path}` must be above zero");
            }
            routes.push(RouteConfig {
                path: route_path.clone(),
                component: base.join(route.component.get_ref()),
                limits: GuestLimits {
                    timeout: route.timeout.unwrap_or(request_timeout),
                    max_memory_bytes: route_memory_mib << 20,
                    fuel: route.fuel,
                },
                defined_at,
            });
        }

        let http = HttpLimits {
            header_read_timeout: file
                .http
                .header_read_timeout
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
            max_header_bytes: file
                .http
                .max_header_bytes
                .unwrap_or(DEFAULT_MAX_HEADER_BYTES),
            max_body_bytes: file.http.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_connections: file.http.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_in_flight: file.http.max_in_flight.unwrap_or(max_instances as usize),
        };
        if http.header_read_timeout.is_zero() {
            bail!("http.header_read_timeout must be above zero");
        }
        // hyper's read buffer cannot be smaller than 8 KiB.
        if http.max_header_bytes < 8192 {
            bail!(
                "http.max_header_bytes must be at least 8192, not {}",
                http.max_header_bytes
            );
        }
        if http.max_connections == 0 || http.max_in_flight == 0 {
            bail!("http.max_connections and http.max_in_flight must be at least 1");
        }

        let admin_enabled = !overrides.no_admin && file.admin.enabled.unwrap_or(true);
        let admin_listen = admin_enabled.then(|| {
            overrides
                .admin_listen
                .or(file.admin.listen)
                .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.parse().expect("valid default"))
        });
        let admin_token = overrides
            .admin_token
            .clone()
            .or(file.admin.token)
            .filter(|t| !t.is_empty());
        if let Some(addr) = admin_listen
            && !addr.ip().is_loopback()
            && admin_token.is_none()
        {
            bail!(
                "the admin API on {addr} is reachable beyond this machine: set a token \
                 (--admin-token, WEBAPP_ADMIN_TOKEN or admin.token) or bind it to 127.0.0.1"
            );
        }
        let cache_dir = if overrides.no_cache {
            None
        } else {
            overrides
                .cache_dir
                .clone()
                .or(file.cache_dir.map(|dir| base.join(dir)))
                .or_else(default_cache_dir)
        };

        let cache_max_mib = overrides
            .cache_max_mib
            .or(file.cache_max_mib)
            .unwrap_or(DEFAULT_CACHE_MAX_MIB);
        if cache_max_mib == 0 {
            bail!(
                "cache_max_mib must be at least 1 (use --no-cache to keep no compiled code on disk)"
            );
        }

        Ok(Config {
            listen: overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            metrics_prefix,
            shutdown_grace: overrides
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            drain_delay: overrides
                .drain_delay
                .or(file.drain_delay)
                .unwrap_or(Duration::ZERO),
            pool: PoolConfig {
                max_instances,
                max_memory_bytes: max_memory_mib << 20,
            },
            http,
            admin_listen,
            admin_token,
            cache_dir,
            cache_max_bytes: cache_max_mib << 20,
            watch: !overrides.no_watch && file.watch.unwrap_or(true),
            request_metrics: !overrides.no_request_metrics && file.request_metrics.unwrap_or(true),
            routes,
        })
    }
}

impl Config {
    /// The settings that differ between `self` and `other` among those a
    /// reload cannot change: every setting but the routes (and
    /// `request_timeout`, which only gives routes their default timeout).
    pub fn fixed_settings_changed(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                changed.push(name);
            }
        };
        check("listen", self.listen == other.listen);
        check(
            "metrics_prefix",
            self.metrics_prefix == other.metrics_prefix,
        );
        check(
            "shutdown_grace",
            self.shutdown_grace == other.shutdown_grace,
        );
        check("drain_delay", self.drain_delay == other.drain_delay);
        check("pool", self.pool == other.pool);
        check("http", self.http == other.http);
        check("admin.listen", self.admin_listen == other.admin_listen);
        check("admin.token", self.admin_token == other.admin_token);
        check("cache_dir", self.cache_dir == other.cache_dir);
        check(
            "cache_max_mib",
            self.cache_max_bytes == other.cache_max_bytes,
        );
        check("watch", self.watch == other.watch);
        check(
            "request_metrics",
            self.request_metrics == other.request_metrics,
        );
        changed
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

    fn parse(text: &str, overrides: &Overrides) -> Result<Config> {
        Config::parse(text, Path::new("conf/webapp.toml"), overrides)
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, &Overrides::default()).unwrap_err())
    }

    #[test]
    fn file_values_are_read_and_paths_resolved() {
        let c = parse(FILE, &Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.metrics_prefix, "flask");
        assert_eq!(c.routes[0].limits.timeout, Duration::from_secs(2));
        assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(c.pool.max_instances, 10);
        assert_eq!(c.pool.max_memory_bytes, DEFAULT_MAX_MEMORY_MIB << 20);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].path, "/ep_one");
        assert_eq!(c.routes[0].component, Path::new("conf/c/ep_one.wasm"));
        assert_eq!(c.routes[0].defined_at, "conf/webapp.toml:10");
        assert_eq!(c.routes[1].component, Path::new("/abs/ep_error.wasm"));
    }

    #[test]
    fn overrides_win_over_the_file() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            metrics_prefix: Some("other".into()),
            request_timeout: Some(Duration::from_millis(500)),
            shutdown_grace: Some(Duration::from_secs(1)),
            drain_delay: Some(Duration::from_secs(2)),
            max_instances: Some(3),
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
        let c = parse(text, &Overrides::default()).unwrap();
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
        let e = format!("{:#}", parse(&over, &Overrides::default()).unwrap_err());
        assert!(
            e.contains("conf/webapp.toml:9") && e.contains("max_memory_mib"),
            "{e}"
        );
        let typo = text.replace("fuel =", "feul =");
        assert!(format!("{:#}", parse(&typo, &Overrides::default()).unwrap_err()).contains("feul"));
        let tiny = text.replace("max_body_bytes = 100", "max_header_bytes = 100");
        assert!(parse(&tiny, &Overrides::default()).is_err());
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = parse(
            "[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n",
            &Overrides::default(),
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
    fn the_admin_api_beyond_loopback_needs_a_token() {
        let routes = "[[route]]\npath = \"/a\"\ncomponent = \"a\"\n";
        let c = parse(routes, &Overrides::default()).unwrap();
        assert_eq!(c.admin_listen, Some(DEFAULT_ADMIN_LISTEN.parse().unwrap()));
        let open = format!("[admin]\nlisten = \"0.0.0.0:5001\"\n{routes}");
        let e = format!("{:#}", parse(&open, &Overrides::default()).unwrap_err());
        assert!(e.contains("token"), "{e}");
        let with_token = Overrides {
            admin_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(
            parse(&open, &with_token).unwrap().admin_token.as_deref(),
            Some("s3cret")
        );
        let off = Overrides {
            no_admin: true,
            ..Default::default()
        };
        assert_eq!(parse(&open, &off).unwrap().admin_listen, None);
    }

    #[test]
    fn the_shipped_config_parses_with_the_five_endpoints() {
        let text = include_str!("../../webapp.toml");
        let c = Config::parse(text, Path::new("webapp.toml"), &Overrides::default()).unwrap();
        let paths: Vec<&str> = c.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/ep_one", "/ep_two", "/ep_three", "/ep_four", "/error"]
        );
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
    }

    #[test]
    fn a_reload_may_change_routes_only() {
        let before = parse(FILE, &Overrides::default()).unwrap();
        let routes_only = FILE.replace("c/ep_one.wasm", "c/other.wasm")
            + "\n[[route]]\npath = \"/new\"\ncomponent = \"n.wasm\"\n";
        let after = parse(&routes_only, &Overrides::default()).unwrap();
        assert!(before.fixed_settings_changed(&after).is_empty());
        let text = FILE
            .replace("127.0.0.1:8080", "127.0.0.1:9090")
            .replace(
                "max_instances = 10",
                "max_instances = 10\nmax_memory_mib = 32",
            )
            .replace("[pool]", "[http]\nmax_body_bytes = 5\n[pool]");
        let after = parse(&text, &Overrides::default()).unwrap();
        assert_eq!(
            before.fixed_settings_changed(&after),
            ["listen", "pool", "http"]
        );
    }

    #[test]
    fn no_routes_is_an_error() {
        assert!(err("listen = \"0.0.0.0:1\"\n").contains("defines no routes"));
    }

    #[test]
    fn metric_prefixes_are_checked() {
        let e = err("metrics_prefix = \"9bad\"\n[[route]]\npath = \"/a\"\ncomponent = \"a\"\n");
        assert!(
            e.contains("conf/webapp.toml:1") && e.contains("9bad"),
            "{e}"
        );
        let overrides = Overrides {
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
