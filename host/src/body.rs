//! Body wrappers that keep a misbehaving client or guest honest.
//!
//! [`RequestBody`] bounds what a client may upload into a component, in
//! size and in pace.
//! [`GuestBody`] makes a response whose guest failed mid-stream end in an
//! error, so hyper aborts the connection instead of sending a clean end (a
//! truncated body must never look complete), and makes the response last
//! until the guest is done, so it is timed and counted in full.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::client::ClientSide;

/// A client's request body as a component reads it: it fails once more
/// than `limit` bytes have come in, or when the component has waited
/// `pause` for bytes that do not come; what happened goes to the request's
/// [`ClientSide`], so the failure is the client's.
pub struct RequestBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    /// Longest wait for the client's next bytes (`http.body_read_timeout`).
    pause: Duration,
    /// Runs while the component waits for bytes that have not come.
    stall: Option<Pin<Box<Sleep>>>,
    /// Where what the client did is told.
    client: Arc<ClientSide>,
}

impl<B> RequestBody<B> {
    /// What the request's client has done.
    pub fn client(&self) -> &Arc<ClientSide> {
        &self.client
    }

    /// Wraps `inner`, bounded by `limit` bytes and `pause` between them.
    pub fn new(inner: B, limit: u64, pause: Duration, client: Arc<ClientSide>) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            pause,
            stall: None,
            client,
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // A read that only looks (wasmtime polls it with `Waker::noop()`,
        // whose data is null; a runtime's waker never has null data) is no
        // waiting: the guest may go on to do anything else.
        let waits = !cx.waker().data().is_null();
        this.client.awaiting_body(polled.is_pending() && waits);
        let frame = match polled {
            Poll::Pending if !waits => return Poll::Pending,
            Poll::Pending => {
                let pause = this.pause;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                ready!(stall.as_mut().poll(cx));
                this.client.awaiting_body(false);
                this.client.body_stalled();
                return Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout)));
            }
            Poll::Ready(frame) => {
                this.stall = None;
                match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        // Malformed, or cut off by the client leaving: the
                        // client's, and any client can cause it, so no warning.
                        tracing::debug!("the client's request body broke off: {e}");
                        this.client.body_broken();
                        return Poll::Ready(Some(Err(ErrorCode::HttpProtocolError)));
                    }
                    None => return Poll::Ready(None),
                }
            }
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > this.remaining {
                this.client.body_too_large();
                return Poll::Ready(Some(Err(ErrorCode::HttpRequestBodySize(Some(this.limit)))));
            }
            this.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a guest that is still running ends, sent by whoever runs it: `Err`
/// if it failed (the failure itself only matters to whoever counts it).
pub type GuestEnd<E> = oneshot::Receiver<Result<(), E>>;

/// A guest's response body that ends only when the guest has ended, and in
/// an error if the guest failed.
pub struct GuestBody<E> {
    inner: HyperOutgoingBody,
    /// How the guest ends, while it runs.
    end: Option<GuestEnd<E>>,
    /// The guest failed and the body has not said so yet.
    failed: bool,
    /// The request's client, for a body dropped while its guest still runs.
    client: Option<Arc<ClientSide>>,
}

impl<E> GuestBody<E> {
    /// The body of a guest still running (elsewhere), ending as `end`
    /// says, answering `client`.
    pub fn new(inner: HyperOutgoingBody, end: GuestEnd<E>, client: Arc<ClientSide>) -> Self {
        Self {
            inner,
            end: Some(end),
            failed: false,
            client: Some(client),
        }
    }

    /// The body of a guest that has already ended, as `ended` says.
    pub fn ended(inner: HyperOutgoingBody, ended: Result<(), E>) -> Self {
        Self {
            inner,
            end: None,
            failed: ended.is_err(),
            client: None,
        }
    }
}

impl<E> Drop for GuestBody<E> {
    /// The connection drops a body once it has the whole answer (its
    /// announced length, or none for HEAD), maybe while the guest is still
    /// finishing it: what the guest writes then is read and dropped until it
    /// ends, so that it is not failing on a stream closed under it. (A body
    /// dropped because the client left is not read on: the guest's writes
    /// fail, and that is the client's doing, `client.rs`.)
    fn drop(&mut self) {
        let complete = self.client.as_ref().is_some_and(|c| c.is_answer_complete());
        if self.end.is_none() || !complete {
            return;
        }
        let empty = http_body_util::Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        let mut rest = std::mem::replace(&mut self.inner, empty);
        tokio::spawn(async move {
            // Ends when the guest does (its deadline included).
            while let Some(Ok(_)) = rest.frame().await {}
        });
    }
}

impl<E> Body for GuestBody<E> {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            return Poll::Ready(Some(frame));
        }
        if let Some(end) = this.end.as_mut() {
            let outcome = ready!(Pin::new(end).poll(cx));
            this.end = None;
            // Failed, or whoever ran it vanished: the body is incomplete.
            this.failed = !matches!(outcome, Ok(Ok(())));
        }
        if std::mem::take(&mut this.failed) {
            return Poll::Ready(Some(Err(ErrorCode::InternalError(Some(
                "the component failed while sending the body".into(),
            ))
            .into())));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.end.is_none() && !self.failed && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// `bytes` in one frame, limited to `limit`, with its client's record.
    fn limited(
        bytes: &'static [u8],
        limit: u64,
    ) -> (impl Body<Data = Bytes, Error = ErrorCode>, Arc<ClientSide>) {
        let client = Arc::new(ClientSide::default());
        let full = Full::new(Bytes::from_static(bytes));
        let body = RequestBody::new(full, limit, Duration::from_secs(1), client.clone());
        (body, client)
    }

    #[tokio::test]
    async fn a_body_within_its_limit_passes_whole() {
        let (body, client) = limited(b"hello", 5);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(client.body_answer(), None);
    }

    #[tokio::test]
    async fn a_body_over_its_limit_fails_and_says_so() {
        let (body, client) = limited(b"abcdef", 4);
        assert!(body.collect().await.is_err());
        assert_eq!(
            client.body_answer(),
            Some(hyper::StatusCode::PAYLOAD_TOO_LARGE)
        );
    }

    #[tokio::test]
    async fn a_look_is_not_a_wait() {
        let client = Arc::new(ClientSide::default());
        let (_sender, receiver) =
            futures::channel::mpsc::channel::<Result<Frame<Bytes>, String>>(1);
        let mut body = RequestBody::new(
            http_body_util::StreamBody::new(receiver),
            100,
            Duration::from_millis(1),
            client.clone(),
        );
        // How wasmtime's non-blocking read polls (wasmtime_wasi::runtime::poll_noop).
        let looked = wasmtime_wasi::runtime::poll_noop(std::pin::pin!(body.frame()));
        assert!(looked.is_none());
        assert_eq!(
            client.blame(crate::client::Failed::AtDeadline),
            None,
            "a look was taken for waiting on the client"
        );
        // A real wait is one.
        let waited = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(matches!(
            waited,
            Ok(Some(Err(ErrorCode::ConnectionReadTimeout)))
        ));
    }

    #[tokio::test]
    async fn a_body_that_pauses_too_long_fails_as_the_clients() {
        let client = Arc::new(ClientSide::default());
        // A client that sent a first frame and then nothing (the sender
        // stays, so the body never ends).
        let (mut sender, receiver) = futures::channel::mpsc::channel(4);
        sender
            .try_send(Ok::<_, String>(Frame::data(Bytes::from_static(b"x"))))
            .unwrap();
        let stalled = http_body_util::StreamBody::new(receiver);
        let pause = Duration::from_millis(100);
        let mut body = RequestBody::new(stalled, 100, pause, client.clone());
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(client.body_answer(), None);
        let started = std::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(
            matches!(error, ErrorCode::ConnectionReadTimeout),
            "{error:?}"
        );
        assert!(started.elapsed() >= pause);
        assert_eq!(
            client.body_answer(),
            Some(hyper::StatusCode::REQUEST_TIMEOUT)
        );
        drop(sender);
    }

    fn outgoing(bytes: &'static [u8]) -> HyperOutgoingBody {
        Full::new(Bytes::from_static(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn a_guest_body_ends_cleanly_when_its_guest_succeeded() {
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        tx.send(Ok(())).unwrap();
        let bytes = GuestBody::new(outgoing(b"ok"), rx, Arc::default())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&bytes[..], b"ok");
        let ended = GuestBody::<String>::ended(outgoing(b"ok"), Ok(()));
        assert_eq!(&ended.collect().await.unwrap().to_bytes()[..], b"ok");
    }

    #[tokio::test]
    async fn a_guest_body_ends_in_an_error_when_its_guest_failed() {
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        tx.send(Err("trapped".into())).unwrap();
        assert!(
            GuestBody::new(outgoing(b"partial"), rx, Arc::default())
                .collect()
                .await
                .is_err()
        );
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        drop(tx);
        assert!(
            GuestBody::new(outgoing(b"partial"), rx, Arc::default())
                .collect()
                .await
                .is_err()
        );
        let ended = GuestBody::ended(outgoing(b"partial"), Err("trapped".to_string()));
        assert!(ended.collect().await.is_err());
    }

    #[tokio::test]
    async fn a_guest_body_waits_for_its_guest_to_end() {
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        let mut body = GuestBody::new(outgoing(b"x"), rx, Arc::default());
        assert!(body.frame().await.unwrap().is_ok());
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), body.frame()).await;
        assert!(pending.is_err(), "the body ended before its guest");
        tx.send(Ok(())).unwrap();
        assert!(body.frame().await.is_none());
    }
}
