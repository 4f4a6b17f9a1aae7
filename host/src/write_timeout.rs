//! A connection whose writes fail once they make no progress for a while.
//!
//! hyper has no bound on writing: a client that stops reading keeps its
//! connection (and the kernel's socket buffers, megabytes of them) for as
//! long as it likes. [`WriteTimeout`] fails a write, flush or shutdown that
//! has been blocked for `http.send_timeout` (nginx's `send_timeout`: the
//! time between two successful writes, not for the whole answer), so hyper
//! ends the connection and its place is freed. The timer exists only while
//! a write is blocked.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, its writes bounded by `limit` without progress.
pub struct WriteTimeout<S> {
    inner: S,
    /// How long a write may stay blocked.
    limit: Duration,
    /// Runs while a write is blocked; gone once one makes progress.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            blocked: None,
        }
    }

    /// Passes `polled` on, or the timeout's error once the write has been
    /// blocked for `limit`.
    fn bound<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let limit = self.limit;
        let blocked = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match blocked.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} (http.send_timeout)",
                    humantime::format_duration(limit)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.bound(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bound(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_blocked_past_the_limit_fails_and_one_that_moves_does_not() {
        // A pipe of 64 bytes whose other end reads nothing.
        let (ours, mut theirs) = tokio::io::duplex(64);
        let limit = Duration::from_millis(100);
        let mut bounded = WriteTimeout::new(ours, limit);
        bounded.write_all(&[1; 64]).await.unwrap();
        let started = std::time::Instant::now();
        let error = bounded.write_all(&[2; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);

        // Once the reader reads, writes go on.
        let mut sink = [0u8; 64];
        tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut sink)
            .await
            .unwrap();
        bounded.write_all(&[3; 64]).await.unwrap();
    }
}
