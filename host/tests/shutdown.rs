//! Stopping: SIGTERM lets requests in flight finish, refuses new ones, exits 0.

use std::time::Duration;

use hyper::StatusCode;
use testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_exits_zero() {
    let mut host = Host::demo();
    let url = host.url("/ep_four");
    let in_flight = tokio::spawn(get_many(url.clone(), 40, 40));
    // Let every request reach its guest (ep_four sleeps up to 800 ms).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::block_in_place(|| host.terminate(Duration::from_secs(20)));
    assert!(status.success(), "exit status {status}");
    let answers = in_flight.await.unwrap();
    assert_eq!(answers.len(), 40);
    for answer in answers {
        assert_eq!(answer, (StatusCode::OK, "4".to_string()));
    }
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(host.addr).await.is_err());
}
