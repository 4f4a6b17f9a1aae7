//! Swapping components while serving: by file (watched) and by the admin
//! API, under load, with zero failed requests; bad versions rejected with
//! the old one serving on; the route table reloaded; compiled code cached.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::Value;
use testkit::*;

/// Uploads `file`'s bytes as the `/swap` route's new component.
async fn upload(host: &Host, file: &Path) -> (u16, Value) {
    let bytes = std::fs::read(file).unwrap();
    admin(host, "PUT", "/routes/swap/component", bytes, None).await
}

async fn digest_of(host: &Host, route: &str) -> String {
    served_route(host, route).await.0["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn sha256(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// A route `/swap` served from a file in its own folder, plus the demo routes.
fn swap_setup() -> (testkit::tempfile::TempDir, PathBuf, String) {
    let dir = testkit::tempfile::tempdir().unwrap();
    let file = dir.path().join("swap.wasm");
    std::fs::copy(component("ep_one"), &file).unwrap();
    let mut routes = demo_routes();
    routes.push(("/swap", file.clone()));
    (dir, file.clone(), config_text("", &routes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_no_request() {
    let (_dir, file, config) = swap_setup();
    let host = Host::start(&config, &[]);
    let versions = [(component("ep_one"), "1"), (component("ep_two"), "2")];
    let digests = [sha256(&versions[0].0), sha256(&versions[1].0)];

    // Background load from the generator, and our own readers checking bodies.
    let generator = start_generator(
        &host,
        &[
            "--paths",
            "/swap=3,/ep_three,/error",
            "--workers",
            "8",
            "--duration",
            "60s",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (host.url("/swap"), stop.clone());
        readers.push(tokio::spawn(async move {
            let client = client();
            let mut bodies = std::collections::BTreeMap::<String, u32>::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = get(&client, &url).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                *bodies.entry(body).or_default() += 1;
            }
            bodies
        }));
    }

    // 20 swaps, alternating the two ways: renaming a file into place (the
    // watcher) and uploading bytes (the admin API).
    for i in 1..=20 {
        let (source, _) = &versions[i % 2];
        let expected = &digests[i % 2];
        if i % 4 < 2 {
            rename_into_place(&std::fs::read(source).unwrap(), &file);
        } else {
            let (status, answer) = upload(&host, source).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["digest"], expected.as_str());
        }
        let started = Instant::now();
        while &digest_of(&host, "/swap").await != expected {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "swap {i} did not take effect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let bodies = reader.await.unwrap();
        assert!(bodies.keys().all(|b| b == "1" || b == "2"), "{bodies:?}");
        assert!(bodies.len() == 2, "both versions answered: {bodies:?}");
    }
    // After the last swap (version 1, i = 20), every answer is version 1.
    for (status, body) in get_many(host.url("/swap"), 50, 10).await {
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    }
    // Other routes never changed their answers.
    assert_demo_endpoints_answer(&host).await;

    Command::new("kill")
        .args(["-TERM", &generator.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::block_in_place(|| generator.wait_with_output()).unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["total"]["errors"],
        serde_json::json!({"timeout": 0, "refused": 0, "other": 0})
    );
    let swap_row = summary["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/swap")
        .unwrap();
    assert_eq!(
        swap_row["statuses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["200"]
    );

    let scrape = scrape(&host).await;
    assert_eq!(
        value(
            &scrape,
            "webapp_component_swaps_total",
            &[("path", "/swap"), ("result", "ok")]
        ),
        20.0
    );
    assert_eq!(
        value(
            &scrape,
            "webapp_component_info",
            &[("path", "/swap"), ("digest", digests[0].as_str())]
        ),
        1.0
    );
    assert_eq!(
        samples(&scrape, "webapp_component_info", &[("path", "/swap")]).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_are_rejected_and_the_old_one_serves_on() {
    let (dir, file, config) = swap_setup();
    let host = Host::start(&config, &[]);
    let serving = digest_of(&host, "/swap").await;
    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(
        &corrupt,
        b"\0asm\x0d\0\x01\0 this is not a component at all",
    )
    .unwrap();
    let bad = [corrupt, component("not_a_proxy"), component("unlinkable")];
    let reasons = ["", "incoming-handler", "webapp:unlinkable/secret"];

    // Through the admin API: a clear error, nothing changes.
    for (path, reason) in bad.iter().zip(reasons) {
        let (status, answer) = upload(&host, path).await;
        assert_eq!(status, 422, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(reason), "{path:?}: {error}");
        assert_eq!(digest_of(&host, "/swap").await, serving);
        assert_eq!(
            get(&client(), &host.url("/swap")).await,
            (StatusCode::OK, "1".to_string())
        );
    }
    // Through the watched file: rejected too. Each rejection is counted:
    // wait for the count (not for a while) before checking nothing changed.
    for (i, path) in bad.iter().enumerate() {
        rename_into_place(&std::fs::read(path).unwrap(), &file);
        let rejected = 3.0 + i as f64 + 1.0;
        let what = format!("{path:?}: {rejected} rejections counted");
        eventually(Duration::from_secs(10), WithLog(&what, &host), || async {
            let scrape = scrape(&host).await;
            let labels = [("path", "/swap"), ("result", "rejected")];
            value(&scrape, "webapp_component_swaps_total", &labels) == rejected
        })
        .await;
        assert_eq!(digest_of(&host, "/swap").await, serving);
        assert_eq!(
            get(&client(), &host.url("/swap")).await,
            (StatusCode::OK, "1".to_string())
        );
    }
    let scrape = scrape(&host).await;
    assert_eq!(
        value(
            &scrape,
            "webapp_component_swaps_total",
            &[("path", "/swap"), ("result", "rejected")]
        ),
        6.0
    );
    assert_eq!(
        value(&scrape, "webapp_component_swaps_total", &[("result", "ok")]),
        0.0
    );
    assert!(
        host.log().contains("rejected"),
        "no log line for the rejections"
    );
    // Unknown routes and malformed requests get clear errors.
    assert_eq!(
        admin(&host, "PUT", "/routes/nope/component", vec![1], None)
            .await
            .0,
        404
    );
    assert_eq!(
        admin(
            &host,
            "POST",
            "/routes/swap/component",
            b"{}".to_vec(),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(admin(&host, "GET", "/nowhere", vec![], None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_named_through_the_admin_api_is_swapped_in() {
    let (_dir, _file, config) = swap_setup();
    let host = Host::start(&config, &[]);
    let body = serde_json::json!({ "file": component("ep_three") })
        .to_string()
        .into_bytes();
    let (status, answer) = admin(&host, "POST", "/routes/swap/component", body, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        get(&client(), &host.url("/swap")).await,
        (StatusCode::OK, "3".to_string())
    );
    assert_demo_endpoints_answer(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_table_reloads_with_routes_added_and_removed() {
    let host = Host::start(&config_text("", &demo_routes()), &["--no-watch-config"]);
    let mut routes = demo_routes();
    routes.retain(|(path, _)| *path != "/error");
    routes.push(("/extra", component("ep_three")));
    std::fs::write(host.config_path(), config_text("", &routes)).unwrap();
    let (status, report) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["added"], serde_json::json!(["/extra"]));
    assert_eq!(report["removed"], serde_json::json!(["/error"]));
    assert_eq!(report["unchanged"].as_array().unwrap().len(), 4);
    let client = client();
    assert_eq!(
        get(&client, &host.url("/extra")).await,
        (StatusCode::OK, "3".to_string())
    );
    assert_eq!(
        get(&client, &host.url("/error")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&client, &host.url("/ep_one")).await,
        (StatusCode::OK, "1".to_string())
    );

    // A broken config changes nothing and says why.
    std::fs::write(
        host.config_path(),
        "[[route]]\npath = \"/x\"\ncomponnt = \"x\"\n",
    )
    .unwrap();
    let (status, answer) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 422);
    assert!(
        answer["error"].as_str().unwrap().contains("componnt"),
        "{answer}"
    );
    assert_eq!(
        get(&client, &host.url("/extra")).await,
        (StatusCode::OK, "3".to_string())
    );
    let scrape = scrape(&host).await;
    assert_eq!(
        samples(&scrape, "webapp_component_info", &[("path", "/error")]).count(),
        0
    );
    assert_eq!(
        samples(&scrape, "webapp_component_info", &[("path", "/extra")]).count(),
        1
    );
}

#[tokio::test]
async fn the_admin_api_requires_its_token() {
    let host = Host::start(
        &config_text("", &demo_routes()),
        &["--admin-token", "s3cret"],
    );
    assert_eq!(admin(&host, "GET", "/routes", vec![], None).await.0, 401);
    assert_eq!(
        admin(&host, "GET", "/routes", vec![], Some("wrong"))
            .await
            .0,
        401
    );
    let (status, served) = admin(&host, "GET", "/routes", vec![], Some("s3cret")).await;
    assert_eq!(status, 200);
    let routes = &served["routes"];
    assert_eq!(routes.as_array().unwrap().len(), 5);
    assert_eq!(routes[0]["digest"], sha256(&component("ep_one")));
}

#[test]
fn an_admin_api_beyond_loopback_without_a_token_does_not_start() {
    let dir = testkit::tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    std::fs::write(&config, config_text("", &demo_routes())).unwrap();
    let out = run_host(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "0.0.0.0:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

#[tokio::test]
async fn compiled_components_are_reused_across_restarts() {
    let cache = testkit::tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let origins = |served: &Value| -> Vec<String> {
        served["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["origin"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = Host::start(&config_text("", &demo_routes()), &args);
    let (_, routes) = admin(&first, "GET", "/routes", vec![], None).await;
    assert!(origins(&routes).iter().all(|o| o == "compiled"), "{routes}");
    drop(first);
    let second = Host::start(&config_text("", &demo_routes()), &args);
    let (_, routes) = admin(&second, "GET", "/routes", vec![], None).await;
    assert!(
        origins(&routes).iter().all(|o| o == "disk-cache"),
        "{routes}"
    );
    assert_demo_endpoints_answer(&second).await;
    // Swapping back to a version seen before skips compiling too.
    let two = std::fs::read(component("ep_two")).unwrap();
    let (_, swapped) = admin(&second, "PUT", "/routes/ep_one/component", two, None).await;
    assert_eq!(swapped["from_cache"], true, "{swapped}");
}
