//! A native hyper hello-world: the ceiling the Wasm host is measured against.
//!
//! The same server loop shape as the host (tokio multi-thread, hyper
//! HTTP/1.1, one task per connection), minus everything that makes it a
//! Wasm host, so the difference between the two is the cost of Wasm.
//! Like the `hello` component, `.../sleep?N` answers after N milliseconds:
//! the floor of the host's concurrency sweep (what holding N requests in
//! flight costs a plain hyper server).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Answer every request with 200 "hello" (after N ms for `.../sleep?N`).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!(
        "native hello listening on http://{}",
        listener.local_addr()?
    );
    loop {
        // Out of descriptors (more clients than `ulimit -n`): say so and
        // retry, as the host does, rather than exit.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                if let Some(ms) = sleep_ms(request.uri()) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The sleep `uri` asks for: `.../sleep?N` is N ms (100 without a number),
/// as the `hello` component reads it; anything else answers at once.
fn sleep_ms(uri: &hyper::Uri) -> Option<u64> {
    if !uri.path().ends_with("/sleep") {
        return None;
    }
    Some(uri.query().and_then(|q| q.parse().ok()).unwrap_or(100))
}
