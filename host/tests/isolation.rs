//! One endpoint's bug stays in that endpoint: every fault component, hit
//! concurrently, gets its documented answer within its deadline while the
//! five real endpoints, hit at the same time, keep their answers and their
//! latency, and the host's memory comes back afterwards.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;

/// (route, config extra for the route, expected status, failure kind, deadline to answer)
const FAULTS: &[(&str, &str, u16, &str, f64)] = &[
    ("/fault/trap", "", 500, "trap", 1.0),
    ("/fault/panic", "", 500, "trap", 1.0),
    ("/fault/no-response", "", 500, "no_response", 1.0),
    ("/fault/alloc", "max_memory_mib = 16\n", 500, "memory", 2.0),
    ("/fault/spin", "timeout = \"1s\"\n", 504, "timeout", 2.5),
    (
        "/fuel/spin",
        "fuel = 50000000\ntimeout = \"5s\"\n",
        500,
        "fuel",
        2.5,
    ),
];

fn config() -> String {
    let mut text = config_text("", &demo_routes());
    for (path, extra, ..) in FAULTS {
        text.push_str(&format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n{extra}",
            component("faults").display()
        ));
    }
    text.push_str(&format!(
        "[[route]]\npath = \"/fault/stream-forever\"\ncomponent = \"{}\"\ntimeout = \"1s\"\n",
        component("faults").display()
    ));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_get_their_answers_while_real_endpoints_keep_theirs() {
    let host = Host::start(&config(), &[]);
    // Warm up every route once, then take the memory baseline.
    for (path, ..) in FAULTS {
        get_many(host.url(path), 1, 1).await;
    }
    assert_demo_endpoints_answer(&host).await;
    let baseline = host.rss_bytes();

    let mut faults = Vec::new();
    for (path, _, status, _, deadline) in FAULTS {
        let url = host.url(path);
        faults.push(tokio::spawn(async move {
            let started = Instant::now();
            let answers = get_many(url, 8, 4).await;
            let elapsed = started.elapsed().as_secs_f64();
            for (got, _) in &answers {
                assert_eq!(got.as_u16(), *status, "{path}");
            }
            // Two rounds of 4 at most: each answered within its deadline.
            assert!(
                elapsed < 2.0 * deadline,
                "{path}: 8 answers took {elapsed:.2}s"
            );
            (*path, elapsed / 2.0)
        }));
    }
    let streams = tokio::spawn(stream_forever_is_cut_off(host.url("/fault/stream-forever")));
    let mut real = Vec::new();
    for (path, _, status, body) in ENDPOINTS {
        let url = host.url(path);
        real.push(tokio::spawn(async move {
            for answer in get_many(url, 60, 12).await {
                assert_eq!(
                    answer,
                    (StatusCode::from_u16(*status).unwrap(), body.to_string()),
                    "{path}"
                );
            }
        }));
    }
    for task in real {
        task.await.unwrap();
    }
    let mut matrix = Vec::new();
    for task in faults {
        matrix.push(task.await.unwrap());
    }
    streams.await.unwrap();

    let scrape = scrape(&host).await;
    for (path, _, status, kind, _) in FAULTS {
        let failures = value(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("path", path), ("kind", kind)],
        );
        assert_eq!(failures, 9.0, "{path}: failures of kind {kind}");
        let answered = value(
            &scrape,
            "webapp_http_request_duration_seconds_count",
            &[("path", path), ("status", &status.to_string())],
        );
        assert_eq!(answered, 9.0, "{path}");
    }
    // The real endpoints kept their latency while the faults ran: at most
    // 3 of 61 past the bucket above their longest sleep, none past the next.
    // (On a 2-core machine shared with the client and twenty misbehaving
    // guests, one request in a few runs loses ~50 ms to the scheduler, on
    // the previous main as on this one; the starvation this test once
    // caught put 4-9 of 61 past that bound.)
    for (path, most_below, all_below) in [
        ("/ep_one", 0.25, 0.5),
        ("/ep_two", 0.5, 0.75),
        ("/ep_three", 0.75, 1.0),
        ("/ep_four", 1.0, 2.5),
        ("/error", 0.25, 0.5),
    ] {
        let b = buckets(
            &scrape,
            "webapp_http_request_duration_seconds",
            &[("path", path)],
        );
        assert!(bucket(&b, most_below) >= 58.0, "{path} latency: {b:?}");
        assert_eq!(bucket(&b, all_below), 61.0, "{path} latency: {b:?}");
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = host.rss_bytes();
    eprintln!("fault matrix (route, seconds to answer one):");
    for (path, seconds) in &matrix {
        eprintln!("  {path:<22} {seconds:.3}");
    }
    eprintln!(
        "resident memory: {} MiB before, {} MiB after",
        baseline >> 20,
        after >> 20
    );
    assert!(
        after < baseline + (48 << 20),
        "resident memory grew from {} MiB to {} MiB",
        baseline >> 20,
        after >> 20
    );
}

/// A guest that streams forever is stopped at its deadline, and the client
/// sees the body fail (not a clean, truncated end).
async fn stream_forever_is_cut_off(url: String) {
    use http_body_util::BodyExt;
    let client = client();
    for _ in 0..2 {
        let started = Instant::now();
        let request = hyper::Request::get(&url)
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await;
        assert!(body.is_err(), "the cut-off body looked complete");
        let elapsed = started.elapsed().as_secs_f64();
        assert!(
            elapsed < 3.0,
            "stream-forever took {elapsed:.2}s to be cut off"
        );
    }
}
