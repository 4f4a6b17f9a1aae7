//! A wasi:http proxy that imports `webapp:unlinkable/secret`, which no host
//! provides: loading it must fail at link time, before any request.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "world-wit"],
        world: "webapp:unlinkable/unlinkable",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Unlinkable;

impl Guest for Unlinkable {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let secret = bindings::webapp::unlinkable::secret::value();
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        let _ = stream.blocking_write_and_flush(secret.as_bytes());
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Unlinkable with_types_in bindings);
