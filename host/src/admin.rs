//! The admin API, on its own listener: see and change what is served.
//!
//! - `GET  /routes`: every route with its component's digest and load time.
//! - `PUT  /routes/<route>/component`: the body is the new component's bytes.
//! - `POST /routes/<route>/component` with `{"file": "/path/to.wasm"}`: load a file.
//! - `POST /reload`: re-read the config file's route table.
//!
//! Answers are JSON; errors are `{"error": "..."}` with 401 (token),
//! 404 (no such route or endpoint), 400 (malformed), 422 (rejected: the
//! previous version serves on). It binds 127.0.0.1 by default; the config
//! refuses any other address without a bearer token.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::swap::{Control, Source, SwapError};

/// The largest component an upload may carry.
const MAX_UPLOAD_BYTES: usize = 64 << 20;

pub async fn serve(listener: TcpListener, control: Arc<Control>, token: Option<String>) {
    let token: Option<Arc<str>> = token.map(Into::into);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (control, token) = (control.clone(), token.clone());
        let service = service_fn(move |request| {
            let (control, token) = (control.clone(), token.clone());
            async move { Ok::<_, Infallible>(handle(&control, token.as_deref(), request).await) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    control: &Control,
    token: Option<&str>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(token) = token {
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(&format!("Bearer {token}")) {
            return error(StatusCode::UNAUTHORIZED, "a bearer token is required");
        }
    }
    let path = request.uri().path().to_owned();
    let route = path
        .strip_prefix("/routes")
        .and_then(|p| p.strip_suffix("/component"))
        .filter(|r| r.starts_with('/'))
        .map(str::to_owned);
    match (request.method().clone(), path.as_str(), route) {
        (Method::GET, "/routes", _) => json(StatusCode::OK, &control.routes()),
        (Method::POST, "/reload", _) => match control.reload().await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => swap_error(e),
        },
        (Method::PUT, _, Some(route)) => {
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
            swapped(control.swap(&route, Source::Bytes(bytes.to_vec())).await)
        }
        (Method::POST, _, Some(route)) => {
            #[derive(serde::Deserialize)]
            struct FromFile {
                file: std::path::PathBuf,
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
                Ok(FromFile { file }) => swapped(control.swap(&route, Source::File(file)).await),
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"file\": \"...\"}}: {e}"),
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such admin endpoint: see GET /routes, PUT|POST /routes/<route>/component, POST /reload",
        ),
    }
}

fn swapped(result: Result<crate::swap::Swapped, SwapError>) -> Response<Full<Bytes>> {
    match result {
        Ok(swapped) => json(StatusCode::OK, &swapped),
        Err(e) => swap_error(e),
    }
}

fn swap_error(e: SwapError) -> Response<Full<Bytes>> {
    let status = match e {
        SwapError::NoSuchRoute(_) => StatusCode::NOT_FOUND,
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
