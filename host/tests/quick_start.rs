//! The quick start exactly as users type it, on a clean copy of the
//! repository (no component builds present): `cargo component build` at the
//! root, then the host started as `cargo run -p host` starts it (no flags:
//! the root's `webapp.toml`). Then the edit, rebuild, served loop with each
//! of the four builds (cargo-component and plain cargo, debug and release)
//! while a reader requests the edited route without pause: every new answer
//! is served, no request fails, and the reader sees only the old answer,
//! then only the new one.
//!
//! Real builds from source: about four minutes on 2 cores.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;
use tokio::sync::watch;

/// The repository's source files (no `target/`, `.git/` or `node_modules/`)
/// copied to `to`.
fn copy_sources(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["target", ".git", "node_modules"].contains(&name.to_str().unwrap_or_default()) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_sources(&source, &target);
        } else {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

/// Runs `cargo ARGS` in `root` as a user would; returns how long it took.
fn cargo(root: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo");
    assert!(
        output.status.success(),
        "`cargo {}` failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// Changes `/ep_one`'s answer in the copy's source.
fn edit_answer(root: &Path, from: &str, to: &str) {
    let source = root.join("components/ep-one/src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let old = format!("body: b\"{from}\"");
    assert!(text.contains(&old), "{old} not in {}", source.display());
    std::fs::write(&source, text.replace(&old, &format!("body: b\"{to}\""))).unwrap();
}

/// A client requesting `url` one request after another until told to stop,
/// publishing each answer's body.
struct Reader {
    stop: watch::Sender<bool>,
    latest: watch::Receiver<String>,
    task: tokio::task::JoinHandle<Vec<(StatusCode, String)>>,
}

impl Reader {
    fn start(url: String) -> Reader {
        let (stop, stopped) = watch::channel(false);
        let (publish, latest) = watch::channel(String::new());
        let task = tokio::spawn(async move {
            let client = client();
            let mut answers = Vec::new();
            while !*stopped.borrow() {
                let answer = get(&client, &url).await;
                publish.send_replace(answer.1.clone());
                answers.push(answer);
            }
            answers
        });
        Reader { stop, latest, task }
    }

    /// Waits until an answer is `body`; returns how long that took.
    async fn wait_for(&mut self, body: &str, within: Duration) -> Duration {
        let started = Instant::now();
        tokio::time::timeout(within, self.latest.wait_for(|latest| latest == body))
            .await
            .unwrap_or_else(|_| panic!("`{body}` not served within {within:?}"))
            .unwrap();
        started.elapsed()
    }

    async fn finish(self) -> Vec<(StatusCode, String)> {
        self.stop.send_replace(true);
        self.task.await.unwrap()
    }
}

/// The serving file of `route`, from the admin API.
async fn serving_file(host: &Host, route: &str) -> String {
    served_route(host, route).await.0["file"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_component_build_then_cargo_run_then_edit_rebuild_served() {
    let installed = Command::new(env!("CARGO"))
        .args(["component", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        assert!(
            !tools_required(),
            "cargo-component is required (REQUIRE_TOOLS)"
        );
        eprintln!("cargo-component not installed: skipping the quick start");
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    let root = copy.path();
    copy_sources(repo_root(), root);
    assert!(!root.join("target").exists());

    let took = cargo(root, &["component", "build"]);
    eprintln!("cargo component build (clean): {took:.1?}");
    let started = Instant::now();
    let host = Host::start_as_user(root);
    eprintln!("host start to listening: {:.0?}", started.elapsed());
    assert_demo_endpoints_answer(&host).await;
    // At start the log names, per route, the file it resolved (as the host
    // sees it from where it runs: relative to the root) and its digest.
    let log = host.log();
    for (path, stem, _, _) in ENDPOINTS {
        let file = format!("target/wasm32-wasip1/debug/{stem}.wasm");
        let digest = &sha256_hex(&std::fs::read(root.join(&file)).unwrap())[..12];
        let line = log
            .lines()
            .find(|l| l.contains(&format!("route={path} ")) && l.contains("serving"))
            .unwrap_or_else(|| panic!("no start line for {path} in:\n{log}"));
        assert!(
            line.contains(&format!("file={file} ")) && line.contains(digest),
            "{line}"
        );
    }

    let builds: [(&[&str], &str); 4] = [
        (&["component", "build"], "wasm32-wasip1/debug"),
        (
            &["component", "build", "--release"],
            "wasm32-wasip1/release",
        ),
        (
            &["build", "--target", "wasm32-wasip2"],
            "wasm32-wasip2/debug",
        ),
        (
            &["build", "--target", "wasm32-wasip2", "--release"],
            "wasm32-wasip2/release",
        ),
    ];
    let mut old = "1".to_owned();
    for (i, (args, folder)) in builds.into_iter().enumerate() {
        let new = format!("one, v{}", i + 2);
        edit_answer(root, &old, &new);
        let mut reader = Reader::start(host.url("/ep_one"));
        let built = cargo(root, args);
        let served = reader.wait_for(&new, Duration::from_secs(30)).await;
        let answers = reader.finish().await;
        eprintln!(
            "cargo {}: built in {built:.1?}, served {served:.2?} after the build returned",
            args.join(" ")
        );

        assert!(
            answers.len() > 1,
            "the reader made {} requests",
            answers.len()
        );
        let first_new = answers.iter().position(|(_, b)| *b == new).unwrap();
        for (n, (status, body)) in answers.iter().enumerate() {
            let expected = if n < first_new { &old } else { &new };
            assert_eq!(
                (status, body),
                (&StatusCode::OK, expected),
                "answer {n} of {} (cargo {})",
                answers.len(),
                args.join(" ")
            );
        }
        let file = format!("target/{folder}/ep_one.wasm");
        assert_eq!(serving_file(&host, "/ep_one").await, file);
        // The swap is logged with the route, the file and the new digest.
        let digest = &sha256_hex(&std::fs::read(root.join(&file)).unwrap())[..12];
        let log = host.log();
        assert!(
            log.lines().any(|l| l.contains("swapped")
                && l.contains("route=/ep_one")
                && l.contains(&format!("file={file} "))
                && l.contains(digest)),
            "no swap line for {file} ({digest}) in:\n{log}"
        );
        old = new;
    }

    // The other routes followed each build and answer as before.
    let client = client();
    for (path, stem, status, body) in &ENDPOINTS[1..] {
        assert_eq!(
            get(&client, &host.url(path)).await,
            (StatusCode::from_u16(*status).unwrap(), body.to_string()),
            "{path}"
        );
        let file = format!("target/wasm32-wasip2/release/{stem}.wasm");
        assert_eq!(serving_file(&host, path).await, file);
    }
}
