//! Every flag and environment variable is checked before anything is sent:
//! a bad value exits with code 2 and a message naming it, never a panic.

use std::process::{Command, Stdio};

/// Flags, environment variables, and what the error must name.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

const BAD: &[Case] = &[
    (&["--paths", "/a b"], &[], "/a b"),
    (&["--paths", "/ok,nope"], &[], "nope"),
    (&["--paths", ""], &[], "no paths"),
    (&["--paths", "/a=x"], &[], "/a"),
    (&["--paths", "/a=0"], &[], "weight"),
    (&["--workers", "0"], &[], "--workers"),
    (&["--workers", "100000000"], &[], "--workers"),
    (&["--workers", "-1"], &[], "-1"),
    (&["--rate", "1e-300"], &[], "--rate"),
    (&["--rate", "inf"], &[], "--rate"),
    (&["--rate", "fast"], &[], "--rate"),
    (&["--max-in-flight", "0"], &[], "--max-in-flight"),
    (&["--target", "ftp://x"], &[], "ftp://x"),
    (&["--target", "http://a b"], &[], "http://a b"),
    (&["--timeout", "soon"], &[], "--timeout"),
    (&["--timeout", "0s"], &[], "--timeout"),
    (&["--duration", "forever"], &[], "--duration"),
    (&["--requests", "-5"], &[], "-5"),
    (&["--bogus"], &[], "--bogus"),
    (&[], &[("GENERATOR_RATE", "abc")], "--rate"),
    (&[], &[("GENERATOR_WORKERS", "0")], "--workers"),
    (&[], &[("GENERATOR_PATHS", "/x y")], "/x y"),
    (&[], &[("GENERATOR_TARGET", "nowhere")], "nowhere"),
];

#[test]
fn bad_inputs_exit_2_naming_the_input() {
    for (args, env, named) in BAD {
        let out = Command::new(env!("CARGO_BIN_EXE_generator"))
            .args(*args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("running the generator");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let case = format!("{args:?} {env:?}");
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(
            stderr.contains(named),
            "{case}: the error does not name `{named}`: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{case}: sent or printed something");
    }
}
