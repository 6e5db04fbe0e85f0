//! A minimal server-sent-events client for the tests: HTTP/1.0, so the
//! body is the raw event stream (no chunked encoding), closed by the server.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One open event stream.
pub struct SseClient {
    reader: BufReader<TcpStream>,
}

impl SseClient {
    /// Opens `GET path` on `http` and reads the response head; fails on a
    /// status other than 200.
    pub async fn connect(http: &str, path: &str) -> Result<SseClient, String> {
        Self::connect_with(http, path, None).await
    }

    /// As [`connect`](Self::connect), sending a `Cookie` header.
    pub async fn connect_with(
        http: &str,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<SseClient, String> {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        Self::connect_headers(http, path, &cookie).await
    }

    /// As [`connect`](Self::connect), with a bearer token.
    pub async fn connect_bearer(http: &str, path: &str, token: &str) -> Result<SseClient, String> {
        Self::connect_headers(http, path, &format!("Authorization: Bearer {token}\r\n")).await
    }

    /// As [`connect`](Self::connect), with `headers` (each line ending in
    /// CRLF) added to the request.
    async fn connect_headers(http: &str, path: &str, headers: &str) -> Result<SseClient, String> {
        let mut stream = TcpStream::connect(http)
            .await
            .map_err(|e| format!("connect {http}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {http}\r\nAccept: text/event-stream\r\n{headers}\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader
            .read_line(&mut status)
            .await
            .map_err(|e| e.to_string())?;
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(format!("GET {path} on {http}: {}", status.trim()));
        }
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 || line.trim().is_empty() {
                break;
            }
        }
        Ok(SseClient { reader })
    }

    /// The next event's data, or `None` on timeout or end of stream.
    pub async fn next_data(&mut self, timeout: Duration) -> Option<String> {
        let read = async {
            let mut data = None;
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(d) = line.strip_prefix("data:") {
                    data = Some(d.trim_start().to_string());
                } else if line.is_empty() && data.is_some() {
                    return data;
                }
            }
        };
        tokio::time::timeout(timeout, read).await.ok().flatten()
    }
}
