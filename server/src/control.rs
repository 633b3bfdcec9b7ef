//! Control-plane requests: authenticated here with the credential their
//! endpoint takes, rate limited per collector key, read within limits and
//! answered by `adit_control`.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};

use adit_ingest::decode::{self, Encoding};

use crate::auth::{admin_token, collector_key};
use crate::limits::Lane;
use crate::upload::key_rate;
use crate::{json_response, Error, PeerAddr, Result, State};

/// Largest control-plane request body (after decompression).
const MAX_CONTROL_BODY: usize = 1 << 20;

/// The credential an endpoint reads, and the only one it reads: the API
/// defines one header per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `X-Collector-Key`: upload, command poll, command result, heartbeat,
    /// the collector's configuration.
    CollectorKey,
    /// `Authorization: Bearer`: every other endpoint.
    AdminToken,
}

/// The credential of `method` on `path` (an `/api/collector/…` path).
pub fn credential_for(method: &Method, path: &str) -> Credential {
    let path = path.strip_prefix("/api/collector/").unwrap_or(path);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["upload"])
        | (&Method::GET, ["commands", "pending"])
        | (&Method::POST, ["commands", _, "result"])
        | (&Method::POST, ["heartbeat"])
        | (&Method::GET, ["config"]) => Credential::CollectorKey,
        _ => Credential::AdminToken,
    }
}

/// A control-plane request: authenticated here with the credential its
/// endpoint takes, rate limited per collector key, answered by
/// [`adit_control`].
pub(crate) async fn control<B>(req: Request<B>, state: &State) -> Result<Response<Full<Bytes>>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let who = match credential_for(&parts.method, parts.uri.path()) {
        Credential::CollectorKey => {
            let (key, site_id) = collector_key(&parts.headers, state).await?;
            // Heartbeats, polls and results: the key's rate, in a bucket of
            // their own so they never eat into its uploads.
            state.rate_limiter.check_lane(
                key.id,
                Lane::Control,
                key_rate(&key, state),
                received_at,
            )?;
            adit_control::Principal::Collector {
                key_id: key.id,
                site_id,
            }
        }
        Credential::AdminToken => {
            let key = admin_token(&parts.headers, state).await?;
            match key.site_id {
                // A collector key as a bearer: the control plane answers
                // 403 saying an admin token belongs there.
                Some(site_id) => adit_control::Principal::Collector {
                    key_id: key.id,
                    site_id,
                },
                None => adit_control::Principal::Admin { key_id: key.id },
            }
        }
    };
    let encoding =
        Encoding::from_header(parts.headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()))?;
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut held = state.budget.reservation();
    let raw = tokio::time::timeout(
        state.limits.body_read_timeout,
        crate::body::read_body(body, content_length, MAX_CONTROL_BODY, &mut held),
    )
    .await
    .map_err(|_| Error::BodyRead {
        reason: "timed out".into(),
    })??;
    let raw = decode::decompress(raw, encoding, MAX_CONTROL_BODY)?;
    decode::check_not_compressed(&raw, encoding)?;
    held.grow(held.bytes() + raw.len())?;
    let method = match parts.method {
        Method::GET => adit_control::Method::Get,
        Method::POST => adit_control::Method::Post,
        Method::DELETE => adit_control::Method::Delete,
        Method::PUT => adit_control::Method::Put,
        _ => adit_control::Method::Other,
    };
    let path = parts.uri.path();
    let collector = path.strip_prefix("/api/collector/");
    let request = adit_control::Request {
        method,
        path: collector.unwrap_or_else(|| path.strip_prefix("/api/").unwrap_or(path)),
        query: parts.uri.query(),
        body: &raw,
        peer_ip: parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
    };
    let reply = match collector {
        Some(_) => state.control.handle(request, who).await?,
        None => state.control.handle_alerts(request, who).await?,
    };
    Ok(json_response(StatusCode::OK, reply.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each endpoint reads one credential: the collector key for upload,
    /// command poll, command result, heartbeat and the collector's
    /// configuration; the admin token for
    /// everything else (checked against the routes of adit_control).
    #[test]
    fn each_endpoint_takes_the_credential_the_api_defines() {
        use Credential::{AdminToken, CollectorKey};
        let cases = [
            (Method::POST, "/api/collector/upload", CollectorKey),
            (Method::GET, "/api/collector/commands/pending", CollectorKey),
            (
                Method::GET,
                "/api/collector/commands/pending/",
                CollectorKey,
            ),
            (
                Method::POST,
                "/api/collector/commands/17/result",
                CollectorKey,
            ),
            (Method::POST, "/api/collector/heartbeat", CollectorKey),
            (Method::GET, "/api/collector/heartbeat", AdminToken),
            (Method::POST, "/api/collector/commands", AdminToken),
            (Method::POST, "/api/collector/commands/batch", AdminToken),
            (Method::DELETE, "/api/collector/commands/17", AdminToken),
            (Method::GET, "/api/collector/commands/history", AdminToken),
            (Method::GET, "/api/collector/live/1", AdminToken),
            (Method::GET, "/api/collector/summary/1", AdminToken),
            (Method::GET, "/api/collector/alerts", AdminToken),
            (Method::POST, "/api/collector/alerts/3/resolve", AdminToken),
            (Method::GET, "/api/collector/stats", AdminToken),
            (Method::GET, "/api/collector/config", CollectorKey),
            (Method::POST, "/api/collector/config", AdminToken),
            (Method::GET, "/api/collector/configs", AdminToken),
            (Method::POST, "/api/collector/configs", AdminToken),
            (Method::GET, "/api/collector/configs/v1", AdminToken),
            (
                Method::POST,
                "/api/collector/configs/v1/activate",
                AdminToken,
            ),
            (Method::GET, "/api/collector/agents", AdminToken),
        ];
        for (method, path, want) in cases {
            assert_eq!(credential_for(&method, path), want, "{method} {path}");
        }
    }
}
