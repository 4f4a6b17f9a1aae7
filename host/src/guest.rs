//! Running one request through a component.
//!
//! Every request gets a fresh instance from the route's pre-instantiated
//! `ProxyPre`, so requests share nothing. The guest runs in its own task: the
//! response goes back as soon as the guest sets it, while the guest may keep
//! streaming the body. Whatever the guest does wrong (trap, panic, never
//! answering, running past the deadline) becomes a [`GuestFailure`] the
//! caller can answer and count; none of it can take the host down.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::state::RequestState;

/// Why a guest produced no usable response.
#[derive(Debug)]
pub enum GuestFailure {
    /// The instance could not be created (pool exhausted, start-up trap...).
    Instantiate(wasmtime::Error),
    /// The guest trapped or panicked before setting a response.
    Trap(wasmtime::Error),
    /// The guest returned without ever setting a response.
    NoResponse,
    /// The guest set an error instead of a response.
    ErrorCode(ErrorCode),
    /// The guest did not answer within the request deadline.
    Timeout,
}

impl GuestFailure {
    /// The bounded `kind` label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Instantiate(_) => "instantiate",
            Self::Trap(_) => "trap",
            Self::NoResponse => "no_response",
            Self::ErrorCode(_) => "error_code",
            Self::Timeout => "timeout",
        }
    }

    /// What the client gets instead of the guest's answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for GuestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Debug formatting keeps the error chain and the wasm backtrace.
            Self::Instantiate(e) => write!(f, "cannot instantiate: {e:?}"),
            Self::Trap(e) => write!(f, "trapped: {e:?}"),
            Self::NoResponse => f.write_str("returned without setting a response"),
            Self::ErrorCode(code) => write!(f, "answered with error code {code:?}"),
            Self::Timeout => f.write_str("did not answer before the request deadline"),
        }
    }
}

/// The result of handing one request to a guest.
pub struct Invocation {
    /// How long creating the instance took, when it was created.
    pub instantiation: Option<Duration>,
    pub result: Result<Response<HyperOutgoingBody>, GuestFailure>,
}

/// Instantiates the component and lets it handle `request`, waiting at most
/// `timeout` for a response. The guest task itself is stopped at the same
/// deadline, whether or not it has answered by then.
pub async fn invoke(
    pre: &ProxyPre<RequestState>,
    request: Request<Incoming>,
    timeout: Duration,
) -> Invocation {
    let deadline = Instant::now() + timeout;
    let mut store = Store::new(pre.engine(), RequestState::new());
    store.set_epoch_deadline(1);
    // tokio's yield_now, unlike a plain self-wake, lets the worker poll its
    // timer and I/O driver before the guest runs again: without it, a guest
    // that spins delays every sleeping request on its thread by ~60 ticks.
    store.epoch_deadline_callback(|_| {
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });

    let (sender, receiver) = oneshot::channel();
    let resources = {
        let mut http = store.data_mut().http();
        http.new_incoming_request(Scheme::Http, request)
            .and_then(|req| Ok((req, http.new_response_outparam(sender)?)))
    };
    let (request, outparam) = match resources {
        Ok(resources) => resources,
        Err(e) => return failed(None, GuestFailure::Instantiate(e)),
    };

    let started = Instant::now();
    let proxy = match timeout_at(deadline, pre.instantiate_async(&mut store)).await {
        Ok(Ok(proxy)) => proxy,
        Ok(Err(e)) => return failed(None, GuestFailure::Instantiate(e)),
        Err(_) => return failed(None, GuestFailure::Timeout),
    };
    let instantiation = Some(started.elapsed());

    let guest = tokio::spawn(async move {
        let handler = proxy.wasi_http_incoming_handler();
        match timeout_at(deadline, handler.call_handle(&mut store, request, outparam)).await {
            Ok(result) => result.map_err(GuestFailure::Trap),
            Err(_) => Err(GuestFailure::Timeout),
        }
    });

    let result = match timeout_at(deadline, receiver).await {
        Ok(Ok(Ok(response))) => Ok(response),
        Ok(Ok(Err(code))) => Err(GuestFailure::ErrorCode(code)),
        // The outparam was dropped unset: the guest has finished, and how it
        // finished says why.
        Ok(Err(_)) => match guest.await {
            Ok(Ok(())) => Err(GuestFailure::NoResponse),
            Ok(Err(failure)) => Err(failure),
            Err(join) => Err(GuestFailure::Trap(wasmtime::format_err!(
                "guest task failed: {join}"
            ))),
        },
        Err(_) => Err(GuestFailure::Timeout),
    };
    Invocation {
        instantiation,
        result,
    }
}

fn failed(instantiation: Option<Duration>, failure: GuestFailure) -> Invocation {
    Invocation {
        instantiation,
        result: Err(failure),
    }
}
