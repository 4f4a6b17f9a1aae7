//! The admin API, on its own listener: see and change what is served.
//!
//! - `GET  /routes`: the generation and every route with its component's
//!   digest, file and load time.
//! - `PUT  /routes/<route>/component`: the body is the new component's bytes;
//!   `?canary=N` makes it a canary serving N % (1-99) of the route's requests.
//! - `POST /routes/<route>/component` with `Content-Type: application/json`
//!   and `{"file": "path/to.wasm"}` (and optionally `"canary": N`): load a
//!   file (a relative path is taken from the config file's folder, like the
//!   route table's; it must be a regular file within the upload cap).
//! - `POST /routes/<route>/promote`, `POST /routes/<route>/rollback`: end
//!   the route's rollout by hand.
//! - `POST /reload`: re-read the config file's route table.
//!
//! Answers are JSON; errors are `{"error": "..."}` with 401 (token), 403
//! (looks like a browser, below), 404 (no such route or endpoint), 400
//! (malformed), 408 (body too slow), 409 (no rollout to end), 413 (body
//! over its cap), 415 (not JSON), 422 (rejected: the previous version
//! serves on).
//!
//! Who may call it. It binds 127.0.0.1 by default; the config refuses any
//! other address without a bearer token, compared in constant time. But
//! loopback alone does not keep out the web pages the operator's browser
//! runs: a page may send a "simple" cross-site request (GET, HEAD, or POST
//! with a form or `text/plain` body, no custom headers) without asking
//! first, and DNS rebinding points a name the page's site controls at
//! 127.0.0.1, after which even reading answers is same-origin. So:
//! - with a token, the token decides: a browser cannot attach an
//!   `Authorization` header to a cross-site request without a CORS
//!   preflight, which this API never grants (it answers no `OPTIONS`), and
//!   the credentials a browser adds by itself (Basic, cookies) never match
//!   `Bearer <token>`. Host and Origin are then not checked, so port-forwards,
//!   tunnels and Service names work as they are.
//! - without a token, a request with an `Origin` header (which browsers add
//!   to every cross-site request and every POST, `null` included) is
//!   refused (403): no legitimate client sends one, as this API serves no
//!   page. So is one whose `Host` is not `localhost` or a loopback address
//!   (`127.x.x.x`, `[::1]`): under DNS rebinding it names the attacker's
//!   domain. Any port is accepted, as the port names no site and a
//!   port-forward or tunnel listens on a port of its own.
//! - always, a POST body must be `application/json` (415 otherwise), and
//!   the JSON endpoint requires the header: a simple request cannot send
//!   that type. `PUT` needs no such rule: it is not a simple method, so a
//!   browser preflights it cross-site (and is refused).
//!
//! What one client may cost. The listener has the public one's guards
//! (`server::http1`): head timeout and size limit, plus a connection cap.
//! A body must arrive whole within `admin.body_timeout` of its head (else
//! 408) and fit its cap, the component cap for an upload and 64 KiB for
//! JSON (else 413, from the announced length at once or while reading a
//! chunked body). A body an answer leaves unread is drained for at most
//! [`LINGER`] before the connection closes: closing with unread input
//! resets the connection, which can destroy the answer before the client
//! reads it.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderMap, ORIGIN};
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::component_file;
use crate::config::{HttpLimits, check_canary_share};
use crate::rollout::Decision;
use crate::server;
use crate::swap::{Control, Source, SwapError};

/// The largest component an upload may carry (and a named file may be).
const MAX_UPLOAD_BYTES: usize = component_file::MAX_COMPONENT_BYTES as usize;

/// The largest JSON request body: a file name and a share need far less.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Admin connections open at once; beyond it a connection is closed at once.
/// Far more than any operator needs, so slow or idle connections (cut off by
/// the head timeout) cannot lock a well-behaved one out.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a body the answer did not need is still read (and discarded)
/// after the answer, so the client sees the answer before the close.
const LINGER: Duration = Duration::from_secs(1);

/// What every request is checked against.
struct Guard {
    /// The bearer token required, if one is configured.
    token: Option<String>,
    /// How long a request body may take to arrive after its head.
    body_timeout: Duration,
}

pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    limits: HttpLimits,
) {
    let guard = Arc::new(Guard {
        token,
        body_timeout: limits.admin_body_timeout,
    });
    let http = server::http1(&limits);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: wait instead of spinning.
                tracing::warn!("admin API: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "admin API: {MAX_CONNECTIONS} connections open, closing a new one");
            continue;
        };
        let (control, guard) = (control.clone(), guard.clone());
        let service = service_fn(move |request| {
            let (control, guard) = (control.clone(), guard.clone());
            async move { Ok::<_, Infallible>(handle(&control, &guard, request).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "admin connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

/// Answers one request; a body the answer leaves unread is drained for a
/// moment (see the module doc) and the connection then closed.
async fn handle(
    control: &Control,
    guard: &Guard,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // The body's clock starts once the head is in.
    let deadline = Instant::now() + guard.body_timeout;
    let (parts, mut body) = request.into_parts();
    let mut response = match admit(&parts, guard) {
        Ok(()) => dispatch(control, guard, &parts, &mut body, deadline).await,
        Err(refused) => refused,
    };
    if !body.is_end_stream() {
        response
            .headers_mut()
            .insert(CONNECTION, "close".parse().expect("static"));
        tokio::spawn(linger(body));
    }
    response
}

/// Whether the request may be served at all: the token when one is
/// configured, else no sign of a browser (module doc); and a POST body is
/// JSON.
#[allow(clippy::result_large_err)]
fn admit(parts: &Parts, guard: &Guard) -> Result<(), Response<Full<Bytes>>> {
    match &guard.token {
        Some(token) if !authorized(&parts.headers, token) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required",
            ));
        }
        Some(_) => {}
        None => {
            if let Some(origin) = parts.headers.get(ORIGIN) {
                tracing::warn!(?origin, "admin API: refused a request from a web page");
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "a request with an Origin header comes from a web page: the admin API \
                     serves none (configure admin.token for other clients)",
                ));
            }
            let hosts = parts.headers.get_all(HOST);
            let named_loopback = |value: &str| is_loopback_authority(value);
            let host_ok = hosts.iter().count() == 1
                && hosts.iter().all(|h| h.to_str().is_ok_and(named_loopback))
                && parts
                    .uri
                    .authority()
                    .is_none_or(|a| named_loopback(a.as_str()));
            if !host_ok {
                let host = parts.headers.get(HOST);
                tracing::warn!(?host, "admin API: refused a request for another host");
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "the Host header must name this machine (localhost, 127.0.0.1 or [::1], \
                     any port): another name is what DNS rebinding sends \
                     (configure admin.token to call the admin API by other names)",
                ));
            }
        }
    }
    if parts.method == Method::POST && content_type_is_json(&parts.headers) == Some(false) {
        return Err(not_json());
    }
    Ok(())
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in
/// constant time (only the length can be told apart).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let expected = format!("Bearer {token}");
    headers
        .get(AUTHORIZATION)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// Whether a `Host` (an authority: host and optional port) names this
/// machine by a name no one else controls: `localhost` or a loopback
/// address. Any port: it names no site.
fn is_loopback_authority(value: &str) -> bool {
    let Ok(authority) = value.parse::<Authority>() else {
        return false;
    };
    // `user@host` is no Host a client sends.
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether the `Content-Type` is `application/json` (parameters such as
/// `charset` aside); `None` when there is none.
fn content_type_is_json(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(CONTENT_TYPE)?;
    Some(value.to_str().is_ok_and(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/json")
    }))
}

fn not_json() -> Response<Full<Bytes>> {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a POST body must be sent as Content-Type: application/json",
    )
}

/// Serves an admitted request by its method and path.
async fn dispatch(
    control: &Control,
    guard: &Guard,
    parts: &Parts,
    body: &mut Incoming,
    deadline: Instant,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path();
    // `/routes<route>/<action>`: a route path may hold slashes itself.
    let (route, action) = path
        .strip_prefix("/routes")
        .and_then(|p| p.rsplit_once('/'))
        .filter(|(route, _)| route.starts_with('/'))
        .map_or((None, ""), |(route, action)| (Some(route), action));
    // Only a new version takes a query (`?canary=N`).
    let canary = match action {
        "component" => match canary_of_query(parts.uri.query()) {
            Ok(canary) => canary,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        },
        _ => None,
    };
    let read = |body, cap, what| read_body(body, cap, deadline, guard.body_timeout, what);
    match (&parts.method, path, route, action) {
        (&Method::GET, "/routes", _, _) => json(StatusCode::OK, &control.served()),
        (&Method::POST, "/reload", _, _) => match control.reload().await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => swap_error(e),
        },
        (&Method::PUT, _, Some(route), "component") => {
            let bytes = match read(body, MAX_UPLOAD_BYTES, "an upload (a component)").await {
                Ok(bytes) => bytes,
                Err(refused) => return refused,
            };
            answer(
                control
                    .swap(route, Source::Upload(bytes.to_vec()), canary)
                    .await,
            )
        }
        (&Method::POST, _, Some(route), "component") => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct FromFile {
                file: std::path::PathBuf,
                canary: Option<i64>,
            }
            // `admit` refused any other type; here it must also be present.
            if content_type_is_json(&parts.headers).is_none() {
                return not_json();
            }
            let body = match read(body, MAX_JSON_BYTES, "a JSON request").await {
                Ok(bytes) => bytes,
                Err(refused) => return refused,
            };
            match serde_json::from_slice::<FromFile>(&body) {
                Ok(FromFile {
                    file,
                    canary: json_canary,
                }) => {
                    let canary = match json_canary.map(check_canary_share).transpose() {
                        Ok(c) => c.or(canary),
                        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
                    };
                    answer(control.swap(route, Source::File(file), canary).await)
                }
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"file\": \"...\", \"canary\": 1-99 (optional)}}: {e}"),
                ),
            }
        }
        (&Method::POST, _, Some(route), "promote") => {
            answer(control.decide(route, Decision::Promote).await)
        }
        (&Method::POST, _, Some(route), "rollback") => {
            answer(control.decide(route, Decision::Rollback).await)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such admin endpoint: see GET /routes, PUT|POST /routes/<route>/component, \
             POST /routes/<route>/promote|rollback, POST /reload",
        ),
    }
}

/// Reads `body` whole if it fits `cap` bytes and ends by `deadline`; else
/// the answer: 413 naming the cap of `what` (at once when the announced
/// length is over it), 408 naming the `timeout`, or 400 when the client
/// broke the body off. What is left of it is for the caller to drain.
async fn read_body<B>(
    body: &mut B,
    cap: usize,
    deadline: Instant,
    timeout: Duration,
    what: &str,
) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{what} may be at most {}: this body is larger", size(cap)),
        )
    };
    if body.size_hint().lower() > cap as u64 {
        return Err(too_large());
    }
    let mut bytes = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the body did not arrive within {} of the head (admin.body_timeout)",
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Ok(None) => return Ok(bytes.freeze()),
            Ok(Some(Err(e))) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing for us.
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > cap {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
}

/// Reads and discards what is left of `body` for at most [`LINGER`], so
/// the client can read the answer before the connection closes.
async fn linger(mut body: Incoming) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

/// `bytes` the way people say it: `64 MiB`, `64 KiB`, else in bytes.
fn size(bytes: usize) -> String {
    match bytes {
        b if b > 0 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b > 0 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The `canary` of a query string (`?canary=10`), checked.
fn canary_of_query(query: Option<&str>) -> Result<Option<u8>, String> {
    let Some(query) = query else { return Ok(None) };
    let mut canary = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("canary", value)) => {
                let share = value.parse::<i64>().map_err(|_| {
                    format!("canary must be a whole percent from 1 to 99, not `{value}`")
                })?;
                canary = Some(check_canary_share(share)?);
            }
            _ => {
                return Err(format!(
                    "unknown query parameter `{pair}` (only `canary=N`)"
                ));
            }
        }
    }
    Ok(canary)
}

fn answer(result: Result<impl Serialize, SwapError>) -> Response<Full<Bytes>> {
    match result {
        Ok(done) => json(StatusCode::OK, &done),
        Err(e) => swap_error(e),
    }
}

fn swap_error(e: SwapError) -> Response<Full<Bytes>> {
    let status = match e {
        SwapError::NoSuchRoute(_) => StatusCode::NOT_FOUND,
        SwapError::NoRollout(_) | SwapError::Deciding(_) => StatusCode::CONFLICT,
        SwapError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, &e.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).expect("serialisable");
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().expect("static"));
    response
}
