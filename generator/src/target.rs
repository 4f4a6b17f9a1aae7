//! The server under load: where it is and how to open a connection to it.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::stats::ErrorKind;

/// An `http://host:port` base URL, checked once.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, what TCP connects to and what the Host header says.
    pub authority: String,
    pub host_header: HeaderValue,
    /// Prepended to every request path (empty for a bare host).
    pub base_path: String,
    /// The URL as given, for messages.
    pub url: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{url}`: only http:// is supported, not {other}://"
                ));
            }
            None => return Err(format!("`{url}` needs a scheme, e.g. http://{url}")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        let host_port = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        if uri.query().is_some() {
            return Err(format!("`{url}`: a target URL cannot have a query"));
        }
        Ok(Self {
            host_header: HeaderValue::from_str(authority.as_str())
                .map_err(|e| format!("`{url}`: bad host: {e}"))?,
            authority: host_port,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// Opens one HTTP/1.1 connection; its driver runs in its own task.
    pub async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, (ErrorKind, String)> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
                _ => ErrorKind::Other,
            };
            (kind, e.to_string())
        })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| (ErrorKind::Other, e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_understood() {
        let t = Target::parse("http://webapp:5000").unwrap();
        assert_eq!(t.authority, "webapp:5000");
        assert_eq!(t.base_path, "");
        let t = Target::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.base_path, "/base");
        assert_eq!(
            Target::parse("http://example").unwrap().authority,
            "example:80"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        assert!(Target::parse("webapp:5000").is_err());
        assert!(
            Target::parse("https://webapp")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(
            Target::parse("http://webapp/?x=1")
                .unwrap_err()
                .contains("query")
        );
        assert!(Target::parse("not a url").is_err());
    }
}
