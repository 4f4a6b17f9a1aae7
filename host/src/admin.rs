//! The admin API, on its own listener: see and change what is served.
//!
//! - `GET  /routes`: the generation and every route with its component's
//!   digest, file and load time.
//! - `PUT  /routes/<route>/component`: the body is the new component's bytes;
//!   `?canary=N` makes it a canary serving N % (1-99) of the route's requests.
//! - `POST /routes/<route>/component` with `{"file": "path/to.wasm"}` (and
//!   optionally `"canary": N`): load a file (a relative path is taken from
//!   the config file's folder, like the route table's; it must be a regular
//!   file within the upload cap).
//! - `POST /routes/<route>/promote`, `POST /routes/<route>/rollback`: end
//!   the route's rollout by hand.
//! - `POST /reload`: re-read the config file's route table.
//!
//! Answers are JSON; errors are `{"error": "..."}` with 401 (token),
//! 404 (no such route or endpoint), 400 (malformed), 409 (no rollout to
//! end), 422 (rejected: the previous version serves on). It binds 127.0.0.1 by default; the config
//! refuses any other address without a bearer token, compared in constant
//! time. Its listener has the public one's guards (`server::http1`): head
//! timeout and size limit, plus a connection cap and bounded bodies.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::component_file;
use crate::config::{HttpLimits, check_canary_share};
use crate::judge::Decision;
use crate::server;
use crate::swap::{Control, Source, SwapError};

/// The largest component an upload may carry (and a named file may be).
const MAX_UPLOAD_BYTES: usize = component_file::MAX_COMPONENT_BYTES as usize;

/// Admin connections open at once; beyond it a connection is closed at once.
/// Far more than any operator needs, so slow or idle connections (cut off by
/// the head timeout) cannot lock a well-behaved one out.
pub const MAX_CONNECTIONS: usize = 1024;

pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    limits: HttpLimits,
) {
    let token: Option<Arc<str>> = token.map(Into::into);
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
        let (control, token) = (control.clone(), token.clone());
        let service = service_fn(move |request| {
            let (control, token) = (control.clone(), token.clone());
            async move { Ok::<_, Infallible>(handle(&control, token.as_deref(), request).await) }
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

/// Whether the request carries `Authorization: Bearer <token>`, compared in
/// constant time (only the length can be told apart).
fn authorized(request: &Request<Incoming>, token: &str) -> bool {
    let expected = format!("Bearer {token}");
    request
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

async fn handle(
    control: &Control,
    token: Option<&str>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(token) = token
        && !authorized(&request, token)
    {
        return error(StatusCode::UNAUTHORIZED, "a bearer token is required");
    }
    let path = request.uri().path().to_owned();
    // `/routes<route>/<action>`: a route path may hold slashes itself.
    let (route, action) = path
        .strip_prefix("/routes")
        .and_then(|p| p.rsplit_once('/'))
        .filter(|(route, _)| route.starts_with('/'))
        .map_or((None, ""), |(route, action)| {
            (Some(route.to_owned()), action)
        });
    // Only a new version takes a query (`?canary=N`).
    let canary = match action {
        "component" => match canary_of_query(request.uri().query()) {
            Ok(canary) => canary,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        },
        _ => None,
    };
    match (request.method().clone(), path.as_str(), route, action) {
        (Method::GET, "/routes", _, _) => json(StatusCode::OK, &control.served()),
        (Method::POST, "/reload", _, _) => match control.reload().await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => swap_error(e),
        },
        (Method::PUT, _, Some(route), "component") => {
            let bytes = match Limited::new(request.into_body(), MAX_UPLOAD_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot read the upload: {e}"),
                    );
                }
            };
            answer(
                control
                    .swap(&route, Source::Upload(bytes.to_vec()), canary)
                    .await,
            )
        }
        (Method::POST, _, Some(route), "component") => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct FromFile {
                file: std::path::PathBuf,
                canary: Option<i64>,
            }
            let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot read the request: {e}"),
                    );
                }
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
                    answer(control.swap(&route, Source::File(file), canary).await)
                }
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"file\": \"...\", \"canary\": 1-99 (optional)}}: {e}"),
                ),
            }
        }
        (Method::POST, _, Some(route), "promote") => {
            answer(control.decide(&route, Decision::Promote).await)
        }
        (Method::POST, _, Some(route), "rollback") => {
            answer(control.decide(&route, Decision::Rollback).await)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such admin endpoint: see GET /routes, PUT|POST /routes/<route>/component, \
             POST /routes/<route>/promote|rollback, POST /reload",
        ),
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
