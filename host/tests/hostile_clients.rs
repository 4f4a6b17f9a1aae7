//! Clients that stall, stop reading, or leave (issue 21): each is cut
//! within its bound and its place freed, the operator's endpoints answer
//! meanwhile, and what the client did is counted once, as the client's:
//! never as a component's failure, never in a canary's verdict.

use std::time::Duration;

use hyper::StatusCode;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Closes `stream` with a reset, as a client that gives up does. (A linger
/// of zero makes the close send RST at once: the blocking on drop that
/// `set_linger` is deprecated for cannot happen.)
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

fn config(http: &str, routes: &[(&str, std::path::PathBuf)]) -> String {
    config_text(&format!("[http]\n{http}"), routes)
}

/// `/metrics` from the probes-and-metrics listener, parsed.
async fn scrape_ops(host: &Host) -> prometheus_parse::Scrape {
    let ops = host
        .ops
        .expect("the host has a probes-and-metrics listener");
    let (status, text) = get(&client(), &format!("http://{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// Requests of `path` counted by the request-duration histogram with `status`.
fn requests(scrape: &prometheus_parse::Scrape, path: &str, status: &str) -> f64 {
    histogram_count(
        scrape,
        "webapp_http_request_duration_seconds",
        &[("path", path), ("status", status)],
    )
}

/// A connection that sends `requests` pipelined and never reads: the host's
/// answers fill the socket until its writes block.
async fn slow_reader(addr: std::net::SocketAddr, requests: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(requests).await.unwrap();
    stream
}

/// A connection that posts 1 byte of a 100-byte body to `/fault/echo` and
/// sends no more.
async fn stalled_post(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /fault/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_cut_and_never_lock_out_probes_or_metrics() {
    let config = config(
        "max_connections = 50\nsend_timeout = \"1s\"\n",
        &demo_routes(),
    );
    let host = Host::start(&config, &["--ops-listen", "127.0.0.1:0"]);
    let ops = host.ops.expect("the ops listener is on");
    // Each asks for /metrics (tens of KiB) 300 times: megabytes of answers
    // that a client which never reads leaves stuck in the host's writes.
    let pipelined = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    let mut readers = Vec::new();
    for _ in 0..50 {
        readers.push(slow_reader(host.addr, &pipelined).await);
    }

    // Meanwhile the probes and Prometheus are answered on their listener.
    let client = client();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = get(&client, &format!("http://{ops}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path} on the ops listener");
    }
    // And within the write bound the readers are cut: the public listener
    // takes new connections again.
    eventually(
        Duration::from_secs(15),
        WithLog("the slow readers freed their connections", &host),
        || async {
            let scrape = scrape_ops(&host).await;
            value(&scrape, "webapp_http_connections_open", &[]) == 0.0
        },
    )
    .await;
    assert_demo_endpoints_answer(&host).await;
    for mut reader in readers {
        let mut sink = vec![0u8; 1 << 16];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match reader.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow reader's connection stayed open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_cut_free_their_slots_and_are_the_clients() {
    let mut routes = demo_routes();
    routes.push(("/fault/echo", component("faults")));
    // The routes' own timeout is 10 s: the body bound (3 s) frees the
    // places long before it.
    let config = config("max_in_flight = 5\nbody_read_timeout = \"3s\"\n", &routes);
    let host = Host::start(&config, &["--ops-listen", "127.0.0.1:0"]);
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(stalled_post(host.addr).await);
    }
    eventually(
        Duration::from_secs(10),
        "the stalled requests hold every in-flight place",
        || async {
            value(
                &scrape_ops(&host).await,
                "webapp_http_requests_in_flight",
                &[],
            ) == 5.0
        },
    )
    .await;
    let client = client();
    let (status, _) = get(&client, &host.url("/ep_one")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the places were not held"
    );
    eventually(
        Duration::from_secs(8),
        WithLog("a stalled body freed its place", &host),
        || async { get(&client, &host.url("/ep_one")).await == (StatusCode::OK, "1".into()) },
    )
    .await;
    for mut stream in stalled {
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let scrape = scrape_ops(&host).await;
    assert_eq!(requests(&scrape, "/fault/echo", "408"), 5.0);
    assert_eq!(
        value(&scrape, "webapp_wasm_guest_failures_total", &[]),
        0.0,
        "a client's stall was blamed on the component\n{}",
        host.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_unfinished_at_the_deadline_is_the_clients_not_a_timeout() {
    let faults = component("faults");
    // The component waits for the body until its deadline (1 s), well
    // within the body bound (10 s); a canary on the route must not hear of it.
    let config = format!(
        "[[route]]\npath = \"/fault/echo\"\ncomponent = \"{}\"\ntimeout = \"1s\"\n",
        faults.display()
    );
    let host = Host::start(&config, &["--ops-listen", "127.0.0.1:0"]);
    let candidate = variant(&faults, &nonce("trickle"));
    let path = "/routes/fault/echo/component?canary=50";
    let (status, answer) = admin(&host, "PUT", path, candidate, None).await;
    assert_eq!(status, 200, "{answer}");
    let mut trickling = Vec::new();
    for _ in 0..4 {
        trickling.push(stalled_post(host.addr).await);
    }
    for mut stream in trickling {
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let scrape = scrape_ops(&host).await;
    assert_eq!(requests(&scrape, "/fault/echo", "408"), 4.0);
    assert_eq!(
        value(&scrape, "webapp_wasm_guest_failures_total", &[]),
        0.0,
        "{}",
        host.log()
    );
    let (served, _) = served_route(&host, "/fault/echo").await;
    let rollout = &served["rollout"];
    let answered = rollout["stable"]["requests"].as_u64().unwrap()
        + rollout["candidate"]["requests"].as_u64().unwrap();
    assert_eq!(answered, 0, "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_read_a_stream_is_not_the_components_timeout() {
    let faults = component("faults");
    let config = format!(
        "[http]\nsend_timeout = \"3s\"\n\n[[route]]\npath = \"/fault/stream-forever\"\n\
         component = \"{}\"\ntimeout = \"1s\"\n",
        faults.display()
    );
    let host = Host::start(&config, &["--ops-listen", "127.0.0.1:0"]);
    // A client that never reads: the guest waits on it until its deadline
    // (1 s), and the connection is cut at the send timeout (3 s), later.
    let request = b"GET /fault/stream-forever HTTP/1.1\r\nHost: x\r\n\r\n";
    let _stuck = slow_reader(host.addr, request).await;
    // A client that reads all: the guest's endless stream is its own doing.
    let mut reading = TcpStream::connect(host.addr).await.unwrap();
    reading.write_all(request).await.unwrap();
    let mut head = [0u8; 12];
    reading.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Read (and drop) all of it, as fast as it comes, until the cut.
    let mut sink = vec![0u8; 1 << 16];
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while matches!(reading.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    assert!(
        drained.is_ok(),
        "the endless stream was not cut at its deadline"
    );
    eventually(
        Duration::from_secs(10),
        WithLog("both streams ended", &host),
        || async {
            let scrape = scrape_ops(&host).await;
            value(&scrape, "webapp_http_requests_in_flight", &[]) == 0.0
        },
    )
    .await;
    let scrape = scrape_ops(&host).await;
    assert_eq!(
        value(
            &scrape,
            "webapp_wasm_guest_failures_total",
            &[("kind", "timeout")]
        ),
        1.0,
        "only the stream a client read to the deadline is the component's\n{}",
        host.log()
    );
    // The reader saw a 200 cut short (the guest's failure, in its version's
    // series as 504); the client that stopped reading did not take its answer.
    assert_eq!(requests(&scrape, "/fault/stream-forever", "200"), 1.0);
    assert_eq!(requests(&scrape, "/fault/stream-forever", "499"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_are_counted_once_and_never_against_a_canary() {
    let faults = component("faults");
    let routes = [
        ("/x/slow", faults.clone()),
        ("/x/pause-mid-body", faults.clone()),
        ("/x/trap-if-client-left", faults.clone()),
    ];
    let host = Host::start(&config("", &routes), &["--ops-listen", "127.0.0.1:0"]);
    // Every route judges a 50 % canary of the same guest.
    let candidate = variant(&faults, &nonce("leaving"));
    for route in ["x/slow", "x/pause-mid-body", "x/trap-if-client-left"] {
        let path = format!("/routes/{route}/component?canary=50");
        let (status, answer) = admin(&host, "PUT", &path, candidate.clone(), None).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }

    // 40 clients reset while their guest runs (before any answer).
    let mut leaving = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(b"GET /x/slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        leaving.push(stream);
    }
    eventually(
        Duration::from_secs(10),
        "40 requests inside the guest",
        || async {
            value(
                &scrape_ops(&host).await,
                "webapp_http_requests_in_flight",
                &[],
            ) == 40.0
        },
    )
    .await;
    for stream in leaving {
        reset(stream);
    }
    // 20 clients leave mid-body: the guest's next write fails (the shared
    // guest library returns; a careless guest traps).
    for i in 0..20 {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        let request: &[u8] = if i % 2 == 0 {
            b"GET /x/pause-mid-body HTTP/1.1\r\nHost: x\r\n\r\n"
        } else {
            b"GET /x/trap-if-client-left HTTP/1.1\r\nHost: x\r\n\r\n"
        };
        stream.write_all(request).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        while !seen.windows(64).any(|w| w == [b'a'; 64]) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(seen.starts_with(b"HTTP/1.1 200"));
        reset(stream);
    }

    // And 4 stay for their whole answer, on each route.
    let whole = ["/x/slow", "/x/pause-mid-body", "/x/trap-if-client-left"].map(|path| {
        let url = host.url(path);
        async move { get_many(url, 4, 4).await }
    });
    for answers in futures::future::join_all(whole).await {
        assert!(
            answers.iter().all(|(s, _)| *s == StatusCode::OK),
            "{answers:?}"
        );
    }

    eventually(
        Duration::from_secs(10),
        WithLog("every request ended, and was counted", &host),
        || async {
            let scrape = scrape_ops(&host).await;
            value(&scrape, "webapp_http_requests_in_flight", &[]) == 0.0
                && value(&scrape, "webapp_http_request_total", &[]) == 72.0
        },
    )
    .await;
    let scrape = scrape_ops(&host).await;
    // Counted once, as the client's: with the request series agreeing with
    // the component's own.
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "499")]),
        60.0
    );
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "200")]),
        12.0
    );
    for (path, left) in [
        ("/x/slow", 40.0),
        ("/x/pause-mid-body", 10.0),
        ("/x/trap-if-client-left", 10.0),
    ] {
        assert_eq!(requests(&scrape, path, "499"), left, "{path}");
        assert_eq!(requests(&scrape, path, "200"), 4.0, "{path}");
        assert_eq!(
            histogram_count(
                &scrape,
                "webapp_component_guest_duration_seconds",
                &[("path", path)]
            ),
            left + 4.0,
            "{path}: the component's series and the request series disagree"
        );
    }
    assert_eq!(
        value(&scrape, "webapp_wasm_guest_failures_total", &[]),
        0.0,
        "a departing client became a guest failure\n{}",
        host.log()
    );
    assert_eq!(
        value(&scrape, "webapp_http_request_exceptions_total", &[]),
        0.0
    );
    // The canaries heard only of the answers taken whole.
    for route in ["/x/slow", "/x/pause-mid-body", "/x/trap-if-client-left"] {
        let (served, _) = served_route(&host, route).await;
        let rollout = &served["rollout"];
        assert_eq!(rollout["phase"], "gathering", "{route}: {served}");
        let answered = rollout["stable"]["requests"].as_u64().unwrap()
            + rollout["candidate"]["requests"].as_u64().unwrap();
        assert_eq!(answered, 4, "{route}: {served}");
        assert_eq!(rollout["candidate"]["errors"], 0, "{route}: {served}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_admin_uploads_share_a_bounded_budget() {
    let host = Host::demo();
    let admin = host.admin.expect("the admin API is on");
    let rss_before = host.rss_bytes();
    // Six uploads announcing 63 MiB each, all sending 40 MiB at once, then
    // nothing: without a bound the host would hold 240 MiB for them.
    let head = format!(
        "PUT /routes/ep_one/component HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        63 << 20
    );
    let mut uploads = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(admin).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        uploads.push(stream);
    }
    let sent = futures::future::join_all(uploads.iter_mut().map(|stream| async move {
        // A refused upload's connection closes: its write may fail.
        let _ = stream.write_all(&vec![0u8; 40 << 20]).await;
    }));
    tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .expect("the uploads were sent");
    // Two fit the budget (128 MiB) and wait for their bytes; four were
    // refused at once.
    let answers = futures::future::join_all(uploads.iter_mut().map(|stream| async move {
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|_| String::from_utf8_lossy(&answer).into_owned())
    }))
    .await;
    let refused = answers
        .iter()
        .filter(|a| a.as_deref() == Some("HTTP/1.1 503"))
        .count();
    let waiting = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!((refused, waiting), (4, 2), "{answers:?}");
    // The admin API still answers, and holds no more than the budget.
    let (status, _) = testkit::admin(&host, "GET", "/routes", vec![], None).await;
    assert_eq!(status, 200);
    let grown = host.rss_bytes().saturating_sub(rss_before);
    assert!(grown < 160 << 20, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_the_clients_and_do_not_flood_the_log() {
    let mut routes = demo_routes();
    routes.push(("/fault/echo", component("faults")));
    let host = Host::start(&config("", &routes), &["--ops-listen", "127.0.0.1:0"]);
    for _ in 0..20 {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(
                b"POST /fault/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\nzz\r\n",
            )
            .await
            .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let scrape = scrape_ops(&host).await;
    assert_eq!(requests(&scrape, "/fault/echo", "400"), 20.0);
    assert_eq!(value(&scrape, "webapp_wasm_guest_failures_total", &[]), 0.0);
    let log = host.log();
    assert!(
        !log.lines().any(|l| l.contains("WARN")),
        "a client's malformed body logged a warning:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_still_finishing_a_complete_answer_is_not_failed_under() {
    // hyper drops an answer's body once it has every announced byte (at
    // once for HEAD), maybe before its guest is done with it.
    let faults = component("faults");
    let routes = [("/x/careless-finish", faults)];
    let host = Host::start(&config("", &routes), &["--ops-listen", "127.0.0.1:0"]);
    let client = client();
    for method in [hyper::Method::GET, hyper::Method::HEAD] {
        for _ in 0..5 {
            let (status, body) =
                send(&client, method.clone(), &host.url("/x/careless-finish")).await;
            assert_eq!(status, StatusCode::OK, "{method}: {body:.80}");
        }
    }
    eventually(Duration::from_secs(10), "every request counted", || async {
        let scrape = scrape_ops(&host).await;
        value(&scrape, "webapp_http_request_total", &[("status", "200")]) == 10.0
            && value(&scrape, "webapp_component_instances", &[]) == 0.0
    })
    .await;
    let scrape = scrape_ops(&host).await;
    assert_eq!(
        value(&scrape, "webapp_wasm_guest_failures_total", &[]),
        0.0,
        "a guest was failed by a stream closed under it\n{}",
        host.log()
    );
}
