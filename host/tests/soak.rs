//! A bounded soak: two minutes of real traffic (the generator's open loop)
//! mixed with a steady trickle of every fault. Nothing goes unanswered and
//! resident memory shows no growth trend. SOAK_SECONDS changes the length.

use std::time::{Duration, Instant};

use testkit::*;

const FAULTS: &[(&str, &str, u16)] = &[
    ("/fault/trap", "", 500),
    ("/fault/panic", "", 500),
    ("/fault/no-response", "", 500),
    ("/fault/alloc", "max_memory_mib = 16\n", 500),
    ("/fault/spin", "timeout = \"500ms\"\n", 504),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_and_faults_for_minutes_lose_nothing_and_leak_nothing() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    // The leak check compares two halves of the run after a warm-up: too
    // short a run would leave it nothing to compare.
    assert!(
        seconds >= 20,
        "SOAK_SECONDS must be at least 20, not {seconds}: the leak check needs samples"
    );
    // 24 samples of resident memory whatever the length (every 5 s of 120 s).
    let sample_every = Duration::from_secs(seconds) / 24;
    let mut config = config_text("", &demo_routes());
    for (path, extra, _) in FAULTS {
        config.push_str(&format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n{extra}",
            component("faults").display()
        ));
    }
    let host = Host::start(&config, &[]);
    let generator = start_generator(
        &host,
        &["--rate", "100", "--duration", &format!("{seconds}s")],
    );

    let client = client();
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut faults_sent = 0u32;
    let mut next_sample = started;
    while started.elapsed() < Duration::from_secs(seconds) {
        let (path, _, status) = FAULTS[faults_sent as usize % FAULTS.len()];
        assert_eq!(
            get(&client, &host.url(path)).await.0.as_u16(),
            status,
            "{path}"
        );
        faults_sent += 1;
        if Instant::now() >= next_sample {
            rss.push(host.rss_bytes() as f64 / (1 << 20) as f64);
            next_sample += sample_every;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = tokio::task::block_in_place(|| generator.wait_with_output()).unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = &summary["total"];
    assert_eq!(
        total["errors"],
        serde_json::json!({"timeout": 0, "refused": 0, "other": 0}),
        "{total}"
    );
    let answered: u64 = total["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(answered, total["requests"].as_u64().unwrap());
    assert!(
        answered as f64 > 0.9 * 100.0 * seconds as f64,
        "{answered} answered"
    );

    // The host counted every request of both kinds.
    let scrape = scrape(&host).await;
    let counted = value(&scrape, "webapp_http_request_total", &[]);
    assert_eq!(counted, answered as f64 + f64::from(faults_sent));

    // No growth trend: the second half's peak is not above the first half's
    // (after a warm-up, the first sixth of the run) by more than a little.
    let warm: Vec<f64> = rss.iter().copied().skip(4).collect();
    assert!(
        warm.len() >= 16,
        "only {} memory samples: {rss:?}",
        warm.len()
    );
    let (first, second) = warm.split_at(warm.len() / 2);
    let peak = |xs: &[f64]| xs.iter().copied().fold(0.0, f64::max);
    eprintln!("resident memory every {sample_every:?} (MiB): {rss:.0?}");
    assert!(
        peak(second) < peak(first) + 16.0,
        "resident memory grew: first half peak {:.0} MiB, second half {:.0} MiB",
        peak(first),
        peak(second)
    );
}
