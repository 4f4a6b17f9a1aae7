//! What each component costs, per route: CPU time (computing counts,
//! sleeping does not), peak instance memory, instances alive, time inside.

use std::time::Duration;

use hyper::StatusCode;
use testkit::*;

fn host_with(faults: &[&'static str]) -> Host {
    let mut routes = demo_routes();
    for fault in faults {
        routes.push((fault, component("faults")));
    }
    Host::start(&config_text("", &routes), &[])
}

fn histogram_count(scrape: &prometheus_parse::Scrape, metric: &str, path: &str) -> f64 {
    bucket(&buckets(scrape, metric, &[("path", path)]), f64::INFINITY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computing_costs_cpu_time_and_sleeping_does_not() {
    let host = host_with(&["/fault/busy", "/fault/asleep"]);
    // Five of each, one at a time: 5 x 200 ms of work, 5 x 200 ms of sleep.
    let client = client();
    for _ in 0..5 {
        assert_eq!(
            get(&client, &host.url("/fault/busy")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(&client, &host.url("/fault/asleep")).await.0,
            StatusCode::OK
        );
    }
    let scrape = scrape(&host).await;
    let cpu = |path| {
        value(
            &scrape,
            "webapp_component_cpu_seconds_total",
            &[("path", path)],
        )
    };
    let (busy, asleep) = (cpu("/fault/busy"), cpu("/fault/asleep"));
    // The work done is 1 s; generous bounds for a shared 2-core machine.
    assert!((0.7..1.6).contains(&busy), "busy guest: {busy} s of CPU");
    assert!(asleep < 0.05, "sleeping guest: {asleep} s of CPU");
    // Both spent about 1 s inside their guests.
    for path in ["/fault/busy", "/fault/asleep"] {
        let inside = buckets(
            &scrape,
            "webapp_component_guest_duration_seconds",
            &[("path", path)],
        );
        assert_eq!(bucket(&inside, 0.1), 0.0, "{path}: {inside:?}");
        assert_eq!(bucket(&inside, 0.5), 5.0, "{path}: {inside:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_shows_what_a_request_allocates() {
    let host = host_with(&["/fault/grow"]);
    let client = client();
    for _ in 0..4 {
        assert_eq!(
            get(&client, &host.url("/fault/grow")).await,
            (StatusCode::OK, (16 << 20).to_string())
        );
    }
    for _ in 0..4 {
        assert_eq!(get(&client, &host.url("/ep_two")).await.0, StatusCode::OK);
    }
    let scrape = scrape(&host).await;
    let grow = buckets(
        &scrape,
        "webapp_component_memory_peak_bytes",
        &[("path", "/fault/grow")],
    );
    assert_eq!(bucket(&grow, 16777216.0), 0.0, "all above 16 MiB: {grow:?}");
    assert_eq!(bucket(&grow, f64::INFINITY), 4.0, "{grow:?}");
    let plain = buckets(
        &scrape,
        "webapp_component_memory_peak_bytes",
        &[("path", "/ep_two")],
    );
    assert_eq!(
        bucket(&plain, 4194304.0),
        4.0,
        "all within 4 MiB: {plain:?}"
    );
    assert!(
        bucket(&plain, 65536.0) == 0.0,
        "a Rust guest has some memory: {plain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_alive_are_counted_while_they_run() {
    let host = host_with(&["/fault/slow"]);
    let alive = |scrape: &prometheus_parse::Scrape| {
        value(
            scrape,
            "webapp_component_instances",
            &[("path", "/fault/slow")],
        )
    };
    let slow = tokio::spawn(get_many(host.url("/fault/slow"), 3, 3));
    eventually(Duration::from_secs(10), "3 instances alive", || async {
        alive(&scrape(&host).await) == 3.0
    })
    .await;
    for (status, _) in slow.await.unwrap() {
        assert_eq!(status, StatusCode::OK);
    }
    eventually(Duration::from_secs(10), "no instance alive", || async {
        alive(&scrape(&host).await) == 0.0
    })
    .await;
    let scrape = scrape(&host).await;
    assert_eq!(
        histogram_count(
            &scrape,
            "webapp_component_guest_duration_seconds",
            "/fault/slow"
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_cpu_adds_up_to_no_more_than_the_process_cpu() {
    let host = Host::demo();
    let before = scrape(&host).await;
    let generator = start_generator(&host, &["--workers", "8", "--duration", "6s"]);
    let out = tokio::task::block_in_place(|| generator.wait_with_output()).unwrap();
    assert!(out.status.success());
    let after = scrape(&host).await;
    let process = value(&after, "process_cpu_seconds_total", &[])
        - value(&before, "process_cpu_seconds_total", &[]);
    let guests: f64 = ENDPOINTS
        .iter()
        .map(|(path, ..)| {
            value(
                &after,
                "webapp_component_cpu_seconds_total",
                &[("path", path)],
            ) - value(
                &before,
                "webapp_component_cpu_seconds_total",
                &[("path", path)],
            )
        })
        .sum();
    let requests = value(&after, "webapp_http_request_total", &[]);
    assert!(requests > 50.0, "{requests} requests");
    assert!(guests > 0.0, "the guests cost something");
    assert!(
        guests <= process,
        "guests {guests} s of CPU, the whole process {process} s"
    );
}
