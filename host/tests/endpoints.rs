//! The five demo endpoints through the real host, and what `/metrics` says
//! about them.

mod common;

use std::collections::BTreeSet;

use common::*;
use hyper::{Method, StatusCode};
use rand::Rng;

#[tokio::test]
async fn each_endpoint_answers_its_status_and_body() {
    let host = Host::demo();
    let client = client();
    for (path, _, status, body) in ENDPOINTS {
        let answer = get(&client, &host.url(path)).await;
        assert_eq!(
            answer,
            (StatusCode::from_u16(*status).unwrap(), body.to_string()),
            "{path}"
        );
    }
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
async fn components_built_by_cargo_component_serve_the_same() {
    let Some(dir) = components_via_cargo_component() else {
        return;
    };
    let routes: Vec<_> = ENDPOINTS
        .iter()
        .map(|(path, stem, _, _)| (*path, dir.join(format!("{stem}.wasm"))))
        .collect();
    let host = Host::start(&config_text("", &routes), &[]);
    let client = client();
    for (path, _, status, body) in ENDPOINTS {
        let answer = get(&client, &host.url(path)).await;
        assert_eq!(
            answer,
            (StatusCode::from_u16(*status).unwrap(), body.to_string()),
            "{path}"
        );
    }
}

/// Per endpoint: (path, status label, smallest bucket bound that must hold
/// every request, expected mean latency in seconds).
const LATENCY: &[(&str, &str, f64, f64)] = &[
    ("/ep_one", "200", 0.25, 0.1),
    ("/ep_two", "200", 0.5, 0.2),
    ("/ep_three", "200", 0.75, 0.3),
    ("/ep_four", "200", 1.0, 0.4),
    ("/error", "500", 0.1, 0.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_request_with_its_latency() {
    const PER_ENDPOINT: usize = 200;
    let host = Host::demo();
    let mut runs = Vec::new();
    for (path, _, status, body) in ENDPOINTS {
        let url = host.url(path);
        runs.push(tokio::spawn(async move {
            let answers = get_many(url, PER_ENDPOINT, 50).await;
            let expected = (StatusCode::from_u16(*status).unwrap(), body.to_string());
            assert!(
                answers.iter().all(|a| *a == expected),
                "{path}: {answers:?}"
            );
        }));
    }
    for run in runs {
        run.await.unwrap();
    }

    let text = metrics_text(&host).await;
    promtool_check(&text);
    let scrape = scrape(&host).await;
    let n = PER_ENDPOINT as f64;
    for (path, status, all_below, mean) in LATENCY {
        let labels = [("method", "GET"), ("path", *path), ("status", *status)];
        let b = buckets(&scrape, "webapp_http_request_duration_seconds", &labels);
        let count = value(
            &scrape,
            "webapp_http_request_duration_seconds_count",
            &labels,
        );
        let sum = value(&scrape, "webapp_http_request_duration_seconds_sum", &labels);
        assert_eq!(count, n, "{path}: histogram count");
        assert_eq!(bucket(&b, f64::INFINITY), n, "{path}: +Inf bucket");
        assert_eq!(
            bucket(&b, *all_below),
            n,
            "{path}: all below {all_below}s: {b:?}"
        );
        // Uniform sleeps: the mean is half the maximum; generous for a loaded CI box.
        let observed = sum / count;
        assert!(
            (observed - mean).abs() < 0.05,
            "{path}: mean {observed}, expected {mean}"
        );
    }
    // ep_four spreads over the buckets up to 1 s: some under 250 ms
    // (31 % expected), some over 500 ms (37.5 % expected).
    let four = buckets(
        &scrape,
        "webapp_http_request_duration_seconds",
        &[("path", "/ep_four")],
    );
    let under_quarter = bucket(&four, 0.25) / n;
    let over_half = 1.0 - bucket(&four, 0.5) / n;
    assert!(
        (0.15..0.5).contains(&under_quarter),
        "share under 250 ms {under_quarter}"
    );
    assert!(
        (0.2..0.55).contains(&over_half),
        "share over 500 ms {over_half}"
    );
    // ep_one never goes past 250 ms but does cover the range below it.
    let one = buckets(
        &scrape,
        "webapp_http_request_duration_seconds",
        &[("path", "/ep_one")],
    );
    assert!(
        bucket(&one, 0.1) > 0.3 * n && bucket(&one, 0.1) < 0.7 * n,
        "{one:?}"
    );

    let total = |status| {
        value(
            &scrape,
            "webapp_http_request_total",
            &[("method", "GET"), ("status", status)],
        )
    };
    assert_eq!(total("200"), 4.0 * n);
    assert_eq!(total("500"), n);
    // /error answers 500 on purpose: not an exception.
    assert_eq!(
        value(&scrape, "webapp_http_request_exceptions_total", &[]),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            "webapp_wasm_instantiation_duration_seconds_count",
            &[("path", "/ep_four")]
        ),
        n
    );
    // /metrics itself is never counted.
    assert!(!text.contains("path=\"/metrics\""));
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
    let paths: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter_map(|s| s.labels.get("path"))
        .collect();
    let methods: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter_map(|s| s.labels.get("method"))
        .collect();
    assert_eq!(paths, BTreeSet::from(["unmatched"]), "path labels");
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
    let cpu = |scrape: &prometheus_parse::Scrape| value(scrape, "process_cpu_seconds_total", &[]);
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

/// Lints the exposition with Prometheus's own `promtool` where it is
/// installed; CI installs it and sets REQUIRE_PROMTOOL so it cannot be skipped.
fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("REQUIRE_PROMTOOL").is_none(),
                "promtool is required: {e}"
            );
            eprintln!("promtool not installed: skipping its lint");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
