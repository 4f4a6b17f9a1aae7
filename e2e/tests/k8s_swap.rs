//! `scripts/k8s-swap` against two real hosts standing in for two pods: a
//! stand-in `kubectl` lists them and "forwards" to each one's admin API (it
//! says which local port, as `kubectl port-forward POD :5001` does, and
//! that port is the host's own), so the script runs unchanged.

use std::path::Path;
use std::process::{Command, Output};

use testkit::*;

/// Answers the two kubectl commands the script runs, from `FAKE_PODS`
/// (`pod/name=port ...`).
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
shift 2 # -n NAMESPACE
case $1 in
  get) for p in $FAKE_PODS; do echo "${p%%=*}"; done ;;
  port-forward)
    for p in $FAKE_PODS; do
      [ "${p%%=*}" = "$2" ] && echo "Forwarding from 127.0.0.1:${p#*=} -> 5001"
    done
    exec sleep 600 ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"#;

fn k8s_swap(bin: &Path, pods: &[&Host], args: &[&str]) -> Output {
    let fake_pods: Vec<String> = pods
        .iter()
        .enumerate()
        .map(|(i, host)| format!("pod/webapp-{i}={}", host.admin.unwrap().port()))
        .collect();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(repo_root().join("scripts/k8s-swap"))
        .args(args)
        .env("PATH", path)
        .env("FAKE_PODS", fake_pods.join(" "))
        .output()
        .expect("running scripts/k8s-swap")
}

async fn rollouts(pods: &[&Host]) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for host in pods {
        all.push(served_route(host, "/ep_one").await.0["rollout"].clone());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_swap_starts_promotes_and_rolls_back_canaries_on_every_pod() {
    // The script talks to the admin API with curl.
    let Some(_) = tool("curl") else { return };
    let bin = tempfile::tempdir().unwrap();
    let kubectl = bin.path().join("kubectl");
    std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (Host::demo(), Host::demo());
    let pods = [&a, &b];
    let ep_two = component("ep_two");
    let new_version = ep_two.to_str().unwrap();
    let show = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // Usage errors change nothing.
    for args in [
        vec!["/ep_one", new_version, "--canary", "0"],
        vec!["/ep_one", new_version, "--canary", "ten"],
        vec!["/ep_one", "--promote", "extra"],
        vec!["ep_one", "--rollback"],
        vec!["/ep_one", "/no/such/file.wasm"],
    ] {
        let out = k8s_swap(bin.path(), &pods, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
    }
    assert!(rollouts(&pods).await.iter().all(|r| r.is_null()));

    let out = k8s_swap(
        bin.path(),
        &pods,
        &["/ep_one", new_version, "--canary", "20"],
    );
    assert!(out.status.success(), "{}", show(&out));
    for rollout in rollouts(&pods).await {
        assert_eq!(rollout["share"], 20, "{rollout}");
        assert_eq!(
            rollout["candidate_digest"],
            sha256_hex(&std::fs::read(&ep_two).unwrap())
        );
    }
    let out = k8s_swap(bin.path(), &pods, &["/ep_one", "--rollback"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(rollouts(&pods).await.iter().all(|r| r.is_null()));
    // Nothing left to end: every pod says so, and so does the exit status.
    let out = k8s_swap(bin.path(), &pods, &["/ep_one", "--promote"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("no rollout is under way"),
        "{}",
        show(&out)
    );

    let out = k8s_swap(
        bin.path(),
        &pods,
        &["/ep_one", new_version, "--canary", "50"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = k8s_swap(bin.path(), &pods, &["/ep_one", "--promote"]);
    assert!(out.status.success(), "{}", show(&out));
    for host in pods {
        assert_eq!(get(&client(), &host.url("/ep_one")).await.1, "2");
    }
}
