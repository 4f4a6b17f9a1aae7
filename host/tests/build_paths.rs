//! The components built the other way, with cargo-component (wasm32-wasip1
//! plus the preview1 adapter), serve exactly like the wasm32-wasip2 builds.

use testkit::*;

#[tokio::test]
async fn components_built_by_cargo_component_serve_the_same() {
    let Some(dir) = components_via_cargo_component() else {
        return;
    };
    let routes: Vec<_> = ENDPOINTS
        .iter()
        .map(|(path, stem, _, _)| (*path, dir.join(format!("{stem}.wasm"))))
        .collect();
    let host = Host::start(&config_text("", &routes), &[]);
    assert_demo_endpoints_answer(&host).await;
}
