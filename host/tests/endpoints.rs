//! The five demo endpoints through the real host, and what `/metrics` says
//! about them.

use std::collections::BTreeSet;

use hyper::{Method, StatusCode};
use rand::Rng;
use testkit::*;

#[tokio::test]
async fn each_endpoint_answers_its_status_and_body() {
    let host = Host::demo();
    assert_demo_endpoints_answer(&host).await;
    let client = client();
    let (status, _) = get(&client, &host.url("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Matching ignores the query string and nothing else.
    assert_eq!(get(&client, &host.url("/ep_one?x=1")).await.1, "1");
    assert_eq!(
        get(&client, &host.url("/ep_one/")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn flask_prefix_reproduces_the_original_names() {
    let host = Host::start(
        &config_text("", &demo_routes()),
        &["--metrics-prefix", "flask"],
    );
    get(&client(), &host.url("/ep_one")).await;
    let text = metrics_text(&host).await;
    for name in [
        "flask_http_request_duration_seconds_bucket{",
        "flask_http_request_total{",
        "flask_exporter_info{",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(!text.contains("webapp_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_paths_and_methods_leave_the_series_bounded() {
    let host = Host::demo();
    let client = client();
    let before = series_count(&metrics_text(&host).await);
    let mut rng = rand::rng();
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE", "BREW",
    ];
    for i in 0..1000 {
        let method = if i % 3 == 0 {
            Method::from_bytes(format!("X{}", rng.random::<u32>()).as_bytes()).unwrap()
        } else {
            Method::from_bytes(methods[rng.random_range(0..methods.len())].as_bytes()).unwrap()
        };
        let path = format!("/{:x}/{}?q={}", rng.random::<u64>(), i, rng.random::<u32>());
        let (status, _) = send(&client, method, &host.url(&path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let text = metrics_text(&host).await;
    let scrape = scrape(&host).await;
    let request_paths: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("webapp_http_request"))
        .filter_map(|s| s.labels.get("path"))
        .collect();
    assert_eq!(
        request_paths,
        BTreeSet::from(["unmatched"]),
        "request path labels"
    );
    let mut bounded: BTreeSet<&str> = ENDPOINTS.iter().map(|e| e.0).collect();
    bounded.insert("unmatched");
    let all_paths: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter_map(|s| s.labels.get("path"))
        .collect();
    assert!(all_paths.is_subset(&bounded), "path labels {all_paths:?}");
    let methods: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter_map(|s| s.labels.get("method"))
        .collect();
    let allowed = BTreeSet::from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"]);
    assert!(methods.is_subset(&allowed), "method labels {methods:?}");
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "404")]),
        1000.0
    );
    // 7 method values x (14 buckets + Inf + sum + count + total) at most.
    let after = series_count(&text);
    assert!(
        after - before <= 7 * 18,
        "series grew from {before} to {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_seconds_move_by_fractions() {
    let host = Host::demo();
    let cpu = |scrape: &testkit::prometheus_parse::Scrape| {
        value(scrape, "process_cpu_seconds_total", &[])
    };
    let before = cpu(&scrape(&host).await);
    let answers = get_many(host.url("/error"), 500, 20).await;
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::INTERNAL_SERVER_ERROR)
    );
    let after = cpu(&scrape(&host).await);
    let delta = after - before;
    // A short burst costs a fraction of a second; a whole-seconds counter
    // would most often not move at all.
    assert!(delta > 0.0 && delta < 10.0, "cpu moved by {delta}");
    assert!(
        after.fract() != 0.0 || before.fract() != 0.0,
        "{before} -> {after}"
    );
}

fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

#[tokio::test]
async fn health_endpoints_answer_and_are_not_counted() {
    let host = Host::demo();
    let client = client();
    assert_eq!(
        get(&client, &host.url("/healthz")).await,
        (StatusCode::OK, "ok\n".into())
    );
    assert_eq!(
        get(&client, &host.url("/readyz")).await,
        (StatusCode::OK, "ready\n".into())
    );
    let scrape = scrape(&host).await;
    assert_eq!(value(&scrape, "webapp_http_request_total", &[]), 0.0);
    assert!(
        samples(&scrape, "webapp_http_request_duration_seconds", &[])
            .next()
            .is_none()
    );
}
