//! Reading a request body under the server's limits: size, read time, and how many JSON values
//! it may hold, so that no client can make the server buffer or build more than a bounded
//! amount per request.

use std::time::Duration;

use axum::body::Body;
use tokio_stream::StreamExt;

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (declared or actual).
    TooLarge,
    /// The transfer itself is broken (e.g. a malformed chunked encoding, or the client left).
    Malformed,
    /// Not complete within the body timeout.
    Timeout,
}

/// Reads the whole body, at most `limit` bytes, within `timeout`. `declared` (the
/// Content-Length) sizes the buffer once, so a large body is one allocation, not a series of
/// doublings.
pub(crate) async fn read_body(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, BodyError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut data = body.into_data_stream();
    let read = async {
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|_| BodyError::Malformed)?;
            if buf.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::Timeout),
    }
}

/// An upper bound on the number of values in the JSON text `bytes` (one more than the commas,
/// colons and opening brackets outside strings), computed without allocating. The server refuses
/// a body over its budget before parsing it, so a 1 MiB array of numbers cannot become a
/// 16 MiB document tree.
pub(crate) fn json_values_bound(bytes: &[u8]) -> usize {
    let mut count = 1;
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b':' | b'[' | b'{' => count += 1,
                _ => {}
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_bound_counts_outside_strings_only() {
        assert_eq!(json_values_bound(b"1"), 1);
        let doc = br#"{"prompt": [1, 2, 3], "stop": ["a,b:[{", "\",["]}"#;
        let parsed: serde_json::Value = serde_json::from_slice(doc).unwrap();
        fn count(v: &serde_json::Value) -> usize {
            1 + match v {
                serde_json::Value::Array(a) => a.iter().map(count).sum(),
                serde_json::Value::Object(o) => o.values().map(count).sum(),
                _ => 0,
            }
        }
        let bound = json_values_bound(doc);
        assert!(bound >= count(&parsed), "{bound} < {}", count(&parsed));
        assert!(bound <= 2 * count(&parsed) + 1);
    }
}
