//! A component that misbehaves on purpose, for the host's isolation tests.
//!
//! One component serves every fault so tests build it once; the last segment
//! of the request path picks the fault (`/fault/trap`, `/fault/spin`, ...).
//! An unknown fault name answers 400, so a typo in a test is loud.

// Native builds exist only for `cargo test`; the export is wasm32-only.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

struct Faults;

/// How long `busy` computes and `asleep` sleeps: 200 ms.
const BUSY_OR_ASLEEP_NS: u64 = 200_000_000;

use endpoint_guest::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

impl endpoint_guest::bindings::exports::wasi::http::incoming_handler::Guest for Faults {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let fault = path.rsplit('/').next().unwrap_or_default().to_string();
        if fault == "echo" {
            // Reads the whole request body and answers its length.
            return match read_body(request) {
                Some(n) => endpoint_guest::respond(out, 200, n.to_string().as_bytes()),
                None => endpoint_guest::respond(out, 400, b"body read failed"),
            };
        }
        drop(request);
        match fault.as_str() {
            // The guest hits `unreachable`: a trap before any response.
            "trap" => trap(),
            // Rust panics abort to a trap too, after writing to stderr.
            "panic" => panic!("the panic fault was requested"),
            // Returns without ever setting the response outparam.
            "no-response" => drop(out),
            // Answers with a wasi:http error instead of a response.
            "error-code" => set_error_code(out),
            // Answers with an error code, then fails again: two failures of
            // one request, which the host counts once.
            "error-code-then-trap" => {
                set_error_code(out);
                trap()
            }
            "error-code-then-spin" => {
                set_error_code(out);
                spin()
            }
            // Burns CPU forever without yielding to the host.
            "spin" => spin(),
            // Grows linear memory until the host's limit stops it.
            "alloc" => allocate_forever(),
            // Sends headers, then a body that never ends.
            "stream-forever" => stream_forever(out),
            // Sends headers (200) and a first chunk of the body, then traps:
            // a failure the client sees only as a cut-off body.
            "trap-mid-body" => trap_mid_body(out),
            // Answers normally, but only after 3 s: a long request in flight.
            "slow" => {
                endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                    3_000_000_000,
                )
                .block();
                endpoint_guest::respond(out, 200, b"slow")
            }
            // Computes for 200 ms of wall time, then answers: CPU-bound.
            "busy" => {
                let clock = endpoint_guest::bindings::wasi::clocks::monotonic_clock::now;
                let until = clock() + BUSY_OR_ASLEEP_NS;
                let mut n: u64 = 0;
                while clock() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                endpoint_guest::respond(out, 200, b"busy")
            }
            // Sleeps as long as `busy` computes, then answers: no CPU.
            "asleep" => {
                endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                    BUSY_OR_ASLEEP_NS,
                )
                .block();
                endpoint_guest::respond(out, 200, b"asleep")
            }
            // Holds 16 MiB of linear memory, then answers.
            "grow" => {
                let held = std::hint::black_box(vec![1u8; 16 << 20]);
                endpoint_guest::respond(out, 200, &held.len().to_string().into_bytes())
            }
            // Sends its head and half its body, pauses 500 ms, then sends
            // the rest: a client can leave mid-body.
            "pause-mid-body" => {
                let sending = endpoint_guest::Sending::start(out, 200, 8192);
                if sending.write(&[b'a'; 4096]) {
                    endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                        500_000_000,
                    )
                    .block();
                    if sending.write(&[b'b'; 4096]) {
                        sending.finish();
                    }
                }
            }
            // Answers 8 KiB with its length announced, then, 100 ms later,
            // flushes again and insists it works: a careless guest that
            // traps if the host closed its stream once it had every byte.
            "careless-finish" => {
                let headers =
                    Fields::from_list(&[("content-length".to_string(), b"8192".to_vec())])
                        .expect("valid headers");
                let response = OutgoingResponse::new(headers);
                let body = response.body().expect("the body is taken once");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("the stream is taken once");
                for chunk in [[b'a'; 4096], [b'b'; 4096]] {
                    stream
                        .blocking_write_and_flush(&chunk)
                        .expect("the host takes the body");
                }
                endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                    100_000_000,
                )
                .block();
                stream.blocking_flush().expect("the stream is still open");
                drop(stream);
                OutgoingBody::finish(body, None).expect("the body ends");
            }
            // Like pause-mid-body, but written as a careless guest would:
            // it traps when its second write fails (the client left).
            "trap-if-client-left" => {
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("the body is taken once");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("the stream is taken once");
                stream
                    .blocking_write_and_flush(&[b'a'; 4096])
                    .expect("the client takes the first half");
                endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                    500_000_000,
                )
                .block();
                // The host learns the client left when it writes this; the
                // next write then fails.
                stream
                    .blocking_write_and_flush(&[b'b'; 4096])
                    .expect("the client takes the second part");
                endpoint_guest::bindings::wasi::clocks::monotonic_clock::subscribe_duration(
                    200_000_000,
                )
                .block();
                stream
                    .blocking_write_and_flush(&[b'c'; 4096])
                    .expect("the client takes the third part");
                drop(stream);
                OutgoingBody::finish(body, None).expect("the body ends");
            }
            // Behaves, so tests can see the component works at all.
            "ok" => endpoint_guest::respond(out, 200, b"ok"),
            _ => endpoint_guest::respond(out, 400, b"unknown fault"),
        }
    }
}

fn read_body(request: IncomingRequest) -> Option<usize> {
    let body = request.consume().ok()?;
    let stream = body.stream().ok()?;
    let mut total = 0;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => total += chunk.len(),
            Err(endpoint_guest::bindings::wasi::io::streams::StreamError::Closed) => {
                return Some(total);
            }
            Err(_) => return None,
        }
    }
}

fn set_error_code(out: ResponseOutparam) {
    ResponseOutparam::set(
        out,
        Err(ErrorCode::InternalError(Some(
            "the error-code fault".into(),
        ))),
    )
}

fn trap() {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
}

fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

fn stream_forever(out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    let chunk = [b'x'; 1024];
    while stream.blocking_write_and_flush(&chunk).is_ok() {}
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn trap_mid_body(out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    let _ = stream.blocking_write_and_flush(b"partial");
    trap();
}

#[cfg(target_arch = "wasm32")]
endpoint_guest::bindings::export_endpoint!(Faults with_types_in endpoint_guest::bindings);
