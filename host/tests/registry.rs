//! Components from a real OCI registry (Debian's `docker-registry`, CNCF
//! distribution 2.8, on 127.0.0.1), pushed in the layout `wkg oci push`
//! makes, named by digest in a route table mounted the way the kubelet
//! mounts a ConfigMap: pulled, checked, kept by digest, swapped on every
//! host; and everything a registry can do wrong refused with the old
//! version serving.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use testkit::*;

/// A route table: `/ep_one` from `reference`, `/error` from its file.
/// (Registry settings are fixed at start: the hosts get them as flags.)
fn table(reference: &str) -> Vec<u8> {
    table_with(reference, &component("ep_error"))
}

/// A route table: `/ep_one` from `reference`, `/error` from `error`.
fn table_with(reference: &str, error: &Path) -> Vec<u8> {
    config_text(
        "",
        &[
            ("/ep_one", PathBuf::from(reference)),
            ("/error", error.to_path_buf()),
        ],
    )
    .into_bytes()
}

/// A host on `config` with a cache folder of its own (a pod's emptyDir:
/// nothing pulled by another host or test run is there).
fn pod(config: &Path, cache: &Path, args: &[&str]) -> Host {
    let mut all = vec!["--cache-dir", cache.to_str().unwrap()];
    all.extend_from_slice(args);
    Host::start_with_config_file(config, &all)
}

fn counted(scrape: &prometheus_parse::Scrape, source: &str, result: &str) -> f64 {
    value(
        scrape,
        "webapp_route_changes_total",
        &[("source", source), ("result", result)],
    )
}

/// Pushes the demo component `stem` as `webapp/ep-one:TAG`; its reference.
async fn publish(registry: &OciRegistry, tag: &str, stem: &str) -> String {
    let bytes = std::fs::read(component(stem)).unwrap();
    registry.push("webapp/ep-one", tag, &bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_naming_a_new_digest_reaches_every_host_without_a_failed_request() {
    let Some(registry) = OciRegistry::start() else {
        return;
    };
    let host = registry.host();
    let v1 = publish(&registry, "v1", "ep_one").await;
    let v2 = publish(&registry, "v2", "ep_two").await;
    let volume = ConfigMapVolume::new(&[("webapp.toml", &table(&v1))]);
    let config = volume.path("webapp.toml");
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args = ["--registry-insecure", &host];
    let pods = [
        pod(&config, caches[0].path(), &args),
        pod(&config, caches[1].path(), &args),
    ];
    let client = client();
    for pod in &pods {
        until_watching(pod, volume.dir.path()).await;
        assert_eq!(
            get(&client, &pod.url("/ep_one")).await,
            (StatusCode::OK, "1".into())
        );
        let (route, _) = served_route(pod, "/ep_one").await;
        assert_eq!(route["component"], v1.as_str(), "{route}");
    }

    // Traffic through the switch: every answer whole, from v1 or v2, until
    // each pod has answered from v2 20 times.
    let switch = async { volume.update(&[("webapp.toml", &table(&v2))]) };
    let answers = answers_through_a_switch(&pods, "/ep_one", "2", switch).await;
    let mut converged = Vec::new();
    for ((answers, first_new), pod) in answers.into_iter().zip(&pods) {
        assert!(
            answers
                .iter()
                .all(|(s, body)| *s == StatusCode::OK && (body == "1" || body == "2")),
            "{answers:?}"
        );
        assert!(first_new.is_some(), "{}", WithLog("the pod serves v2", pod));
        converged.push(first_new.unwrap());
    }
    let v2_digest = sha256_hex(&std::fs::read(component("ep_two")).unwrap());
    for pod in &pods {
        let (route, _) = served_route(pod, "/ep_one").await;
        assert_eq!(route["component"], v2.as_str(), "{route}");
        assert_eq!(route["digest"], v2_digest.as_str(), "{route}");
        assert_eq!(route["on_declared_version"], true, "{route}");
        let scrape = scrape(pod).await;
        assert_eq!(
            counted(&scrape, "pull", "ok"),
            2.0,
            "v1 at start, v2 on the switch"
        );
        assert_eq!(counted(&scrape, "config", "ok"), 1.0);
        assert_eq!(
            value(
                &scrape,
                "webapp_route_on_declared_version",
                &[("path", "/ep_one")]
            ),
            1.0
        );
    }
    // A figure for BENCHMARKS.md, not a check.
    eprintln!("first answer from v2, per pod, after the folder switch: {converged:?}");
}

/// A listener that accepts connections and never answers: a hung registry.
fn hung_registry() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in accepting.incoming().map_while(Result::ok) {
            held.push(stream); // never read, never answered, never closed
        }
    });
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_registry_cannot_give_is_refused_and_the_old_version_serves() {
    let Some(registry) = OciRegistry::start() else {
        return;
    };
    let host = registry.host();
    let v1 = publish(&registry, "v1", "ep_one").await;
    // Pushed, never pulled: the bad ways of naming it must pull (a digest
    // kept already serves from the cache, whichever registry names it).
    let v2 = publish(&registry, "v2", "ep_two").await;
    let digest_of_v2 = v2.rsplit('@').next().unwrap().to_owned();
    let not_wasm = registry
        .push_image("webapp/ep-one", "image", b"not a component")
        .await;
    let (_hung, hung) = hung_registry();
    let down = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
        // closed here: nothing listens there any more
    };
    let missing = format!("sha256:{}", sha256_hex(b"no such manifest"));

    // Bytes other than those named: a manifest, or the component itself.
    let bad_manifest = tampering_proxy(&registry, Tamper::Manifest).await;
    let bad_blob = tampering_proxy(&registry, Tamper::Blob).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    // `/error` from a file of the test's own, to change while a pull hangs.
    let error_file = dir.path().join("ep_error.wasm");
    std::fs::copy(component("ep_error"), &error_file).unwrap();
    let table = |reference: &str| table_with(reference, &error_file);
    std::fs::write(&config, table(&v1)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let listed = format!("{host},{down},{hung},{bad_manifest},{bad_blob}");
    let args = ["--registry-insecure", &listed, "--registry-timeout", "4s"];
    let pod = pod(&config, cache.path(), &args);
    let client = client();
    until_watching(&pod, dir.path()).await;
    assert_eq!(get(&client, &pod.url("/ep_one")).await.1, "1");
    let declare = |text: Vec<u8>| rename_into_place(&text, &config);

    // Each bad declaration, and the words its refusal must carry.
    let port = registry.addr.port();
    let cases = [
        (
            format!("oci://{host}/webapp/ep-one:v1@{missing}"),
            "manifest unknown",
        ),
        (not_wasm, "not a Wasm component artifact"),
        (
            format!("oci://{bad_manifest}/webapp/ep-one:v2@{digest_of_v2}"),
            "Digest error",
        ),
        (
            format!("oci://{bad_blob}/webapp/ep-one:v2@{digest_of_v2}"),
            "Digest error",
        ),
        (
            format!("oci://{down}/webapp/ep-one:v1@{digest_of_v2}"),
            "Connection refused",
        ),
        (
            format!("oci://{hung}/webapp/ep-one:v1@{digest_of_v2}"),
            "within 4s",
        ),
        // The real registry under a name not listed as plain HTTP: HTTPS only.
        (
            format!("oci://localhost:{port}/webapp/ep-one:v1@{digest_of_v2}"),
            "registry.insecure",
        ),
    ];
    for (n, (reference, why)) in cases.iter().enumerate() {
        declare(table(reference));
        // While the pull is under way (the hung registry: 4 s), every
        // request goes on unslowed.
        let started = Instant::now();
        let mut answers = 0;
        let said = pod.log().matches(why).count();
        while pod.log().matches(why).count() == said {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{}",
                WithLog(why, &pod)
            );
            let asked = Instant::now();
            assert_eq!(get(&client, &pod.url("/ep_one")).await.1, "1");
            let error = get(&client, &pod.url("/error")).await.0;
            assert_eq!(error, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "requests are not slowed"
            );
            answers += 1;
        }
        eventually(
            Duration::from_secs(10),
            WithLog("the table is refused", &pod),
            || async { counted(&scrape(&pod).await, "config", "rejected") == (n + 1) as f64 },
        )
        .await;
        let (route, _) = served_route(&pod, "/ep_one").await;
        assert_eq!(route["component"], v1.as_str(), "{reference}: {route}");
        assert_eq!(route["on_declared_version"], false, "{route}");
        assert!(answers > 0);
        let scrape = scrape(&pod).await;
        assert!(counted(&scrape, "pull", "rejected") >= (n + 1) as f64);
        let on = value(
            &scrape,
            "webapp_route_on_declared_version",
            &[("path", "/ep_one")],
        );
        assert_eq!(on, 0.0);
    }

    // A hung pull holds nothing else up: a new version of another route's
    // file, and an operator's swap, both while a pull from the hung
    // registry is under way, are served before that pull gives up.
    let pulling = format!("pulling oci://{hung}/");
    let pulls_before = pod.log().matches(&pulling).count();
    declare(table(&format!(
        "oci://{hung}/webapp/ep-one:v2@{digest_of_v2}"
    )));
    eventually(
        Duration::from_secs(5),
        WithLog("a pull begins", &pod),
        || async { pod.log().matches(&pulling).count() > pulls_before },
    )
    .await;
    let gave_up_before = pod.log().matches("within 4s").count();
    let renamed = variant(&component("ep_error"), &nonce("file"));
    rename_into_place(&renamed, &error_file);
    eventually(
        Duration::from_secs(10),
        WithLog("the file's new version serves", &pod),
        || async { served_route(&pod, "/error").await.0["digest"] == sha256_hex(&renamed) },
    )
    .await;
    assert_eq!(
        pod.log().matches("within 4s").count(),
        gave_up_before,
        "{}",
        WithLog(
            "the file event was served before the hung pull gave up",
            &pod
        )
    );
    let error_variant = dir.path().join("ep_error_v2.wasm");
    std::fs::write(&error_variant, variant(&component("ep_error"), &nonce("e"))).unwrap();
    let body = serde_json::json!({"file": error_variant}).to_string();
    let (status, answer) = admin(
        &pod,
        "POST",
        "/routes/error/component",
        body.into_bytes(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        pod.log().matches("within 4s").count(),
        gave_up_before,
        "the swap was answered before the hung pull gave up"
    );

    // Back to the good declaration: served and converged again.
    declare(table(&v1));
    eventually(
        Duration::from_secs(15),
        WithLog("converged again", &pod),
        || async { served_route(&pod, "/ep_one").await.0["on_declared_version"] == true },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_is_resolved_once_and_a_restart_serves_from_the_cache_with_the_registry_down() {
    let Some(mut registry) = OciRegistry::start() else {
        return;
    };
    let host = registry.host();
    let one = std::fs::read(component("ep_one")).unwrap();
    registry.push("webapp/ep", "stable", &one).await;
    let tag = format!("oci://{host}/webapp/ep:stable");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    std::fs::write(&config, table(&tag)).unwrap();
    let (cache, refreshing_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let once = pod(
        &config,
        cache.path(),
        &["--no-watch-config", "--registry-insecure", &host],
    );
    let refreshing = pod(
        &config,
        refreshing_cache.path(),
        &[
            "--no-watch-config",
            "--registry-insecure",
            &host,
            "--tag-refresh",
            "1s",
        ],
    );
    let client = client();
    for pod in [&once, &refreshing] {
        assert_eq!(get(&client, &pod.url("/ep_one")).await.1, "1");
    }

    // The tag is pushed again. A reload of the host that did not ask for
    // re-resolution changes nothing; the one that did serves the new code.
    registry
        .push(
            "webapp/ep",
            "stable",
            &std::fs::read(component("ep_two")).unwrap(),
        )
        .await;
    let (status, answer) = admin(&once, "POST", "/reload", vec![], None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(get(&client, &once.url("/ep_one")).await.1, "1");
    eventually(
        Duration::from_secs(10),
        WithLog("re-resolved", &refreshing),
        || async {
            admin(&refreshing, "POST", "/reload", vec![], None).await;
            get(&client, &refreshing.url("/ep_one")).await.1 == "2"
        },
    )
    .await;

    // The component is lost from the cache (evicted, say): a restart pulls
    // it again by the digest the tag resolved to, not by the tag (which
    // names v2 by now).
    drop(once);
    for blob in std::fs::read_dir(cache.path().join("oci/blobs")).unwrap() {
        std::fs::remove_file(blob.unwrap().path()).unwrap();
    }
    let once = pod(
        &config,
        cache.path(),
        &["--no-watch-config", "--registry-insecure", &host],
    );
    assert_eq!(
        get(&client, &once.url("/ep_one")).await.1,
        "1",
        "{}",
        once.log()
    );
    assert_eq!(counted(&scrape(&once).await, "pull", "ok"), 1.0);

    // The registry goes down; a restart serves what was served, from the cache.
    registry.stop();
    drop(once);
    let once = pod(
        &config,
        cache.path(),
        &["--no-watch-config", "--registry-insecure", &host],
    );
    assert_eq!(
        get(&client, &once.url("/ep_one")).await.1,
        "1",
        "{}",
        once.log()
    );
    let (route, _) = served_route(&once, "/ep_one").await;
    assert_eq!(route["digest"], sha256_hex(&one).as_str());
    let scrape = scrape(&once).await;
    assert_eq!(
        counted(&scrape, "pull", "ok"),
        0.0,
        "nothing pulled: it was kept"
    );
}

#[test]
fn a_tag_alone_is_refused_where_a_digest_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    std::fs::write(&config, table("oci://127.0.0.1:1/webapp/ep:stable")).unwrap();
    let out = run_host(&["--config", config.to_str().unwrap(), "--require-digest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("require_digest") && err.contains("/ep_one"),
        "{err}"
    );
}

#[test]
fn a_component_that_cannot_be_pulled_at_start_stops_the_host_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    let nowhere = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string() // closed when dropped
    };
    let reference = format!("oci://{nowhere}/webapp/ep:v1@sha256:{}", sha256_hex(b"x"));
    std::fs::write(&config, table(&reference)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = run_host(&[
        "--config",
        config.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--registry-insecure",
        &nowhere,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("route `/ep_one`") && err.contains(&reference) && err.contains("cannot pull"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_changed_while_a_pull_hangs_is_served_with_its_own_components() {
    let Some(registry) = OciRegistry::start() else {
        return;
    };
    let host = registry.host();
    let v1 = publish(&registry, "v1", "ep_one").await;
    let v2 = publish(&registry, "v2", "ep_two").await;
    let (_hung, hung) = hung_registry();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    std::fs::write(&config, table(&v1)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let listed = format!("{host},{hung}");
    let args = ["--registry-insecure", &listed, "--registry-timeout", "4s"];
    let pod = pod(&config, cache.path(), &args);
    let client = client();
    until_watching(&pod, dir.path()).await;
    let declare = |text: Vec<u8>| rename_into_place(&text, &config);

    // A table naming a component on the hung registry; while its pull
    // hangs, the file changes again, to a table naming v2 (never pulled).
    let digest = v2.rsplit('@').next().unwrap();
    declare(table(&format!("oci://{hung}/webapp/ep-one:x@{digest}")));
    eventually(
        Duration::from_secs(5),
        WithLog("the pull from the hung registry begins", &pod),
        || async { pod.log().contains(&format!("pulling oci://{hung}/")) },
    )
    .await;
    declare(table(&v2));
    // Once the hung pull gives up, the owner finds the text changed, pulls
    // what the new one names, and serves it: no refusal of a text for
    // components it was never given the chance to pull.
    eventually(
        Duration::from_secs(15),
        WithLog("v2 serves", &pod),
        || async { get(&client, &pod.url("/ep_one")).await.1 == "2" },
    )
    .await;
    let scrape = scrape(&pod).await;
    assert_eq!(counted(&scrape, "config", "rejected"), 0.0, "{}", pod.log());
    assert_eq!(counted(&scrape, "config", "ok"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_declared_by_digest_that_fails_is_rolled_back_and_held_back_on_every_host() {
    let Some(registry) = OciRegistry::start() else {
        return;
    };
    let host = registry.host();
    let good = publish(&registry, "v1", "ep_one").await;
    let bad = publish(&registry, "v2", "ep_error").await;
    // `/ep_one` rolls out new declarations as a 50 % canary.
    let declare = |reference: &str| {
        format!(
            "[[route]]\npath = \"/ep_one\"\ncomponent = \"{reference}\"\n\
             [route.rollout]\ncanary = 50\n"
        )
        .into_bytes()
    };
    let volume = ConfigMapVolume::new(&[("webapp.toml", &declare(&good))]);
    let config = volume.path("webapp.toml");
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args = ["--registry-insecure", &host];
    let mut pods = [
        pod(&config, caches[0].path(), &args),
        pod(&config, caches[1].path(), &args),
    ];
    for pod in &pods {
        until_watching(pod, volume.dir.path()).await;
    }
    volume.update(&[("webapp.toml", &declare(&bad))]);
    let client = client();
    for pod in &pods {
        until_rolled_back_for_errors(pod, "/ep_one").await;
    }
    // Held back on each pod, a restarted one too: only the stable version
    // serves, and each says it is not on the declared version.
    pods[1] = pod(&config, caches[1].path(), &args);
    for pod in &pods {
        for _ in 0..20 {
            let answer = get(&client, &pod.url("/ep_one")).await;
            assert_eq!(answer, (StatusCode::OK, "1".into()), "{}", pod.log());
        }
        let scrape = scrape(pod).await;
        let on = value(
            &scrape,
            "webapp_route_on_declared_version",
            &[("path", "/ep_one")],
        );
        assert_eq!(on, 0.0, "{}", pod.log());
        let held = value(&scrape, "webapp_held_back_versions", &[("path", "/ep_one")]);
        assert_eq!(held, 1.0);
    }
    // A new declaration (the good digest again) converges every pod.
    volume.update(&[("webapp.toml", &declare(&good))]);
    for pod in &pods {
        until_on_declared_version(pod, "/ep_one").await;
    }
}
