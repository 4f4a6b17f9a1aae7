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
//! - always, a POST may carry no `Content-Type` but `application/json`,
//!   and the JSON endpoint requires it (415 otherwise): a simple request
//!   cannot send that type, while a form, `text/plain`, or a typeless blob
//!   it can. `PUT` needs no such rule: it is not a simple method, so a
//!   browser asks first (a CORS preflight) before sending it cross-site,
//!   and is never told yes; same-origin under DNS rebinding, the Host
//!   check refuses it.
//!
//! What one client may cost. The listener has the public one's guards
//! (`server::serve_forever`): head timeout and size limit, send timeout,
//! plus a connection cap. Bodies arriving at once share a memory budget of
//! two whole uploads ([`BODY_BUDGET_BYTES`]; past it 503).
//! A body must arrive whole within `admin.body_timeout` of its head (else
//! 408) and fit its cap, the component cap for an upload and 64 KiB for
//! JSON (else 413, from the announced length at once or while reading a
//! chunked body). A body an answer leaves unread is drained for at most
//! [`LINGER`] before the connection closes: closing with unread input
//! resets the connection, which can destroy the answer before the client
//! reads it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderMap, ORIGIN};
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::component_file;
use crate::config::{HttpLimits, check_canary_share};
use crate::control::{Control, Source, SwapError};
use crate::judge::Decision;
use crate::server;

/// The largest component an upload may carry (and a named file may be).
const MAX_UPLOAD_BYTES: usize = component_file::MAX_COMPONENT_BYTES as usize;

/// The largest JSON request body: a file name and a share need far less.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Memory request bodies may take at once while they arrive, over every
/// admin connection: two whole uploads. An upload takes its announced
/// length when its head arrives (a chunked one, as it grows); past the
/// budget, 503 at once, rather than one client's unfinished uploads
/// growing the host's memory by 64 MiB each.
const BODY_BUDGET_BYTES: usize = 2 * MAX_UPLOAD_BYTES;

/// Admin connections open at once; beyond it a connection is closed at once.
/// Far more than any operator needs, so slow or idle connections (cut off by
/// the head timeout) cannot lock a well-behaved one out.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a body the answer did not need is still read (and discarded)
/// after the answer, so the client sees the answer before the close.
const LINGER: Duration = Duration::from_secs(1);

/// A request refused: the status and why (the error answer's message).
type Refused = (StatusCode, String);

/// What every request is checked against.
struct Guard {
    /// The bearer token required, if one is configured.
    token: Option<String>,
    /// How long a request body may take to arrive after its head.
    body_timeout: Duration,
    /// The memory request bodies may hold at once, in KiB (see [`BODY_BUDGET_BYTES`]).
    body_budget: Arc<Semaphore>,
}

/// Serves the admin API on `listener` (for the life of the process), each
/// request checked against `token` and the body timeout of `limits`.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    limits: HttpLimits,
) {
    let guard = Arc::new(Guard {
        token,
        body_timeout: limits.admin_body_timeout,
        body_budget: Arc::new(Semaphore::new(BODY_BUDGET_BYTES >> 10)),
    });
    let handle = move |request| {
        let (control, guard) = (control.clone(), guard.clone());
        async move { handle(&control, &guard, request).await }
    };
    server::serve_forever(listener, "admin API", MAX_CONNECTIONS, limits, handle).await;
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
        Err((status, why)) => error(status, &why),
    };
    // A chunked body read to its end still says it is not (hyper cannot
    // tell): that merely costs it the kept-alive connection.
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
fn admit(parts: &Parts, guard: &Guard) -> Result<(), Refused> {
    match &guard.token {
        Some(token) if !authorized(&parts.headers, token) => {
            return Err((
                StatusCode::UNAUTHORIZED,
                "a bearer token is required".into(),
            ));
        }
        Some(_) => {}
        None => {
            if let Some(origin) = parts.headers.get(ORIGIN) {
                tracing::warn!(?origin, "admin API: refused a request from a web page");
                return Err((
                    StatusCode::FORBIDDEN,
                    "a request with an Origin header comes from a web page: the admin API \
                     serves none (configure admin.token for other clients)"
                        .into(),
                ));
            }
            let hosts = parts.headers.get_all(HOST);
            // One Host, and the request line's authority, if it has one
            // (`POST http://name/reload`), names the same kind of machine.
            let host_ok = hosts.iter().count() == 1
                && hosts
                    .iter()
                    .all(|h| h.to_str().is_ok_and(is_loopback_authority))
                && parts
                    .uri
                    .authority()
                    .is_none_or(|a| is_loopback_authority(a.as_str()));
            if !host_ok {
                let host = parts.headers.get(HOST);
                tracing::warn!(?host, "admin API: refused a request for another host");
                return Err((
                    StatusCode::FORBIDDEN,
                    "the Host header must name this machine (localhost, 127.0.0.1 or [::1], \
                     any port): another name is what DNS rebinding sends \
                     (configure admin.token to call the admin API by other names)"
                        .into(),
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

fn not_json() -> Refused {
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a POST body must be sent as Content-Type: application/json".into(),
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
    let read = |body, cap, what| {
        let budget = &guard.body_budget;
        read_body(body, cap, deadline, guard.body_timeout, budget, what)
    };
    match (&parts.method, path, route, action) {
        (&Method::GET, "/routes", _, _) => json(StatusCode::OK, &control.served()),
        (&Method::POST, "/reload", _, _) => match control.reload().await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => swap_error(e),
        },
        (&Method::PUT, _, Some(route), "component") => {
            // The budget stays taken until the swap is done with the bytes:
            // uploads waiting for their turn hold memory too.
            let (bytes, _budget) =
                match read(body, MAX_UPLOAD_BYTES, "an upload (a component)").await {
                    Ok(read) => read,
                    Err((status, why)) => return error(status, &why),
                };
            answer(
                control
                    .swap(route, Source::Upload(Vec::from(bytes)), canary)
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
                let (status, why) = not_json();
                return error(status, &why);
            }
            let body = match read(body, MAX_JSON_BYTES, "a JSON request").await {
                Ok((bytes, _budget)) => bytes,
                Err((status, why)) => return error(status, &why),
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

/// Reads `body` whole if it fits `cap` bytes and ends by `deadline`, with
/// its bytes taken from `budget` (KiB; given back when the returned permit
/// drops); else the answer: 413 naming the cap of `what` (at once when the
/// announced length is over it), 503 when other bodies hold the budget,
/// 408 naming the `timeout`, or 400 when the client broke the body off.
/// What is left of it is for the caller to drain.
async fn read_body<B>(
    body: &mut B,
    cap: usize,
    deadline: Instant,
    timeout: Duration,
    budget: &Arc<Semaphore>,
    what: &str,
) -> Result<(BytesMut, OwnedSemaphorePermit), Refused>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} may be at most {}: this body is larger", size(cap)),
        )
    };
    let announced = body.size_hint().lower();
    if announced > cap as u64 {
        return Err(too_large());
    }
    let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    let take =
        |bytes: usize| {
            budget.clone().try_acquire_many_owned(kib(bytes)).map_err(|_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "other request bodies arriving hold the admin API's {} for bodies: retry \
                     when they are done",
                    size(BODY_BUDGET_BYTES)
                ),
            )
        })
        };
    let mut held = take(announced as usize)?;
    let mut bytes = BytesMut::with_capacity(announced as usize);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err((
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} of the head (admin.body_timeout)",
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Ok(None) => return Ok((bytes, held)),
            Ok(Some(Err(e))) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing for us.
        if let Ok(data) = frame.into_data() {
            let grown = bytes.len() + data.len();
            if grown > cap {
                return Err(too_large());
            }
            let more = kib(grown).saturating_sub(held.num_permits() as u32);
            if more > 0 {
                held.merge(take(more as usize * 1024)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Frame;
    use std::convert::Infallible;

    #[test]
    fn only_loopback_names_are_a_host_without_a_token() {
        for host in [
            "localhost",
            "LOCALHOST:5001",
            "localhost:1",
            "127.0.0.1:5001",
            "127.0.0.2",
            "[::1]:5001",
            "[::ffff:127.0.0.1]:5001",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "",
            "evil.example:5001",
            "localhost.evil.example:5001",
            "127.0.0.1.evil.example",
            "10.0.0.1:5001",
            "[::2]:5001",
            "user@localhost:5001",
            "localhost:5001/x",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn json_is_application_json_with_or_without_parameters() {
        let of = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            content_type_is_json(&headers)
        };
        assert_eq!(content_type_is_json(&HeaderMap::new()), None);
        assert_eq!(of("application/json"), Some(true));
        assert_eq!(of("Application/JSON; charset=utf-8"), Some(true));
        for other in [
            "text/plain",
            "application/jsonx",
            "multipart/form-data; x=application/json",
        ] {
            assert_eq!(of(other), Some(false), "{other}");
        }
    }

    /// A body of `chunks` with no announced length, like a chunked one.
    fn chunked(chunks: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        http_body_util::StreamBody::new(futures::stream::iter(frames))
    }

    async fn read(
        body: &mut (impl Body<Data = Bytes, Error = Infallible> + Unpin),
        timeout: Duration,
    ) -> Result<Bytes, StatusCode> {
        let budget = Arc::new(Semaphore::new(1));
        read_body(
            body,
            10,
            Instant::now() + timeout,
            timeout,
            &budget,
            "a test body",
        )
        .await
        .map(|(bytes, _)| bytes.freeze())
        .map_err(|(status, _)| status)
    }

    #[tokio::test]
    async fn bodies_arriving_at_once_share_one_budget() {
        let second = Duration::from_secs(1);
        let deadline = Instant::now() + second;
        // A budget of 1 KiB: a first body holds it until its permit drops.
        let budget = Arc::new(Semaphore::new(1));
        let mut first = chunked(&[b"12345"]);
        let (_, held) = read_body(&mut first, 10, deadline, second, &budget, "a")
            .await
            .unwrap();
        let mut second_body = Full::new(Bytes::from_static(b"67890"));
        let refused = read_body(&mut second_body, 10, deadline, second, &budget, "b").await;
        assert_eq!(refused.unwrap_err().0, StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        let mut third = Full::new(Bytes::from_static(b"67890"));
        let read = read_body(&mut third, 10, deadline, second, &budget, "c").await;
        assert_eq!(read.unwrap().0, "67890");
    }

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_cap() {
        let second = Duration::from_secs(1);
        let mut body = chunked(&[b"12345", b"67890"]);
        assert_eq!(read(&mut body, second).await.unwrap(), "1234567890");
        // Over the cap: announced, or found while reading.
        let mut announced = Full::new(Bytes::from_static(b"12345678901"));
        assert_eq!(
            read(&mut announced, second).await,
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let mut body = chunked(&[b"12345", b"678901"]);
        assert_eq!(
            read(&mut body, second).await,
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        // Never ending: cut at the deadline.
        let mut endless = http_body_util::StreamBody::new(futures::stream::pending::<
            Result<Frame<Bytes>, Infallible>,
        >());
        assert_eq!(
            read(&mut endless, Duration::from_millis(50)).await,
            Err(StatusCode::REQUEST_TIMEOUT)
        );
    }

    #[test]
    fn caps_are_named_as_people_say_them() {
        assert_eq!(size(MAX_UPLOAD_BYTES), "64 MiB");
        assert_eq!(size(MAX_JSON_BYTES), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
