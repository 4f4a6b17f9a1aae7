//! `/ep_three`: waits uniform in [0, 600 ms), then answers 200 `3`.

use std::time::Duration;

endpoint_guest::endpoint!(endpoint_guest::Reply {
    max_delay: Duration::from_millis(600),
    status: 200,
    body: b"3",
});
