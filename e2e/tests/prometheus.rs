//! End to end: the real host and generator, scraped by a real Prometheus
//! (Debian's package) on 127.0.0.1, and every panel query of the dashboard
//! run through Prometheus's HTTP API with its window shortened, checked for
//! the series and values the demo's behaviour implies.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::*;

const DEMO_PATHS: [&str; 4] = ["/ep_one", "/ep_two", "/ep_three", "/ep_four"];

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address Prometheus listens on, from its log (it was given port 0,
/// so the port is its own choice: nothing is picked first and bound later).
fn listening_address(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("msg=\"Listening on\""))?;
    let address = line.split("address=").nth(1)?.split_whitespace().next()?;
    Some(address.to_owned())
}

/// An instant query: each series' labels and value.
async fn query_series(
    client: &HttpClient,
    base: &str,
    expr: &str,
) -> Vec<(BTreeMap<String, String>, f64)> {
    let encoded: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let (status, body) = get(client, &format!("{base}/api/v1/query?query={encoded}")).await;
    assert!(status.is_success(), "{expr}: {status} {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let labels = serde_json::from_value(series["metric"].clone()).unwrap();
            let value = series["value"][1].as_str().unwrap().parse().unwrap();
            (labels, value)
        })
        .collect()
}

/// Values by one label, asserting exactly the `expected` label values appear.
fn by_label(
    series: &[(BTreeMap<String, String>, f64)],
    label: &str,
    expected: &[&str],
    title: &str,
) -> BTreeMap<String, f64> {
    let values: BTreeMap<String, f64> = series
        .iter()
        .map(|(labels, v)| (labels.get(label).cloned().unwrap_or_default(), *v))
        .collect();
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(keys, want, "{title}: series by {label}");
    values
}

fn near(title: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{title}: {got} is not within {tolerance} of {want}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_what_the_demo_implies() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let mut routes = demo_routes();
    routes.push(("/fault/trap", component("faults")));
    // `/ep_one`'s canary below stays under way while the panels are checked.
    let ep_one_route = format!("component = \"{}\"\n", component("ep_one").display());
    let config = config_text("", &routes).replacen(
        &ep_one_route,
        &format!(
            "{ep_one_route}[route.rollout]\nlatency_margin_percent = 1000\nhealthy_for = \"10m\"\n"
        ),
        1,
    );
    let host = Host::start(&config, &[]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: webapp\n    static_configs:\n      - targets: ['{}']\n",
            host.addr
        ),
    )
    .unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _prometheus = Running(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus"),
    );
    let started = Instant::now();
    let prom_addr = loop {
        if let Some(address) = listening_address(&log_path) {
            break address;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not say where it listens:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = format!("http://{prom_addr}");
    let client = client();
    while get_status(&client, &format!("{base}/-/ready")).await != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let _generator = Running(
        Command::new(workspace_binary("generator"))
            .args([
                "--target",
                &host.url(""),
                "--workers",
                "16",
                "--duration",
                "120s",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Rollouts for the Versions row and the annotations: a failing canary
    // on `/ep_two` (rolled back by itself), one on `/ep_three` promoted by
    // hand, and one on `/ep_one` under way until the end.
    let id = |bytes: &[u8]| sha256_hex(bytes)[..12].to_string();
    let stable = |stem: &str| id(&std::fs::read(component(stem)).unwrap());
    let canary = |path: &'static str, bytes: Vec<u8>, share: u8| {
        let host = &host;
        async move {
            let url = format!("/routes{path}/component?canary={share}");
            let (status, answer) = admin(host, "PUT", &url, bytes, None).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    // Annotations show changes Prometheus saw: the counters at 0 first.
    eventually(Duration::from_secs(30), "a first scrape", || async {
        !query_series(
            &client,
            &base,
            "webapp_component_swaps_total{result=\"ok\"}",
        )
        .await
        .is_empty()
    })
    .await;
    let bad = std::fs::read(component("ep_error")).unwrap();
    let promoted = variant(&component("ep_three"), &nonce("promoted"));
    let candidate = variant(&component("ep_one"), &nonce("candidate"));
    let (bad_id, promoted_id, candidate_id) = (id(&bad), id(&promoted), id(&candidate));
    canary("/ep_two", bad, 20).await;
    canary("/ep_three", promoted, 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, answer) = admin(&host, "POST", "/routes/ep_three/promote", vec![], None).await;
    assert_eq!(status, 200, "{answer}");
    canary("/ep_one", candidate, 30).await;

    // A trickle of trapping requests, so the guest-failure panel has a series.
    for _ in 0..40 {
        assert_eq!(get(&client, &host.url("/fault/trap")).await.0, 500);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let all_rate = query_series(
        &client,
        &base,
        "sum(rate(webapp_http_request_duration_seconds_count[30s]))",
    )
    .await;
    let all_rate = all_rate[0].1;
    assert!(all_rate > 20.0, "traffic is flowing: {all_rate} req/s");

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("grafana/dashboards/webapp.json")).unwrap(),
    )
    .unwrap();
    let process_cpu = query_series(
        &client,
        &base,
        "rate(process_cpu_seconds_total{job=\"webapp\"}[30s])",
    )
    .await[0]
        .1;
    let mut all_paths = DEMO_PATHS.to_vec();
    all_paths.extend(["/error", "/fault/trap"]);
    eventually(
        Duration::from_secs(60),
        "the failing canary rolled back",
        || async { served_route(&host, "/ep_two").await.0["rollout"].is_null() },
    )
    .await;
    // Serving versions per route, and the one each rollout retired.
    let (one, two, three, four) = (
        stable("ep_one"),
        stable("ep_two"),
        stable("ep_three"),
        stable("ep_four"),
    );
    let (error, trap) = (stable("ep_error"), stable("faults"));
    let serving = [
        ("/ep_one", one.as_str()),
        ("/ep_one", candidate_id.as_str()),
        ("/ep_two", two.as_str()),
        ("/ep_three", promoted_id.as_str()),
        ("/ep_four", four.as_str()),
        ("/error", error.as_str()),
        ("/fault/trap", trap.as_str()),
    ];
    let retired = [("/ep_two", bad_id.as_str()), ("/ep_three", three.as_str())];
    for query in e2e::queries(&dashboard) {
        let title = query.title;
        let Some(ref_id) = query.ref_id else {
            // Annotations, over their own 1 m window: every change above.
            let expr = e2e::with_variables(query.expr, "webapp", ".+");
            let marks = query_series(&client, &base, &expr).await;
            let marked: Vec<(&str, &str)> = marks
                .iter()
                .map(|(labels, _)| {
                    (
                        labels["path"].as_str(),
                        labels.get("reason").map_or("", String::as_str),
                    )
                })
                .collect();
            match title {
                "Swaps" => {
                    for path in ["/ep_one", "/ep_two", "/ep_three"] {
                        assert!(
                            marked.iter().any(|(p, _)| *p == path),
                            "{title}: {marked:?}"
                        );
                    }
                }
                "Promotions" => assert_eq!(marked, [("/ep_three", "manual")], "{title}"),
                "Rollbacks" => assert_eq!(marked, [("/ep_two", "errors")], "{title}"),
                other => panic!("annotation {other:?} has no end-to-end check: add one"),
            }
            continue;
        };
        // The variables as "All" gives them; 2 m and 1 m windows shortened
        // so 40 s of traffic fill them.
        let expr = e2e::with_variables(query.expr, "webapp", ".+")
            .replace("[2m]", "[30s]")
            .replace("[1m]", "[30s]");
        let series = query_series(&client, &base, &expr).await;
        let by_version = || -> BTreeMap<(String, String), f64> {
            series
                .iter()
                .map(|(labels, v)| ((labels["path"].clone(), labels["version"].clone()), *v))
                .collect()
        };
        let of = |values: &BTreeMap<(String, String), f64>, path: &str, version: &str| {
            *values
                .get(&(path.to_string(), version.to_string()))
                .unwrap_or_else(|| panic!("{title}: no series for {path} {version} in {values:?}"))
        };
        match title {
            "Requests per second" => {
                for (path, rate) in by_label(&series, "path", &DEMO_PATHS, title) {
                    near(
                        &format!("{title} {path}"),
                        rate,
                        all_rate / 5.0,
                        all_rate / 10.0,
                    );
                }
            }
            "Errors per second" => {
                assert_eq!(series.len(), 1, "{title}");
                near(title, series[0].1 / all_rate, 0.2, 0.08);
            }
            "Total requests" => {
                let by_status = by_label(&series, "status", &["200", "500"], title);
                near(
                    title,
                    by_status["500"] / (by_status["200"] + by_status["500"]),
                    0.2,
                    0.08,
                );
            }
            "Average response time" | "Request duration p50" => {
                let values = by_label(&series, "path", &DEMO_PATHS, title);
                for (path, want) in DEMO_PATHS.iter().zip([0.1, 0.2, 0.3, 0.4]) {
                    near(&format!("{title} {path}"), values[*path], want, 0.06);
                }
            }
            "Requests under 250 ms" => {
                let values = by_label(&series, "path", &DEMO_PATHS, title);
                for (path, want) in DEMO_PATHS.iter().zip([1.0, 0.625, 0.4167, 0.3125]) {
                    near(&format!("{title} {path}"), values[*path], want, 0.1);
                }
            }
            "Memory usage" => {
                assert_eq!(series.len(), 1, "{title}");
                assert!(series[0].1 > 1e6, "{title}: {}", series[0].1);
            }
            "CPU usage" => {
                assert_eq!(series.len(), 1, "{title}");
                assert!(
                    series[0].1 > 0.0 && series[0].1 < 2.0,
                    "{title}: {}",
                    series[0].1
                );
            }
            "CPU per component" => {
                let shares = by_label(&series, "path", &all_paths, title);
                for (path, share) in &shares {
                    // The demo's guests mostly sleep: some CPU, far from a core.
                    assert!(*share > 0.0 && *share < 0.5, "{title} {path}: {share}");
                }
                let total: f64 = shares.values().sum();
                assert!(
                    total <= process_cpu * 1.2,
                    "{title}: {total} of {process_cpu}"
                );
            }
            "Memory per component" => {
                for (path, bytes) in by_label(&series, "path", &all_paths, title) {
                    let (low, high) = match ref_id {
                        "A" => (64.0 * 1024.0, 8.0 * 1024.0 * 1024.0),
                        _ => (64.0 * 1024.0, 16.0 * 1024.0 * 1024.0),
                    };
                    assert!(
                        (low..=high).contains(&bytes),
                        "{title} {ref_id} {path}: {bytes} bytes"
                    );
                }
            }
            "Instantiation time p99" => {
                let mut paths = DEMO_PATHS.to_vec();
                paths.extend(["/error", "/fault/trap"]);
                for (path, p99) in by_label(&series, "path", &paths, title) {
                    assert!(p99 > 0.0 && p99 < 0.1, "{title} {path}: {p99}");
                }
            }
            "Guest failures" => {
                let (labels, rate) = &series
                    .first()
                    .unwrap_or_else(|| panic!("{title}: no series"));
                assert_eq!(labels.get("path").map(String::as_str), Some("/fault/trap"));
                assert_eq!(labels.get("kind").map(String::as_str), Some("trap"));
                near(title, *rate, 1.0, 0.5);
            }
            "In-flight requests" => {
                assert_eq!(series.len(), 1, "{title}");
                assert!(
                    (0.0..=17.0).contains(&series[0].1),
                    "{title}: {}",
                    series[0].1
                );
            }
            "Requests per second by version" => {
                let rates = by_version();
                for (path, version) in serving {
                    assert!(of(&rates, path, version) > 0.0, "{title} {path} {version}");
                }
                let canary_share = of(&rates, "/ep_one", &candidate_id)
                    / (of(&rates, "/ep_one", &candidate_id) + of(&rates, "/ep_one", &one));
                near(title, canary_share, 0.3, 0.05);
            }
            "5xx share by version" => {
                let shares = by_version();
                near(title, of(&shares, "/error", &error), 1.0, 0.0);
                near(title, of(&shares, "/ep_one", &one), 0.0, 0.0);
                near(title, of(&shares, "/ep_one", &candidate_id), 0.0, 0.0);
            }
            "Request duration p50 by version" => {
                let p50 = by_version();
                for version in [&one, &candidate_id] {
                    near(title, of(&p50, "/ep_one", version), 0.1, 0.06);
                }
            }
            "Request duration p99 by version" => {
                let p99 = by_version();
                for version in [&one, &candidate_id] {
                    let p99 = of(&p99, "/ep_one", version);
                    assert!((0.15..=0.5).contains(&p99), "{title}: {p99}");
                }
            }
            "Rollout share" => {
                let shares = by_version();
                assert_eq!(of(&shares, "/ep_one", &one), 70.0);
                assert_eq!(of(&shares, "/ep_one", &candidate_id), 30.0);
                for (path, version) in serving.iter().filter(|(p, _)| *p != "/ep_one") {
                    assert_eq!(of(&shares, path, version), 100.0, "{title} {path}");
                }
                for (path, version) in retired {
                    assert_eq!(of(&shares, path, version), 0.0, "{title} {path}");
                }
            }
            "Pods on the declared version" => {
                for (path, value) in by_label(&series, "path", &all_paths, title) {
                    // One pod. /ep_one: a canary under way; /ep_three: an
                    // upload promoted, not the file the config names; the
                    // others serve their file (/ep_two's bad canary is gone).
                    let want = match (ref_id, path.as_str()) {
                        ("A", "/ep_one" | "/ep_three") => 0.0,
                        _ => 1.0,
                    };
                    assert_eq!(value, want, "{title} {ref_id} {path}");
                }
            }
            other => panic!("panel {other:?} has no end-to-end check: add one"),
        }
    }
}

async fn get_status(client: &HttpClient, url: &str) -> Option<u16> {
    let request = hyper::Request::get(url)
        .body(http_body_util::Empty::new())
        .ok()?;
    let response = client.request(request).await.ok()?;
    Some(response.status().as_u16())
}
