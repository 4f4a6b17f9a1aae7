//! `/ep_four`: waits uniform in [0, 800 ms), then answers 200 `4`.

use std::time::Duration;

endpoint_guest::endpoint!(endpoint_guest::Reply {
    max_delay: Duration::from_millis(800),
    status: 200,
    body: b"4",
});
