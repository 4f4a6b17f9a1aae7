//! Command-line flags and environment variables.
//!
//! Each flag has an environment variable twin (handy in containers); both
//! override the config file. Parsing produces plain [`Overrides`] for
//! `config.rs`, which owns the rules for combining them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::Overrides;

/// Serve every HTTP route from a WebAssembly component (wasi:http), with
/// Prometheus metrics on /metrics.
///
/// Routes and settings come from a TOML file (see webapp.toml); the flags and
/// environment variables below override it. Logs go to stderr and are
/// filtered with RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// TOML file with the route table and settings. Relative component paths
    /// in it are resolved from the file's own folder.
    #[arg(long, short, env = "WEBAPP_CONFIG", default_value = "webapp.toml")]
    pub config: PathBuf,

    /// Address to serve HTTP (and /metrics) on [file: listen; default 0.0.0.0:5000].
    #[arg(long, env = "WEBAPP_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Prefix of the HTTP metric names; `flask` gives exactly the names of
    /// prometheus_flask_exporter [file: metrics_prefix; default webapp].
    #[arg(long, env = "WEBAPP_METRICS_PREFIX")]
    pub metrics_prefix: Option<String>,

    /// Longest a component may take to answer a request before it is stopped
    /// and the client gets 504, e.g. `10s`, `500ms` [file: request_timeout; default 10s].
    #[arg(long, env = "WEBAPP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    pub request_timeout: Option<Duration>,

    /// After SIGINT/SIGTERM, how long in-flight requests may take to finish
    /// before the host exits anyway [file: shutdown_grace; default 30s].
    #[arg(long, env = "WEBAPP_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// After SIGINT/SIGTERM, how long to keep serving while /readyz answers
    /// 503, so load balancers stop routing here first [file: drain_delay; default 0s].
    #[arg(long, env = "WEBAPP_DRAIN_DELAY", value_parser = humantime::parse_duration)]
    pub drain_delay: Option<Duration>,

    /// Address of the admin API (list routes, swap components, reload the
    /// route table) [file: admin.listen; default 127.0.0.1:5001].
    #[arg(long, env = "WEBAPP_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Bearer token the admin API requires; mandatory when it listens beyond
    /// loopback [file: admin.token].
    #[arg(long, env = "WEBAPP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Turn the admin API off.
    #[arg(long)]
    pub no_admin: bool,

    /// Folder for compiled components, so restarts and swaps back skip
    /// compiling [file: cache_dir; default $XDG_CACHE_HOME/webapp-host or ~/.cache/webapp-host].
    #[arg(long, env = "WEBAPP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Largest total size of the compile cache folder, in MiB; the least
    /// recently used entries are evicted beyond it [file: cache_max_mib; default 200].
    #[arg(long, env = "WEBAPP_CACHE_MAX_MIB")]
    pub cache_max_mib: Option<u64>,

    /// Keep compiled components in memory only.
    #[arg(long)]
    pub no_cache: bool,

    /// Do not watch component files for new versions [file: watch = false].
    #[arg(long)]
    pub no_watch: bool,

    /// Do not record per-request metrics (process and component metrics
    /// stay); only useful to measure what metrics cost [file: request_metrics = false].
    #[arg(long)]
    pub no_request_metrics: bool,

    /// Component instances alive at once (requests inside guests at once);
    /// sizes the pooling allocator [file: pool.max_instances; default 1000].
    #[arg(long, env = "WEBAPP_MAX_INSTANCES")]
    pub max_instances: Option<u32>,
}

impl Args {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            metrics_prefix: self.metrics_prefix.clone(),
            request_timeout: self.request_timeout,
            shutdown_grace: self.shutdown_grace,
            drain_delay: self.drain_delay,
            max_instances: self.max_instances,
            admin_listen: self.admin_listen,
            admin_token: self.admin_token.clone(),
            no_admin: self.no_admin,
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
            cache_max_mib: self.cache_max_mib,
            no_watch: self.no_watch,
            no_request_metrics: self.no_request_metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent_and_documented() {
        Args::command().debug_assert();
        for arg in Args::command().get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn flags_become_overrides() {
        let args = Args::try_parse_from([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--metrics-prefix",
            "flask",
            "--request-timeout",
            "250ms",
        ])
        .unwrap();
        let o = args.overrides();
        assert_eq!(o.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(o.metrics_prefix.as_deref(), Some("flask"));
        assert_eq!(o.request_timeout, Some(Duration::from_millis(250)));
        assert_eq!(o.max_instances, None);
    }

    #[test]
    fn a_bad_flag_value_is_rejected() {
        assert!(Args::try_parse_from(["host", "--listen", "nowhere"]).is_err());
        assert!(Args::try_parse_from(["host", "--request-timeout", "soon"]).is_err());
    }
}
