//! A client connection as hyper reads and writes it: writes bounded in
//! time, and every answer counted once its bytes are written.
//!
//! hyper has no bound on writing: a client that stops reading keeps its
//! connection (and the kernel's socket buffers, megabytes of them) for as
//! long as it likes. [`WriteTimeout`] fails a write, flush or shutdown that
//! has been blocked for `http.send_timeout` (nginx's `send_timeout`: the
//! time between two successful writes, not for the whole answer), so hyper
//! ends the connection and its place is freed. The timer exists only while
//! a write is blocked.
//!
//! hyper takes an answer's last bytes into its buffer, and drops the answer,
//! before it writes them: whether they reached the client (or met a reset:
//! the client left while its request ran) is known only at the next flush.
//! An answer's accounting waits for it in the connection's [`Delivery`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What is told, once its bytes are written (`true`) or cannot be.
type Waiting = Box<dyn FnOnce(bool) + Send>;

/// Answers handed to one connection whose bytes are not yet known written.
pub struct Delivery {
    /// Told at the next successful flush, or when writing fails; `None`
    /// once the connection can write no more (later ones are told at once).
    waiting: Mutex<Option<Vec<Waiting>>>,
}

impl Delivery {
    /// Calls `then` once what the connection has taken so far is written
    /// (`true`), or cannot be (`false`: an error, or the connection's end,
    /// maybe already past: hyper drops the connection before the answer
    /// it was writing).
    pub fn after_write(&self, then: Waiting) {
        let mut waiting = self.waiting.lock().expect("delivery lock");
        match &mut *waiting {
            Some(list) => list.push(then),
            None => {
                drop(waiting);
                then(false);
            }
        }
    }

    /// Tells the waiting answers; after `false`, every later one too.
    fn settle(&self, written: bool) {
        let waiting = {
            let mut waiting = self.waiting.lock().expect("delivery lock");
            if written {
                waiting.as_mut().map(std::mem::take)
            } else {
                waiting.take()
            }
        };
        for then in waiting.into_iter().flatten() {
            then(written);
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Some(Vec::new())),
        }
    }
}

/// `inner`, its writes bounded by `limit` without progress, telling
/// `delivery` what was written.
pub struct WriteTimeout<S> {
    inner: S,
    /// How long a write may stay blocked.
    limit: Duration,
    /// Runs while a write is blocked; gone once one makes progress.
    blocked: Option<Pin<Box<Sleep>>>,
    /// The answers waiting to be known written.
    delivery: Arc<Delivery>,
}

impl<S> WriteTimeout<S> {
    pub fn new(inner: S, limit: Duration, delivery: Arc<Delivery>) -> Self {
        Self {
            inner,
            limit,
            blocked: None,
            delivery,
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
            if matches!(polled, Poll::Ready(Err(_))) {
                self.delivery.settle(false);
            }
            return polled;
        }
        let limit = self.limit;
        let blocked = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match blocked.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.delivery.settle(false);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {} (http.send_timeout)",
                        humantime::format_duration(limit)
                    ),
                )))
            }
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

    /// hyper flushes once its buffer is written: what it had taken is.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        let polled = self.bound(polled, cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.delivery.settle(true);
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(polled, cx)
    }
}

impl<S> Drop for WriteTimeout<S> {
    /// Whatever was not written by now never will be.
    fn drop(&mut self) {
        self.delivery.settle(false);
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
        let mut bounded = WriteTimeout::new(ours, limit, Arc::default());
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

    #[tokio::test]
    async fn answers_are_told_whether_they_were_written() {
        let (ours, theirs) = tokio::io::duplex(64);
        let delivery = Arc::new(Delivery::default());
        let mut io = WriteTimeout::new(ours, Duration::from_secs(5), delivery.clone());
        let told = Arc::new(Mutex::new(Vec::new()));
        let tell = |told: &Arc<Mutex<Vec<bool>>>| {
            let told = told.clone();
            Box::new(move |written| told.lock().unwrap().push(written)) as Waiting
        };
        delivery.after_write(tell(&told));
        io.write_all(b"answer").await.unwrap();
        assert!(told.lock().unwrap().is_empty(), "told before the flush");
        io.flush().await.unwrap();
        assert_eq!(*told.lock().unwrap(), [true]);
        // The other end gone: the next answer is not written.
        drop(theirs);
        delivery.after_write(tell(&told));
        assert!(io.write_all(b"another").await.is_err());
        assert_eq!(*told.lock().unwrap(), [true, false]);
        // Nor one handed over after the connection failed, nor after it ended.
        delivery.after_write(tell(&told));
        assert_eq!(*told.lock().unwrap(), [true, false, false]);
        drop(io);
        delivery.after_write(tell(&told));
        assert_eq!(*told.lock().unwrap(), [true, false, false, false]);
    }
}
