//! Body wrappers that keep a misbehaving client or guest honest.
//!
//! [`LimitedBody`] caps what a client may upload into a component.
//! [`GuestBody`] makes a response whose guest failed mid-stream end in an
//! error, so hyper aborts the connection instead of sending a clean end (a
//! truncated body must never look complete), and makes the response last
//! until the guest is done, so it is timed and counted in full.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A request body that fails once more than `limit` bytes have come in.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` turns true if the limit is hit.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            exceeded,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<ErrorCode>,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > this.remaining {
                this.exceeded.store(true, Ordering::Relaxed);
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
}

impl<E> GuestBody<E> {
    /// The body of a guest still running (elsewhere), ending as `end` says.
    pub fn new(inner: HyperOutgoingBody, end: GuestEnd<E>) -> Self {
        Self {
            inner,
            end: Some(end),
            failed: false,
        }
    }

    /// The body of a guest that has already ended, as `ended` says.
    pub fn ended(inner: HyperOutgoingBody, ended: Result<(), E>) -> Self {
        Self {
            inner,
            end: None,
            failed: ended.is_err(),
        }
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

    /// `bytes` in one frame, limited to `limit`, with its "exceeded" flag.
    fn limited(
        bytes: &'static [u8],
        limit: u64,
    ) -> (impl Body<Data = Bytes, Error = ErrorCode>, Arc<AtomicBool>) {
        let exceeded = Arc::new(AtomicBool::new(false));
        let full =
            Full::new(Bytes::from_static(bytes)).map_err(|never| -> ErrorCode { match never {} });
        (LimitedBody::new(full, limit, exceeded.clone()), exceeded)
    }

    #[tokio::test]
    async fn a_body_within_its_limit_passes_whole() {
        let (body, exceeded) = limited(b"hello", 5);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(!exceeded.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_body_over_its_limit_fails_and_says_so() {
        let (body, exceeded) = limited(b"abcdef", 4);
        assert!(body.collect().await.is_err());
        assert!(exceeded.load(Ordering::Relaxed));
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
        let bytes = GuestBody::new(outgoing(b"ok"), rx)
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
            GuestBody::new(outgoing(b"partial"), rx)
                .collect()
                .await
                .is_err()
        );
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        drop(tx);
        assert!(
            GuestBody::new(outgoing(b"partial"), rx)
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
        let mut body = GuestBody::new(outgoing(b"x"), rx);
        assert!(body.frame().await.unwrap().is_ok());
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), body.frame()).await;
        assert!(pending.is_err(), "the body ended before its guest");
        tx.send(Ok(())).unwrap();
        assert!(body.frame().await.is_none());
    }
}
