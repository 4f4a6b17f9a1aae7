//! The benchmark component: any path answers 200 `hello` at once (for
//! per-request cost), except `.../sleep`, which answers after exactly
//! 100 ms, or N milliseconds with `.../sleep?N` (for concurrency sweeps,
//! where the guest's own time must be known). The query is a bare number,
//! with no `=`, so it fits the generator's `PATH=WEIGHT` syntax.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use endpoint_guest::bindings::wasi::clocks::monotonic_clock;
use endpoint_guest::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};

/// The sleep of `.../sleep` without a query, in milliseconds.
pub const DEFAULT_SLEEP_MS: u64 = 100;
/// The longest sleep the query may ask for: a minute.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// How long to sleep before answering `path_with_query`, in milliseconds:
/// `None` for an immediate answer. A query that is not a number, or above
/// [`MAX_SLEEP_MS`], is `Err` with why (answered 400: a benchmark must not silently
/// measure some other sleep).
pub fn sleep_ms(path_with_query: &str) -> Result<Option<u64>, &'static str> {
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""));
    if !path.ends_with("/sleep") {
        return Ok(None);
    }
    if query.is_empty() {
        return Ok(Some(DEFAULT_SLEEP_MS));
    }
    match query.parse::<u64>() {
        Ok(ms) if ms <= MAX_SLEEP_MS => Ok(Some(ms)),
        _ => Err("the query of .../sleep: milliseconds, up to 60000\n"),
    }
}

struct Hello;

impl endpoint_guest::bindings::exports::wasi::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let sleep = sleep_ms(&request.path_with_query().unwrap_or_default());
        drop(request);
        match sleep {
            Ok(Some(ms)) => monotonic_clock::subscribe_duration(ms * 1_000_000).block(),
            Ok(None) => {}
            Err(why) => return endpoint_guest::respond(out, 400, why.as_bytes()),
        }
        endpoint_guest::respond(out, 200, b"hello");
    }
}

#[cfg(target_arch = "wasm32")]
endpoint_guest::bindings::export_endpoint!(Hello with_types_in endpoint_guest::bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sleep_paths_sleep() {
        assert_eq!(sleep_ms("/hello"), Ok(None));
        assert_eq!(sleep_ms("/hello?5"), Ok(None));
        assert_eq!(sleep_ms("/sleepy"), Ok(None));
        assert_eq!(sleep_ms("/hello/sleep"), Ok(Some(DEFAULT_SLEEP_MS)));
    }

    #[test]
    fn the_query_sets_the_sleep_within_bounds() {
        assert_eq!(sleep_ms("/hello/sleep?1000"), Ok(Some(1000)));
        assert_eq!(sleep_ms("/hello/sleep?0"), Ok(Some(0)));
        assert_eq!(sleep_ms("/hello/sleep?60000"), Ok(Some(60_000)));
        assert!(sleep_ms("/hello/sleep?60001").is_err());
        assert!(sleep_ms("/hello/sleep?soon").is_err());
        assert!(sleep_ms("/hello/sleep?ms=5").is_err());
        assert!(sleep_ms("/hello/sleep?-1").is_err());
    }
}
