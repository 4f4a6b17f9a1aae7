//! Offline checks of everything users deploy: the Kubernetes manifests
//! against the API's schemas, the dashboard against Grafana's own types, the
//! Prometheus configs and every panel query through promtool.
//!
//! The external checkers (kubernetes-validate from PyPI, promtool from
//! Debian's prometheus, @grafana/schema + ajv from npm in `e2e/`) are skipped
//! when absent, unless REQUIRE_TOOLS is set: `.ci/run` installs them and sets it.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use testkit::{repo_root, tempfile, tool};

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join("grafana/dashboards/webapp.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn run(command: &mut Command) {
    let out = command.output().expect("running a checker");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every manifest: those `kubectl apply -f k8s/` applies, then the
/// optional ones in `k8s/optional/` (not applied by it: it does not recurse).
fn manifests() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["k8s", "k8s/optional"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("optional"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

#[test]
fn k8s_holds_only_manifests_kubectl_applies_in_order() {
    let files = manifests();
    for file in &files {
        assert_eq!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml"),
            "stray file {file:?}"
        );
    }
    // `kubectl apply -f k8s/` goes alphabetically: the namespace comes first.
    assert!(files[0].ends_with("00-namespace.yaml"), "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in yaml_documents(&text) {
            let kind = doc["kind"].as_str().unwrap();
            if kind != "Namespace" {
                assert_eq!(
                    doc["metadata"]["namespace"].as_str(),
                    Some("monitoring"),
                    "{file:?} {kind}"
                );
            }
        }
    }
}

#[test]
fn k8s_manifests_validate_strictly() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    run(Command::new(validate)
        .args(["--strict", "-k", "1.30.0"])
        .args(manifests()));
}

#[test]
fn workloads_are_hardened_and_probed() {
    for name in [
        "webapp.yaml",
        "generator.yaml",
        "prometheus.yaml",
        "grafana.yaml",
        "optional/registry.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join("k8s").join(name)).unwrap();
        for doc in yaml_documents(&text) {
            if doc["kind"].as_str() != Some("Deployment") {
                continue;
            }
            let pod = &doc["spec"]["template"]["spec"];
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"].as_bool(),
                Some(true),
                "{name}"
            );
            for container in pod["containers"].as_sequence().unwrap() {
                let security = &container["securityContext"];
                assert_eq!(
                    security["readOnlyRootFilesystem"].as_bool(),
                    Some(true),
                    "{name}"
                );
                assert_eq!(
                    security["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{name}"
                );
                assert!(container["resources"]["requests"].is_mapping(), "{name}");
                assert!(container["resources"]["limits"].is_mapping(), "{name}");
                if name != "generator.yaml" {
                    assert!(container["readinessProbe"].is_mapping(), "{name}");
                    assert!(container["livenessProbe"].is_mapping(), "{name}");
                }
            }
        }
    }
}

/// The webapp's probes and Prometheus use the probes-and-metrics listener
/// (`ops_listen`), which clients cannot saturate; the Service exposes only
/// the public port.
#[test]
fn probes_and_scrapes_use_the_ops_listener() {
    let text = std::fs::read_to_string(repo_root().join("k8s/webapp.yaml")).unwrap();
    let docs = yaml_documents(&text);
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let port_of = |name: &str| {
        container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port named {name}"))
    };
    let env = |name: &str| {
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("no {name} in the webapp's env"))
            .to_string()
    };
    let ops: std::net::SocketAddr = env("WEBAPP_OPS_LISTEN").parse().unwrap();
    assert_eq!(port_of("ops"), u64::from(ops.port()));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"].as_str(),
            Some("ops"),
            "{probe}"
        );
    }
    let service = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service"))
        .unwrap();
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        assert_ne!(port["targetPort"].as_str(), Some("ops"), "{port:?}");
        assert_ne!(
            port["port"].as_u64(),
            Some(u64::from(ops.port())),
            "{port:?}"
        );
    }
    let prometheus =
        std::fs::read_to_string(repo_root().join("prometheus/kubernetes.yml")).unwrap();
    let config: serde_norway::Value = serde_norway::from_str(&prometheus).unwrap();
    let keeps_ops = config["scrape_configs"][0]["relabel_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|r| {
            r["source_labels"][0].as_str() == Some("__meta_kubernetes_pod_container_port_name")
                && r["regex"].as_str() == Some("ops")
                && r["action"].as_str() == Some("keep")
        });
    assert!(keeps_ops, "Prometheus does not scrape the ops port");
}

/// The route table the pods read (the ConfigMap webapp-config) names the
/// components the image carries, and serves the demo: here with the image's
/// folder mapped onto this build's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_route_table_serves_the_images_components() {
    let text = std::fs::read_to_string(repo_root().join("k8s/webapp-config.yaml")).unwrap();
    let docs = yaml_documents(&text);
    let table = docs[0]["data"]["webapp.toml"].as_str().unwrap();
    let image_folder = "/app/target/wasm32-wasip2/release/";
    let dockerfile = std::fs::read_to_string(repo_root().join("host/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("ep_*.wasm {image_folder}")),
        "the image does not carry the components where the ConfigMap names them"
    );
    let here = testkit::components().join("");
    let local = table.replace(image_folder, here.to_str().unwrap());
    let host = testkit::Host::start(&local, &[]);
    testkit::assert_demo_endpoints_answer(&host).await;
}

#[test]
fn dashboard_validates_against_grafanas_own_types() {
    let node_bin = repo_root().join("e2e/node_modules/.bin");
    let generator = node_bin.join("ts-json-schema-generator");
    if !generator.exists() {
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "npm tools missing: run `npm ci --prefix e2e`"
        );
        eprintln!("npm tools missing (npm ci --prefix e2e): skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("dashboard.schema.json");
    // Grafana's types describe annotations of its own data source only
    // (their `target` says "TODO: this should be a regular DataQuery"):
    // a Prometheus annotation's query fields, which the Prometheus data
    // source reads, are checked by `dashboard_has_...` below instead.
    let mut checked = dashboard();
    for annotation in checked["annotations"]["list"].as_array_mut().unwrap() {
        let fields = annotation.as_object_mut().unwrap();
        for key in PROMETHEUS_ANNOTATION_FIELDS {
            fields.remove(*key);
        }
    }
    let dashboard_file = dir.path().join("webapp.json");
    std::fs::write(&dashboard_file, checked.to_string()).unwrap();
    let types = repo_root()
        .join("e2e/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts");
    run(Command::new(generator)
        .arg("--path")
        .arg(types)
        .args(["--type", "Dashboard", "--no-type-check", "-o"])
        .arg(&schema));
    run(Command::new(node_bin.join("ajv"))
        .args([
            "validate",
            "--spec=draft7",
            "--strict=false",
            "--all-errors",
            "-s",
        ])
        .arg(&schema)
        .arg("-d")
        .arg(&dashboard_file));
}

/// What the Prometheus data source reads from an annotation besides
/// Grafana's common fields, and the JSON type of each.
const PROMETHEUS_ANNOTATION_FIELDS: &[&str] = &[
    "expr",
    "step",
    "titleFormat",
    "textFormat",
    "tagKeys",
    "useValueForTime",
];

#[test]
fn dashboard_has_the_original_eight_panels_and_the_wasm_ones() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "webapp-wasm-host");
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for title in [
        "Requests per second",
        "Errors per second",
        "Total requests",
        "Average response time",
        "Requests under 250 ms",
        "Request duration p50",
        "Memory usage",
        "CPU usage",
        "Memory per component",
        "CPU per component",
        "Instantiation time p99",
        "Guest failures",
        "In-flight requests",
        "Versions",
        "Requests per second by version",
        "5xx share by version",
        "Request duration p50 by version",
        "Request duration p99 by version",
        "Rollout share",
    ] {
        assert!(titles.contains(&title), "no panel {title:?} in {titles:?}");
    }
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id at {}",
            panel["title"]
        );
    }
    // Swaps and rollout decisions mark every time series panel.
    let annotations = e2e::annotations(&dashboard);
    let names: Vec<&str> = annotations
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Swaps", "Promotions", "Rollbacks"]);
    for annotation in &annotations {
        assert_eq!(annotation["enable"], true);
        assert_eq!(annotation["datasource"]["uid"], "${datasource}");
        assert!(annotation["filter"].is_null(), "on every panel");
        for key in ["step", "titleFormat", "textFormat", "tagKeys"] {
            assert!(annotation[key].is_string(), "{key} of {annotation}");
        }
        assert!(annotation["useValueForTime"].is_boolean());
    }
    for query in e2e::queries(&dashboard) {
        let (title, expr) = (query.title, query.expr);
        assert_eq!(
            query.source["datasource"]["uid"], "${datasource}",
            "{title}"
        );
        // Importable into any Grafana: every query follows the job and
        // instance variables.
        let selectors = expr.matches('{').count();
        assert!(selectors > 0, "{title}: {expr}");
        assert_eq!(
            expr.matches(r#"job=~"$job""#).count(),
            selectors,
            "{title}: {expr}"
        );
        assert_eq!(
            expr.matches(r#"instance=~"$instance""#).count(),
            selectors,
            "{title}: {expr}"
        );
    }
    for panel in e2e::data_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap();
        assert!(
            !panel["description"].as_str().unwrap_or_default().is_empty(),
            "{title}"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{title} has no unit"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("webapp") || title.contains("Memory") || title.contains("CPU"),
                "{title}: {expr}"
            );
            assert!(
                !target["legendFormat"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{title}"
            );
        }
    }
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    for name in ["job", "instance"] {
        assert_eq!(variable(name)["type"], "query");
        assert_eq!(
            variable(name)["includeAll"],
            true,
            "${name}: All by default"
        );
        assert_eq!(variable(name)["multi"], true);
        assert_eq!(variable(name)["datasource"]["uid"], "${datasource}");
    }
    // Per-path panels aggregate across replicas by path.
    for panel in e2e::data_panels(&dashboard).into_iter().filter(|p| {
        p["targets"][0]["legendFormat"]
            .as_str()
            .is_some_and(|l| l.starts_with("{{path}}"))
    }) {
        let expr = panel["targets"][0]["expr"].as_str().unwrap();
        assert!(
            expr.contains("by (path") || expr.contains("by (le, path"),
            "{expr}"
        );
    }
}

/// A command on PATH, or `None` (and a skip) when it is absent and not required.
fn promtool() -> Option<PathBuf> {
    tool("promtool")
}

#[test]
fn prometheus_configs_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(repo_root().join("prometheus/prometheus.yml")));

    // Debian's promtool is built without Kubernetes discovery: check the
    // discovery block's shape here, and everything else with promtool after
    // swapping discovery for a static target.
    let text = std::fs::read_to_string(repo_root().join("prometheus/kubernetes.yml")).unwrap();
    let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let job = config["scrape_configs"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|j| j["job_name"] == "webapp")
        .expect("a webapp job");
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"].as_str(), Some("pod"), "each pod is a target");
    assert_eq!(sd["namespaces"]["names"][0].as_str(), Some("monitoring"));
    let keeps: Vec<_> = job["relabel_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "keep")
        .map(|r| {
            (
                r["source_labels"][0].as_str().unwrap(),
                r["regex"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        keeps.contains(&("__meta_kubernetes_pod_label_app", "webapp")),
        "{keeps:?}"
    );
    let mapping = job.as_mapping_mut().unwrap();
    mapping.remove("kubernetes_sd_configs");
    mapping.insert(
        "static_configs".into(),
        serde_norway::from_str("[{targets: ['webapp:5000']}]").unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let swapped = dir.path().join("kubernetes-static.yml");
    std::fs::write(&swapped, serde_norway::to_string(&config).unwrap()).unwrap();
    run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(&swapped));
}

#[test]
fn every_panel_query_parses_in_promtool() {
    let Some(promtool) = promtool() else { return };
    let mut rules = String::from("groups:\n  - name: dashboard_queries\n    rules:\n");
    let dashboard = dashboard();
    for (i, query) in e2e::queries(&dashboard).iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(query.expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("panels.rules.yml");
    std::fs::write(&file, rules).unwrap();
    run(Command::new(promtool).args(["check", "rules"]).arg(&file));
}

fn yaml_documents(text: &str) -> Vec<serde_norway::Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde_norway::Value::deserialize(doc).unwrap())
        .collect()
}
