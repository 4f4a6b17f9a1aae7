//! The command line: the config file's path, plus every setting of
//! [`Settings`] as a flag with an environment variable twin (handy in
//! containers). The settings are defined once, in `config.rs`; their doc
//! comments are this `--help`.

use std::path::PathBuf;

use clap::Parser;

use crate::config::Settings;

/// Serve every HTTP route from a WebAssembly component (wasi:http), with
/// Prometheus metrics on /metrics.
///
/// Routes and settings come from a TOML file (see webapp.toml); every
/// setting below is also a key of that file (named in brackets), and a flag
/// or its environment variable overrides the file. Logs go to stderr and
/// are filtered with RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// TOML file with the route table and settings. Relative paths in it
    /// are resolved from the file's own folder.
    #[arg(long, short, env = "WEBAPP_CONFIG", default_value = "webapp.toml")]
    pub config: PathBuf,

    #[command(flatten)]
    pub settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    #[test]
    fn flags_are_consistent_and_documented() {
        Args::command().debug_assert();
        for arg in Args::command().get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    /// The README's configuration table lists every flag and variable: a
    /// new setting is defined in `config.rs` and documented there, nowhere else.
    #[test]
    fn every_setting_is_in_the_readme() {
        let readme = include_str!("../../README.md");
        for arg in Args::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            assert!(
                readme.contains(&format!("`--{long}")),
                "--{long} is not in README.md"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                let documented =
                    readme.contains(&format!("`{env}`")) || readme.contains(&format!("`{env}="));
                assert!(documented, "{env} is not in README.md");
            }
        }
    }

    #[test]
    fn flags_fill_settings() {
        let args = Args::try_parse_from([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--metrics-prefix",
            "flask",
            "--request-timeout",
            "250ms",
            "--max-body-bytes",
            "12",
            "--no-watch",
            "--no-admin",
        ])
        .unwrap();
        let s = args.settings;
        assert_eq!(s.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.metrics_prefix.as_deref(), Some("flask"));
        assert_eq!(s.request_timeout, Some(Duration::from_millis(250)));
        assert_eq!(s.http.max_body_bytes, Some(12));
        assert_eq!((s.watch, s.admin.enabled), (Some(false), Some(false)));
        assert_eq!(s.pool.max_instances, None);
        assert_eq!(s.cache, None);
    }

    #[test]
    fn a_bad_flag_value_is_rejected() {
        assert!(Args::try_parse_from(["host", "--listen", "nowhere"]).is_err());
        assert!(Args::try_parse_from(["host", "--request-timeout", "soon"]).is_err());
        assert!(Args::try_parse_from(["host", "--max-instances", "-1"]).is_err());
    }
}
