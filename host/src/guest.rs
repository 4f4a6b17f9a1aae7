//! Running one request through a component.
//!
//! Every request gets a fresh instance from the route's pre-instantiated
//! `ProxyPre`, so requests share nothing. The response goes back as soon as
//! the guest sets it, while the guest may keep streaming the body (which
//! then lasts until the guest ends, see `body.rs`). The route's limits
//! apply: a deadline (epoch yields plus a timeout), a memory cap, optional
//! fuel. Whatever the guest does wrong
//! becomes a [`GuestFailure`] the caller can answer and count; none of it can
//! take the host down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, sleep_until};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

use crate::body::{GuestBody, GuestEnd, RequestBody};
use crate::client::Failed;
use crate::config::GuestLimits;
use crate::state::{MemoryLimitExceeded, RequestState};
use crate::usage::{GuestUsage, Timed};

/// Why a guest produced no usable response (or a broken one).
#[derive(Debug)]
pub enum GuestFailure {
    /// The instance could not be created (pool exhausted, start-up trap...).
    Instantiate(wasmtime::Error),
    /// The guest trapped or panicked.
    Trap(wasmtime::Error),
    /// The guest outgrew its memory limit.
    Memory(wasmtime::Error),
    /// The guest burnt all its fuel.
    Fuel,
    /// The guest returned without ever setting a response.
    NoResponse,
    /// The guest set an error instead of a response.
    ErrorCode(ErrorCode),
    /// The guest did not finish within its deadline.
    Timeout,
    /// The guest's answer broke off without a trap: it dropped its body
    /// unfinished, or ended it short of its announced length.
    BrokenBody,
}

impl GuestFailure {
    /// The bounded `kind` label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Instantiate(_) => "instantiate",
            Self::Trap(_) => "trap",
            Self::Memory(_) => "memory",
            Self::Fuel => "fuel",
            Self::NoResponse => "no_response",
            Self::ErrorCode(_) => "error_code",
            Self::Timeout => "timeout",
            Self::BrokenBody => "broken_body",
        }
    }

    /// What the failure is to the client's blame (`client.rs`).
    pub fn as_failed(&self) -> Failed {
        match self {
            Self::Timeout => Failed::AtDeadline,
            _ => Failed::Otherwise,
        }
    }

    /// What the client gets instead of the guest's answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sorts a guest's error into what went wrong.
    fn from_error(error: wasmtime::Error) -> Self {
        if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
            Self::Memory(error)
        } else if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
            Self::Fuel
        } else {
            Self::Trap(error)
        }
    }
}

impl std::fmt::Display for GuestFailure {
    /// One line: the root cause, without the multi-line wasm backtrace
    /// (which `{:?}` keeps, for debug logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Instantiate(e) => write!(f, "cannot instantiate: {}", e.root_cause()),
            Self::Trap(e) => write!(f, "trapped: {}", e.root_cause()),
            Self::Memory(e) => write!(f, "{}", e.root_cause()),
            Self::Fuel => f.write_str("ran out of fuel"),
            Self::NoResponse => f.write_str("returned without setting a response"),
            Self::ErrorCode(code) => write!(f, "answered with error code {code:?}"),
            Self::Timeout => f.write_str("did not finish before its deadline"),
            Self::BrokenBody => {
                f.write_str("left its answer's body unfinished or short of its length")
            }
        }
    }
}

/// Where guest failures are reported (counted and logged). Each failure is
/// reported once; a guest can fail twice (answer with an error code, then
/// trap or overstay its deadline), and the reporter decides what counts.
pub type Report = Arc<dyn Fn(&GuestFailure) + Send + Sync>;

/// The result of handing one request to a guest.
pub struct Invocation {
    /// How long creating the instance took, when it was created.
    pub instantiation: Option<Duration>,
    pub result: Result<Response<GuestBody<GuestFailure>>, GuestFailure>,
}

/// A guest's run from its call to its end.
type GuestRun = Pin<Box<dyn Future<Output = Result<(), GuestFailure>> + Send>>;

/// Instantiates the component and lets it handle `request` within `limits`;
/// `usage`, when given, records what the guest costs (`usage.rs`).
///
/// The guest runs on the calling task until it ends or sets its response,
/// which for most guests is the same moment: no task, no hand-over per
/// request. A guest still running after setting its response (one that
/// streams its body) moves to a task of its own, so hyper's writing and the
/// guest's producing are scheduled apart and one streaming guest cannot
/// hold a worker thread between its epoch yields.
///
/// `place` (the request's place under `http.max_in_flight`) is held until
/// the guest ends, even when the client leaves before.
///
/// `report` is called once if the guest fails, whenever that is: before its
/// response (the failure is also returned) or while streaming the body (the
/// body then ends in an error).
pub async fn invoke(
    pre: &ProxyPre<RequestState>,
    request: Request<RequestBody<Incoming>>,
    limits: &GuestLimits,
    fuel_metered: bool,
    report: Report,
    usage: Option<Arc<GuestUsage>>,
    place: Arc<OwnedSemaphorePermit>,
) -> Invocation {
    // One timer for the whole request: instantiation and the call.
    let mut expiry = Box::pin(sleep_until(Instant::now() + limits.timeout));
    let client = request.body().client().clone();
    let failed = |instantiation, failure: GuestFailure| {
        report(&failure);
        Invocation {
            instantiation,
            result: Err(failure),
        }
    };

    let mut store = Store::new(
        pre.engine(),
        RequestState::new(limits.max_memory_bytes, usage.clone()),
    );
    store.limiter(|state| &mut state.memory);
    // With fuel metering on, every store needs fuel: routes without a
    // budget get all there is. With it off, there is nothing to set.
    if fuel_metered && let Err(e) = store.set_fuel(limits.fuel.unwrap_or(u64::MAX)) {
        return failed(None, GuestFailure::Instantiate(e));
    }
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

    let (sender, mut receiver) = oneshot::channel();
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
    let instantiated = tokio::select! {
        biased;
        instantiated = Timed::new(pre.instantiate_async(&mut store), usage.clone()) => instantiated,
        () = &mut expiry => return failed(None, GuestFailure::Timeout),
    };
    let proxy = match instantiated {
        Ok(proxy) => proxy,
        Err(e) => return failed(None, GuestFailure::Instantiate(e)),
    };
    let instantiation = Some(started.elapsed());

    let mut guest: GuestRun = Box::pin(Timed::new(
        async move {
            let result = {
                let handler = proxy.wasi_http_incoming_handler();
                tokio::select! {
                    biased;
                    ended = handler.call_handle(&mut store, request, outparam) => {
                        ended.map_err(GuestFailure::from_error)
                    }
                    () = expiry => Err(GuestFailure::Timeout),
                }
            };
            // Dropping the store drops an unset outparam: `receiver` then closes.
            drop(store);
            drop(place);
            result
        },
        usage,
    ));

    let ended = tokio::select! {
        biased;
        set = &mut receiver => match set {
            Ok(Ok(response)) => {
                let end = run_apart(guest, report);
                return Invocation {
                    instantiation,
                    result: Ok(response.map(|body| GuestBody::new(body, end, client))),
                };
            }
            // The answer is known (an error); the guest may go on: let it
            // end on its own.
            Ok(Err(code)) => {
                let invocation = failed(instantiation, GuestFailure::ErrorCode(code));
                drop(run_apart(guest, report));
                return invocation;
            }
            // Dropped unset: how the guest ends says why.
            Err(_) => (&mut guest).await,
        },
        ended = &mut guest => ended,
    };
    // The guest has ended (most do before their response is even looked
    // at): what it left in the outparam, and how it ended, say the rest,
    // reported in the order they happened.
    let result = match (receiver.try_recv(), ended) {
        (Ok(Ok(response)), ended) => {
            if let Err(failure) = &ended {
                report(failure);
            }
            Ok(response.map(|body| GuestBody::ended(body, ended)))
        }
        // An error code, then a trap: the error code came first.
        (Ok(Err(code)), Err(failure)) => {
            let first = GuestFailure::ErrorCode(code);
            report(&first);
            report(&failure);
            Err(first)
        }
        (Err(_), Err(failure)) => {
            report(&failure);
            Err(failure)
        }
        (Ok(Err(code)), Ok(())) => {
            let failure = GuestFailure::ErrorCode(code);
            report(&failure);
            Err(failure)
        }
        (Err(_), Ok(())) => {
            report(&GuestFailure::NoResponse);
            Err(GuestFailure::NoResponse)
        }
    };
    Invocation {
        instantiation,
        result,
    }
}

/// Lets `guest` run to its end (or deadline) on a task of its own; says how
/// it ended, and reports a failure when it happens.
fn run_apart(guest: GuestRun, report: Report) -> GuestEnd<GuestFailure> {
    let (sender, end) = oneshot::channel();
    tokio::spawn(async move {
        let ended = guest.await;
        if let Err(failure) = &ended {
            report(failure);
        }
        let _ = sender.send(ended);
    });
    end
}
