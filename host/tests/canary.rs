//! Canary rollouts end to end: real components, the real host, the real
//! generator sending traffic. The split, automatic rollbacks (errors,
//! latency) and promotion, decisions by hand, a restart mid-rollout, and
//! the per-version series staying bounded.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;

/// `/ep_one` with the `[route.rollout]` table `rollout`, and `/ep_two`.
fn config(ep_one: &Path, rollout: &str) -> String {
    format!(
        "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\n{rollout}\n\n\
         [[route]]\npath = \"/ep_two\"\ncomponent = \"{}\"\n",
        ep_one.display(),
        component("ep_two").display()
    )
}

/// A `[route.rollout]` policy under which the judge never decides: no
/// promotion before a million answers each, and margins no candidate
/// exceeds (100 points of 5xx, 1000x the latency).
const NEVER_JUDGED: &str = "min_requests = 1000000\nerror_margin_percent = 100\n\
                            latency_margin_percent = 100000";

/// Starts a canary of `bytes` on `/ep_one` at `share` % through an upload.
async fn upload_canary(host: &Host, bytes: Vec<u8>, share: u8) -> serde_json::Value {
    let path = format!("/routes/ep_one/component?canary={share}");
    let (status, answer) = admin(host, "PUT", &path, bytes, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["canary"], share, "{answer}");
    answer
}

/// `/ep_one`'s rollout as `GET /routes` shows it (`Null` when none).
async fn rollout(host: &Host) -> serde_json::Value {
    served_route(host, "/ep_one").await.0["rollout"].clone()
}

/// Requests `version` answered on `path`, all classes.
fn version_requests(scrape: &prometheus_parse::Scrape, path: &str, version: &str) -> f64 {
    value(
        scrape,
        "webapp_version_requests_total",
        &[("path", path), ("version", version)],
    )
}

/// Ends of `/ep_one`'s rollouts by `decision` and `reason`.
fn decisions(scrape: &prometheus_parse::Scrape, decision: &str, reason: &str) -> f64 {
    rollout_decisions(scrape, "/ep_one", decision, reason)
}

/// Generator traffic on `/ep_one` (mostly) and `/ep_two` until stopped.
fn background_traffic(host: &Host) -> Child {
    start_generator(
        host,
        &[
            "--paths",
            "/ep_one=3,/ep_two",
            "--workers",
            "8",
            "--duration",
            "120s",
            "--timeout",
            "5s",
        ],
    )
}

fn stop(mut generator: Child) {
    let _ = generator.kill();
    let _ = generator.wait();
}

/// Waits until `/ep_one`'s rollout has ended.
async fn until_ended(host: &Host, within: Duration, what: &str) {
    eventually(within, WithLog(what, host), || async {
        rollout(host).await.is_null()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_percent_canary_gets_ten_percent_and_every_answer_is_whole() {
    // No verdict: the judge never intervenes in this test (the candidate,
    // up to 400 ms against 200, would be rolled back for latency).
    let host = Host::start(&config(&component("ep_one"), NEVER_JUDGED), &[]);
    let stable = version_id(&std::fs::read(component("ep_one")).unwrap());
    let ep_two = std::fs::read(component("ep_two")).unwrap();
    let candidate = version_id(&ep_two);
    upload_canary(&host, ep_two.clone(), 10).await;

    let generator = start_generator(
        &host,
        &[
            "--paths",
            "/ep_one",
            "--workers",
            "16",
            "--requests",
            "2000",
            "--timeout",
            "5s",
        ],
    );
    // Alongside, requests whose bodies are checked: each from one version.
    let answers = get_many(host.url("/ep_one"), 200, 4).await;
    let out = tokio::task::block_in_place(|| generator.wait_with_output()).unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["requests"], 2000, "{summary}");
    assert_eq!(summary["total"]["statuses"]["200"], 2000, "{summary}");
    for answer in &answers {
        assert!(
            *answer == (StatusCode::OK, "1".into()) || *answer == (StatusCode::OK, "2".into()),
            "not a whole answer of either version: {answer:?}"
        );
    }
    assert!(answers.iter().any(|a| a.1 == "2") && answers.iter().any(|a| a.1 == "1"));

    let scrape = scrape(&host).await;
    let (on_candidate, on_stable) = (
        version_requests(&scrape, "/ep_one", &candidate),
        version_requests(&scrape, "/ep_one", &stable),
    );
    assert_eq!(on_candidate + on_stable, 2200.0);
    let share = on_candidate / 2200.0;
    assert!((share - 0.10).abs() <= 0.01, "candidate share {share}");
    let shown = rollout(&host).await;
    assert_eq!(
        shown["candidate"]["requests"], on_candidate as u64,
        "{shown}"
    );
    assert_eq!(shown["stable"]["requests"], on_stable as u64, "{shown}");
    assert_eq!(shown["share"], 10);
    assert_eq!(shown["phase"], "gathering");
    assert_eq!(shown["candidate_version"], candidate.as_str());
    let share_of = |version: &str| {
        value(
            &scrape,
            "webapp_version_share_percent",
            &[("path", "/ep_one"), ("version", version)],
        )
    };
    assert_eq!((share_of(&stable), share_of(&candidate)), (90.0, 10.0));

    // By hand: a rollback, then nothing left to end.
    let (status, decided) = admin(&host, "POST", "/routes/ep_one/rollback", vec![], None).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        (&decided["decision"], &decided["reason"]),
        (&"rollback".into(), &"manual".into())
    );
    assert_eq!(decided["digest"].as_str().unwrap()[..12], stable);
    let (status, _) = admin(&host, "POST", "/routes/ep_one/rollback", vec![], None).await;
    assert_eq!(status, 409);
    assert!(
        get_many(host.url("/ep_one"), 50, 4)
            .await
            .iter()
            .all(|a| a.1 == "1")
    );
    // And a promotion: the candidate then serves everything.
    upload_canary(&host, ep_two, 50).await;
    let (status, decided) = admin(&host, "POST", "/routes/ep_one/promote", vec![], None).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        served_route(&host, "/ep_one").await.0["version"],
        candidate.as_str()
    );
    assert!(
        get_many(host.url("/ep_one"), 50, 4)
            .await
            .iter()
            .all(|a| a.1 == "2")
    );
    let scrape = testkit::scrape(&host).await;
    assert_eq!(decisions(&scrape, "rollback", "manual"), 1.0);
    assert_eq!(decisions(&scrape, "promote", "manual"), 1.0);
    assert_eq!(
        value(
            &scrape,
            "webapp_version_share_percent",
            &[("path", "/ep_one"), ("version", &stable)]
        ),
        0.0,
        "a version that stopped serving reads 0 while its series are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_is_rolled_back_within_ten_answers() {
    // The default policy.
    let host = Host::start(&config(&component("ep_one"), ""), &[]);
    let stable = version_id(&std::fs::read(component("ep_one")).unwrap());
    let bad = std::fs::read(component("ep_error")).unwrap();
    let candidate = version_id(&bad);
    let generator = background_traffic(&host);
    eventually(Duration::from_secs(30), "traffic on /ep_one", || async {
        version_requests(&scrape(&host).await, "/ep_one", &stable) >= 20.0
    })
    .await;

    let started = Instant::now();
    upload_canary(&host, bad, 20).await;
    until_ended(&host, Duration::from_secs(60), "the bad canary rolled back").await;
    let took = started.elapsed();
    let after_rollback = scrape(&host).await;
    stop(generator);

    let answered_by_candidate = version_requests(&after_rollback, "/ep_one", &candidate);
    // Decided within 10 answers; at most the 8 workers' requests in flight
    // then were answered after.
    assert!(
        (1.0..=18.0).contains(&answered_by_candidate),
        "{answered_by_candidate} requests answered by the bad candidate"
    );
    assert_eq!(decisions(&after_rollback, "rollback", "errors"), 1.0);
    assert_eq!(decisions(&after_rollback, "promote", "healthy"), 0.0);
    let log = host.log();
    let line = log
        .lines()
        .find(|l| l.contains("rollback (errors)"))
        .unwrap_or_else(|| panic!("no rollback logged:\n{log}"));
    assert!(line.contains(&candidate) && line.contains("5xx"), "{line}");
    // The figures the verdict was made on: the candidate's answers then.
    let at_verdict: u64 = line
        .split("candidate ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no candidate figures in {line}"));
    assert!((1..=10).contains(&at_verdict), "{line}");
    eprintln!("from the upload to the rollback: {took:.2?}; the host's log: {line}");

    // From now on only the stable version answers.
    let answers = get_many(host.url("/ep_one"), 100, 4).await;
    assert!(answers.iter().all(|a| *a == (StatusCode::OK, "1".into())));
    assert_eq!(
        version_requests(&scrape(&host).await, "/ep_one", &candidate),
        answered_by_candidate
    );
    assert_eq!(
        served_route(&host, "/ep_one").await.0["version"],
        stable.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_candidate_is_rolled_back_for_latency() {
    let host = Host::start(&config(&component("ep_one"), ""), &[]);
    // `/ep_four` answers in up to 800 ms, `/ep_one` in up to 200 ms.
    let slow = std::fs::read(component("ep_four")).unwrap();
    let generator = background_traffic(&host);
    upload_canary(&host, slow, 50).await;
    until_ended(
        &host,
        Duration::from_secs(90),
        "the slow canary rolled back",
    )
    .await;
    let scrape = scrape(&host).await;
    stop(generator);
    assert_eq!(
        decisions(&scrape, "rollback", "latency"),
        1.0,
        "{}",
        host.log()
    );
    assert_eq!(decisions(&scrape, "rollback", "errors"), 0.0);
    let log = host.log();
    assert!(log.contains("rollback (latency)"), "{log}");
    let answers = get_many(host.url("/ep_one"), 20, 4).await;
    assert!(answers.iter().all(|a| a.1 == "1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_candidate_is_promoted_after_its_healthy_period() {
    // Latency is judged loosely here: this test, about the healthy period,
    // runs beside others that load the same two cores, and a new version's
    // first requests are its slowest.
    let host = Host::start(
        &config(
            &component("ep_one"),
            "min_requests = 20\nhealthy_for = \"2s\"\nlatency_margin_percent = 300",
        ),
        &[],
    );
    // The same code under a new digest.
    let healthy = variant(&component("ep_one"), &nonce("healthy"));
    let candidate = version_id(&healthy);
    let generator = background_traffic(&host);
    let started = Instant::now();
    upload_canary(&host, healthy, 50).await;
    until_ended(
        &host,
        Duration::from_secs(60),
        "the healthy canary promoted",
    )
    .await;
    let took = started.elapsed();
    let scrape = scrape(&host).await;
    stop(generator);
    assert_eq!(
        decisions(&scrape, "promote", "healthy"),
        1.0,
        "{}",
        host.log()
    );
    assert!(took >= Duration::from_secs(2), "promoted after {took:?}");
    assert_eq!(
        served_route(&host, "/ep_one").await.0["version"],
        candidate.as_str()
    );
    assert!(host.log().contains("promote (healthy)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_rollout_serves_the_stable_version() {
    // Watched files; rebuilds of `/ep_one` start as 30 % canaries.
    let folder = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (one, two) = (
        folder.path().join("ep_one.wasm"),
        folder.path().join("ep_two.wasm"),
    );
    let stable_bytes = std::fs::read(component("ep_one")).unwrap();
    std::fs::write(&one, &stable_bytes).unwrap();
    std::fs::copy(component("ep_two"), &two).unwrap();
    let config = format!(
        "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\ncanary = 30\n\
         {NEVER_JUDGED}\n\n[[route]]\npath = \"/ep_two\"\ncomponent = \"{}\"\n",
        one.display(),
        two.display()
    );
    // POST /reload is what is tested: the config file is not watched.
    let args = [
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--no-watch-config",
    ];
    let host = Host::start(&config, &args);
    until_watching(&host, folder.path()).await;

    let rebuilt = std::fs::read(component("ep_two")).unwrap();
    rename_into_place(&rebuilt, &one);
    eventually(
        Duration::from_secs(30),
        "the rebuild started as a canary",
        || async { rollout(&host).await["candidate_digest"] == sha256_hex(&rebuilt).as_str() },
    )
    .await;
    assert_eq!(rollout(&host).await["share"], 30);

    let mut host = host;
    assert!(host.terminate(Duration::from_secs(30)).success());
    let host = host.restart(&args);
    let (route, _) = served_route(&host, "/ep_one").await;
    assert_eq!(
        route["digest"],
        sha256_hex(&stable_bytes).as_str(),
        "{route}"
    );
    assert!(route["rollout"].is_null(), "{route}");
    assert!(
        host.log().contains("the host stopped during a rollout"),
        "{}",
        host.log()
    );
    let answers = get_many(host.url("/ep_one"), 50, 4).await;
    assert!(answers.iter().all(|a| *a == (StatusCode::OK, "1".into())));

    // The held-back candidate is not taken for a new build: a change in
    // the folder (to `/ep_two`, rescanned after `/ep_one`) starts nothing.
    until_watching(&host, folder.path()).await;
    let (_, generation) = served_route(&host, "/ep_two").await;
    rename_into_place(&std::fs::read(component("ep_three")).unwrap(), &two);
    eventually(Duration::from_secs(30), "/ep_two swapped", || async {
        served_route(&host, "/ep_two").await.1 > generation
    })
    .await;
    assert!(rollout(&host).await.is_null(), "{}", host.log());
    let stable_digest = sha256_hex(&stable_bytes);
    assert_eq!(
        served_route(&host, "/ep_one").await.0["digest"],
        stable_digest.as_str()
    );
    // Nor by a reload, nor by another restart.
    let (status, reloaded) = admin(&host, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(
        served_route(&host, "/ep_one").await.0["digest"],
        stable_digest.as_str()
    );
    let host = host.restart(&args);
    let (route, _) = served_route(&host, "/ep_one").await;
    assert_eq!(route["digest"], stable_digest.as_str(), "{}", host.log());
    assert!(host.log().contains("the host stopped during a rollout"));
    // A new build starts a rollout again.
    let new_build = variant(&component("ep_one"), &nonce("after-restart"));
    until_watching(&host, folder.path()).await;
    rename_into_place(&new_build, &one);
    eventually(
        Duration::from_secs(30),
        "the new build as a canary",
        || async { rollout(&host).await["candidate_digest"] == sha256_hex(&new_build).as_str() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_back_to_the_stable_version_ends_the_rollout() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("ep_one.wasm");
    let stable_bytes = std::fs::read(component("ep_one")).unwrap();
    std::fs::write(&file, &stable_bytes).unwrap();
    let host = Host::start(&config(&file, &format!("canary = 30\n{NEVER_JUDGED}")), &[]);
    until_watching(&host, folder.path()).await;
    let rebuilt = std::fs::read(component("ep_two")).unwrap();
    rename_into_place(&rebuilt, &file);
    eventually(
        Duration::from_secs(30),
        "the rebuild as a canary",
        || async { !rollout(&host).await.is_null() },
    )
    .await;
    // The developer reverts: the file holds the stable version again.
    rename_into_place(&stable_bytes, &file);
    until_ended(
        &host,
        Duration::from_secs(30),
        "the revert ended the rollout",
    )
    .await;
    let (route, _) = served_route(&host, "/ep_one").await;
    assert_eq!(route["digest"], sha256_hex(&stable_bytes).as_str());
    assert_eq!(
        decisions(&scrape(&host).await, "rollback", "superseded"),
        1.0
    );
    let answers = get_many(host.url("/ep_one"), 30, 4).await;
    assert!(answers.iter().all(|a| a.1 == "1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_rollout_record_is_ignored() {
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let mut host = Host::start(&config(&component("ep_one"), ""), &args);
    // Where the hosts of a config file keep their state: the held-back
    // versions (shared) and this host's own rollouts (by listen setting).
    let config = host.config_path().canonicalize().unwrap();
    let key = sha256_hex(config.as_os_str().as_encoded_bytes());
    let state = cache.path().join("state").join(&key[..16]);
    let records = [
        state.join("host-127_0_0_1_0.json"),
        state.join("held-back.json"),
    ];
    assert!(host.terminate(Duration::from_secs(30)).success());
    for damaged in [
        "{ not json".to_string(),
        // Multi-byte characters where digests belong, a share out of range.
        r#"{"/ep_one": {"entry": "é", "stable": "aaaaaaaaaaa€€", "candidate": "é", "share": 10}}"#
            .into(),
        r#"{"/ep_one": {"entry": "", "stable": "../../etc/passwd", "candidate": "x", "share": 250}}"#
            .into(),
        r#"[{"route": "/ep_one", "entry": "", "digest": "€", "instead": "../x", "reason": "rolled_back", "since": 1}]"#
            .into(),
    ] {
        for record in &records {
            std::fs::write(record, &damaged).unwrap();
        }
        host = host.restart(&args);
        let answers = get_many(host.url("/ep_one"), 10, 2).await;
        assert!(
            answers.iter().all(|a| a.1 == "1"),
            "{damaged}: {}",
            host.log()
        );
        assert!(
            host.terminate(Duration::from_secs(30)).success(),
            "{damaged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hundred_swaps_few_version_series_remain() {
    let hello = component("hello");
    let host = Host::start(&config(&hello, NEVER_JUDGED), &[]);
    let client = client();
    let mut latest = String::new();
    for i in 0..100 {
        let bytes = variant(&hello, &nonce(&format!("swap{i}")));
        latest = version_id(&bytes);
        // Every other one a canary, which the next swap supersedes.
        let path = if i % 2 == 1 {
            "/routes/ep_one/component?canary=50"
        } else {
            "/routes/ep_one/component"
        };
        let (status, answer) = admin(&host, "PUT", path, bytes, None).await;
        assert_eq!(status, 200, "{answer}");
        for _ in 0..2 {
            assert_eq!(get(&client, &host.url("/ep_one")).await.0, StatusCode::OK);
        }
    }
    let scrape = scrape(&host).await;
    let mut versions: Vec<&str> = [
        "webapp_version_requests_total",
        "webapp_version_request_duration_seconds",
        "webapp_version_share_percent",
    ]
    .iter()
    .flat_map(|metric| samples(&scrape, metric, &[("path", "/ep_one")]))
    .map(|s| s.labels.get("version").expect("a version label"))
    .collect();
    versions.sort();
    versions.dedup();
    // The two serving (stable and candidate), and at most 3 retired.
    assert!(
        versions.len() <= 5,
        "{} versions: {versions:?}",
        versions.len()
    );
    assert!(versions.contains(&latest.as_str()), "{versions:?}");
    assert_eq!(decisions(&scrape, "rollback", "superseded"), 49.0);
    assert!(
        !rollout(&host).await.is_null(),
        "the last canary is under way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_requests_are_checked() {
    let host = Host::start(&config(&component("ep_one"), ""), &[]);
    let bytes = std::fs::read(component("ep_two")).unwrap();
    for query in [
        "canary=0",
        "canary=100",
        "canary=-5",
        "canary=ten",
        "share=10",
    ] {
        let path = format!("/routes/ep_one/component?{query}");
        let (status, answer) = admin(&host, "PUT", &path, bytes.clone(), None).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("canary"),
            "{answer}"
        );
    }
    let file = component("ep_two").display().to_string();
    for body in [
        serde_json::json!({"file": file, "canary": 150}),
        serde_json::json!({"file": file, "canary": "10"}),
    ] {
        let (status, answer) = admin(
            &host,
            "POST",
            "/routes/ep_one/component",
            body.to_string().into(),
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    // A canary of the stable version itself has nothing to roll out.
    let same = std::fs::read(component("ep_one")).unwrap();
    let (status, answer) = admin(
        &host,
        "PUT",
        "/routes/ep_one/component?canary=10",
        same,
        None,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    for action in ["promote", "rollback"] {
        let (status, answer) = admin(
            &host,
            "POST",
            &format!("/routes/ep_one/{action}"),
            vec![],
            None,
        )
        .await;
        assert_eq!(status, 409, "{answer}");
        let (status, _) = admin(
            &host,
            "POST",
            &format!("/routes/nope/{action}"),
            vec![],
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    // Other admin requests take no query, and ignore one.
    let (status, _) = admin(&host, "GET", "/routes?canary=bad", vec![], None).await;
    assert_eq!(status, 200);
    // The JSON form takes the share too; nothing changed before it.
    let (status, answer) = admin(
        &host,
        "POST",
        "/routes/ep_one/component",
        serde_json::json!({"file": file, "canary": 25})
            .to_string()
            .into(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(rollout(&host).await["share"], 25);
    assert_eq!(
        served_route(&host, "/ep_one").await.1,
        1,
        "one change applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_and_swaps_at_once_end_each_rollout_exactly_once() {
    // Never judged: only the changes below end rollouts.
    let hello = component("hello");
    let host = Host::start(&config(&hello, NEVER_JUDGED), &[]);
    let generator = start_generator(
        &host,
        &["--paths", "/ep_one", "--workers", "4", "--duration", "60s"],
    );
    let (mut started, mut manual) = (0u64, 0u64);
    for i in 0..10 {
        let first = variant(&hello, &nonce(&format!("first{i}")));
        upload_canary(&host, first, 30).await;
        started += 1;
        // A promote, a rollback and a new canary, all at once.
        let next = variant(&hello, &nonce(&format!("next{i}")));
        let (promote, rollback, swap) = tokio::join!(
            admin(&host, "POST", "/routes/ep_one/promote", vec![], None),
            admin(&host, "POST", "/routes/ep_one/rollback", vec![], None),
            admin(
                &host,
                "PUT",
                "/routes/ep_one/component?canary=30",
                next,
                None
            ),
        );
        assert_eq!(swap.0, 200, "{}", swap.1);
        started += 1;
        for (status, answer) in [promote, rollback] {
            match status {
                200 => manual += 1,
                409 => assert!(answer["error"].as_str().unwrap().contains("no rollout")),
                other => panic!("{other}: {answer}"),
            }
        }
        // Whatever the order, one rollout is left: the new canary's, or
        // none if a decision came last.
        let (status, _) = admin(&host, "POST", "/routes/ep_one/rollback", vec![], None).await;
        if status == 200 {
            manual += 1;
        }
    }
    stop(generator);
    let scrape = scrape(&host).await;
    // Every decision and reason of the route, summed.
    let counted = value(
        &scrape,
        "webapp_rollout_decisions_total",
        &[("path", "/ep_one")],
    );
    assert!(rollout(&host).await.is_null());
    assert_eq!(counted, started as f64, "every rollout ended exactly once");
    assert_eq!(
        decisions(&scrape, "promote", "manual") + decisions(&scrape, "rollback", "manual"),
        manual as f64
    );
    assert_eq!(
        decisions(&scrape, "rollback", "superseded"),
        (started - manual) as f64
    );
    // One generation per change: each canary started, each decision.
    assert_eq!(served_route(&host, "/ep_one").await.1, started + manual);
    let answers = get_many(host.url("/ep_one"), 20, 4).await;
    assert!(answers.iter().all(|a| a.0 == StatusCode::OK));
}
