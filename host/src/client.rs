//! What the client did to one request, and so whose a failure is.
//!
//! A component is judged (guest failures counted, canary verdicts) only on
//! what it did. What a client did is the client's, counted in a class of
//! its own and never in a verdict:
//! - 413: its body went over `http.max_body_bytes`;
//! - 400: its body was malformed (a bad chunk);
//! - 408: its body paused past `http.body_read_timeout`, or the component
//!   was still waiting for it when its deadline came;
//! - 499 (nginx's "client closed request"): it did not take the whole
//!   answer: it left, was cut off after `http.send_timeout` without reading,
//!   or read so slowly that the component, waiting to write, met its
//!   deadline.
//!
//! [`ClientSide`] is filled in as the request goes (by the body wrappers
//! and the request's record) and read when something fails. Who ended the
//! request is settled once ([`ClientSide::settle`]): the guest's failure
//! report and the record noticing the client gone may race (the guest
//! failing on the stream the departed client closed), and the first wins.
//!
//! Where the rules can err: a guest that waits on its body together with
//! another pollable (`wasi:io/poll.poll` on both), is woken by the other,
//! then spins to its deadline, is taken as waiting on the client (408).
//! A polls-and-returns read (no waiting) is told apart: it polls with
//! wasmtime's no-op waker.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;

/// 499 "client closed request": nginx's convention, not an IANA status.
pub fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).expect("499 is in the valid range")
}

/// How long the answer must have waited on the client, when the component
/// meets its deadline, for the deadline to be the client's doing. A client
/// that reads takes a frame within microseconds; one whose socket is full
/// takes none for as long as it stays full.
const BACKLOG: Duration = Duration::from_millis(200);

/// How a guest failed, as far as blame goes: meeting its deadline may be
/// the client's doing (it was waiting on the client), anything else is not
/// unless the client was gone already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    AtDeadline,
    Otherwise,
}

/// Who ended a request before its answer was complete, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The guest failed: counted as its failure, judged.
    Guest(StatusCode),
    /// The client did (left, or its body or reading was at fault): its own
    /// class, never judged.
    Client(StatusCode),
}

impl Ended {
    /// One `u16`: 0 for none, a guest's status as it is, a client's plus 1000.
    fn code(self) -> u16 {
        match self {
            Self::Guest(status) => status.as_u16(),
            Self::Client(status) => status.as_u16() + 1000,
        }
    }

    fn of(code: u16) -> Option<Self> {
        let status = |code| StatusCode::from_u16(code).ok();
        match code {
            0 => None,
            1000.. => status(code - 1000).map(Self::Client),
            _ => status(code).map(Self::Guest),
        }
    }
}

/// What one request's client has done so far (shared by the request's
/// body wrappers, its failure report and its record).
#[derive(Debug)]
pub struct ClientSide {
    /// The origin of the instants kept as nanosecond offsets.
    started: Instant,
    /// The request body went over its cap.
    body_too_large: AtomicBool,
    /// The request body paused past `http.body_read_timeout`.
    body_stalled: AtomicBool,
    /// The request body broke off: malformed, or the connection ended.
    body_broken: AtomicBool,
    /// The component is waiting for request body bytes now.
    awaiting_body: AtomicBool,
    /// Since when the answer has had a frame taken and none asked for
    /// since (nanoseconds after `started`, plus one; 0 when not): the
    /// client reading slower than the component writes.
    answer_waiting_since: AtomicU64,
    /// The whole answer has been handed to the connection.
    answer_complete: AtomicBool,
    /// Who ended the request, settled once ([`Ended::code`]).
    ended: AtomicU16,
}

impl Default for ClientSide {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            body_too_large: AtomicBool::new(false),
            body_stalled: AtomicBool::new(false),
            body_broken: AtomicBool::new(false),
            awaiting_body: AtomicBool::new(false),
            answer_waiting_since: AtomicU64::new(0),
            answer_complete: AtomicBool::new(false),
            ended: AtomicU16::new(0),
        }
    }
}

impl ClientSide {
    pub fn body_too_large(&self) {
        self.body_too_large.store(true, Ordering::Relaxed);
    }

    pub fn body_stalled(&self) {
        self.body_stalled.store(true, Ordering::Relaxed);
    }

    pub fn body_broken(&self) {
        self.body_broken.store(true, Ordering::Relaxed);
    }

    /// The component starts (`true`) or stops waiting for body bytes.
    pub fn awaiting_body(&self, waiting: bool) {
        self.awaiting_body.store(waiting, Ordering::Relaxed);
    }

    /// The server took a frame of the answer (`true`: it will ask for the
    /// next once the client has taken this one) or asks for the next.
    pub fn answer_taken(&self, taken: bool) {
        let since = if taken {
            self.started.elapsed().as_nanos() as u64 + 1
        } else {
            0
        };
        self.answer_waiting_since.store(since, Ordering::Relaxed);
    }

    /// The whole answer has been handed to the connection (which may drop
    /// the guest's body before the guest ends: see `body.rs`).
    pub fn answer_completed(&self) {
        self.answer_taken(false);
        self.answer_complete.store(true, Ordering::Relaxed);
    }

    pub fn is_answer_complete(&self) -> bool {
        self.answer_complete.load(Ordering::Relaxed)
    }

    /// Records who ended the request if nobody has yet; `Err` with who
    /// did first otherwise.
    pub fn settle(&self, ended: Ended) -> Result<(), Ended> {
        self.ended
            .compare_exchange(0, ended.code(), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|first| Ended::of(first).expect("only valid codes are stored"))
    }

    /// Who ended the request, if anyone has.
    pub fn ended(&self) -> Option<Ended> {
        Ended::of(self.ended.load(Ordering::Acquire))
    }

    /// What the client's request body makes the answer, if it ended the
    /// request: 413, 408 or 400 (the component's own answer is then moot).
    pub fn body_answer(&self) -> Option<StatusCode> {
        if self.body_too_large.load(Ordering::Relaxed) {
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        } else if self.body_stalled.load(Ordering::Relaxed) {
            Some(StatusCode::REQUEST_TIMEOUT)
        } else if self.body_broken.load(Ordering::Relaxed) {
            Some(StatusCode::BAD_REQUEST)
        } else {
            None
        }
    }

    /// Whether `failure` is the client's doing, and then the status the
    /// request counts as; `None` when it is the component's.
    pub fn blame(&self, failure: Failed) -> Option<StatusCode> {
        if let Some(status) = self.body_answer() {
            return Some(status);
        }
        if let Some(Ended::Client(status)) = self.ended() {
            return Some(status);
        }
        if failure != Failed::AtDeadline {
            return None;
        }
        if self.awaiting_body.load(Ordering::Relaxed) {
            return Some(StatusCode::REQUEST_TIMEOUT);
        }
        let since = self.answer_waiting_since.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_nanos() as u64 + 1;
        (since != 0 && now.saturating_sub(since) >= BACKLOG.as_nanos() as u64).then(client_closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_with_nothing_from_the_client_is_the_components() {
        let client = ClientSide::default();
        assert_eq!(client.blame(Failed::AtDeadline), None);
        assert_eq!(client.blame(Failed::Otherwise), None);
        assert_eq!(client.body_answer(), None);
    }

    #[test]
    fn a_body_too_large_or_stalled_decides_the_answer() {
        let client = ClientSide::default();
        client.body_stalled();
        assert_eq!(client.body_answer(), Some(StatusCode::REQUEST_TIMEOUT));
        assert_eq!(
            client.blame(Failed::Otherwise),
            Some(StatusCode::REQUEST_TIMEOUT)
        );
        client.body_too_large();
        assert_eq!(client.body_answer(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    }

    #[test]
    fn any_failure_after_the_client_left_is_the_clients() {
        let client = ClientSide::default();
        client.settle(Ended::Client(client_closed())).unwrap();
        assert_eq!(client.blame(Failed::Otherwise), Some(client_closed()));
    }

    #[test]
    fn the_first_to_end_a_request_is_who_ended_it() {
        let client = ClientSide::default();
        assert_eq!(client.ended(), None);
        let failed = Ended::Guest(StatusCode::GATEWAY_TIMEOUT);
        client.settle(failed).unwrap();
        assert_eq!(client.settle(Ended::Client(client_closed())), Err(failed));
        assert_eq!(
            client.settle(Ended::Guest(StatusCode::INTERNAL_SERVER_ERROR)),
            Err(failed)
        );
        assert_eq!(client.ended(), Some(failed));
        let left = ClientSide::default();
        left.settle(Ended::Client(client_closed())).unwrap();
        assert_eq!(left.ended(), Some(Ended::Client(client_closed())));
    }

    #[test]
    fn a_deadline_met_waiting_on_the_client_is_the_clients() {
        let waiting_for_body = ClientSide::default();
        waiting_for_body.awaiting_body(true);
        assert_eq!(
            waiting_for_body.blame(Failed::AtDeadline),
            Some(StatusCode::REQUEST_TIMEOUT)
        );
        // A trap while waiting is still the component's.
        assert_eq!(waiting_for_body.blame(Failed::Otherwise), None);
        waiting_for_body.awaiting_body(false);
        assert_eq!(waiting_for_body.blame(Failed::AtDeadline), None);

        // An answer frame just taken: the client has had no time to be slow.
        let slow_reader = ClientSide::default();
        slow_reader.answer_taken(true);
        assert_eq!(slow_reader.blame(Failed::AtDeadline), None);
        // Taken long ago and never asked for again: it is.
        let slow_reader = ClientSide {
            started: Instant::now() - 2 * BACKLOG,
            ..ClientSide::default()
        };
        slow_reader.answer_waiting_since.store(1, Ordering::Relaxed);
        assert_eq!(slow_reader.blame(Failed::AtDeadline), Some(client_closed()));
        slow_reader.answer_taken(false);
        assert_eq!(slow_reader.blame(Failed::AtDeadline), None);
    }
}
