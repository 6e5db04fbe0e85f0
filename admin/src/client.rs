//! A minimal HTTP/1.1 client: one GET per connection, for the CLI and tests
//! (so neither needs a full HTTP client stack).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// The address tried.
        addr: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// No complete answer within the timeout.
    #[error("{0}: no answer in time")]
    Timeout(String),
    /// The answer is not an HTTP/1.x response.
    #[error("{0}: malformed HTTP response")]
    Malformed(String),
}

/// `GET path` on `addr` (`host:port`); returns the status code and body.
pub async fn get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, String), ClientError> {
    send(addr, "GET", path, "", timeout).await
}

/// `method path` on `addr` with a JSON `body` (none if empty); returns the
/// status code and body.
pub async fn send(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), ClientError> {
    tokio::time::timeout(timeout, send_inner(addr, method, path, body))
        .await
        .map_err(|_| ClientError::Timeout(addr.to_string()))?
}

async fn send_inner(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = || ClientError::Malformed(addr.to_string());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(malformed)?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
