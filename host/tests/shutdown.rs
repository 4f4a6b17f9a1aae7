//! Stopping: SIGTERM lets requests in flight finish, refuses new ones, exits 0;
//! with a drain delay, `/readyz` says 503 first while requests still work.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_200_requests_in_flight_finish_then_exits_zero() {
    let mut routes = demo_routes();
    routes.push(("/fault/slow", component("faults")));
    let mut host = Host::start(&config_text("", &routes), &[]);
    let in_flight = tokio::spawn(get_many(host.url("/fault/slow"), 200, 200));
    // Every request is inside its guest (each takes 3 s) before the signal.
    let started = Instant::now();
    while value(&scrape(&host).await, "webapp_http_requests_in_flight", &[]) < 200.0 {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "200 requests did not get in flight in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = tokio::task::block_in_place(|| host.terminate(Duration::from_secs(20)));
    assert!(status.success(), "exit status {status}");
    let answers = in_flight.await.unwrap();
    assert_eq!(answers.len(), 200);
    for answer in answers {
        assert_eq!(answer, (StatusCode::OK, "slow".to_string()));
    }
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(host.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_delay_reports_not_ready_while_still_serving() {
    let mut host = Host::start(&config_text("", &demo_routes()), &["--drain-delay", "2s"]);
    let client = client();
    assert_eq!(get(&client, &host.url("/readyz")).await.0, StatusCode::OK);
    let pid = host.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are still accepted: not ready, but serving.
    let fresh = testkit::client();
    assert_eq!(
        get(&fresh, &host.url("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&fresh, &host.url("/ep_one")).await,
        (StatusCode::OK, "1".to_string())
    );
    drop(fresh);
    drop(client);
    let status = tokio::task::block_in_place(|| host.wait_for_exit(Duration::from_secs(10)));
    assert!(status.success(), "exit status {status}");
    assert!(tokio::net::TcpStream::connect(host.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_as_soon_as_the_host_listens_is_a_graceful_stop() {
    // The stop signals are handled from before the host says it listens:
    // a supervisor that stops it at once still gets a clean exit.
    for _ in 0..20 {
        let mut host = Host::demo();
        let status = host.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status}: {}", host.log());
    }
}
