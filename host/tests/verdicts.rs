//! Canary verdicts that hold, and a control plane that decides from what
//! is true now: real components, the real host, real HTTP.
//!
//! - A version rolled back on a route serves nothing there again: not
//!   after a reload, a restart, the same bytes written again, nor on a
//!   second host on the same config and cache folder.
//! - A candidate that fails after sending its head (a trap mid-body, a
//!   body outliving its deadline) is judged, and counted, as a failure.
//! - A reload re-pointing a route wins over a file event for its old file
//!   that waited for the reload to finish.
//! - A slow reload holding the control plane does not keep failing
//!   candidates serving: every due verdict stops its split at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::StatusCode;
use testkit::*;

/// Sends requests to `path` until its rollout has ended.
async fn traffic_until_decided(host: &Host, path: &str) {
    let client = client();
    let what = format!("the rollout on {path} to end");
    eventually(Duration::from_secs(60), WithLog(&what, host), || async {
        for _ in 0..5 {
            // A candidate failing mid-body cuts the answer off.
            try_get(&client, &host.url(path)).await;
        }
        served_route(host, path).await.0["rollout"].is_null()
    })
    .await;
}

/// `n` answers of `path`, all checked to be `expected`.
async fn all_answer(host: &Host, path: &str, expected: &str, what: &str) {
    let answers = get_many(host.url(path), 20, 4).await;
    assert!(
        answers
            .iter()
            .all(|a| *a == (StatusCode::OK, expected.to_string())),
        "{what}: {answers:?}\n{}",
        host.log()
    );
}

/// A folder holding `/ep_one`'s file (`ep_one.wasm`) and `/ep_two`'s
/// (`ep_two.wasm`), and a config routing to them; `/ep_one` rebuilt files
/// start as a 50 % canary.
fn routed_folder() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let folder = tempfile::tempdir().unwrap();
    let one = folder.path().join("ep_one.wasm");
    let two = folder.path().join("ep_two.wasm");
    std::fs::copy(component("ep_one"), &one).unwrap();
    std::fs::copy(component("ep_two"), &two).unwrap();
    let config = format!(
        "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\ncanary = 50\n\n\
         [[route]]\npath = \"/ep_two\"\ncomponent = \"{}\"\n",
        one.display(),
        two.display()
    );
    (folder, one, two, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_version_never_serves_again() {
    let cache = tempfile::tempdir().unwrap();
    // POST /reload is what is tested: the config file is not watched.
    let args = [
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--no-watch-config",
    ];
    let (folder, one, two, config) = routed_folder();
    let mut host = Host::start(&config, &args);
    until_watching(&host, folder.path()).await;
    let bad = std::fs::read(component("ep_error")).unwrap();
    let bad_id = version_id(&bad);

    // The file is rebuilt as a version failing every request: a canary,
    // rolled back for errors.
    rename_into_place(&bad, &one);
    eventually(
        Duration::from_secs(20),
        WithLog("the canary to start", &host),
        || async { !served_route(&host, "/ep_one").await.0["rollout"].is_null() },
    )
    .await;
    traffic_until_decided(&host, "/ep_one").await;
    let scraped = scrape(&host).await;
    assert_eq!(
        rollout_decisions(&scraped, "/ep_one", "rollback", "errors"),
        1.0
    );
    let (route, _) = served_route(&host, "/ep_one").await;
    let held = route["held_back"].as_array().expect("held_back listed");
    assert_eq!(held.len(), 1, "{route}");
    assert_eq!(held[0]["version"], bad_id.as_str());
    assert_eq!(held[0]["reason"], "rolled_back");
    assert_eq!(
        value(
            &scraped,
            "webapp_held_back_versions",
            &[("path", "/ep_one")]
        ),
        1.0
    );
    all_answer(&host, "/ep_one", "1", "after the rollback").await;

    // A reload of the unchanged config.
    let (status, answer) = admin(&host, "POST", "/reload", Vec::new(), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["held_back"],
        serde_json::json!(["/ep_one"]),
        "{answer}"
    );
    all_answer(&host, "/ep_one", "1", "after a reload").await;

    // The same bytes written again. Looked at in the same pass as a new
    // build of /ep_two written after them: once that serves, the rewrite
    // has been seen.
    rename_into_place(&bad, &one);
    let three = std::fs::read(component("ep_three")).unwrap();
    rename_into_place(&three, &two);
    eventually(
        Duration::from_secs(20),
        WithLog("/ep_two to serve its new build", &host),
        || async { get(&client(), &host.url("/ep_two")).await.1 == "3" },
    )
    .await;
    all_answer(&host, "/ep_one", "1", "after the same bytes again").await;

    // A second host on the same config file and cache folder.
    let second = host.start_beside(&args);
    all_answer(&second, "/ep_one", "1", "on a second host").await;
    let (route, _) = served_route(&second, "/ep_one").await;
    assert_eq!(route["held_back"][0]["version"], bad_id.as_str(), "{route}");
    assert_eq!(
        value(
            &scrape(&second).await,
            "webapp_version_requests_total",
            &[("path", "/ep_one"), ("version", &bad_id)]
        ),
        0.0
    );
    drop(second);

    // A restart.
    assert!(host.terminate(Duration::from_secs(30)).success());
    host = host.restart(&args);
    all_answer(&host, "/ep_one", "1", "after a restart").await;
    assert!(
        host.log().contains("held back on this route"),
        "{}",
        host.log()
    );

    // The operator names it through the admin API: served, released.
    let (status, answer) = admin(&host, "PUT", "/routes/ep_one/component", bad, None).await;
    assert_eq!(status, 200, "{answer}");
    let answers = get_many(host.url("/ep_one"), 5, 1).await;
    assert!(answers.iter().all(|a| a.1 == "error"), "{answers:?}");
    let (route, _) = served_route(&host, "/ep_one").await;
    assert_eq!(route["held_back"], serde_json::json!([]), "{route}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_the_head_are_failures() {
    let hello = component("hello");
    let config = format!(
        "[[route]]\npath = \"/x/trap-mid-body\"\ncomponent = \"{0}\"\n\n\
         [[route]]\npath = \"/x/stream-forever\"\ncomponent = \"{0}\"\ntimeout = \"300ms\"\n",
        hello.display()
    );
    let host = Host::start(&config, &[]);
    let faults = std::fs::read(component("faults")).unwrap();
    let candidate = version_id(&faults);
    for route in ["x/trap-mid-body", "x/stream-forever"] {
        let path = format!("/routes/{route}/component?canary=50");
        let (status, answer) = admin(&host, "PUT", &path, faults.clone(), None).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    for path in ["/x/trap-mid-body", "/x/stream-forever"] {
        traffic_until_decided(&host, path).await;
        let scrape = scrape(&host).await;
        assert_eq!(
            rollout_decisions(&scrape, path, "rollback", "errors"),
            1.0,
            "{path}\n{}",
            host.log()
        );
        let class = |class: &str| {
            value(
                &scrape,
                "webapp_version_requests_total",
                &[("path", path), ("version", &candidate), ("class", class)],
            )
        };
        assert!(class("5xx") >= 1.0, "{path}: {}", class("5xx"));
        assert_eq!(
            class("2xx"),
            0.0,
            "{path}: the head's 200 is not how it ended"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_re_pointing_a_route_wins_over_a_waiting_file_event() {
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (one, other) = (
        old.path().join("ep_one.wasm"),
        old.path().join("other.wasm"),
    );
    std::fs::copy(component("ep_one"), &one).unwrap();
    std::fs::copy(component("hello"), &other).unwrap();
    let config = |ep_one: &Path, routes: &str| {
        format!(
            "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n\n\
             [[route]]\npath = \"/other\"\ncomponent = \"{}\"\n{routes}",
            ep_one.display(),
            other.display()
        )
    };
    let host = Host::start(&config(&one, ""), &["--no-watch-config"]);
    until_watching(&host, old.path()).await;

    // The reload points /ep_one at a new file, and adds routes whose
    // never-seen versions take a while to compile: it holds the control
    // plane while the watcher's event for the old folder comes in.
    let target = new.path().join("ep_three.wasm");
    std::fs::write(&target, variant(&component("ep_three"), &nonce("repoint"))).unwrap();
    let slow: String = (0..12)
        .map(|i| {
            let file = new.path().join(format!("slow{i}.wasm"));
            std::fs::write(
                &file,
                variant(&component("hello"), &nonce(&format!("slow{i}"))),
            )
            .unwrap();
            format!(
                "[[route]]\npath = \"/slow{i}\"\ncomponent = \"{}\"\n",
                file.display()
            )
        })
        .collect();
    std::fs::write(host.config_path(), config(&target, &slow)).unwrap();
    let reload = tokio::spawn({
        let url = host.admin_url("/reload");
        async move {
            let client = client();
            send(&client, hyper::Method::POST, &url).await
        }
    });
    // The old file changes now: its event waits for the reload.
    rename_into_place(&std::fs::read(component("ep_two")).unwrap(), &one);
    let new_other = variant(&component("hello"), &nonce("other"));
    rename_into_place(&new_other, &other);
    let (status, answer) = reload.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The event's look has happened once /other serves its new version.
    let other_digest = sha256_hex(&new_other);
    eventually(
        Duration::from_secs(20),
        WithLog("/other to serve its new build", &host),
        || async { served_route(&host, "/other").await.0["digest"] == other_digest.as_str() },
    )
    .await;
    all_answer(&host, "/ep_one", "3", "the reload's file serves").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_does_not_keep_failing_candidates_serving() {
    let routes = ["/ep_one", "/ep_two"];
    let mut config = String::new();
    for (path, stem) in routes.iter().zip(["ep_one", "ep_two"]) {
        config += &format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n\n",
            component(stem).display()
        );
    }
    let host = Host::start(&config, &["--no-watch-config"]);
    let bad = std::fs::read(component("ep_error")).unwrap();
    for path in routes {
        let url = format!("/routes{path}/component?canary=50");
        let (status, answer) = admin(&host, "PUT", &url, bad.clone(), None).await;
        assert_eq!(status, 200, "{answer}");
    }
    // A reload adding routes whose never-seen versions take a while to
    // compile: it holds the control plane all that time.
    let folder = tempfile::tempdir().unwrap();
    let mut slow = config.clone();
    for i in 0..40 {
        let file = folder.path().join(format!("slow{i}.wasm"));
        std::fs::write(
            &file,
            variant(&component("hello"), &nonce(&format!("busy{i}"))),
        )
        .unwrap();
        slow += &format!(
            "[[route]]\npath = \"/slow{i}\"\ncomponent = \"{}\"\n",
            file.display()
        );
    }
    std::fs::write(host.config_path(), slow).unwrap();
    let reload = tokio::spawn({
        let url = host.admin_url("/reload");
        async move { send(&client(), hyper::Method::POST, &url).await }
    });
    eventually(
        Duration::from_secs(10),
        WithLog("the reload to start", &host),
        || async { host.log().contains("reloading the route table") },
    )
    .await;
    // Both candidates fail every request: once judged, each route's
    // answers are the stable version's, while the reload still runs.
    let client = client();
    let mut errors = [0usize; 2];
    let mut clean_run = [0usize; 2];
    while clean_run.iter().any(|&n| n < 5) {
        assert!(
            !reload.is_finished(),
            "the reload ended before both verdicts took effect: errors {errors:?}, \
             clean runs {clean_run:?}\n{}",
            host.log()
        );
        for (i, path) in routes.iter().enumerate() {
            let (_, body) = get(&client, &host.url(path)).await;
            if body == "error" {
                errors[i] += 1;
                clean_run[i] = 0;
            } else {
                clean_run[i] += 1;
            }
        }
    }
    // Rolled back within 10 candidate answers, and the split stopped with
    // the verdict (a request or two in flight at that moment aside).
    assert!(
        errors.iter().all(|&n| n <= 12),
        "{errors:?}\n{}",
        host.log()
    );
    let (status, answer) = reload.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The verdicts are carried out once the reload lets go of the lock.
    eventually(
        Duration::from_secs(10),
        WithLog("both rollbacks counted", &host),
        || async {
            let scrape = scrape(&host).await;
            routes
                .iter()
                .all(|path| rollout_decisions(&scrape, path, "rollback", "errors") == 1.0)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_another_host_rolled_back_is_not_promoted_here() {
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let config = format!(
        "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\n\
         healthy_for = \"2s\"\nmin_requests = 5\nlatency_margin_percent = 300\n",
        component("ep_one").display()
    );
    let first = Host::start(&config, &args);
    let second = first.start_beside(&args);
    // A healthy-looking candidate, canaried on both hosts.
    let candidate = variant(&component("ep_one"), &nonce("elsewhere"));
    for host in [&first, &second] {
        let url = "/routes/ep_one/component?canary=50";
        let (status, answer) = admin(host, "PUT", url, candidate.clone(), None).await;
        assert_eq!(status, 200, "{answer}");
    }
    // The first host's operator rolls it back: held back for both.
    let (status, answer) = admin(&first, "POST", "/routes/ep_one/rollback", vec![], None).await;
    assert_eq!(status, 200, "{answer}");
    traffic_until_decided(&second, "/ep_one").await;
    let scrape = scrape(&second).await;
    assert_eq!(
        rollout_decisions(&scrape, "/ep_one", "promote", "healthy"),
        0.0,
        "{}",
        second.log()
    );
    assert_eq!(
        rollout_decisions(&scrape, "/ep_one", "rollback", "superseded"),
        1.0
    );
    all_answer(&second, "/ep_one", "1", "the stable version serves").await;
    assert!(second.log().contains("not promoted"), "{}", second.log());
}
