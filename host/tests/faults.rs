//! Guests and configurations that go wrong: the host answers, counts,
//! explains, and keeps serving everything else.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;

fn fault_routes(faults: &[&'static str]) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut routes = demo_routes();
    for fault in faults {
        routes.push((fault, component("faults")));
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_component_gets_500_while_the_others_answer() {
    let host = Host::start(
        &config_text(
            "",
            &fault_routes(&[
                "/fault/trap",
                "/fault/panic",
                "/fault/no-response",
                "/fault/error-code",
            ]),
        ),
        &[],
    );
    let traps = tokio::spawn(get_many(host.url("/fault/trap"), 30, 10));
    let panics = tokio::spawn(get_many(host.url("/fault/panic"), 10, 5));
    let silent = tokio::spawn(get_many(host.url("/fault/no-response"), 10, 5));
    let refusals = tokio::spawn(get_many(host.url("/fault/error-code"), 10, 5));
    let good = tokio::spawn(get_many(host.url("/ep_one"), 30, 10));
    for (status, body) in traps
        .await
        .unwrap()
        .iter()
        .chain(&panics.await.unwrap())
        .chain(&silent.await.unwrap())
        .chain(&refusals.await.unwrap())
    {
        assert_eq!(
            *status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{body}\n{}",
            host.log()
        );
    }
    for answer in good.await.unwrap() {
        assert_eq!(answer, (StatusCode::OK, "1".to_string()));
    }
    // The host is still whole: every route answers after the faults.
    assert_demo_endpoints_answer(&host).await;

    let scrape = scrape(&host).await;
    let failures = |path, kind| {
        value(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("path", path), ("kind", kind)],
        )
    };
    assert_eq!(failures("/fault/trap", "trap"), 30.0);
    assert_eq!(failures("/fault/panic", "trap"), 10.0);
    assert_eq!(failures("/fault/no-response", "no_response"), 10.0);
    assert_eq!(failures("/fault/error-code", "error_code"), 10.0);
    assert_eq!(
        value(
            &scrape,
            "webapp_http_request_exceptions_total",
            &[("status", "500")]
        ),
        60.0
    );
    let trap_latency = buckets(
        &scrape,
        "webapp_http_request_duration_seconds",
        &[("path", "/fault/trap"), ("status", "500")],
    );
    assert_eq!(bucket(&trap_latency, f64::INFINITY), 30.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_component_is_stopped_at_the_deadline_with_504() {
    let host = Host::start(
        &config_text("request_timeout = \"1s\"", &fault_routes(&["/fault/spin"])),
        &[],
    );
    // Two spinning guests (one per core) must not starve the real endpoints.
    let spins = tokio::spawn(get_many(host.url("/fault/spin"), 2, 2));
    eventually(Duration::from_secs(10), "both spinners running", || async {
        let scrape = scrape(&host).await;
        value(
            &scrape,
            "webapp_component_instances",
            &[("path", "/fault/spin")],
        ) == 2.0
    })
    .await;
    let good = get_many(host.url("/ep_one"), 20, 10).await;
    assert!(good.iter().all(|a| a.0 == StatusCode::OK));
    for (status, _) in spins.await.unwrap() {
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    }
    let scrape = scrape(&host).await;
    assert_eq!(
        value(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("path", "/fault/spin"), ("kind", "timeout")]
        ),
        2.0
    );
    // ep_one kept its own latency while the spinners ran.
    let one = buckets(
        &scrape,
        "webapp_http_request_duration_seconds",
        &[("path", "/ep_one")],
    );
    assert_eq!(bucket(&one, 0.5), 20.0, "{one:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_fails_twice_is_counted_once_with_its_first_failure() {
    let host = Host::start(
        &config_text(
            "request_timeout = \"500ms\"",
            &fault_routes(&["/fault/error-code-then-trap", "/fault/error-code-then-spin"]),
        ),
        &[],
    );
    for path in ["/fault/error-code-then-trap", "/fault/error-code-then-spin"] {
        for (status, body) in get_many(host.url(path), 5, 5).await {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        }
    }
    // The second failures happen after the answers (the spinning guests at
    // their deadline): wait until the host has logged all ten.
    eventually(
        Duration::from_secs(20),
        WithLog("the second failures all logged", &host),
        || async {
            host.log()
                .matches("failed again after failing (error_code)")
                .count()
                >= 10
        },
    )
    .await;
    let scrape = scrape(&host).await;
    for path in ["/fault/error-code-then-trap", "/fault/error-code-then-spin"] {
        let counted: f64 = samples(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("path", path)],
        )
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => panic!("not a counter"),
        })
        .sum();
        assert_eq!(counted, 5.0, "{path}: every kind together");
        let first = value(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("path", path), ("kind", "error_code")],
        );
        assert_eq!(first, 5.0, "{path}: counted as the first failure");
    }
    assert_eq!(
        value(
            &scrape,
            "webapp_http_request_exceptions_total",
            &[("status", "500")]
        ),
        10.0
    );
}

fn start_failure(config: &str) -> (String, String) {
    let dir = testkit::tempfile::tempdir().unwrap();
    let path = dir.path().join("webapp.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = run_host(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success(), "the host started with {config}");
    assert!(started.elapsed() < Duration::from_secs(60));
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn a_config_typo_stops_the_host_naming_file_line_and_key() {
    let mut config = config_text("", &demo_routes());
    config.insert_str(0, "listen = \"127.0.0.1:0\"\nmetrics_prefx = \"x\"\n");
    let (stderr, path) = start_failure(&config);
    assert!(stderr.contains(&path), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("metrics_prefx"), "{stderr}");
}

#[test]
fn a_missing_component_file_stops_the_host_naming_it_and_its_line() {
    let mut routes = demo_routes();
    routes.push(("/ghost", std::path::PathBuf::from("/nowhere/ghost.wasm")));
    let config = config_text("", &routes);
    let line = config
        .lines()
        .position(|l| l.contains("\"/ghost\""))
        .unwrap()
        + 1;
    let (stderr, path) = start_failure(&config);
    assert!(stderr.contains("/nowhere/ghost.wasm"), "{stderr}");
    assert!(stderr.contains(&format!("{path}:{line}")), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

/// Starts the demo plus a route to a file holding `bytes`; returns stderr
/// and the file's path.
fn start_with_bad_component(route: &str, bytes: &[u8]) -> (String, String) {
    let dir = testkit::tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.wasm");
    std::fs::write(&file, bytes).unwrap();
    let mut routes = demo_routes();
    routes.push((route, file.clone()));
    let (stderr, _) = start_failure(&config_text("", &routes));
    (stderr, file.display().to_string())
}

#[test]
fn a_file_that_is_not_a_component_stops_the_host() {
    let (stderr, file) = start_with_bad_component("/bogus", b"this is not wasm");
    assert!(stderr.contains("route `/bogus`"), "{stderr}");
    assert!(stderr.contains(&file), "{stderr}");
}

#[test]
fn a_core_module_instead_of_a_proxy_component_stops_the_host() {
    // The smallest valid core module: magic and version 1, not a component.
    let (stderr, file) = start_with_bad_component("/module", b"\0asm\x01\0\0\0");
    assert!(stderr.contains("route `/module`"), "{stderr}");
    assert!(stderr.contains(&file), "{stderr}");
}
