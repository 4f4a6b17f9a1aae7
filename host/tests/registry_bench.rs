//! A benchmark, not a test (ignored; run it by name in a release build):
//!
//!   cargo test --release -p host --test registry_bench -- --ignored --nocapture
//!
//! Two hosts ("pods") read one route table laid out as the kubelet lays out
//! a ConfigMap. Each round pushes a never-seen component (a demo component
//! with a fresh custom section: nothing pulled, nothing compiled) to a real
//! registry (Debian's `docker-registry` on 127.0.0.1), switches the folder
//! to its digest, and measures per pod the time from the switch to the
//! first answer from it, and, from the pods' logs, the pull and the compile.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use testkit::*;

const ROUNDS: usize = 7;

fn table(reference: &str) -> Vec<u8> {
    config_text("", &[("/ep_one", PathBuf::from(reference))]).into_bytes()
}

/// The last "pulled in X" and "loaded in Y (compiled)" of `log`, as written.
fn last_figures(log: &str) -> (String, String) {
    let after = |needle: &str, line: &str| {
        line.split(needle)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    let pulled = log
        .lines()
        .rev()
        .find_map(|l| after("pulled in ", l))
        .unwrap_or_default();
    let loaded = log
        .lines()
        .rev()
        .filter(|l| l.contains("(compiled)"))
        .find_map(|l| after("loaded in ", l))
        .unwrap_or_default();
    (pulled, loaded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name, in a release build"]
async fn bench_a_never_seen_digest_through_a_configmap_switch() {
    let registry = OciRegistry::start().expect("docker-registry is installed");
    let host = registry.host();
    let first = registry
        .push(
            "bench/ep",
            "start",
            &std::fs::read(component("ep_one")).unwrap(),
        )
        .await;
    let volume = ConfigMapVolume::new(&[("webapp.toml", &table(&first))]);
    let config = volume.path("webapp.toml");
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let pods: Vec<Host> = caches
        .iter()
        .map(|cache| {
            Host::start_with_config_file(
                &config,
                &[
                    "--cache-dir",
                    cache.path().to_str().unwrap(),
                    "--registry-insecure",
                    &host,
                ],
            )
        })
        .collect();
    for pod in &pods {
        until_watching(pod, volume.dir.path()).await;
    }
    println!("| round | pod | switch to first answer | pull | compile |");
    println!("|---|---|---|---|---|");
    let mut body = "1";
    for round in 1..=ROUNDS {
        let (stem, next) = if body == "1" {
            ("ep_two", "2")
        } else {
            ("ep_one", "1")
        };
        let bytes = variant(&component(stem), &nonce("bench"));
        let reference = registry
            .push("bench/ep", &format!("r{round}"), &bytes)
            .await;
        let switched = Instant::now();
        let answers = answers_through_a_switch(&pods, "/ep_one", next, async {
            volume.update(&[("webapp.toml", &table(&reference))])
        })
        .await;
        for (n, ((_, first_new), pod)) in answers.iter().zip(&pods).enumerate() {
            let took = first_new.expect("the pod serves the new digest");
            let (pulled, compiled) = last_figures(&pod.log());
            println!(
                "| {round} | {} | {took:.0?} | {pulled} | {compiled} |",
                n + 1
            );
        }
        assert!(switched.elapsed() < Duration::from_secs(60));
        body = next;
    }
}
