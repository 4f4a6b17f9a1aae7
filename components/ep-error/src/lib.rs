//! `/error`: answers at once 500 `error`.

use std::time::Duration;

endpoint_guest::endpoint!(endpoint_guest::Reply {
    max_delay: Duration::ZERO,
    status: 500,
    body: b"error",
});
