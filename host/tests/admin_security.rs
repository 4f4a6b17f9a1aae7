//! The admin API against browsers and slow or greedy clients: without a
//! token, what a web page could send (a foreign `Origin`, a `Host` that DNS
//! rebinding chose, a JSON body as `text/plain`) is refused and changes
//! nothing; with a token, the token decides; a body that does not arrive
//! within `admin.body_timeout` is cut with 408; an upload over its cap gets
//! 413 naming the cap, whether its size is announced or chunked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testkit::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The component cap of an upload (`component_file::MAX_COMPONENT_BYTES`).
const UPLOAD_CAP: usize = 64 << 20;
/// The cap of a JSON request body.
const JSON_CAP: usize = 64 << 10;

/// One raw request (`head` without its blank line, then `body`) on a new
/// connection; the status and the body of the answer, read until the
/// server closes (every head here says `Connection: close`).
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the connection stayed open after: {answer}");
    parse(&answer)
}

/// The status and body of a raw HTTP/1.1 answer.
fn parse(answer: &str) -> (u16, String) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// A request head to the admin API at `addr` with `Host: host` and `extra` header lines.
fn head(method_path: &str, host: &str, extra: &[&str]) -> String {
    let mut head = format!("{method_path} HTTP/1.1\r\nHost: {host}");
    for line in extra {
        head.push_str("\r\n");
        head.push_str(line);
    }
    head
}

fn file_body(stem: &str) -> Vec<u8> {
    serde_json::json!({ "file": component(stem) })
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_web_page_could_send_is_refused_without_a_token() {
    let host = Host::demo();
    let addr = host.admin.unwrap();
    let port = addr.port();
    let own = format!("127.0.0.1:{port}");
    let (_, generation) = served_route(&host, "/ep_one").await;
    let upload = std::fs::read(component("ep_two")).unwrap();
    let length = |body: &[u8]| format!("Content-Length: {}", body.len());
    let json = file_body("ep_two");

    // A page on another site: a simple cross-site POST carries its Origin
    // (`null` from sandboxed frames and some redirects).
    for (method_path, origin) in [
        ("POST /reload", "http://evil.example"),
        ("POST /routes/ep_one/promote", "null"),
        ("POST /routes/ep_one/rollback", "https://evil.example:5001"),
        ("GET /routes", "http://evil.example"),
        // Even a page on this machine, on another port, is another site.
        ("POST /reload", "http://localhost:3000"),
    ] {
        let origin = format!("Origin: {origin}");
        let (status, body) = exchange(addr, &head(method_path, &own, &[&origin]), b"").await;
        assert_eq!(status, 403, "{method_path} {origin}: {body}");
        assert!(body.contains("Origin"), "{body}");
    }
    let origin = "Origin: http://evil.example";
    let (status, body) = exchange(
        addr,
        &head(
            "POST /routes/ep_one/component",
            &own,
            &[origin, "Content-Type: application/json", &length(&json)],
        ),
        &json,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // DNS rebinding: the attacker's name resolves to 127.0.0.1, so the
    // page is same-origin with the admin API; only the Host tells.
    for name in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "evil.example".into(),
        format!("user@127.0.0.1:{port}"),
    ] {
        let (status, body) = exchange(addr, &head("GET /routes", &name, &[]), b"").await;
        assert_eq!(status, 403, "Host {name}: {body}");
        assert!(body.contains("Host"), "{body}");
        let (status, body) = exchange(
            addr,
            &head("PUT /routes/ep_one/component", &name, &[&length(&upload)]),
            &upload,
        )
        .await;
        assert_eq!(status, 403, "Host {name}: {body}");
    }
    // No Host at all: no browser sends that, and nothing can be checked.
    let (status, body) = exchange(addr, "GET /routes HTTP/1.1", b"").await;
    assert_eq!(status, 403, "{body}");

    // A JSON body a page can send without a preflight is text/plain, a
    // form, or a blob with no type at all: only application/json counts.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut extra = vec![length(&json)];
        extra.extend(content_type.map(|t| format!("Content-Type: {t}")));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (status, body) = exchange(
            addr,
            &head("POST /routes/ep_one/component", &own, &extra),
            &json,
        )
        .await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert!(body.contains("application/json"), "{body}");
    }
    // A body-less POST may not carry a form's type either.
    let (status, body) = exchange(
        addr,
        &head(
            "POST /reload",
            &own,
            &["Content-Type: text/plain", "Content-Length: 0"],
        ),
        b"",
    )
    .await;
    assert_eq!(status, 415, "{body}");

    // Nothing was changed by any of them.
    let (served, now) = served_route(&host, "/ep_one").await;
    assert_eq!(now, generation, "{served}");
    assert_demo_endpoints_answer(&host).await;

    // What the operator's own tools send: loopback names, any port (a
    // port-forward or tunnel listens on another one), no Origin.
    for name in [
        own.clone(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        "127.0.0.1:8080".into(),
        "localhost".into(),
    ] {
        let (status, body) = exchange(addr, &head("GET /routes", &name, &[]), b"").await;
        assert_eq!(status, 200, "Host {name}: {body}");
    }
    let (status, body) = exchange(
        addr,
        &head(
            "POST /routes/ep_one/component",
            &format!("localhost:{port}"),
            &[
                "Content-Type: application/json; charset=utf-8",
                &length(&json),
            ],
        ),
        &json,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "2");
    let (status, body) = exchange(addr, &head("POST /reload", &own, &[]), b"").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_token_decides_whatever_the_host_or_origin() {
    let host = Host::start(
        &config_text("", &demo_routes()),
        &["--admin-token", "s3cret"],
    );
    let addr = host.admin.unwrap();
    let bearer = "Authorization: Bearer s3cret";
    // A port-forward or a Service name: Host is whatever the client dialled.
    for (method_path, name, origin) in [
        ("GET /routes", "webapp-0.webapp.monitoring.svc:5001", None),
        (
            "POST /reload",
            "10.1.2.3:5001",
            Some("Origin: https://ops.example"),
        ),
    ] {
        let mut extra = vec![bearer];
        extra.extend(origin);
        let (status, body) = exchange(addr, &head(method_path, name, &extra), b"").await;
        assert_eq!(status, 200, "{method_path} {name}: {body}");
        // Without the token, the same request is refused before anything else.
        let (status, body) = exchange(addr, &head(method_path, name, &[]), b"").await;
        assert_eq!(status, 401, "{method_path} {name}: {body}");
    }
    // A JSON body is still JSON only by its type.
    let json = file_body("ep_two");
    let (status, body) = exchange(
        addr,
        &head(
            "POST /routes/ep_one/component",
            "localhost",
            &[
                bearer,
                "Content-Type: text/plain",
                &format!("Content-Length: {}", json.len()),
            ],
        ),
        &json,
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_demo_endpoints_answer(&host).await;
}

/// Sends `head` and `start`, then the body one byte at a time, every `every`,
/// reading meanwhile; returns the answer and how long it took, once the
/// server closes (within `within`, else the test fails).
async fn trickle(
    addr: SocketAddr,
    head: &str,
    start: &str,
    every: Duration,
    within: Duration,
) -> (u16, String, Duration) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    write
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n{start}").as_bytes())
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let (answer, closed) = read_until_closed(&mut read, within).await;
    writer.abort();
    assert!(
        closed,
        "a trickled body kept its connection for {within:?}: {answer:?}"
    );
    let (status, body) = parse(&answer);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_the_body_timeout_is_cut_with_408() {
    let host = Host::start(
        &config_text("", &demo_routes()),
        &["--admin-body-timeout", "1s"],
    );
    let addr = host.admin.unwrap();
    let own = format!("127.0.0.1:{}", addr.port());
    // Each body would take far longer than the timeout at this pace (at
    // least 100 s); the head itself arrives at once.
    for (method_path, extra, start) in [
        ("PUT /routes/ep_one/component", "Content-Length: 10000", ""),
        // A chunk of 10000 bytes begins, and trickles.
        (
            "PUT /routes/ep_one/component",
            "Transfer-Encoding: chunked",
            "2710\r\n",
        ),
        ("POST /routes/ep_one/component", "Content-Length: 1000", ""),
    ] {
        let head = head(
            method_path,
            &own,
            &["Content-Type: application/json", extra],
        );
        let (status, body, took) = trickle(
            addr,
            &head,
            start,
            Duration::from_millis(100),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(status, 408, "{method_path} {extra}: {body}");
        assert!(body.contains("1s"), "the answer names the timeout: {body}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{method_path} {extra}: cut after {took:?}"
        );
    }
    // The API itself is unaffected.
    let (status, _) = admin(&host, "GET", "/routes", vec![], None).await;
    assert_eq!(status, 200);
    assert_demo_endpoints_answer(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_its_cap_gets_413_naming_the_cap() {
    let host = Host::demo();
    let addr = host.admin.unwrap();
    let own = format!("127.0.0.1:{}", addr.port());
    let (_, generation) = served_route(&host, "/ep_one").await;

    // Announced too large: refused from the head, before any byte is read.
    for (method_path, cap, named) in [
        ("PUT /routes/ep_one/component", UPLOAD_CAP, "64 MiB"),
        ("POST /routes/ep_one/component", JSON_CAP, "64 KiB"),
    ] {
        let started = Instant::now();
        let length = format!("Content-Length: {}", cap + 1);
        let (status, body) = exchange(
            addr,
            &head(
                method_path,
                &own,
                &["Content-Type: application/json", &length],
            ),
            b"",
        )
        .await;
        assert_eq!(status, 413, "{method_path}: {body}");
        assert!(body.contains(named), "{method_path}: {body}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // Chunked, so only counting while reading can catch it: 1 MiB chunks,
    // one more than the cap holds, read concurrently with the writing.
    for (method_path, cap, named) in [
        ("PUT /routes/ep_one/component", UPLOAD_CAP, "64 MiB"),
        ("POST /routes/ep_one/component", JSON_CAP, "64 KiB"),
    ] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let head = head(
            method_path,
            &own,
            &[
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
                "Connection: close",
            ],
        );
        let writer = tokio::spawn(async move {
            write
                .write_all(format!("{head}\r\n\r\n").as_bytes())
                .await?;
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..=cap / chunk.len() + 1 {
                write.write_all(b"100000\r\n").await?;
                write.write_all(&chunk).await?;
                write.write_all(b"\r\n").await?;
            }
            write.write_all(b"0\r\n\r\n").await
        });
        let (answer, closed) = read_until_closed(&mut read, Duration::from_secs(30)).await;
        writer.abort();
        assert!(closed, "{method_path}: {answer:.200}");
        let (status, body) = parse(&answer);
        assert_eq!(status, 413, "{method_path}: {body}");
        assert!(body.contains(named), "{method_path}: {body}");
    }

    let (served, now) = served_route(&host, "/ep_one").await;
    assert_eq!(now, generation, "{served}");
    assert_demo_endpoints_answer(&host).await;
}
