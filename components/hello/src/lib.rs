//! The benchmark component: `.../sleep` answers 200 `hello` after exactly
//! 100 ms (for concurrency sweeps, where the guest's own time is known), any
//! other path answers 200 `hello` at once (for per-request cost).

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use endpoint_guest::bindings::wasi::clocks::monotonic_clock;
use endpoint_guest::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};

/// The sleep of `.../sleep`, in nanoseconds.
pub const SLEEP_NANOS: u64 = 100_000_000;

struct Hello;

impl endpoint_guest::bindings::exports::wasi::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let sleep = request
            .path_with_query()
            .is_some_and(|p| p.ends_with("/sleep"));
        drop(request);
        if sleep {
            monotonic_clock::subscribe_duration(SLEEP_NANOS).block();
        }
        endpoint_guest::respond(out, 200, b"hello");
    }
}

#[cfg(target_arch = "wasm32")]
endpoint_guest::bindings::export_endpoint!(Hello with_types_in endpoint_guest::bindings);
