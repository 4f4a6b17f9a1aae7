//! Bounded metric label values.
//!
//! Every label value the host exports comes from here or from the route
//! table, never from raw client input, so the number of series stays bounded
//! whatever clients send (the most common complaint about the Flask
//! exporter was cardinality exploding on raw URLs).

use hyper::Method;

/// The `path` label of every request that matched no route.
pub const UNMATCHED_PATH: &str = "unmatched";

/// The `method` label: the standard methods by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_names() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    #[test]
    fn any_other_method_shares_one_value() {
        for name in ["PURGE", "get", "BREW", "X-ANYTHING-AT-ALL"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{name}");
        }
    }
}
