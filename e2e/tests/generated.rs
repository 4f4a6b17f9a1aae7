//! The ConfigMaps under `k8s/` carry exactly their sources under `grafana/`
//! and `prometheus/` (see `e2e/src/lib.rs`).

use e2e::{GENERATED, render};
use serde::Deserialize;
use testkit::repo_root;

#[test]
fn generated_manifests_match_their_sources() {
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    for generated in GENERATED {
        let path = repo_root().join(generated.path);
        let expected = render(repo_root(), generated).unwrap();
        if update {
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is out of date with its sources: run `UPDATE_GENERATED=1 cargo test -p e2e --test generated`",
            generated.path
        );
    }
}

#[test]
fn generated_config_maps_parse_back_to_their_sources() {
    for generated in GENERATED {
        let text = render(repo_root(), generated).unwrap();
        let documents = yaml_documents(&text);
        assert_eq!(documents.len(), generated.config_maps.len());
        for (doc, (name, files)) in documents.iter().zip(generated.config_maps) {
            assert_eq!(doc["metadata"]["name"].as_str(), Some(*name));
            for (key, source) in files.iter() {
                let source_text = std::fs::read_to_string(repo_root().join(source)).unwrap();
                assert_eq!(
                    doc["data"][key].as_str(),
                    Some(source_text.as_str()),
                    "{name}/{key}"
                );
            }
        }
    }
}

fn yaml_documents(text: &str) -> Vec<serde_norway::Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde_norway::Value::deserialize(doc).unwrap())
        .collect()
}
