//! The guest side every endpoint shares.
//!
//! The demo's endpoints differ only in how long they may wait and what they
//! answer, so the whole behaviour lives here once: bindings generated from the
//! repository's `wit/` world, a uniform random delay drawn from WASI
//! randomness and slept on the WASI monotonic clock, and a small response
//! writer. An endpoint crate is one [`endpoint!`] line.

use std::time::Duration;

/// Bindings generated from `wit/` (the `webapp:endpoint/endpoint` world).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "webapp:endpoint/endpoint",
        pub_export_macro: true,
        export_macro_name: "export_endpoint",
        default_bindings_module: "endpoint_guest::bindings",
        generate_all,
    });
}

use bindings::wasi::clocks::monotonic_clock;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::OutputStream;
use bindings::wasi::random::random;

/// What an endpoint does with every request: wait a uniformly random time in
/// `[0, max_delay)`, then answer `status` with `body`.
pub struct Reply {
    pub max_delay: Duration,
    pub status: u16,
    pub body: &'static [u8],
}

/// Defines the component's `wasi:http/incoming-handler` export from a [`Reply`].
///
/// The export is only emitted for wasm32: its symbol name contains `:`, which
/// native linkers reject, and native builds only exist to run unit tests.
#[macro_export]
macro_rules! endpoint {
    ($reply:expr) => {
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        struct Endpoint;

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for Endpoint {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::serve(&$reply, request, out)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_endpoint!(Endpoint with_types_in $crate::bindings);
    };
}

/// Handles one request as `reply` describes.
pub fn serve(reply: &Reply, request: IncomingRequest, out: ResponseOutparam) {
    drop(request);
    let delay = uniform_delay(reply.max_delay, random::get_random_u64());
    if !delay.is_zero() {
        monotonic_clock::subscribe_duration(delay.as_nanos() as u64).block();
    }
    respond(out, reply.status, reply.body);
}

/// Maps 64 random bits onto `[0, max)` uniformly, in whole nanoseconds.
///
/// Integer math on purpose: `max * bits / 2^64` is below `max` for every
/// input, where a float in `[0, 1)` times `max` can round up to `max` itself.
pub fn uniform_delay(max: Duration, random_bits: u64) -> Duration {
    let nanos = (max.as_nanos() * u128::from(random_bits)) >> 64;
    Duration::from_nanos(nanos as u64)
}

/// Sends a complete response with a known length, so the host need not chunk it.
pub fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let sending = Sending::start(out, status, body.len());
    if sending.write(body) {
        sending.finish();
    }
}

/// A response whose head is set and whose body goes out in pieces.
pub struct Sending {
    /// The body resource, finished once everything is written.
    body: OutgoingBody,
    /// Where the body's bytes go (dropped before `body` is finished).
    stream: OutputStream,
}

impl Sending {
    /// Sets the response (`status`, a plain-text body of `len` bytes) and
    /// opens its body.
    pub fn start(out: ResponseOutparam, status: u16, len: usize) -> Self {
        let headers = Fields::from_list(&[
            (
                "content-type".to_string(),
                b"text/plain; charset=utf-8".to_vec(),
            ),
            ("content-length".to_string(), len.to_string().into_bytes()),
        ])
        .expect("static headers are valid");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(status)
            .expect("endpoint statuses are valid HTTP statuses");
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        Self { body, stream }
    }

    /// Writes `bytes` of the body; `false` once the host takes no more
    /// (the client left): nothing is left to do but return. Never a panic:
    /// a client leaving is no failure of the component.
    pub fn write(&self, bytes: &[u8]) -> bool {
        // blocking_write_and_flush accepts at most 4096 bytes per call.
        bytes
            .chunks(4096)
            .all(|chunk| self.stream.blocking_write_and_flush(chunk).is_ok())
    }

    /// Ends the body (all its announced bytes written). A client that left
    /// meanwhile makes this fail, which changes nothing for the component.
    pub fn finish(self) {
        drop(self.stream);
        let _ = OutgoingBody::finish(self.body, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(200);

    #[test]
    fn delay_stays_below_its_maximum_at_the_extremes() {
        assert_eq!(uniform_delay(MAX, 0), Duration::ZERO);
        assert!(uniform_delay(MAX, u64::MAX) < MAX);
        assert_eq!(uniform_delay(Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn delay_is_uniform_over_evenly_spread_inputs() {
        // 1,000 inputs spread evenly over the u64 range: mean near max/2 and
        // each tenth of the range hit 100 times.
        let n = 1000u64;
        let step = u64::MAX / n;
        let mut deciles = [0u32; 10];
        let mut total = Duration::ZERO;
        for i in 0..n {
            let d = uniform_delay(MAX, i * step);
            total += d;
            deciles[(d.as_secs_f64() / MAX.as_secs_f64() * 10.0) as usize] += 1;
        }
        let mean = total.as_secs_f64() / n as f64;
        assert!((mean - 0.1).abs() < 0.001, "mean {mean}");
        assert!(
            deciles.iter().all(|&c| (98..=102).contains(&c)),
            "{deciles:?}"
        );
    }
}
