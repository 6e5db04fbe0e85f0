//! A minimal HTTP/1.1 client: one request per connection, for the CLI and tests
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
    let r = request(addr, method, path, &[], body, timeout).await?;
    Ok((r.status, r.body))
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl Response {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` on `addr` with extra `headers` and a JSON `body` (none if
/// empty).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<Response, ClientError> {
    tokio::time::timeout(timeout, request_inner(addr, method, path, headers, body))
        .await
        .map_err(|_| ClientError::Timeout(addr.to_string()))?
}

/// Bodies larger than this are sent with `Expect: 100-continue`.
const ASK_BEFORE_SENDING: usize = 1 << 20;

/// How long to wait for a `100 Continue` before sending the body anyway.
const CONTINUE_WAIT: Duration = Duration::from_secs(3);

/// Reads the status line of the server's first answer to an
/// `Expect: 100-continue` request into `raw`: its status, or `None` if the
/// server said nothing within [`CONTINUE_WAIT`]. After a `100`, `raw` holds
/// the interim answer whole (its blank line included).
async fn interim_answer(stream: &mut TcpStream, raw: &mut Vec<u8>) -> std::io::Result<Option<u16>> {
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = find(raw, b"\r\n\r\n") {
                let status = std::str::from_utf8(&raw[..end])
                    .ok()
                    .and_then(|h| h.split_whitespace().nth(1))
                    .and_then(|s| s.parse::<u16>().ok());
                return Ok(status);
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    match tokio::time::timeout(CONTINUE_WAIT, read).await {
        Ok(status) => status,
        Err(_) => Ok(None),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn request_inner(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    let mut head = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // A large body waits for the server's go-ahead: a server that refuses
    // it (413) answers and closes without reading it, and a client still
    // writing then gets a reset instead of the answer.
    let ask_first = body.len() > ASK_BEFORE_SENDING;
    if ask_first {
        head.push_str("Expect: 100-continue\r\n");
    }
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{head}Connection: close\r\n\r\n");
    if !ask_first {
        // Head and body in one write: a small body written on its own
        // waits for the head's ACK (Nagle's algorithm against a delayed
        // ACK), 40 ms a request.
        request.push_str(body);
    }
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    if ask_first {
        match interim_answer(&mut stream, &mut raw).await.map_err(io)? {
            // Go ahead (or no word in time, when the server is one that
            // never says): send the body, and read on for the answer.
            Some(100) | None => {
                raw.clear();
                stream.write_all(body.as_bytes()).await.map_err(io)?;
            }
            // Refused before the body: `raw` holds the start of the answer.
            Some(_) => {}
        }
    }
    stream.read_to_end(&mut raw).await.map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = || ClientError::Malformed(addr.to_string());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(malformed)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
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
