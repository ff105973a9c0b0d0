//! A minimal HTTP/1.1 client for one request to the node's own inference server (the chat
//! playground's proxy): `POST` a JSON body with `Connection: close`, read the whole bounded
//! reply. Only loopback-style, trusted peers are ever asked; no TLS, no redirects.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why the request failed.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server took too long.
    #[error("{0}: no reply in time")]
    Timeout(SocketAddr),
    /// The reply was larger than allowed.
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    /// The reply is not HTTP/1.x.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// A reply: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

/// `POST path` with `body` as `application/json` to `addr`; the whole exchange must finish within
/// `timeout` and the reply fit in `max_reply` bytes.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    timeout: Duration,
    max_reply: usize,
) -> Result<Reply, HttpError> {
    let exchange = async {
        let io = |source| HttpError::Io { addr, source };
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            if raw.len() + n > max_reply {
                return Err(HttpError::TooLarge(max_reply));
            }
            raw.extend_from_slice(&buf[..n]);
        }
        parse_reply(&raw)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| HttpError::Timeout(addr))?
}

/// Parses a complete HTTP/1.x reply (status line, headers, body; chunked or not).
pub fn parse_reply(raw: &[u8]) -> Result<Reply, HttpError> {
    let bad = |what: &str| HttpError::Malformed(what.to_string());
    let split =
        raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status =
        parts.next().and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| bad("no status code"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let rest = &raw[split + 4..];
    let body =
        if chunked { dechunk(rest).ok_or_else(|| bad("bad chunked body"))? } else { rest.to_vec() };
    Ok(Reply { status, body })
}

/// Decodes a chunked body (`None` if malformed).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r, Reply { status: 200, body: b"{}".to_vec() });
        let r = parse_reply(b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r, Reply { status: 400, body: b"abcde".to_vec() });
        for bad in [&b"garbage"[..], b"SMTP 200\r\n\r\n", b"HTTP/1.1 xx\r\n\r\n"] {
            assert!(matches!(parse_reply(bad), Err(HttpError::Malformed(_))));
        }
        assert!(
            parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[tokio::test]
    async fn posts_and_reads_a_reply() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone").await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let reply =
            post_json(addr, "/v1/x", b"{\"a\":1}", Duration::from_secs(5), 1024).await.unwrap();
        assert_eq!(reply, Reply { status: 200, body: b"done".to_vec() });
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /v1/x HTTP/1.1\r\n"));
        assert!(request.contains("Content-Length: 7\r\n"));
    }
}
