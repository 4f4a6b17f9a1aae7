//! The server loops: accept connections, serve HTTP/1.1 on each, stop gracefully.
//!
//! Each connection is bounded in every phase: its request heads must
//! arrive within the header timeout (which also closes idle kept-alive
//! connections) and fit the header size limit (else 431); a body is
//! bounded where it is read (`body.rs`, `admin.rs`); a write that makes no
//! progress for the send timeout ends the connection (`connection.rs`).
//! Past the connection cap (fitted to what the process may open,
//! `kernel_limits.rs`) a new connection gets a plain 503 and is closed
//! rather than queued.
//!
//! The public listener ([`serve`]) serves the app; the probes-and-metrics
//! listener ([`serve_operator`], `ops_listen`) and the admin API share
//! [`serve_forever`]: connections of their own, so clients that take every
//! connection or place of the public listener cannot take those.
//!
//! On the stop signal `/readyz` turns 503 and the server keeps accepting for
//! the drain delay (so load balancers notice), then the listener closes (new
//! connections are refused), every open connection finishes the request it
//! is serving and closes, and the loop returns when all are done or the
//! grace period is over.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body as HttpBody, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::config::{Config, HttpLimits};
use crate::connection::{Delivery, WriteTimeout};

/// Connections the probes-and-metrics listener keeps open at once: probes
/// and scrapers need a handful.
const OPERATOR_CONNECTIONS: usize = 64;

/// Connections past the cap being answered their 503 at once (each holds
/// its descriptor up to a second); past this many, a new one is closed at
/// once without an answer, so a flood past the cap cannot take the
/// descriptors kept for everything else (`kernel_limits::RESERVED_FILES`).
const REFUSING: usize = 64;

/// Connections the kernel may queue before the server accepts them (capped
/// by `net.core.somaxconn`). The std default, 128, overflows when thousands
/// of clients connect at once: dropped SYNs are retried after a second or
/// more, which shows up as a second of latency.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with a backlog fit for thousands of clients at once.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// An HTTP/1.1 connection builder with the head guards of `limits`: the
/// head must arrive within the header timeout (which also closes idle
/// kept-alive connections) and fit the header size limit. A client may
/// shut its sending side once its request is sent and still get the
/// answer (half-close, which hyper otherwise takes for the client leaving).
pub fn http1(limits: &HttpLimits) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .half_close(true);
    http
}

/// A connection as hyper reads and writes it: writes bounded by the send
/// timeout of `limits`, and what is written told to `delivery`.
pub fn io(
    stream: TcpStream,
    limits: &HttpLimits,
    delivery: Arc<Delivery>,
) -> TokioIo<WriteTimeout<TcpStream>> {
    let _ = stream.set_nodelay(true);
    TokioIo::new(WriteTimeout::new(stream, limits.send_timeout, delivery))
}

/// The next connection on `listener` (named `name` in logs). A failed
/// accept (out of file descriptors, usually) is logged and retried after a
/// moment instead of spinning.
async fn accept(listener: &TcpListener, name: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!("{name}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `listener` for the life of the process, each request answered by
/// `handle`, at most `cap` connections at once (one past it is closed at
/// once, with a warning naming `name`).
pub async fn serve_forever<F, Fut, B>(
    listener: TcpListener,
    name: &'static str,
    cap: usize,
    limits: HttpLimits,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let http = http1(&limits);
    let connections = Arc::new(Semaphore::new(cap));
    loop {
        let (stream, peer) = accept(&listener, name).await;
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "{name}: {cap} connections open, closing a new one");
            continue;
        };
        let handle = handle.clone();
        let service = service_fn(move |request| {
            let answer = handle(request);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        // Nothing here waits to be known written.
        let connection = http.serve_connection(io(stream, &limits, Arc::default()), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "{name}: connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` of `app` on `listener` (the
/// `ops_listen` address) for the life of the process.
pub async fn serve_operator(listener: TcpListener, app: Arc<App>, limits: HttpLimits) {
    let handle = move |request: Request<Incoming>| {
        let answer = app.handle_operator(&request);
        async move { answer }
    };
    serve_forever(
        listener,
        "probes and metrics",
        OPERATOR_CONNECTIONS,
        limits,
        handle,
    )
    .await;
}

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    stop: impl Future<Output = ()>,
    config: &Config,
) {
    let limits = config.http;
    let http = http1(&limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = GracefulShutdown::new();

    let drain = async {
        stop.await;
        app.stop();
        if !config.drain_delay.is_zero() {
            tracing::info!(
                "draining: /readyz answers 503 for {:?} before the listener closes",
                config.drain_delay
            );
            tokio::time::sleep(config.drain_delay).await;
        }
    };
    tokio::pin!(drain);
    loop {
        tokio::select! {
            (stream, peer) = accept(&listener, "webapp") => {
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    app.metrics().connection_rejected();
                    if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(stream).await;
                            drop(refusal);
                        });
                    }
                    continue;
                };
                let service_app = app.clone();
                let delivery = Arc::new(Delivery::default());
                let service_delivery = delivery.clone();
                let service = service_fn(move |request| {
                    let app = service_app.clone();
                    let delivery = service_delivery.clone();
                    async move { Ok::<_, Infallible>(app.handle(request, delivery).await) }
                });
                let io = io(stream, &limits, delivery);
                let connection = graceful.watch(http.serve_connection(io, service));
                let app = app.clone();
                app.metrics().connection_opened();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, "connection ended with an error: {e}");
                    }
                    app.metrics().connection_closed();
                    drop(permit);
                });
            }
            () = &mut drain => break,
        }
    }
    drop(listener);
    let grace = config.shutdown_grace;
    tracing::info!("stopping: no new connections; waiting up to {grace:?} for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over with requests still in flight"),
    }
}

/// Answers a connection over the cap with 503 and closes it. The request is
/// read (briefly) after answering: closing with unread input would reset
/// the connection and could destroy the answer before the client reads it.
async fn refuse(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 28\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections, retry\n";
    if stream.write_all(ANSWER).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Handles SIGINT (Ctrl-C) and SIGTERM (what Kubernetes sends) from now
/// on, and resolves on the first. Called before the host says it listens:
/// a handler installed only when the future is first polled would leave a
/// moment in which a signal kills the process instead of stopping it.
pub fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_thousand_clients_connect_before_any_is_accepted() {
        // Nothing accepts: connections beyond the backlog would have their
        // SYNs dropped and not complete in time (std's backlog is 128; the
        // kernel caps ours at net.core.somaxconn, 4096 since Linux 5.4).
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..1000)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(5),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        let mut connected = Vec::new();
        for client in clients {
            if let Ok(Ok(stream)) = client.await.unwrap() {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), 1000, "connected while none was accepted");
    }
}
