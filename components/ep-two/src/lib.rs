//! `/ep_two`: waits uniform in [0, 400 ms), then answers 200 `2`.

use std::time::Duration;

endpoint_guest::endpoint!(endpoint_guest::Reply {
    max_delay: Duration::from_millis(400),
    status: 200,
    body: b"2",
});
