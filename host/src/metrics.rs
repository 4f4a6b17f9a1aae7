//! The metrics the host exports on `/metrics`.
//!
//! HTTP metrics keep the names and labels of prometheus_flask_exporter (with
//! a configurable prefix, `flask` reproducing them exactly) so dashboards and
//! queries written for the original keep working. Wasm metrics say what the
//! Flask app could not: how long instantiation takes and how guests fail.
//! Label values come only from the route table and `labels.rs`.
//!
//! Series of what is gone do not stay forever: a version that stopped
//! serving, and a route a reload removed, are *retired*. A retired version
//! keeps its series a while (the last minutes of a rollout stay on the
//! dashboard); a removed route loses its series at once except its change
//! and decision counters, which stay a while so a scrape sees their last
//! increments (a reload that removes a route mid-rollout counts a
//! `superseded` rollback in the same step) and continue if the route comes
//! back meanwhile. Both go after `RETIRED_KEPT_FOR`, or sooner beyond a
//! count, so the number of series stays bounded however routes churn.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use wasmtime::Result;

use crate::process::ProcessMetrics;
use crate::usage::{GuestUsage, Usage};

/// One route's guest-usage series (see `usage.rs` for what each measures).
pub struct RouteMeters {
    cpu: Counter,
    memory: Histogram,
    instances: IntGauge,
    time: Histogram,
}

impl RouteMeters {
    /// Counts an instance alive until the returned usage reports what its
    /// guest cost.
    pub fn guest_usage(self: &Arc<Self>) -> Arc<GuestUsage> {
        self.instances.inc();
        let meters = self.clone();
        GuestUsage::new(Box::new(move |usage: Usage| {
            meters.instances.dec();
            meters.cpu.inc_by(usage.cpu.as_secs_f64());
            meters.memory.observe(usage.peak_memory_bytes as f64);
            meters.time.observe(usage.inside.as_secs_f64());
        }))
    }
}

/// One version's series on one route: its answers by status class and
/// their durations. Resolved once, when the version starts serving: a
/// request that finishes after the series were retired counts nowhere
/// rather than bringing them back.
pub struct VersionMeters {
    /// 2xx, 3xx, 4xx, 5xx (a 1xx is never a final answer).
    by_class: [Counter; 4],
    /// Duration until the response body is complete.
    duration: Histogram,
}

impl VersionMeters {
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(2, 5) - 2;
        self.by_class[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// A route against its declaration, as published.
#[derive(Debug, Clone, Copy)]
pub struct RouteState {
    /// Versions held back on the route.
    pub held_back: usize,
    /// Whether it serves, whole, the version its declaration names.
    pub on_declared: bool,
}

/// The `class` label values, indexed like `VersionMeters::by_class`.
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// A version that stopped serving keeps its series this long, so the last
/// minutes of a rollout stay on the dashboard, and so does a removed route
/// its change and decision counters (a scrape sees their last counts)...
pub const RETIRED_KEPT_FOR: Duration = Duration::from_secs(300);
/// ...but at most this many versions per route: a route swapped 100 times
/// in a minute has no more than this many series besides those serving...
pub const RETIRED_VERSIONS_KEPT_PER_ROUTE: usize = 3;
/// ...and at most this many removed routes: a reload storm adding and
/// removing new paths keeps no more than this many routes' counters.
pub const REMOVED_ROUTES_KEPT: usize = 32;

/// Series kept a while after what they measure stopped.
struct Retired {
    /// The route of the series.
    path: String,
    /// The version that stopped serving `path`; `None`: `path` itself was
    /// removed, and these are its change and decision counters.
    version: Option<String>,
    /// When it stopped serving, or the route was removed.
    since: Instant,
}

impl Retired {
    /// What the count bound counts this among: the route's retired
    /// versions, or the removed routes.
    fn kind(&self) -> Option<&str> {
        self.version.is_some().then_some(self.path.as_str())
    }
}

/// The buckets of the Python client (and so of the original dashboards):
/// the Rust crate's defaults differ.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Instantiation from a `ProxyPre` with the pooling allocator takes tens of
/// microseconds; these resolve that range and show regressions into milliseconds.
/// Peak linear memory of an instance: a Rust component starts at about
/// 1 MiB; the pool allows up to 4 GiB.
const MEMORY_BUCKETS: &[f64] = &[
    65536.0,
    262144.0,
    1048576.0,
    2097152.0,
    4194304.0,
    8388608.0,
    16777216.0,
    33554432.0,
    67108864.0,
    134217728.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
];

const INSTANTIATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

pub struct Metrics {
    /// Off, per-request metrics are not recorded (to measure what they cost);
    /// process and component metrics still are.
    per_request: bool,
    registry: Registry,
    request_duration: HistogramVec,
    request_total: CounterVec,
    request_exceptions: CounterVec,
    in_flight: IntGauge,
    connections_open: IntGauge,
    connections_rejected: IntCounter,
    instantiation: HistogramVec,
    guest_failures: CounterVec,
    component_info: IntGaugeVec,
    swaps: CounterVec,
    swap_duration: HistogramVec,
    generation: IntGauge,
    changes: CounterVec,
    /// Per route: versions held back there (rolled back; `control/`).
    held_back: IntGaugeVec,
    /// Per route: 1 when it serves exactly what its declaration names.
    on_declared: IntGaugeVec,
    /// Per route: CPU time in guests, peak memory per instance, instances
    /// alive, time inside the guest (see `usage.rs` for what each includes).
    guest_cpu: CounterVec,
    guest_memory: HistogramVec,
    guest_instances: IntGaugeVec,
    guest_time: HistogramVec,
    /// Per route and version (`rollout.rs`): answers by status class, their
    /// durations, the share of requests; and rollout decisions by reason.
    version_requests: CounterVec,
    version_duration: HistogramVec,
    version_share: IntGaugeVec,
    rollout_decisions: CounterVec,
    /// Versions that stopped serving and removed routes, oldest first,
    /// until their series go.
    retired: Mutex<VecDeque<Retired>>,
    process: ProcessMetrics,
}

impl Metrics {
    pub fn new(prefix: &str, per_request: bool) -> Result<Self> {
        let registry = Registry::new();
        let name = |suffix: &str| format!("{prefix}_{suffix}");

        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                name("http_request_duration_seconds"),
                "Duration of HTTP requests in seconds, until the response body is complete.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "path", "status"],
        )?;
        let request_total = CounterVec::new(
            Opts::new(name("http_request_total"), "Total number of HTTP requests."),
            &["method", "status"],
        )?;
        let request_exceptions = CounterVec::new(
            Opts::new(
                name("http_request_exceptions_total"),
                "Total number of HTTP requests which resulted in an exception (a failing guest).",
            ),
            &["method", "status"],
        )?;
        let in_flight = IntGauge::with_opts(Opts::new(
            name("http_requests_in_flight"),
            "HTTP requests being served now.",
        ))?;
        let connections_open = IntGauge::with_opts(Opts::new(
            name("http_connections_open"),
            "Client connections open now.",
        ))?;
        let connections_rejected = IntCounter::with_opts(Opts::new(
            name("http_connections_rejected_total"),
            "Connections answered 503 and closed because the connection cap was reached.",
        ))?;
        let instantiation = HistogramVec::new(
            HistogramOpts::new(
                name("wasm_instantiation_duration_seconds"),
                "Time to create a fresh component instance for a request, per route.",
            )
            .buckets(INSTANTIATION_BUCKETS.to_vec()),
            &["path"],
        )?;
        let guest_failures = CounterVec::new(
            Opts::new(
                name("wasm_guest_failures_total"),
                "Requests a component failed to answer, per route and kind \
                 (trap, memory, fuel, no_response, error_code, timeout, instantiate).",
            ),
            &["path", "kind"],
        )?;
        let component_info = IntGaugeVec::new(
            Opts::new(
                name("component_info"),
                "The component serving each route now, by SHA-256 digest (value 1).",
            ),
            &["path", "digest"],
        )?;
        let swaps = CounterVec::new(
            Opts::new(
                name("component_swaps_total"),
                "Component replacements per route, by result (ok, rejected).",
            ),
            &["path", "result"],
        )?;
        let swap_duration = HistogramVec::new(
            HistogramOpts::new(
                name("component_swap_duration_seconds"),
                "Time to compile (or find compiled) and check a new component version.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["path"],
        )?;
        let generation = IntGauge::with_opts(Opts::new(
            name("routes_generation"),
            "Changes made to what is served since start (swaps and reloads applied).",
        ))?;
        let on_declared = IntGaugeVec::new(
            Opts::new(
                name("route_on_declared_version"),
                "1 when the route serves, whole, the version its declaration names (the \
                 component file the config names, as last read); 0 during a rollout, when \
                 that version is held back or failed to load, or when an operator's upload \
                 serves instead. Summed over pods: the pods on the declared version.",
            ),
            &["path"],
        )?;
        let held_back = IntGaugeVec::new(
            Opts::new(
                name("held_back_versions"),
                "Versions held back on a route: rolled back there (or interrupted by a \
                 restart), never served again from its file until its component changes or an \
                 operator names one.",
            ),
            &["path"],
        )?;
        let changes = CounterVec::new(
            Opts::new(
                name("route_changes_total"),
                "Requested changes to what is served, by source (upload, file, watch, reload, \
                 config: the watched config file; pull: a component pulled from a registry) \
                 and result (ok, rejected).",
            ),
            &["source", "result"],
        )?;
        let guest_cpu = CounterVec::new(
            Opts::new(
                name("component_cpu_seconds_total"),
                "CPU time spent running each route's guests: their instantiation and every \
                 poll of their call, with the WASI calls and body copies done in them; not \
                 the HTTP server's own work.",
            ),
            &["path"],
        )?;
        let guest_memory = HistogramVec::new(
            HistogramOpts::new(
                name("component_memory_peak_bytes"),
                "Peak linear memory of each request's instance, per route.",
            )
            .buckets(MEMORY_BUCKETS.to_vec()),
            &["path"],
        )?;
        let guest_instances = IntGaugeVec::new(
            Opts::new(
                name("component_instances"),
                "Component instances alive now, per route.",
            ),
            &["path"],
        )?;
        let guest_time = HistogramVec::new(
            HistogramOpts::new(
                name("component_guest_duration_seconds"),
                "Wall time from the start of instantiation to the guest's end, per route.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["path"],
        )?;
        let version_requests = CounterVec::new(
            Opts::new(
                name("version_requests_total"),
                "Requests answered by each component version (first 12 hex digits of its \
                 digest) per route, by status class (2xx, 3xx, 4xx, 5xx).",
            ),
            &["path", "version", "class"],
        )?;
        let version_duration = HistogramVec::new(
            HistogramOpts::new(
                name("version_request_duration_seconds"),
                "Duration of requests per route and component version, until the response \
                 body is complete.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["path", "version"],
        )?;
        let version_share = IntGaugeVec::new(
            Opts::new(
                name("version_share_percent"),
                "Share of each route's requests each component version serves now: 100 \
                 without a rollout; 0 for a version that stopped serving in the last minutes.",
            ),
            &["path", "version"],
        )?;
        let rollout_decisions = CounterVec::new(
            Opts::new(
                name("rollout_decisions_total"),
                "Ends of canary rollouts per route, by decision (promote, rollback) and reason \
                 (errors, latency, healthy, manual, superseded).",
            ),
            &["path", "decision", "reason"],
        )?;
        let info = IntGaugeVec::new(
            Opts::new(name("exporter_info"), "Information about the exporter."),
            &["version"],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(request_total.clone()))?;
        registry.register(Box::new(request_exceptions.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_rejected.clone()))?;
        registry.register(Box::new(instantiation.clone()))?;
        registry.register(Box::new(guest_failures.clone()))?;
        registry.register(Box::new(component_info.clone()))?;
        registry.register(Box::new(swaps.clone()))?;
        registry.register(Box::new(swap_duration.clone()))?;
        registry.register(Box::new(guest_cpu.clone()))?;
        registry.register(Box::new(guest_memory.clone()))?;
        registry.register(Box::new(guest_instances.clone()))?;
        registry.register(Box::new(guest_time.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(changes.clone()))?;
        registry.register(Box::new(held_back.clone()))?;
        registry.register(Box::new(on_declared.clone()))?;
        registry.register(Box::new(version_requests.clone()))?;
        registry.register(Box::new(version_duration.clone()))?;
        registry.register(Box::new(version_share.clone()))?;
        registry.register(Box::new(rollout_decisions.clone()))?;
        registry.register(Box::new(info))?;
        let process = ProcessMetrics::register(&registry)?;

        Ok(Self {
            per_request,
            registry,
            request_duration,
            request_total,
            request_exceptions,
            in_flight,
            connections_open,
            connections_rejected,
            instantiation,
            guest_failures,
            component_info,
            swaps,
            swap_duration,
            generation,
            changes,
            held_back,
            on_declared,
            guest_cpu,
            guest_memory,
            guest_instances,
            guest_time,
            version_requests,
            version_duration,
            version_share,
            rollout_decisions,
            retired: Mutex::default(),
            process,
        })
    }

    /// Counts one finished request; `path` is a route or `UNMATCHED_PATH`.
    pub fn observe_request(&self, method: &str, path: &str, status: StatusCode, elapsed: Duration) {
        if !self.per_request {
            return;
        }
        let status = status.as_str();
        self.request_duration
            .with_label_values(&[method, path, status])
            .observe(elapsed.as_secs_f64());
        self.request_total
            .with_label_values(&[method, status])
            .inc();
    }

    /// Counts a request a guest failed to answer.
    pub fn observe_guest_failure(&self, method: &str, path: &str, kind: &str, status: StatusCode) {
        self.guest_failures.with_label_values(&[path, kind]).inc();
        self.request_exceptions
            .with_label_values(&[method, status.as_str()])
            .inc();
    }

    pub fn observe_instantiation(&self, path: &str, elapsed: Duration) {
        if !self.per_request {
            return;
        }
        self.instantiation
            .with_label_values(&[path])
            .observe(elapsed.as_secs_f64());
    }

    /// Records that `path` is now served by `digest` (instead of `previous`).
    pub fn set_component(&self, path: &str, previous: Option<&str>, digest: &str) {
        if let Some(previous) = previous
            && previous != digest
        {
            let _ = self.component_info.remove_label_values(&[path, previous]);
        }
        self.component_info
            .with_label_values(&[path, digest])
            .set(1);
    }

    /// Records that `path` is no longer served.
    pub fn remove_component(&self, path: &str, digest: &str) {
        let _ = self.component_info.remove_label_values(&[path, digest]);
    }

    /// Counts one attempt to replace `path`'s component.
    pub fn observe_swap(&self, path: &str, accepted: bool, elapsed: Duration) {
        let result = if accepted { "ok" } else { "rejected" };
        self.swaps.with_label_values(&[path, result]).inc();
        self.swap_duration
            .with_label_values(&[path])
            .observe(elapsed.as_secs_f64());
    }

    /// One route's guest-usage series, resolved once (a label lookup per
    /// request and series measured several percent of a hello request).
    pub fn route_meters(&self, path: &str) -> Option<Arc<RouteMeters>> {
        self.per_request.then(|| {
            Arc::new(RouteMeters {
                cpu: self.guest_cpu.with_label_values(&[path]),
                memory: self.guest_memory.with_label_values(&[path]),
                instances: self.guest_instances.with_label_values(&[path]),
                time: self.guest_time.with_label_values(&[path]),
            })
        })
    }

    /// Creates a route's swap and rollout-decision series at zero, so the
    /// first swap or decision is an increase Prometheus can see (and the
    /// dashboard annotate), not a series born at 1. A route removed lately
    /// takes its counters back from retirement and continues them.
    pub fn route_added(&self, path: &str) {
        self.retired
            .lock()
            .expect("retired lock")
            .retain(|r| !(r.path == path && r.version.is_none()));
        for result in ["ok", "rejected"] {
            self.swaps.with_label_values(&[path, result]);
        }
        for decision in crate::judge::Decision::ALL {
            for reason in crate::judge::Reason::ALL {
                self.rollout_decisions
                    .with_label_values(&[path, decision.name(), reason.name()]);
            }
        }
    }

    /// `path` was removed (by a reload): every series of it goes now but
    /// its change and decision counters, which are retired (see the module
    /// docs). Call it after the route's last change was counted.
    pub fn route_removed(&self, path: &str) {
        self.remove_route_series(path);
        let mut retired = self.retired.lock().expect("retired lock");
        // Its versions' series went with the rest.
        retired.retain(|r| r.path != path);
        retired.push_back(Retired {
            path: path.to_owned(),
            version: None,
            since: Instant::now(),
        });
        self.forget_retired(&mut retired);
    }

    /// Removes every series of `path` but its change and decision counters.
    fn remove_route_series(&self, path: &str) {
        remove_path_series(&self.request_duration, path);
        remove_path_series(&self.instantiation, path);
        remove_path_series(&self.guest_failures, path);
        remove_path_series(&self.component_info, path);
        remove_path_series(&self.swap_duration, path);
        remove_path_series(&self.guest_cpu, path);
        remove_path_series(&self.guest_memory, path);
        remove_path_series(&self.guest_instances, path);
        remove_path_series(&self.guest_time, path);
        remove_path_series(&self.version_requests, path);
        remove_path_series(&self.version_duration, path);
        remove_path_series(&self.version_share, path);
    }

    /// Counts the end of a rollout on `path`.
    pub fn observe_decision(
        &self,
        path: &str,
        decision: crate::judge::Decision,
        reason: crate::judge::Reason,
    ) {
        self.rollout_decisions
            .with_label_values(&[path, decision.name(), reason.name()])
            .inc();
    }

    /// The series of `version` on `path`, for a version starting to serve
    /// (taken back from retirement if it served there lately); `None` with
    /// per-request metrics off.
    pub fn version_meters(&self, path: &str, version: &str) -> Option<Arc<VersionMeters>> {
        if !self.per_request {
            return None;
        }
        self.retired
            .lock()
            .expect("retired lock")
            .retain(|r| !(r.path == path && r.version.as_deref() == Some(version)));
        Some(Arc::new(VersionMeters {
            by_class: STATUS_CLASSES.map(|class| {
                self.version_requests
                    .with_label_values(&[path, version, class])
            }),
            duration: self.version_duration.with_label_values(&[path, version]),
        }))
    }

    /// Publishes the share of `path`'s requests `version` serves (percent).
    pub fn set_version_share(&self, path: &str, version: &str, share: u8) {
        if self.per_request {
            self.version_share
                .with_label_values(&[path, version])
                .set(i64::from(share));
        }
    }

    /// `version` stopped serving `path`: its share reads 0, and its series
    /// go after a while (see `RETIRED_KEPT_FOR`).
    pub fn retire_version(&self, path: &str, version: &str) {
        if !self.per_request {
            return;
        }
        self.set_version_share(path, version, 0);
        let mut retired = self.retired.lock().expect("retired lock");
        retired.retain(|r| !(r.path == path && r.version.as_deref() == Some(version)));
        retired.push_back(Retired {
            path: path.to_owned(),
            version: Some(version.to_owned()),
            since: Instant::now(),
        });
        self.forget_retired(&mut retired);
    }

    /// Removes the series of what was retired too long ago, or beyond its
    /// count bound (the oldest first).
    fn forget_retired(&self, retired: &mut VecDeque<Retired>) {
        let mut kept: VecDeque<Retired> = VecDeque::with_capacity(retired.len());
        let mut counted: HashMap<Option<String>, usize> = HashMap::new();
        // Newest first, so the bounds keep the latest.
        while let Some(r) = retired.pop_back() {
            let count = counted.entry(r.kind().map(str::to_owned)).or_default();
            let bound = match r.version {
                Some(_) => RETIRED_VERSIONS_KEPT_PER_ROUTE,
                None => REMOVED_ROUTES_KEPT,
            };
            if r.since.elapsed() < RETIRED_KEPT_FOR && *count < bound {
                *count += 1;
                kept.push_front(r);
                continue;
            }
            match &r.version {
                Some(version) => {
                    let labels = [r.path.as_str(), version.as_str()];
                    for class in STATUS_CLASSES {
                        let _ = self
                            .version_requests
                            .remove_label_values(&[&r.path, version, class]);
                    }
                    let _ = self.version_duration.remove_label_values(&labels);
                    let _ = self.version_share.remove_label_values(&labels);
                }
                None => {
                    remove_path_series(&self.swaps, &r.path);
                    remove_path_series(&self.rollout_decisions, &r.path);
                    // Again: a request in flight at the removal may have
                    // finished since, recording into its route's series anew.
                    self.remove_route_series(&r.path);
                }
            }
        }
        *retired = kept;
    }

    /// Publishes how many versions are held back on `path` (`None`: the
    /// route is gone).
    /// Publishes a route's state against its declaration: the versions
    /// held back there, and whether it serves the declared version; `None`
    /// for a removed route.
    pub fn set_route_state(&self, path: &str, state: Option<RouteState>) {
        match state {
            Some(state) => {
                self.held_back
                    .with_label_values(&[path])
                    .set(state.held_back as i64);
                self.on_declared
                    .with_label_values(&[path])
                    .set(i64::from(state.on_declared));
            }
            None => {
                let _ = self.held_back.remove_label_values(&[path]);
                let _ = self.on_declared.remove_label_values(&[path]);
            }
        }
    }

    /// Publishes the generation of what is served.
    pub fn set_generation(&self, generation: u64) {
        self.generation.set(generation as i64);
    }

    /// Counts one requested change; `source` is a fixed name from `control/`.
    pub fn observe_change(&self, source: &str, applied: bool) {
        let result = if applied { "ok" } else { "rejected" };
        self.changes.with_label_values(&[source, result]).inc();
    }

    /// Counts a request in (`true`) or out of flight.
    pub fn track_in_flight(&self, entering: bool) {
        if !self.per_request {
            return;
        }
        if entering {
            self.in_flight.inc();
        } else {
            self.in_flight.dec();
        }
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn connection_rejected(&self) {
        self.connections_rejected.inc();
    }

    /// The Prometheus text exposition of every metric, process values fresh.
    pub fn render(&self) -> String {
        self.process.refresh();
        self.forget_retired(&mut self.retired.lock().expect("retired lock"));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Removes every series of `vec` whose `path` label is `path`, whatever its
/// other labels (a route's requests by method and status, say).
fn remove_path_series<T: MetricVecBuilder>(vec: &MetricVec<T>, path: &str) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("path") == Some(&path) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{Decision, Reason};

    #[test]
    fn prefix_names_every_http_family() {
        let m = Metrics::new("flask", true).unwrap();
        m.observe_request("GET", "/ep_one", StatusCode::OK, Duration::from_millis(30));
        m.observe_guest_failure("GET", "/x", "trap", StatusCode::INTERNAL_SERVER_ERROR);
        m.observe_instantiation("/x", Duration::from_micros(40));
        let text = m.render();
        for family in [
            "flask_http_request_duration_seconds_bucket{method=\"GET\",path=\"/ep_one\",status=\"200\",le=\"0.05\"} 1",
            "flask_http_request_total{method=\"GET\",status=\"200\"} 1",
            "flask_http_request_exceptions_total{method=\"GET\",status=\"500\"} 1",
            "flask_exporter_info{version=",
            "flask_http_requests_in_flight 0",
            "flask_wasm_instantiation_duration_seconds_count{path=\"/x\"} 1",
            "flask_wasm_guest_failures_total{kind=\"trap\",path=\"/x\"} 1",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(family), "missing {family} in\n{text}");
        }
    }

    #[test]
    fn per_request_metrics_can_be_off() {
        let m = Metrics::new("webapp", false).unwrap();
        m.observe_request("GET", "/a", StatusCode::OK, Duration::from_millis(3));
        m.observe_instantiation("/a", Duration::from_micros(40));
        m.track_in_flight(true);
        let text = m.render();
        assert!(!text.contains("webapp_http_request_total{"), "{text}");
        assert!(!text.contains("webapp_wasm_instantiation_duration_seconds_count{"));
        assert!(text.contains("webapp_http_requests_in_flight 0"));
        assert!(text.contains("process_cpu_seconds_total"));
    }

    #[test]
    fn durations_use_the_python_client_buckets() {
        let m = Metrics::new("webapp", true).unwrap();
        m.observe_request("GET", "/a", StatusCode::OK, Duration::from_millis(300));
        let text = m.render();
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("webapp_http_request_duration_seconds_bucket"))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            les,
            [
                "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1",
                "2.5", "5", "7.5", "10", "+Inf"
            ]
        );
        assert!(text.contains("le=\"0.25\"} 0") && text.contains("le=\"0.5\"} 1"));
    }

    /// Whether `/metrics` has any series of `path`'s `version`.
    fn has_version(text: &str, path: &str, version: &str) -> bool {
        text.lines().any(|l| {
            l.contains(&format!("path=\"{path}\"")) && l.contains(&format!("version=\"{version}\""))
        })
    }

    #[test]
    fn retired_versions_keep_their_series_a_while_and_only_a_few_per_route() {
        let m = Metrics::new("webapp", true).unwrap();
        let serve = |path: &str, version: &str| {
            m.version_meters(path, version)
                .unwrap()
                .observe(StatusCode::OK, Duration::from_millis(1));
            m.set_version_share(path, version, 100);
        };
        for v in ["v0", "v1", "v2", "v3", "v4", "v5"] {
            serve("/a", v);
        }
        serve("/b", "b0");
        m.retire_version("/b", "b0");
        for v in ["v0", "v1", "v2", "v3", "v4"] {
            m.retire_version("/a", v);
        }
        let text = m.render();
        // Serving, and the 3 latest retired (share 0); the older ones gone.
        for v in ["v5", "v4", "v3", "v2"] {
            assert!(has_version(&text, "/a", v), "{v}:\n{text}");
        }
        assert!(text.contains("webapp_version_share_percent{path=\"/a\",version=\"v4\"} 0"));
        for v in ["v0", "v1"] {
            assert!(!has_version(&text, "/a", v), "{v}:\n{text}");
        }
        assert!(
            has_version(&text, "/b", "b0"),
            "each route has its own bound"
        );
        // A version serving again is taken back from retirement.
        serve("/a", "v2");
        for v in ["v6", "v7", "v8"] {
            serve("/a", v);
            m.retire_version("/a", v);
        }
        assert!(has_version(&m.render(), "/a", "v2"));
        // After a while, every retired series goes, at the next scrape.
        let long_ago = Instant::now()
            .checked_sub(RETIRED_KEPT_FOR + Duration::from_secs(1))
            .expect("a monotonic clock older than the retention");
        for retired in m.retired.lock().unwrap().iter_mut() {
            retired.since = long_ago;
        }
        let text = m.render();
        for v in ["v3", "v4", "v6", "v7", "v8"] {
            assert!(!has_version(&text, "/a", v), "{v}:\n{text}");
        }
        assert!(!has_version(&text, "/b", "b0"));
        assert!(has_version(&text, "/a", "v5") && has_version(&text, "/a", "v2"));
    }

    #[test]
    fn a_route_has_its_change_series_from_its_start() {
        let m = Metrics::new("webapp", true).unwrap();
        m.route_added("/a");
        let text = m.render();
        assert!(text.contains("webapp_component_swaps_total{path=\"/a\",result=\"ok\"} 0"));
        assert!(text.contains(
            "webapp_rollout_decisions_total{decision=\"rollback\",path=\"/a\",reason=\"errors\"} 0"
        ));
    }

    /// The lines of `text` with a series of `path`.
    fn series_of<'a>(text: &'a str, path: &str) -> Vec<&'a str> {
        let label = format!("path=\"{path}\"");
        text.lines().filter(|l| l.contains(&label)).collect()
    }

    /// Makes every retirement older than the retention: the next scrape
    /// forgets them all.
    fn age_retired(m: &Metrics) {
        let long_ago = Instant::now()
            .checked_sub(RETIRED_KEPT_FOR + Duration::from_secs(1))
            .expect("a monotonic clock older than the retention");
        for retired in m.retired.lock().unwrap().iter_mut() {
            retired.since = long_ago;
        }
    }

    /// Gives `path` every per-route series: a request, its instance, a
    /// failure, guest usage, a swap, the serving component.
    fn serve(m: &Metrics, path: &str) {
        m.route_added(path);
        m.observe_request("GET", path, StatusCode::OK, Duration::from_millis(1));
        m.observe_instantiation(path, Duration::from_micros(40));
        m.observe_guest_failure("GET", path, "trap", StatusCode::INTERNAL_SERVER_ERROR);
        m.route_meters(path).unwrap();
        m.observe_swap(path, true, Duration::from_millis(5));
        m.set_component(path, None, "d1");
        m.version_meters(path, "v1")
            .unwrap()
            .observe(StatusCode::OK, Duration::from_millis(1));
        m.set_version_share(path, "v1", 100);
    }

    /// A reload removing `path` after a rollout there was superseded, as
    /// `control/` records it.
    fn remove_mid_rollout(m: &Metrics, path: &str) {
        m.observe_decision(path, Decision::Rollback, Reason::Superseded);
        m.retire_version(path, "v1");
        m.remove_component(path, "d1");
        m.route_removed(path);
    }

    const SUPERSEDED: &str =
        "webapp_rollout_decisions_total{decision=\"rollback\",path=\"/a\",reason=\"superseded\"} 1";

    #[test]
    fn a_removed_route_keeps_only_its_change_counters_and_those_a_while() {
        let m = Metrics::new("webapp", true).unwrap();
        serve(&m, "/a");
        serve(&m, "/b");
        let b_before = series_of(&m.render(), "/b").len();
        remove_mid_rollout(&m, "/a");
        let text = m.render();
        let left = series_of(&text, "/a");
        let counters = [
            "webapp_component_swaps_total{",
            "webapp_rollout_decisions_total{",
        ];
        assert!(
            left.iter()
                .all(|l| counters.iter().any(|c| l.starts_with(c))),
            "{left:#?}"
        );
        // The final counts stay for a scrape to see.
        assert!(text.contains(SUPERSEDED), "{text}");
        assert!(text.contains("webapp_component_swaps_total{path=\"/a\",result=\"ok\"} 1"));
        assert_eq!(series_of(&text, "/b").len(), b_before, "another route's");
        // After the retention, they go too (at the next scrape).
        age_retired(&m);
        let text = m.render();
        assert!(series_of(&text, "/a").is_empty(), "{text}");
        assert_eq!(series_of(&text, "/b").len(), b_before);
    }

    #[test]
    fn a_route_added_again_within_the_retention_continues_its_counters() {
        let m = Metrics::new("webapp", true).unwrap();
        serve(&m, "/a");
        remove_mid_rollout(&m, "/a");
        m.route_added("/a");
        age_retired(&m);
        let text = m.render();
        assert!(text.contains(SUPERSEDED), "{text}");
        assert!(text.contains("webapp_component_swaps_total{path=\"/a\",result=\"ok\"} 1"));
    }

    #[test]
    fn a_request_finishing_after_its_route_was_removed_leaves_nothing_for_long() {
        let m = Metrics::new("webapp", true).unwrap();
        serve(&m, "/a");
        remove_mid_rollout(&m, "/a");
        // In flight during the reload, it finishes now.
        m.observe_request("GET", "/a", StatusCode::OK, Duration::from_millis(1));
        age_retired(&m);
        let text = m.render();
        assert!(series_of(&text, "/a").is_empty(), "{text}");
    }

    #[test]
    fn removed_routes_keep_their_counters_only_up_to_a_bound() {
        let m = Metrics::new("webapp", true).unwrap();
        let paths: Vec<String> = (0..REMOVED_ROUTES_KEPT + 2)
            .map(|i| format!("/r{i}"))
            .collect();
        for path in &paths {
            serve(&m, path);
            m.route_removed(path);
        }
        let text = m.render();
        // The oldest two went; the latest ones stay.
        for (i, path) in paths.iter().enumerate() {
            let has = !series_of(&text, path).is_empty();
            assert_eq!(has, i >= 2, "{path}:\n{text}");
        }
    }
}
