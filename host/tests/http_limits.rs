//! What a client cannot do to the host: hold a connection with a slow or
//! oversized head, send an oversized body, send garbage, or open more
//! connections or requests than the caps. Each gets its documented answer
//! or close, and well-behaved clients keep being served.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(http: &str) -> String {
    let mut routes = demo_routes();
    routes.push(("/fault/echo", component("faults")));
    config_text(&format!("[http]\n{http}"), &routes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let host = Host::start(&config("header_read_timeout = \"1s\"\n"), &[]);
    // A head that never finishes.
    let mut slow = TcpStream::connect(host.addr).await.unwrap();
    slow.write_all(b"GET /ep_one HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A kept-alive connection that goes quiet after one request.
    let mut idle = TcpStream::connect(host.addr).await.unwrap();
    idle.write_all(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    assert_demo_endpoints_answer(&host).await;
    let (_, slow_closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(slow_closed, "a slow head kept its connection");
    let (answer, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(idle_closed, "an idle connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused() {
    let host = Host::start(&config("max_body_bytes = 1024\n"), &[]);
    let mut big_head = TcpStream::connect(host.addr).await.unwrap();
    let padding = "x".repeat(32 * 1024);
    big_head
        .write_all(
            format!("GET /ep_one HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut big_head, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

    // Announced too large: refused before any component runs.
    let mut announced = TcpStream::connect(host.addr).await.unwrap();
    announced
        .write_all(b"POST /fault/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut announced, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Chunked, so only counting while the guest reads can catch it.
    let mut chunked = TcpStream::connect(host.addr).await.unwrap();
    let chunk = "y".repeat(1000);
    let body = format!("3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n");
    chunked
        .write_all(
            format!("POST /fault/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut chunked, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Within the limit, the guest reads it all.
    let mut fine = TcpStream::connect(host.addr).await.unwrap();
    fine.write_all(b"POST /fault/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut fine, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n5"),
        "{answer}"
    );

    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "413")]),
        2.0
    );
    // The client's oversized body is not counted as the guest failing.
    assert_eq!(value(&scrape, "webapp_wasm_guest_failures_total", &[]), 0.0);
    assert_demo_endpoints_answer(&host).await;
}

#[tokio::test]
async fn garbage_gets_400_and_a_close() {
    let host = Host::demo();
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n"[..],
        b"HELLO\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(closed, "{garbage:?} kept the connection open");
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?}: {answer:?}"
        );
    }
    assert_demo_endpoints_answer(&host).await;
}

/// `n` connections to `host`, each held open after one answered request
/// (`/error`: its 500 at once), so each is known accepted.
async fn held_connections(host: &Host, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let read = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..read].starts_with(b"HTTP/1.1 500"),
            "{}",
            WithLog("a held connection's answer", host)
        );
        held.push(stream);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_get_503_and_a_close() {
    let host = Host::start(&config("max_connections = 8\n"), &[]);
    let mut held = held_connections(&host, 8).await;
    let mut extra = TcpStream::connect(host.addr).await.unwrap();
    extra
        .write_all(b"GET /ep_one HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503") && closed, "{answer}");

    held.truncate(2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_demo_endpoints_answer(&host).await;
    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_http_connections_rejected_total", &[]),
        1.0
    );
}

/// A process may open only so many files, and each connection is one:
/// past the limit the kernel refuses the accept, and a new connection
/// waits unanswered in the backlog. The cap is fitted below the limit
/// instead, so the connection past it gets its 503 and a close at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_what_the_process_may_open_get_503_at_once() {
    // 400 files: the cap (10,000 by default) is fitted to 200.
    let host = Host::start_with_open_files(&config(""), &[], 400);
    let mut held = held_connections(&host, 200).await;
    let mut extra = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(b"GET /ep_one HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        extra.push(stream);
    }
    for stream in &mut extra {
        let (answer, closed) = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 503") && closed,
            "{answer}{}",
            WithLog("", &host)
        );
    }
    assert!(
        host.log()
            .contains("http.max_connections is 10000, but the process may open only 400 files"),
        "{}",
        host.log()
    );

    // Closed connections free their places as the host sees them close.
    held.truncate(2);
    drop(extra);
    eventually(
        Duration::from_secs(10),
        WithLog("places freed by closed connections", &host),
        || async { get(&client(), &host.url("/metrics")).await.0 == StatusCode::OK },
    )
    .await;
    let scrape = scrape(&host).await;
    assert!(value(&scrape, "webapp_http_connections_rejected_total", &[]) >= 40.0);
    assert_demo_endpoints_answer(&host).await;
}

/// Lets this test process open as many files as its hard limit allows
/// (thousands of client connections at once).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// The kernel's limit on memory mappings (`vm.max_map_count`), read here
/// so the tests hold on a machine that raised it.
fn max_map_count() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The instance pool maps each of its stacks with a guard page, and each
/// memory in use splits its slot: past `vm.max_map_count` every mmap fails,
/// instantiation with a 500 and then the heap allocator, which aborts the
/// host. The in-flight cap is fitted below it instead: 503s, not failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_past_what_the_kernel_can_map_get_503_not_a_failure() {
    // Stacks that leave 200 mappings beyond the host's reserve of 4,096:
    // 100 memory slots of two mappings each, one an instance.
    let max_map_count = max_map_count();
    assert!(
        max_map_count <= 1 << 20,
        "this test sizes a pool to the kernel's vm.max_map_count ({max_map_count}): too large here"
    );
    let instances = (max_map_count - 4096 - 200) / 2;
    let mut routes = demo_routes();
    routes.push(("/hello/sleep", component("hello")));
    let host = Host::start(
        &config_text(&format!("[pool]\nmax_instances = {instances}\n"), &routes),
        &[],
    );
    let warning = format!(
        "pool.max_instances is {instances}, but the kernel's {max_map_count} memory mappings"
    );
    assert!(
        host.log().contains(&warning) && host.log().contains("at most 100 instances at once"),
        "{}",
        host.log()
    );

    // Far more requests at once than the mappings hold instances (which
    // the old code instantiated until mmap failed), each held 5 s so all
    // arrive while the first are inside.
    raise_open_files();
    let answers = get_many(host.url("/hello/sleep?5000"), 2500, 2500).await;
    let served = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let busy = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(
        served + busy,
        answers.len(),
        "{:?}; {}",
        answers
            .iter()
            .find(|(s, _)| !matches!(s.as_u16(), 200 | 503)),
        WithLog("every request served or refused at the cap", &host)
    );
    assert!((1..=100).contains(&served), "{served} served at once");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", host.pid())).unwrap();
    assert!(
        (maps.lines().count() as u64) < max_map_count,
        "{} mappings",
        maps.lines().count()
    );
    let scrape = scrape(&host).await;
    assert_eq!(
        samples(&scrape, "webapp_wasm_guest_failures_total", &[]).count(),
        0,
        "{}",
        host.log()
    );
    assert_demo_endpoints_answer(&host).await;
}

#[test]
fn a_pool_whose_stacks_the_kernel_cannot_map_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    let instances = max_map_count() / 2 + 1;
    std::fs::write(
        &config,
        config_text(
            &format!("[pool]\nmax_instances = {instances}\n"),
            &demo_routes(),
        ),
    )
    .unwrap();
    let out = run_host(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("pool.max_instances {instances} needs"))
            && stderr.contains("vm.max_map_count"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_cap_get_503() {
    let host = Host::start(&config("max_in_flight = 4\n"), &[]);
    let answers = get_many(host.url("/ep_four"), 16, 16).await;
    let busy = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let served = answers
        .iter()
        .filter(|a| **a == (StatusCode::OK, "4".to_string()))
        .count();
    assert_eq!(busy + served, 16, "{answers:?}");
    assert!(busy >= 8 && served >= 4, "{busy} busy, {served} served");
    // Once the burst is over there is room again.
    assert_demo_endpoints_answer(&host).await;
    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "503")]),
        busy as f64
    );
}

/// One request on its own connection, written raw; the whole answer.
async fn raw(host: &Host, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(host.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_host_is_the_clients_error_not_the_components() {
    let host = Host::start(&config(""), &[]);
    // HTTP/1.1 requires Host (RFC 9112, 3.2): 400, answered by the host.
    for request in [
        &b"GET /ep_one HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /ep_one HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET /ep_one HTTP/1.1\r\nHost: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw(&host, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?}: {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    // HTTP/1.0 may leave it out: served.
    let answer = raw(&host, b"GET /ep_one HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\n1"), "{answer:?}");
    // None of it is a component's failure, nor an answer of its version.
    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_wasm_guest_failures_total", &[]),
        0.0,
        "{}",
        host.log()
    );
    assert_eq!(
        value(
            &scrape,
            "webapp_version_requests_total",
            &[("path", "/ep_one"), ("class", "4xx")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            "webapp_http_request_total",
            &[("method", "GET"), ("status", "400")]
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let host = Host::demo();
    // `/ep_one` takes up to 200 ms: the client has shut its side long before.
    for _ in 0..5 {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(b"GET /ep_one HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(closed, "{answer:?}");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n1"),
            "{answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_not_tunnelled() {
    let host = Host::demo();
    let answer = raw(
        &host,
        b"CONNECT /ep_one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer:?}");
    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_http_request_total", &[("status", "200")]),
        0.0,
        "a refused CONNECT is no 200"
    );
    assert_demo_endpoints_answer(&host).await;
}
