//! The generator against the real host on 127.0.0.1: what it reports is
//! what the host saw, its open loop keeps time, and a down target costs it
//! nothing but patience.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::*;

fn generator(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_generator"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run_json(args: &[&str]) -> Value {
    let out = generator(args)
        .arg("--json")
        .output()
        .expect("running the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the summary is JSON")
}

fn row<'a>(summary: &'a Value, path: &str) -> &'a Value {
    summary["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no row for {path}"))
}

fn count(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_follows_the_weights_and_matches_the_hosts_counts() {
    let host = Host::demo();
    let summary = run_json(&[
        "--target",
        &host.url(""),
        "--paths",
        "/ep_one=4,/ep_two=1,/ep_three=1,/ep_four=1,/error=3",
        "--requests",
        "500",
        "--workers",
        "16",
        "--seed",
        "42",
    ]);
    assert_eq!(summary["total"]["requests"], 500);
    let scrape = scrape(&host).await;
    for (path, stem, status, _) in ENDPOINTS {
        let r = row(&summary, path);
        let weight = match *stem {
            "ep_one" => 4.0,
            "ep_error" => 3.0,
            _ => 1.0,
        };
        let expected = 500.0 * weight / 10.0;
        let sent = count(&r["requests"]);
        // Binomial spread is at most 11 here; 40 is beyond 3.5 sigma.
        assert!(
            (sent - expected).abs() < 40.0,
            "{path}: {sent} sent, {expected} expected"
        );
        // Every request was answered, /error's 500s as answers, not errors.
        assert_eq!(
            r["errors"],
            serde_json::json!({"timeout": 0, "refused": 0, "other": 0}),
            "{path}"
        );
        let answered = count(&r["statuses"][status.to_string()]);
        assert_eq!(answered, sent, "{path}: {r}");
        let seen = value(
            &scrape,
            "webapp_http_request_duration_seconds_count",
            &[("path", path), ("status", &status.to_string())],
        );
        assert_eq!(
            seen, sent,
            "{path}: the host counted {seen}, the generator {sent}"
        );
    }
    // Latency quantiles are plausible for the endpoints' sleeps.
    assert!(
        row(&summary, "/ep_four")["latency_ms"]["max"]
            .as_f64()
            .unwrap()
            < 1000.0
    );
    assert!(
        row(&summary, "/error")["latency_ms"]["p50"]
            .as_f64()
            .unwrap()
            < 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_loop_holds_its_rate() {
    let host = Host::demo();
    let summary = run_json(&[
        "--target",
        &host.url(""),
        "--rate",
        "200",
        "--duration",
        "4s",
    ]);
    let rate = summary["total"]["rate"].as_f64().unwrap();
    assert!(
        (rate - 200.0).abs() / 200.0 < 0.05,
        "achieved {rate} req/s: {summary}"
    );
    let sent = count(&summary["total"]["requests"]);
    assert!((sent - 800.0).abs() <= 40.0, "{sent} requests");
    assert_eq!(summary["total"]["errors"]["timeout"], 0);
    assert_eq!(summary["total"]["errors"]["other"], 0);
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_target_is_waited_for_without_spinning() {
    // The port is bound once and kept: refusing connections while it does
    // not listen, then relaying them to the host once the host is up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let target = format!("http://{}", socket.local_addr().unwrap());
    let child = generator(&[
        "--target",
        &target,
        "--workers",
        "4",
        "--json",
        "--duration",
        "120s",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu = cpu_seconds(child.id());
    // A busy loop would burn about 3 s here; backing off costs almost nothing.
    assert!(
        idle_cpu < 0.3,
        "the generator used {idle_cpu} s of CPU against a down target"
    );

    let host = Host::demo();
    let listener = socket.listen(1024).unwrap();
    let upstream = host.addr;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    // The longest backoff step is 5 s: wait until the host has answered some.
    eventually(
        Duration::from_secs(15),
        "the generator reaches the host",
        || async { value(&scrape(&host).await, "webapp_http_request_total", &[]) > 10.0 },
    )
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a summary after SIGTERM");
    let total = &summary["total"];
    assert!(count(&total["errors"]["refused"]) > 0.0, "{total}");
    let answered: f64 = total["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(count)
        .sum();
    assert!(answered > 10.0, "no answers once the host was up: {total}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("is unreachable").count(),
        1,
        "one log line per change:\n{stderr}"
    );
}
