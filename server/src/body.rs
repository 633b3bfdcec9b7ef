//! Reading a request body within its limits: refused on `Content-Length`
//! before it is read, then read through a byte limit, every byte counted
//! against the in-flight memory budget.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::limits::Reservation;
use crate::{Error, Result};

/// Reads the whole body, refusing more than `limit` bytes (at once when
/// `Content-Length` already says so). Every byte is counted against
/// `held` before it is kept: the stated length up front, and the bytes
/// read so far as they arrive (a chunked body states none), so the
/// in-flight budget refuses (503) what it cannot hold.
pub async fn read_body<B>(
    body: B,
    content_length: Option<u64>,
    limit: usize,
    held: &mut Reservation,
) -> Result<Bytes>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    if let Some(n) = content_length {
        held.grow(n as usize)?;
    }
    let mut body = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::BodyRead {
            reason: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            return Err(Error::BodyTooLarge { limit });
        }
        held.grow(total)?;
        if !data.is_empty() {
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => {
            let mut all = BytesMut::with_capacity(total);
            for c in &chunks {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    })
}
