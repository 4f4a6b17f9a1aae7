//! Control-plane integrity: the component that serves is exactly the one
//! named, under concurrent changes, restarts on one compile cache, damaged
//! cache entries, and hostile admin requests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn cache_args(cache: &Path) -> [String; 2] {
    ["--cache-dir".into(), cache.display().to_string()]
}

/// A host on `config` with its compile cache in `cache`. These tests drive
/// `POST /reload` themselves and check its answer: the config file is not
/// watched (a watched file would be reloaded first).
fn start(config: &str, cache: &Path) -> Host {
    let [flag, dir] = cache_args(cache);
    Host::start(config, &[&flag, &dir, "--no-watch-config"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_new_versions_serve_their_own_code_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let config = config_text(
        "",
        &[
            ("/a", component("ep_one")),
            ("/b", component("ep_two")),
            ("/c", component("ep_three")),
            ("/d", component("ep_four")),
        ],
    );
    // Each route gets its own never-seen version, all uploaded at once; after
    // a restart on the same cache, the same uploads come from the disk cache.
    let sources = [
        ("/a", "hello", "hello"),
        ("/b", "ep_error", "error"),
        ("/c", "ep_one", "1"),
        ("/d", "ep_two", "2"),
    ];
    for round in 0..4 {
        let uploads: Vec<(&str, Vec<u8>, &str)> = sources
            .iter()
            .map(|(route, stem, body)| {
                let tag = format!("{round}{route}");
                (*route, variant(&component(stem), &nonce(&tag)), *body)
            })
            .collect();
        for (pass, expected_origin) in [(0, "compiled"), (1, "disk-cache")] {
            let host = start(&config, cache.path());
            let answers = futures::future::join_all(uploads.iter().map(|(route, bytes, _)| {
                let path = format!("/routes{route}/component");
                let host = &host;
                async move { admin(host, "PUT", &path, bytes.clone(), None).await }
            }))
            .await;
            let client = client();
            for ((route, bytes, body), (status, answer)) in uploads.iter().zip(answers) {
                assert_eq!(status, 200, "round {round} pass {pass} {route}: {answer}");
                assert_eq!(answer["digest"], sha256_hex(bytes));
                let (served, _) = served_route(&host, route).await;
                assert_eq!(served["origin"], expected_origin, "{served}");
                assert_eq!(
                    get(&client, &host.url(route)).await.1,
                    *body,
                    "round {round} pass {pass}: {route} runs another component's code"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_new_version_uploaded_twice_at_once_is_compiled_once() {
    let cache = tempfile::tempdir().unwrap();
    let config = config_text(
        "",
        &[("/a", component("ep_one")), ("/b", component("ep_two"))],
    );
    let host = start(&config, cache.path());
    let bytes = variant(&component("ep_three"), &nonce("once"));
    let answers =
        futures::future::join_all(["/routes/a/component", "/routes/b/component"].map(|path| {
            let (host, bytes) = (&host, bytes.clone());
            async move { admin(host, "PUT", path, bytes, None).await }
        }))
        .await;
    let mut compiled = 0;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        compiled += usize::from(answer["from_cache"] == false);
    }
    assert_eq!(compiled, 1, "{answers:?}");
    for route in ["/a", "/b"] {
        assert_eq!(get(&client(), &host.url(route)).await.1, "3");
    }
}

/// The cache entry of the component `file`.
fn entry_of(cache: &Path, file: &Path) -> PathBuf {
    let digest = sha256_hex(&std::fs::read(file).unwrap());
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&digest)
        })
        .unwrap_or_else(|| panic!("no cache entry for {}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_renamed_cache_entry_is_compiled_again_never_run() {
    let cache = tempfile::tempdir().unwrap();
    let (one, two) = (component("ep_one"), component("ep_two"));
    let config = config_text("", &[("/a", one.clone()), ("/b", two.clone())]);
    drop(start(&config, cache.path()));
    let (entry_one, entry_two) = (entry_of(cache.path(), &one), entry_of(cache.path(), &two));

    // Truncated: the entry of /a loses its second half.
    let bytes = std::fs::read(&entry_one).unwrap();
    std::fs::write(&entry_one, &bytes[..bytes.len() / 2]).unwrap();
    let host = start(&config, cache.path());
    assert_eq!(get(&client(), &host.url("/a")).await.1, "1");
    assert_eq!(served_route(&host, "/a").await.0["origin"], "compiled");
    assert!(
        host.log().contains("discarding compile cache entry"),
        "{}",
        host.log()
    );
    drop(host);

    // Renamed: /b's (valid) entry put in place of /a's.
    std::fs::copy(&entry_two, &entry_one).unwrap();
    let host = start(&config, cache.path());
    assert_eq!(
        get(&client(), &host.url("/a")).await.1,
        "1",
        "/a ran the code of /b's component"
    );
    assert_eq!(get(&client(), &host.url("/b")).await.1, "2");
    assert_eq!(served_route(&host, "/a").await.0["origin"], "compiled");
    assert_eq!(served_route(&host, "/b").await.0["origin"], "disk-cache");
    assert!(
        host.log().contains("compiled from component"),
        "{}",
        host.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compile_cache_stays_within_its_bound() {
    let cache = tempfile::tempdir().unwrap();
    // One MiB holds a handful of compiled endpoints (debug host: larger).
    let host = Host::start(
        &config_text("", &[("/a", component("ep_one"))]),
        &[
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--cache-max-mib",
            "1",
        ],
    );
    for i in 0..12 {
        let bytes = variant(&component("ep_one"), &nonce(&format!("bound{i}")));
        let (status, answer) = admin(&host, "PUT", "/routes/a/component", bytes, None).await;
        assert_eq!(status, 200, "{answer}");
    }
    let total: u64 = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 1 << 20, "the cache holds {total} bytes");
    assert!(host.log().contains("evicted"), "{}", host.log());
    // The entry in use was written last: it is kept.
    assert_eq!(get(&client(), &host.url("/a")).await.1, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_during_a_slow_reload_is_applied_after_it_not_lost() {
    let cache = tempfile::tempdir().unwrap();
    let host = start(&config_text("", &demo_routes()), cache.path());
    let (_, start_generation) = served_route(&host, "/ep_one").await;

    // A reload that compiles ten never-seen components: slow, and no sleep.
    let folder = host.config_path().parent().unwrap().to_path_buf();
    let mut routes = demo_routes();
    for i in 0..10 {
        let file = folder.join(format!("v{i}.wasm"));
        std::fs::write(
            &file,
            variant(&component("hello"), &nonce(&format!("slow{i}"))),
        )
        .unwrap();
        routes.push((Box::leak(format!("/v{i}").into_boxed_str()), file));
    }
    std::fs::write(host.config_path(), config_text("", &routes)).unwrap();
    let reload = {
        let url = host.admin_url("/reload");
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<bytes::Bytes>>();
            let request = hyper::Request::post(url)
                .body(http_body_util::Empty::new())
                .unwrap();
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        })
    };
    // The reload has begun (it logs so before compiling): now swap.
    eventually(Duration::from_secs(10), "the reload to begin", || async {
        host.log().contains("reloading the route table")
    })
    .await;
    let two = std::fs::read(component("ep_two")).unwrap();
    let (status, swapped) = admin(&host, "PUT", "/routes/ep_one/component", two, None).await;
    assert_eq!(status, 200, "{swapped}");
    let (status, reloaded) = reload.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{reloaded}");
    assert_eq!(reloaded["added"].as_array().unwrap().len(), 10);

    // One at a time: the reload first, the swap on top of it. Nothing lost.
    assert_eq!(reloaded["generation"], start_generation + 1, "{reloaded}");
    assert_eq!(swapped["generation"], start_generation + 2, "{swapped}");
    let (served, generation) = served_route(&host, "/ep_one").await;
    assert_eq!(generation, start_generation + 2);
    assert_eq!(served["admin_version"], true);
    assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "2");
    assert_eq!(get(&client(), &host.url("/v3")).await.1, "hello");

    // The documented rule: a reload keeps an admin version while the route's
    // entry is unchanged ...
    let (status, reloaded) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(
        reloaded["kept_admin_version"],
        serde_json::json!(["/ep_one"])
    );
    assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "2");
    // ... and serves what the file names once the entry changes.
    routes[0].1 = component("ep_three");
    std::fs::write(host.config_path(), config_text("", &routes)).unwrap();
    let (status, reloaded) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["changed"], serde_json::json!(["/ep_one"]));
    assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "3");
    let scrape = scrape(&host).await;
    assert_eq!(
        value(&scrape, "webapp_routes_generation", &[]),
        (start_generation + 4) as f64
    );
    assert_eq!(
        value(
            &scrape,
            "webapp_route_changes_total",
            &[("source", "reload"), ("result", "ok")]
        ),
        3.0
    );
}

#[tokio::test]
async fn a_reload_that_changes_a_fixed_setting_is_refused_naming_it() {
    let host = Host::start(&config_text("", &demo_routes()), &["--no-watch-config"]);
    let routes = config_text("", &demo_routes());
    for (extra, named) in [
        ("[http]\nmax_body_bytes = 5\n", "http"),
        ("[pool]\nmax_memory_mib = 32\n", "pool"),
        ("metrics_prefix = \"other\"\n", "metrics_prefix"),
        ("cache_max_mib = 7\n", "cache_max_mib"),
    ] {
        std::fs::write(host.config_path(), format!("{extra}{routes}")).unwrap();
        let (status, answer) = admin(&host, "POST", "/reload", vec![], None).await;
        assert_eq!(status, 422, "{extra}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(named) && error.contains("restart"),
            "{error}"
        );
    }
    // A route memory limit above the pool's slot is refused too.
    let over = routes.replacen(
        "[[route]]\npath = \"/ep_one\"",
        "[[route]]\nmax_memory_mib = 128\npath = \"/ep_one\"",
        1,
    );
    std::fs::write(host.config_path(), over).unwrap();
    let (status, answer) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("max_memory_mib"),
        "{answer}"
    );
    let (_, generation) = served_route(&host, "/ep_one").await;
    assert_eq!(generation, 0, "nothing was applied");
    assert_demo_endpoints_answer(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_files_that_are_endless_huge_or_not_files_are_refused_at_once() {
    let host = Host::demo();
    let folder = tempfile::tempdir().unwrap();
    let fifo = folder.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let sparse = folder.path().join("sparse.wasm");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    for (file, why) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (sparse, "larger than"),
        (folder.path().to_path_buf(), "not a regular file"),
    ] {
        let body = serde_json::json!({ "file": file }).to_string().into_bytes();
        let started = Instant::now();
        let (status, answer) = admin(&host, "POST", "/routes/ep_one/component", body, None).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{file:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(status, 422, "{file:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(why) && error.contains(&file.display().to_string()),
            "{error}"
        );
        assert!(
            host.rss_bytes() < 100 << 20,
            "resident memory {}",
            host.rss_bytes()
        );
    }
    assert_demo_endpoints_answer(&host).await;

    // A relative name is taken from the config file's folder, like routes.
    let folder = host.config_path().parent().unwrap().to_path_buf();
    std::fs::copy(component("ep_two"), folder.join("two.wasm")).unwrap();
    let body = br#"{"file": "two.wasm"}"#.to_vec();
    let (status, answer) = admin(&host, "POST", "/routes/ep_one/component", body, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_do_not_lock_the_admin_api_out() {
    let host = Host::start(
        &config_text("[http]\nheader_read_timeout = \"2s\"\n", &demo_routes()),
        &[],
    );
    let admin_addr = host.admin.unwrap();
    // 200 clients that start a request and never finish it.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(admin_addr).await.unwrap();
        stream
            .write_all(b"GET /routes HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    let (status, _) = admin(&host, "GET", "/routes", vec![], None).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The slow ones are cut off at the head timeout.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), slow[0].read(&mut buf))
        .await
        .expect("a slow admin connection was not closed by the head timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"),
        "{read:?}"
    );

    // A head past the size limit is refused with 431.
    let mut big = TcpStream::connect(admin_addr).await.unwrap();
    let head = format!(
        "GET /routes HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// The sample lines of `/metrics` text with a series of `path`.
fn series_of<'a>(text: &'a str, path: &str) -> Vec<&'a str> {
    let label = format!("path=\"{path}\"");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_removing_a_route_mid_rollout_leaves_only_its_change_counters() {
    // Never judged: only the reload ends the rollout.
    let route = |path: &str, stem: &str| {
        format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n\
             [route.rollout]\nmin_requests = 1000000\n\n",
            component(stem).display()
        )
    };
    let both = route("/a", "ep_one") + &route("/b", "ep_two");
    let host = Host::start(&both, &["--no-watch-config"]);
    let canary = std::fs::read(component("ep_three")).unwrap();
    let (status, answer) = admin(&host, "PUT", "/routes/a/component?canary=50", canary, None).await;
    assert_eq!(status, 200, "{answer}");
    let client = client();
    for path in ["/a", "/b"] {
        for _ in 0..4 {
            assert_eq!(get(&client, &host.url(path)).await.0, StatusCode::OK);
        }
    }
    let flask = "webapp_http_request_duration_seconds_bucket{";
    let text = metrics_text(&host).await;
    assert!(series_of(&text, "/a").iter().any(|l| l.starts_with(flask)));

    std::fs::write(host.config_path(), route("/b", "ep_two")).unwrap();
    let (status, reloaded) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["removed"], serde_json::json!(["/a"]));
    let text = metrics_text(&host).await;
    let counters = [
        "webapp_component_swaps_total{",
        "webapp_rollout_decisions_total{",
    ];
    let left = series_of(&text, "/a");
    assert!(
        left.iter()
            .all(|l| counters.iter().any(|c| l.starts_with(c))),
        "series of the removed route: {left:#?}"
    );
    assert!(series_of(&text, "/b").iter().any(|l| l.starts_with(flask)));
    // The reload's last counts stay for a scrape to see.
    let superseded = |scrape: &prometheus_parse::Scrape| {
        value(
            scrape,
            "webapp_rollout_decisions_total",
            &[
                ("path", "/a"),
                ("decision", "rollback"),
                ("reason", "superseded"),
            ],
        )
    };
    let swaps = |scrape: &prometheus_parse::Scrape| {
        value(
            scrape,
            "webapp_component_swaps_total",
            &[("path", "/a"), ("result", "ok")],
        )
    };
    let scraped = scrape(&host).await;
    assert_eq!(superseded(&scraped), 1.0);
    assert_eq!(swaps(&scraped), 1.0);

    // Back within the retention, the route continues its counters.
    std::fs::write(host.config_path(), &both).unwrap();
    let (status, reloaded) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["added"], serde_json::json!(["/a"]));
    let scraped = scrape(&host).await;
    assert_eq!(superseded(&scraped), 1.0);
    assert_eq!(swaps(&scraped), 1.0);
}
