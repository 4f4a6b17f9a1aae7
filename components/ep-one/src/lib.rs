//! `/ep_one`: waits uniform in [0, 200 ms), then answers 200 `1`.

use std::time::Duration;

endpoint_guest::endpoint!(endpoint_guest::Reply {
    max_delay: Duration::from_millis(200),
    status: 200,
    body: b"1",
});
