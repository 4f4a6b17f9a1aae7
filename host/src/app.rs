//! The application: the routes being served and what happens to one request.
//!
//! `/metrics`, `/healthz` (alive) and `/readyz` (ready for traffic; 503
//! once stopping) are answered by the host and not counted. Every other request
//! is matched against the route table, handed to its component (or answered
//! 404), and counted once its response body is complete, so a guest that
//! streams slowly is timed for all of it.
//!
//! Routes can change while serving (`control/` loads and changes them): the
//! whole [`RouteSet`] is replaced on a reload, one endpoint's [`Serving`]
//! (its stable version, and a canary's) on a swap or rollout decision. A
//! request takes one `Arc` of each and picks its version when it starts, so
//! it finishes on the version it started with while new requests get the
//! new one. A request on a route with a rollout under way is recorded for
//! judging (`rollout.rs`); when a verdict may be due, the rollout
//! supervisor (`control/supervise.rs`) is woken. A request is judged, and
//! counted in its version's series, by how it really ended: a guest that
//! fails after sending its head (a trap, a deadline, an abort mid-body)
//! counts with the failure's status (500, 504), not the head's.
//!
//! What the client did is the client's (`client.rs`): a request whose body
//! was too large, malformed or too slow is answered 413, 400 or 408, and one
//! whose client did not take the whole answer (left, or stopped reading) is
//! counted as 499; neither is a guest failure or part of a verdict. Every
//! routed request is counted exactly once: when its answer's last bytes are
//! written (`connection.rs`), with its status, or as 499 when they could not
//! be, or the answer was abandoned before.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode, Version as HttpVersion};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::body::RequestBody;
use crate::client::{ClientSide, Ended, client_closed};
use crate::config::{Config, GuestLimits, RolloutConfig};
use crate::connection::Delivery;
use crate::guest::{self, GuestFailure};
use crate::labels::{UNMATCHED_PATH, method_label};
use crate::metrics::{self, Metrics, RouteMeters};
use crate::rollout::{Arm, Rollout, Serving, Version};
use crate::routes::RouteTable;
use crate::source::ComponentSource;

/// The body type of every response the host sends.
pub type Body = HyperOutgoingBody;

pub struct App {
    routes: ArcSwap<RouteSet>,
    metrics: Arc<Metrics>,
    /// Requests inside components at once: past the cap, 503.
    in_flight: Arc<Semaphore>,
    max_body_bytes: u64,
    /// Longest pause between request body bytes a guest waits for.
    body_read_timeout: std::time::Duration,
    /// Whether the engine meters fuel (every store then needs some).
    fuel_metered: bool,
    /// Set when a stop signal arrives: `/readyz` turns 503.
    stopping: AtomicBool,
    /// Woken when a rollout's candidate has answered enough to be judged.
    verdict_due: Arc<Notify>,
}

/// The routes being served, replaced whole when the route table is reloaded.
pub struct RouteSet {
    table: RouteTable,
    /// Indexed like the route table.
    endpoints: Vec<Arc<Endpoint>>,
}

/// One route: its settings and the component serving it now.
pub struct Endpoint {
    /// The route path, also its `path` label.
    pub path: Arc<str>,
    pub limits: GuestLimits,
    /// The component file or pattern the config names (watched for new
    /// versions), or the registry reference.
    pub source: ComponentSource,
    /// Whether a rebuilt file starts as a canary, and how canaries are judged.
    pub rollout: RolloutConfig,
    /// The versions serving now (changed by `control/` only).
    serving: ArcSwap<Serving>,
    /// The route's guest-usage series, resolved on its first request
    /// (`None` with per-request metrics off).
    meters: OnceLock<Option<Arc<RouteMeters>>>,
}

impl Endpoint {
    pub fn new(
        path: &str,
        limits: GuestLimits,
        source: ComponentSource,
        rollout: RolloutConfig,
        serving: Arc<Serving>,
    ) -> Self {
        Self {
            path: path.into(),
            limits,
            source,
            rollout,
            serving: ArcSwap::new(serving),
            meters: OnceLock::new(),
        }
    }

    /// The versions serving new requests now.
    pub fn serving(&self) -> Arc<Serving> {
        self.serving.load_full()
    }

    /// Makes `serving` serve new requests; returns what it replaces.
    pub fn replace(&self, serving: Arc<Serving>) -> Arc<Serving> {
        self.serving.swap(serving)
    }
}

impl RouteSet {
    /// The routes `endpoints`, matched in their order (see `control::Control::start`).
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        Self {
            table: RouteTable::new(endpoints.iter().map(|e| e.path.as_ref())),
            endpoints,
        }
    }

    pub fn endpoint(&self, path: &str) -> Option<&Arc<Endpoint>> {
        self.table.lookup(path).map(|i| &self.endpoints[i])
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }
}

impl App {
    pub fn new(
        config: &Config,
        routes: RouteSet,
        metrics: Arc<Metrics>,
        fuel_metered: bool,
    ) -> Self {
        Self {
            routes: ArcSwap::from_pointee(routes),
            metrics,
            in_flight: Arc::new(Semaphore::new(config.http.max_in_flight)),
            max_body_bytes: config.http.max_body_bytes,
            body_read_timeout: config.http.body_read_timeout,
            fuel_metered,
            stopping: AtomicBool::new(false),
            verdict_due: Arc::new(Notify::new()),
        }
    }

    /// Notified when a rollout's verdict may be due.
    pub fn verdict_due(&self) -> &Notify {
        &self.verdict_due
    }

    /// The routes being served now.
    pub fn routes(&self) -> Arc<RouteSet> {
        self.routes.load_full()
    }

    /// Serves `routes` from now on; returns the set it replaces.
    pub fn replace_routes(&self, routes: RouteSet) -> Arc<RouteSet> {
        self.routes.swap(Arc::new(routes))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Marks the app as stopping: load balancers see it not ready.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The host's own answer for `path`, if it is one of the operator's
    /// endpoints (`/metrics`, `/healthz`, `/readyz`); these are not counted.
    fn operator_answer(&self, path: &str) -> Option<Response<Body>> {
        Some(match path {
            "/metrics" => text(StatusCode::OK, metrics::CONTENT_TYPE, self.metrics.render()),
            "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" if self.stopping.load(Ordering::Relaxed) => {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "stopping\n")
            }
            "/readyz" => text(StatusCode::OK, "text/plain", "ready\n"),
            _ => return None,
        })
    }

    /// Answers a request on the probes-and-metrics listener (`ops_listen`):
    /// the operator's endpoints only.
    pub fn handle_operator(&self, request: &Request<Incoming>) -> Response<Body> {
        self.operator_answer(request.uri().path())
            .unwrap_or_else(|| {
                text(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "this listener serves /metrics, /healthz and /readyz only\n",
                )
            })
    }

    /// Answers `request`, which came on a connection whose written answers
    /// `delivery` tells of (the request is counted once its answer is).
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        delivery: Arc<Delivery>,
    ) -> Response<Body> {
        let path = request.uri().path();
        if let Some(response) = self.operator_answer(path) {
            return response;
        }
        let method = method_label(request.method());
        let record = RequestRecord::start(self.metrics.clone(), method, delivery);
        if request.method() == Method::CONNECT {
            // A 2xx answer to CONNECT turns the connection into a tunnel
            // (hyper then sends no body): no endpoint is a proxy.
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "CONNECT is not served here\n",
            );
            response.headers_mut().insert(
                ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
            );
            let path = self.routes.load().endpoint(path).map(|e| e.path.clone());
            return record.finish(path.unwrap_or_else(|| UNMATCHED_PATH.into()), response);
        }
        let Some(endpoint) = self.routes.load().endpoint(path).cloned() else {
            let response = text(StatusCode::NOT_FOUND, "text/plain", "not found\n");
            return record.finish(UNMATCHED_PATH.into(), response);
        };
        let client = Arc::new(ClientSide::default());
        let record = record.routed(endpoint.path.clone(), client.clone());
        if let Err(why) = with_authority(&mut request) {
            let response = text(StatusCode::BAD_REQUEST, "text/plain", format!("{why}\n"));
            return record.finish(endpoint.path.clone(), response);
        }
        let announced = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|len| len > self.max_body_bytes) {
            return record.finish(endpoint.path.clone(), too_large(self.max_body_bytes));
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "server busy, retry\n",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, "1".parse().expect("static header"));
            return record.finish(endpoint.path.clone(), response);
        };
        // Held by the record and by the guest: a client that leaves does
        // not free the place while its guest still runs.
        let place = Arc::new(permit);
        let record = record.holding(place.clone());

        // A body cut off at its limit or pace makes the guest fail: that is
        // the client's doing, not a guest failure.
        let request = request.map(|body| {
            RequestBody::new(
                body,
                self.max_body_bytes,
                self.body_read_timeout,
                client.clone(),
            )
        });
        let report = self.failure_report(endpoint.path.clone(), record.method, client.clone());
        let serving = endpoint.serving();
        let (version, judged) = serving.pick();
        let record = record.on_version(VersionRecord {
            version: version.clone(),
            report: report.clone(),
            judged: judged.map(|(rollout, arm)| (rollout.clone(), arm, self.verdict_due.clone())),
        });
        let usage = endpoint
            .meters
            .get_or_init(|| self.metrics.route_meters(&endpoint.path))
            .as_ref()
            .map(RouteMeters::guest_usage);
        let invocation = guest::invoke(
            &version.component.pre,
            request,
            &endpoint.limits,
            self.fuel_metered,
            report,
            usage,
            place,
        )
        .await;
        if let Some(elapsed) = invocation.instantiation {
            self.metrics.observe_instantiation(&endpoint.path, elapsed);
        }
        // The client's doing decides the answer, whatever the guest did:
        // its body (413, 408, 400), or a failure blamed on it.
        let refused = client.body_answer().or(match client.ended() {
            Some(Ended::Client(status)) => Some(status),
            _ => None,
        });
        let response = match (refused, invocation.result) {
            (Some(status), _) => {
                let _ = client.settle(Ended::Client(status));
                self.refused_body(status)
            }
            (None, Ok(response)) => response.map(|body| body.boxed_unsync()),
            (None, Err(failure)) => {
                let status = failure.status();
                text(
                    status,
                    "text/plain",
                    format!("{status}: the endpoint's component failed\n"),
                )
            }
        };
        record.finish(endpoint.path.clone(), response)
    }

    /// Counts and logs one request's guest failure: the first only, since
    /// a guest can fail twice (answer with an error code, then trap or
    /// overstay its deadline); a second failure is logged, not counted.
    /// A failure the client caused, or one after the client left
    /// (`client.rs`), is the client's: logged at debug level only (any
    /// client can cause it), not counted. Which it was is settled in
    /// `client`, for the request's record.
    fn failure_report(
        &self,
        path: Arc<str>,
        method: &'static str,
        client: Arc<ClientSide>,
    ) -> guest::Report {
        let metrics = self.metrics.clone();
        let first_kind = OnceLock::<&'static str>::new();
        Arc::new(move |failure: &GuestFailure| {
            let ended = match client.blame(failure.as_failed()) {
                Some(status) => Ended::Client(status),
                None => Ended::Guest(failure.status()),
            };
            match (client.settle(ended), ended) {
                (Ok(()), Ended::Guest(status)) => {
                    let _ = first_kind.set(failure.kind());
                    tracing::warn!(route = %path, kind = failure.kind(), "component failed: {failure}");
                    tracing::debug!(route = %path, "component failure in full: {failure:?}");
                    metrics.observe_guest_failure(method, &path, failure.kind(), status);
                }
                (Err(Ended::Guest(_)), _) => {
                    let first = first_kind.get().copied().unwrap_or("a failure");
                    tracing::warn!(
                        route = %path,
                        kind = failure.kind(),
                        "component failed again after failing ({first}): {failure}; counted once, as {first}"
                    );
                }
                (Ok(()), Ended::Client(status)) | (Err(Ended::Client(status)), _) => {
                    tracing::debug!(
                        route = %path,
                        kind = failure.kind(),
                        "component failed on the client's account ({}): {failure}",
                        status.as_u16()
                    );
                }
            }
        })
    }
}

/// Gives `request` the authority wasi:http hands every guest: the URI's,
/// else the `Host` header's. HTTP/1.1 requires `Host` (RFC 9112, 3.2: 400
/// without one, or with an empty or non-ASCII one); HTTP/1.0 may omit it,
/// and the guest then sees `localhost`. Checked before a version is picked,
/// so a client's malformed request is neither a guest failure nor an answer
/// of the version (nor a verdict on a canary).
fn with_authority<B>(request: &mut Request<B>) -> Result<(), &'static str> {
    if request.uri().authority().is_some() {
        return Ok(());
    }
    let old = matches!(
        request.version(),
        HttpVersion::HTTP_09 | HttpVersion::HTTP_10
    );
    match request.headers().get(HOST) {
        Some(host) if host.is_empty() => Err("empty Host header"),
        Some(host) if host.to_str().is_err() => Err("Host header is not visible ASCII"),
        Some(_) => Ok(()),
        None if old => {
            request
                .headers_mut()
                .insert(HOST, HeaderValue::from_static("localhost"));
            Ok(())
        }
        None => Err("an HTTP/1.1 request needs a Host header"),
    }
}

fn too_large(limit: u64) -> Response<Body> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "text/plain",
        format!("request body larger than {limit} bytes\n"),
    )
}

impl App {
    /// The answer to a request the client ended (`ClientSide::body_answer`,
    /// `ClientSide::blame`): 413, 408, 400, or 499 (which nobody reads).
    fn refused_body(&self, status: StatusCode) -> Response<Body> {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(self.max_body_bytes),
            StatusCode::REQUEST_TIMEOUT => text(
                status,
                "text/plain",
                format!(
                    "the request body came too slowly (http.body_read_timeout is {})\n",
                    humantime::format_duration(self.body_read_timeout)
                ),
            ),
            StatusCode::BAD_REQUEST => text(status, "text/plain", "malformed request body\n"),
            _ => text(status, "text/plain", "client closed request\n"),
        }
    }
}

/// One request's accounting: in flight from `start` until dropped; counted
/// when dropped, once routed. It travels inside the response body, so it
/// drops when the body is complete, abandoned (the client left), or never
/// made (the client left while the guest ran).
struct RequestRecord {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
    /// The route (or `UNMATCHED_PATH`), once known: from then on the
    /// request is counted.
    path: Option<Arc<str>>,
    /// The answer's status, once there is an answer.
    status: Option<StatusCode>,
    /// Whether the whole answer was handed to the connection.
    completed: bool,
    /// Body bytes the connection will take before it stops asking, when
    /// known (`Content-Length`; 0 for HEAD, 1xx, 204, 304): hyper drops a
    /// body it has written in full without asking for its end.
    expected: Option<u64>,
    /// What the client did, for routed requests.
    client: Option<Arc<ClientSide>>,
    /// Tells when the answer's bytes are written (or cannot be).
    delivery: Arc<Delivery>,
    /// A place under the in-flight cap, released with the record (and the
    /// guest, which holds it too).
    _permit: Option<Arc<OwnedSemaphorePermit>>,
    /// The version that answered, once one was picked.
    version: Option<VersionRecord>,
}

/// The version a request ran on, and the rollout judging it, if any (with
/// whom to wake when its verdict may be due).
struct VersionRecord {
    /// Counts the answer into its per-version series.
    version: Arc<Version>,
    /// Where a failure seen only in the answer's body is reported.
    report: guest::Report,
    /// The rollout to record the answer for, the arm it ran on, and whom
    /// to wake when a verdict may be due.
    judged: Option<(Arc<Rollout>, Arm, Arc<Notify>)>,
}

impl RequestRecord {
    fn start(metrics: Arc<Metrics>, method: &'static str, delivery: Arc<Delivery>) -> Self {
        metrics.track_in_flight(true);
        Self {
            metrics,
            method,
            started: Instant::now(),
            path: None,
            status: None,
            completed: false,
            expected: None,
            client: None,
            delivery,
            _permit: None,
            version: None,
        }
    }

    /// The request is on route `path`: counted from now on, as 499 if the
    /// client leaves before its answer.
    fn routed(mut self, path: Arc<str>, client: Arc<ClientSide>) -> Self {
        self.path = Some(path);
        self.client = Some(client);
        self
    }

    fn on_version(mut self, version: VersionRecord) -> Self {
        self.version = Some(version);
        self
    }

    fn holding(mut self, permit: Arc<OwnedSemaphorePermit>) -> Self {
        self._permit = Some(permit);
        self
    }

    /// The whole answer is handed to the connection.
    fn complete(&mut self) {
        self.completed = true;
        if let Some(client) = &self.client {
            client.answer_completed();
        }
    }

    /// The guest's answer broke off (it dropped its body unfinished, or
    /// ended it short of its length) without a failure reported already:
    /// reported now, as the guest's.
    fn body_broke(&self) {
        if let (Some(client), Some(version)) = (&self.client, &self.version)
            && client.ended().is_none()
        {
            (version.report)(&GuestFailure::BrokenBody);
        }
    }

    fn finish(mut self, path: Arc<str>, response: Response<Body>) -> Response<Body> {
        self.path = Some(path);
        let status = response.status();
        self.status = Some(status);
        let bodiless = self.method == "HEAD"
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        self.expected = if bodiless {
            Some(0)
        } else {
            response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        };
        response.map(|body| {
            // A body already at its end, or one nothing is expected of, is
            // never polled: it is complete.
            if hyper::body::Body::is_end_stream(&body) || self.expected == Some(0) {
                self.complete();
            }
            Recorded { record: self, body }.boxed_unsync()
        })
    }
}

impl Drop for RequestRecord {
    /// Out of flight; counted at once if the answer is not all handed over
    /// (the client left), else once its last bytes are known written.
    fn drop(&mut self) {
        self.metrics.track_in_flight(false);
        let Some(path) = self.path.take() else { return };
        let client = self.client.take();
        let tally = Tally {
            metrics: self.metrics.clone(),
            method: self.method,
            path,
            status: self.status,
            elapsed: self.started.elapsed(),
            // What the client was handed is judged: a failure after that
            // is counted as the guest's failure, not in the answer's class.
            ended: client.as_ref().and_then(|c| c.ended()),
            client,
            version: self.version.take(),
        };
        if self.completed {
            self.delivery
                .after_write(Box::new(move |written| tally.count(written)));
        } else {
            tally.count(false);
        }
    }
}

/// One request's counts, taken when it is done with.
struct Tally {
    metrics: Arc<Metrics>,
    method: &'static str,
    path: Arc<str>,
    /// The answer's status, if there was an answer.
    status: Option<StatusCode>,
    elapsed: std::time::Duration,
    /// Who ended the request when it was done with, if anyone.
    ended: Option<Ended>,
    client: Option<Arc<ClientSide>>,
    version: Option<VersionRecord>,
}

impl Tally {
    /// Counts the request, `delivered` or not: when not, unless the guest
    /// failed first, the client left (or was cut off for not reading);
    /// settled now, so that the guest, which may still run and fail on the
    /// closed stream, is not blamed for it.
    fn count(self, delivered: bool) {
        let ended = match &self.client {
            Some(client) if !delivered => {
                let left = Ended::Client(client_closed());
                Some(client.settle(left).map_or_else(|first| first, |()| left))
            }
            _ => self.ended,
        };
        let status = match (ended, self.status) {
            (Some(Ended::Client(_)), _) if !delivered => client_closed(),
            (_, Some(status)) => status,
            (_, None) => client_closed(),
        };
        self.metrics
            .observe_request(self.method, &self.path, status, self.elapsed);
        let Some(VersionRecord {
            version, judged, ..
        }) = &self.version
        else {
            return;
        };
        // A response whose head said 200 but whose guest then failed is a
        // failure: judged and counted as one.
        let answered = match ended {
            Some(Ended::Guest(failed)) => failed,
            _ => status,
        };
        if let Some(meters) = &version.meters {
            meters.observe(answered, self.elapsed);
        }
        let clients = matches!(ended, Some(Ended::Client(_)));
        if let Some((rollout, arm, verdict_due)) = judged
            && !clients
            && rollout.record(*arm, answered, self.elapsed)
        {
            verdict_due.notify_one();
        }
    }
}

/// A response body carrying its request's record: it marks the record
/// complete when the last frame is handed over, and tells the client's
/// record when the server has taken a frame and not yet asked for the next
/// (the client reading slower than the guest writes).
struct Recorded {
    /// Declared first, so dropped first: a client's departure is settled
    /// before the guest's stream closes (a guest failing on it is then not
    /// blamed).
    record: RequestRecord,
    body: Body,
}

impl hyper::body::Body for Recorded {
    type Data = Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        let record = &mut this.record;
        if let Some(client) = &record.client {
            client.answer_taken(false);
        }
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(expected)) = (frame.data_ref(), &mut record.expected) {
                    *expected = expected.saturating_sub(data.len() as u64);
                }
                // Trailers are always the last frame (hyper asks no more).
                if record.expected == Some(0)
                    || frame.is_trailers()
                    || hyper::body::Body::is_end_stream(&this.body)
                {
                    record.complete();
                } else if let Some(client) = &record.client {
                    client.answer_taken(true);
                }
            }
            // Ended short of its announced length, or in an error: the
            // guest's doing.
            Poll::Ready(None) if record.expected.is_some_and(|left| left > 0) => {
                record.body_broke();
            }
            Poll::Ready(None) => record.complete(),
            Poll::Ready(Some(Err(_))) => record.body_broke(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        content_type.parse().expect("static content type"),
    );
    response
}
