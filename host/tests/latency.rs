//! Latency as the app's own histogram sees it, after a few hundred requests
//! per endpoint. Its own test binary, so no other test loads the machine
//! while it measures.

use hyper::StatusCode;
use testkit::*;

/// Per endpoint: (path, status label, smallest bucket bound above its
/// longest sleep, expected mean latency in seconds).
const LATENCY: &[(&str, &str, f64, f64)] = &[
    ("/ep_one", "200", 0.25, 0.1),
    ("/ep_two", "200", 0.5, 0.2),
    ("/ep_three", "200", 0.75, 0.3),
    ("/ep_four", "200", 1.0, 0.4),
    ("/error", "500", 0.25, 0.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_request_with_its_latency() {
    const PER_ENDPOINT: usize = 200;
    let host = Host::demo();
    let mut runs = Vec::new();
    for (path, _, status, body) in ENDPOINTS {
        let url = host.url(path);
        runs.push(tokio::spawn(async move {
            let answers = get_many(url, PER_ENDPOINT, 20).await;
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
        // Every request within the bucket above the next; 97 % within the
        // bucket above the longest sleep. (100 requests start at once on 2
        // cores: on a slow machine the first wave can queue ~50 ms for CPU.)
        let next = b
            .iter()
            .map(|(bound, _)| *bound)
            .find(|bound| bound > all_below)
            .unwrap();
        assert_eq!(bucket(&b, next), n, "{path}: all below {next}s: {b:?}");
        assert!(
            bucket(&b, *all_below) >= 0.97 * n,
            "{path}: 97 % below {all_below}s: {b:?}"
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

/// Lints the exposition with Prometheus's own `promtool`.
fn promtool_check(text: &str) {
    use std::io::Write;
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
