//! The config file is watched: a changed route table serves by itself,
//! including the way the kubelet updates a mounted ConfigMap (a new
//! timestamped folder, a `..data_tmp` symlink renamed over `..data`, the
//! old folder deleted), and never half-written.

use std::path::Path;
use std::time::Duration;

use hyper::StatusCode;
use testkit::*;

/// A route table sending `/ep_one` to `stem`'s component.
fn table(stem: &str) -> Vec<u8> {
    config_text(
        "",
        &[
            ("/ep_one", component(stem)),
            ("/error", component("ep_error")),
        ],
    )
    .into_bytes()
}

/// Starts a host on the config file `config` (not copied: the host reads
/// the file as the test changes it).
fn host_on(config: &Path) -> Host {
    Host::start_with_config_file(config, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_reaches_every_host_without_a_failed_request() {
    let volume = ConfigMapVolume::new(&[("webapp.toml", &table("ep_one"))]);
    let config = volume.path("webapp.toml");
    // Two "pods" reading one mounted folder.
    let pods = [host_on(&config), host_on(&config)];
    let client = client();
    for pod in &pods {
        until_watching(pod, volume.dir.path()).await;
        assert_eq!(
            get(&client, &pod.url("/ep_one")).await,
            (StatusCode::OK, "1".into())
        );
    }

    // Traffic through the switch: every answer is whole, from v1 or v2.
    // Each pod's traffic runs until it has answered from the new table 20
    // times; the moment of its first new answer is noted.
    let switch = async { volume.update(&[("webapp.toml", &table("ep_two"))]) };
    let answers = answers_through_a_switch(&pods, "/ep_one", "2", switch).await;
    let mut converged = Vec::new();
    for (answers, first_new) in answers {
        converged.push(first_new);
        assert!(
            answers
                .iter()
                .all(|(s, body)| *s == StatusCode::OK && (body == "1" || body == "2")),
            "{answers:?}"
        );
    }
    for pod in &pods {
        eventually(
            Duration::from_secs(10),
            WithLog("the pod serves the ConfigMap's new table", pod),
            || async { get(&client, &pod.url("/ep_one")).await.1 == "2" },
        )
        .await;
        let scrape = scrape(pod).await;
        assert_eq!(
            value(
                &scrape,
                "webapp_route_changes_total",
                &[("source", "config"), ("result", "ok")]
            ),
            1.0
        );
        // Converged: every route on its declared version.
        for path in ["/ep_one", "/error"] {
            let on = value(
                &scrape,
                "webapp_route_on_declared_version",
                &[("path", path)],
            );
            assert_eq!(on, 1.0, "{path}");
        }
    }
    // A figure for BENCHMARKS.md, not a check.
    eprintln!("first answer from the new table, per pod, after the switch: {converged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_written_in_pieces_is_never_served_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("webapp.toml");
    std::fs::write(&config, table("ep_one")).unwrap();
    let host = host_on(&config);
    let client = client();
    until_watching(&host, dir.path()).await;

    // The new table, written the non-atomic way: in place, in two pieces,
    // the first of which alone is a valid table without `/error`.
    let new = config_text("", &[("/ep_one", component("ep_two"))]);
    let rest = config_text("", &[("/error", component("ep_error"))]);
    use std::io::Write;
    let mut file = std::fs::File::create(&config).unwrap();
    file.write_all(new.as_bytes()).unwrap();
    file.flush().unwrap();
    // The writer pauses (as a slow editor or copy would): the host must not
    // read the file before it is closed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&client, &host.url("/ep_one")).await.1,
        "1",
        "{}",
        host.log()
    );
    assert_eq!(
        get(&client, &host.url("/error")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    file.write_all(rest.as_bytes()).unwrap();
    drop(file);

    eventually(
        Duration::from_secs(10),
        WithLog("the whole new table serves", &host),
        || async { get(&client, &host.url("/ep_one")).await.1 == "2" },
    )
    .await;
    // /error was never removed, not even for a moment.
    assert_eq!(
        get(&client, &host.url("/error")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let scrape = scrape(&host).await;
    assert_eq!(
        value(
            &scrape,
            "webapp_route_changes_total",
            &[("source", "config")]
        ),
        1.0,
        "the half-written file was read\n{}",
        host.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_once_and_the_last_good_table_serves() {
    let volume = ConfigMapVolume::new(&[("webapp.toml", &table("ep_one"))]);
    let config = volume.path("webapp.toml");
    let host = host_on(&config);
    let client = client();
    until_watching(&host, volume.dir.path()).await;
    let changes = |result: &'static str| {
        let host = &host;
        async move {
            let scrape = scrape(host).await;
            value(
                &scrape,
                "webapp_route_changes_total",
                &[("source", "config"), ("result", result)],
            )
        }
    };
    // Not TOML; a component that is not there; a setting fixed at start.
    let missing = b"[[route]]\npath = \"/ep_one\"\ncomponent = \"missing.wasm\"\n".to_vec();
    let fixed = [&b"metrics_prefix = \"other\"\n"[..], &table("ep_two")].concat();
    for bad in [
        &b"[[route]]\npath = \"/ep_one\"\ncomponent = \n"[..],
        &missing,
        &fixed,
    ] {
        let before = changes("rejected").await;
        volume.update(&[("webapp.toml", bad)]);
        eventually(
            Duration::from_secs(10),
            WithLog("the bad file was refused", &host),
            || async { changes("rejected").await == before + 1.0 },
        )
        .await;
        assert_eq!(
            get(&client, &host.url("/ep_one")).await,
            (StatusCode::OK, "1".into())
        );
        // The pod is not on what the folder declares, and says so.
        let on = value(
            &scrape(&host).await,
            "webapp_route_on_declared_version",
            &[("path", "/ep_one")],
        );
        assert_eq!(on, 0.0);
        let (served, _) = served_route(&host, "/ep_one").await;
        assert_eq!(served["on_declared_version"], false, "{served}");
    }
    volume.update(&[("webapp.toml", &table("ep_two"))]);
    eventually(
        Duration::from_secs(10),
        WithLog("the fixed file serves", &host),
        || async { get(&client, &host.url("/ep_one")).await.1 == "2" },
    )
    .await;
    assert_eq!(changes("ok").await, 1.0);
    let on = value(
        &scrape(&host).await,
        "webapp_route_on_declared_version",
        &[("path", "/ep_one")],
    );
    assert_eq!(on, 1.0);
    assert_eq!(
        changes("rejected").await,
        3.0,
        "a refused text was counted again"
    );
    let log = host.log();
    assert!(
        log.contains("metrics_prefix"),
        "the refusal names the fixed setting\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_canary_that_fails_is_rolled_back_and_held_back_on_every_host() {
    // `/ep_one` rolls out new declarations as a 50 % canary.
    let declare = |stem: &str| {
        format!(
            "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\ncanary = 50\n",
            component(stem).display()
        )
        .into_bytes()
    };
    let volume = ConfigMapVolume::new(&[("webapp.toml", &declare("ep_one"))]);
    let config = volume.path("webapp.toml");
    let pods = [host_on(&config), host_on(&config)];
    for pod in &pods {
        until_watching(pod, volume.dir.path()).await;
    }
    // The ConfigMap now declares a failing component.
    volume.update(&[("webapp.toml", &declare("ep_error"))]);
    let client = client();
    for pod in &pods {
        until_rolled_back_for_errors(pod, "/ep_one").await;
        // Held back: only the stable version serves, and the pod says it
        // is not on the declared version.
        for _ in 0..20 {
            assert_eq!(
                get(&client, &pod.url("/ep_one")).await,
                (StatusCode::OK, "1".into())
            );
        }
        let scrape = scrape(pod).await;
        let on = value(
            &scrape,
            "webapp_route_on_declared_version",
            &[("path", "/ep_one")],
        );
        assert_eq!(on, 0.0);
        assert_eq!(
            value(&scrape, "webapp_held_back_versions", &[("path", "/ep_one")]),
            1.0
        );
    }
    // A new declaration releases the hold: it rolls out again (and, being
    // the stable version's own component, ends on it at once).
    volume.update(&[("webapp.toml", &declare("ep_one"))]);
    for pod in &pods {
        until_on_declared_version(pod, "/ep_one").await;
    }
    // An operator's canary under way when the declaration goes back to the
    // held-back component: that rollout ends (it must not go on under a
    // declaration it is not), and the held-back version does not serve.
    let pod = &pods[0];
    let other = variant(&component("ep_one"), &nonce("operator"));
    let url = "/routes/ep_one/component?canary=50";
    let (status, answer) = admin(pod, "PUT", url, other, None).await;
    assert_eq!(status, 200, "{answer}");
    volume.update(&[("webapp.toml", &declare("ep_error"))]);
    eventually(
        Duration::from_secs(10),
        WithLog("the operator's rollout ended", pod),
        || async { served_route(pod, "/ep_one").await.0["rollout"].is_null() },
    )
    .await;
    assert_eq!(
        rollout_decisions(&scrape(pod).await, "/ep_one", "rollback", "superseded"),
        1.0
    );
    for _ in 0..20 {
        assert_eq!(
            get(&client, &pod.url("/ep_one")).await,
            (StatusCode::OK, "1".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_held_under_two_declarations_stays_held_under_each() {
    // Two declarations naming the same failing bytes (two files), each
    // rolled out as a canary and rolled back: going back to the first must
    // not serve them again.
    let copies = tempfile::tempdir().unwrap();
    let (first, second) = (copies.path().join("a.wasm"), copies.path().join("b.wasm"));
    std::fs::copy(component("ep_error"), &first).unwrap();
    std::fs::copy(component("ep_error"), &second).unwrap();
    let declare = |file: &Path| {
        format!(
            "[[route]]\npath = \"/ep_one\"\ncomponent = \"{}\"\n[route.rollout]\ncanary = 50\n",
            file.display()
        )
        .into_bytes()
    };
    let volume = ConfigMapVolume::new(&[("webapp.toml", &declare(&component("ep_one")))]);
    let pod = host_on(&volume.path("webapp.toml"));
    until_watching(&pod, volume.dir.path()).await;
    let client = client();
    let rolled_back = |n: f64| {
        let (pod, client) = (&pod, &client);
        async move {
            eventually(
                Duration::from_secs(30),
                WithLog("the failing canary rolled back", pod),
                || async {
                    for _ in 0..10 {
                        get(client, &pod.url("/ep_one")).await;
                    }
                    rollout_decisions(&scrape(pod).await, "/ep_one", "rollback", "errors") == n
                },
            )
            .await;
        }
    };
    volume.update(&[("webapp.toml", &declare(&first))]);
    rolled_back(1.0).await;
    volume.update(&[("webapp.toml", &declare(&second))]);
    rolled_back(2.0).await;
    volume.update(&[("webapp.toml", &declare(&first))]);
    eventually(
        Duration::from_secs(10),
        WithLog("the first declaration is read again", &pod),
        || async {
            value(
                &scrape(&pod).await,
                "webapp_route_changes_total",
                &[("source", "config"), ("result", "ok")],
            ) == 3.0
        },
    )
    .await;
    for _ in 0..20 {
        assert_eq!(
            get(&client, &pod.url("/ep_one")).await,
            (StatusCode::OK, "1".into())
        );
    }
    let (served, _) = served_route(&pod, "/ep_one").await;
    assert!(served["rollout"].is_null(), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_file_in_a_configmap_swaps_when_the_kubelet_updates_it() {
    // A ConfigMap with the table and the component itself (`binaryData`),
    // the route naming the file beside the table.
    let table = b"[[route]]\npath = \"/ep_one\"\ncomponent = \"ep_one.wasm\"\n";
    let one = std::fs::read(component("ep_one")).unwrap();
    let two = std::fs::read(component("ep_two")).unwrap();
    let volume = ConfigMapVolume::new(&[("webapp.toml", table), ("ep_one.wasm", &one)]);
    let pod = host_on(&volume.path("webapp.toml"));
    until_watching(&pod, volume.dir.path()).await;
    let client = client();
    assert_eq!(get(&client, &pod.url("/ep_one")).await.1, "1");
    // The same table, the component's bytes changed: the folder switch
    // alone brings the new version.
    volume.update(&[("webapp.toml", table), ("ep_one.wasm", &two)]);
    eventually(
        Duration::from_secs(10),
        WithLog("the ConfigMap's new component serves", &pod),
        || async { get(&client, &pod.url("/ep_one")).await.1 == "2" },
    )
    .await;
    let (route, _) = served_route(&pod, "/ep_one").await;
    assert_eq!(route["digest"], sha256_hex(&two).as_str());
}
