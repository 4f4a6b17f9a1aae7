//! Which route a request path belongs to.
//!
//! A small pure table, free of I/O, so that routing rules are obvious and
//! tested on their own. Matching is exact on the URI path (the query string
//! is not part of it), as in the original Flask app: `/ep_one/` and
//! `/EP_ONE` are not `/ep_one`.

use std::collections::HashMap;

/// Paths the host answers itself; a route may not claim them.
pub const RESERVED_PATHS: &[&str] = &["/metrics", "/healthz", "/readyz"];

/// Maps request paths to route indices (positions in the configured order).
#[derive(Debug, Default)]
pub struct RouteTable {
    by_path: HashMap<String, usize>,
}

impl RouteTable {
    /// Builds the table; the `i`-th path gets index `i`. Later duplicates are
    /// rejected by configuration checks before this is ever called.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let by_path = paths
            .into_iter()
            .enumerate()
            .map(|(index, path)| (path.to_owned(), index))
            .collect();
        Self { by_path }
    }

    /// The route serving `path`, if any.
    pub fn lookup(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }
}

/// Why a configured route path cannot be served, if it cannot.
pub fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("route path `{path}` must start with `/`"));
    }
    if path.contains(['?', '#']) || path.chars().any(char::is_whitespace) {
        return Err(format!(
            "route path `{path}` must be a plain path (no query, fragment or spaces)"
        ));
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!("route path `{path}` is reserved by the host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(["/ep_one", "/ep_two", "/error"])
    }

    #[test]
    fn exact_paths_find_their_route() {
        let t = table();
        assert_eq!(t.lookup("/ep_one"), Some(0));
        assert_eq!(t.lookup("/ep_two"), Some(1));
        assert_eq!(t.lookup("/error"), Some(2));
    }

    #[test]
    fn near_misses_find_nothing() {
        let t = table();
        for path in ["/", "", "/ep_one/", "/EP_ONE", "/ep_one/x", "/ep", "ep_one"] {
            assert_eq!(t.lookup(path), None, "{path:?}");
        }
    }

    #[test]
    fn route_paths_are_checked() {
        assert!(check_route_path("/ep_one").is_ok());
        assert!(check_route_path("ep_one").is_err());
        assert!(check_route_path("/a?b").is_err());
        assert!(check_route_path("/a b").is_err());
        assert!(check_route_path("/metrics").is_err());
    }
}
