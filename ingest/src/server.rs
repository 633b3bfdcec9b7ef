//! The HTTP server: routing, the upload handler, health and readiness.
//! [`handle`] is a plain function of a request and the [`State`], so most
//! tests call it in-process; [`crate::listen::run`] serves it on a
//! listener.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use adit_writer::{Ack, Idempotency, Upload, WriterHandle};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::auth::{KeyCache, KeyInfo};
use crate::decode::{self, Encoding};
use crate::idempotency::{self, Claim, InFlight};
use crate::limits::{ByteBudget, Lane, Rate, RateLimiter};
use crate::validate::{self, Rules};
use crate::{json_response, Error, Result};

/// Front-door limits (row-level ones live in [`Rules`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Body size as received (compressed).
    pub max_body_bytes: usize,
    /// Body size after decompression.
    pub max_decompressed_bytes: usize,
    /// Time a client gets to send its request headers (and to finish the
    /// TLS handshake).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) read, in bytes.
    pub max_header_bytes: usize,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A kept-alive connection with no request in flight is closed after
    /// this long. The header read timeout also runs while a connection
    /// waits for its next request, so the shorter of the two applies.
    pub keep_alive_timeout: Duration,
    /// Time a client gets to send its whole body.
    pub body_read_timeout: Duration,
    /// How long an in-process graceful shutdown waits for open requests.
    pub shutdown_grace: Duration,
    /// Bytes uploads in flight may hold (compressed body plus twice the
    /// decompressed size); beyond it uploads get 503 at once.
    pub inflight_budget_bytes: usize,
    /// Default per-key upload rate (a key's own `uploads_per_s` wins).
    pub rate: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 << 20,
            max_decompressed_bytes: 32 << 20,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            max_connections: 10_000,
            keep_alive_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            inflight_budget_bytes: 192 << 20,
            rate: Rate {
                per_s: 50.0,
                burst: 100.0,
            },
        }
    }
}

/// Everything a request needs.
#[derive(Debug)]
pub struct State {
    pub keys: KeyCache,
    /// Connections for lookups (keys, idempotency, readiness).
    pub pool: deadpool_postgres::Pool,
    pub writer: WriterHandle,
    pub limits: Limits,
    pub rules: Rules,
    pub inflight: InFlight,
    pub metrics: crate::metrics::Metrics,
    pub rate_limiter: RateLimiter,
    pub budget: ByteBudget,
    /// The archive's counters, when archiving.
    pub archive: Option<std::sync::Arc<adit_archive::ArchiveStats>>,
    /// Commands, heartbeats, live state, alerts and the read API.
    pub control: adit_control::Control,
}

/// The client's address, put in each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Largest control-plane request body (after decompression).
const MAX_CONTROL_BODY: usize = 1 << 20;

/// The OpenAPI document of the whole HTTP API (kept in the repository).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

const UPLOAD_PATH: &str = "/api/collector/upload";

/// Answers one request.
pub async fn handle<B>(req: Request<B>, state: &State) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, UPLOAD_PATH) => {
            let started = Instant::now();
            let result = upload(req, state).await;
            let status = match &result {
                Ok(r) => r.status(),
                Err(e) => e.status(),
            };
            state.metrics.upload(status.as_u16(), started.elapsed());
            result
        }
        (&Method::GET, "/metrics") => {
            let text = state.metrics.render(
                &state.writer,
                state.archive.as_deref(),
                state.budget.in_use(),
                state.control.live.stats(),
            );
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        (&Method::GET, "/health") => Ok(json_response(
            StatusCode::OK,
            r#"{"success":true,"data":{"status":"up"}}"#,
        )),
        (&Method::GET, "/ready") => ready(state).await,
        (&Method::GET, "/openapi.json") => Ok(json_response(StatusCode::OK, OPENAPI_JSON)),
        (_, path)
            if path
                .strip_prefix("/api/collector/")
                .is_some_and(adit_control::Control::owns) =>
        {
            control(req, state).await
        }
        (_, UPLOAD_PATH | "/health" | "/ready" | "/metrics" | "/openapi.json") => {
            Err(Error::MethodNotAllowed)
        }
        _ => Err(Error::NotFound),
    };
    result.unwrap_or_else(Error::into_response)
}

/// The credential an endpoint reads, and the only one it reads: the API
/// defines one header per endpoint (issue 17 item 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `X-Collector-Key`: upload, command poll, command result, heartbeat.
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
        | (&Method::POST, ["heartbeat"]) => Credential::CollectorKey,
        _ => Credential::AdminToken,
    }
}

/// A control-plane request: authenticated here with the credential its
/// endpoint takes, rate limited per collector key, answered by
/// [`adit_control`].
async fn control<B>(req: Request<B>, state: &State) -> Result<Response<Full<Bytes>>>
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
    let encoding = Encoding::from_header(parts.headers.get(CONTENT_ENCODING))?;
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut held = state.budget.reservation();
    let raw = tokio::time::timeout(
        state.limits.body_read_timeout,
        decode::read_body(body, content_length, MAX_CONTROL_BODY, &mut held),
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
        _ => adit_control::Method::Other,
    };
    let path = parts.uri.path();
    let request = adit_control::Request {
        method,
        path: path.strip_prefix("/api/collector/").unwrap_or(path),
        query: parts.uri.query(),
        body: &raw,
        peer_ip: parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
    };
    let reply = state.control.handle(request, who).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, reply.body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    Ok(resp)
}

/// Facts about one upload request, gathered before its body is parsed.
struct Context {
    key: KeyInfo,
    site_id: i32,
    received_at: Instant,
    received_at_micros: i64,
    bytes_in: usize,
}

async fn upload<B>(req: Request<B>, state: &State) -> Result<Response<Full<Bytes>>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let received_at = Instant::now();
    let received_at_micros = chrono::Utc::now().timestamp_micros();
    let (parts, body) = req.into_parts();
    let (key, site_id) = collector_key(&parts.headers, state).await?;
    state
        .rate_limiter
        .check(key.id, key_rate(&key, state), received_at)?;
    let encoding = Encoding::from_header(parts.headers.get(CONTENT_ENCODING))?;
    check_content_type(&parts.headers)?;
    let idem_key = parts
        .headers
        .get("idempotency-key")
        .map(|v| idempotency::parse_key(v.as_bytes()))
        .transpose()?;
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limits = &state.limits;
    // Held until the answer is sent: bounds the memory of uploads in
    // flight, counted as the body is read (chunked bodies too).
    let mut held = state.budget.reservation();
    let compressed = tokio::time::timeout(
        limits.body_read_timeout,
        decode::read_body(body, content_length, limits.max_body_bytes, &mut held),
    )
    .await
    .map_err(|_| Error::BodyRead {
        reason: "timed out".into(),
    })??;
    let ctx = Context {
        key,
        site_id,
        received_at,
        received_at_micros,
        bytes_in: compressed.len(),
    };
    let raw = decode::decompress(compressed, encoding, limits.max_decompressed_bytes)?;
    decode::check_not_compressed(&raw, encoding)?;
    // Parsed samples take about twice the JSON they came from.
    let _parsed_bytes = state.budget.reserve(raw.len() * 2)?;
    let body = match idem_key {
        None => match write(state, &ctx, &raw, None).await? {
            Ack::Committed(body) => body,
            Ack::Duplicate => {
                return Err(Error::Internal {
                    reason: "duplicate without a key".into(),
                })
            }
        },
        Some(idem_key) => write_once(state, &ctx, &raw, idem_key).await?,
    };
    Ok(json_response(StatusCode::OK, body))
}

/// The upload rate of `key`: its own, or the server's default.
fn key_rate(key: &KeyInfo, state: &State) -> Rate {
    match key.uploads_per_s {
        Some(r) => Rate {
            per_s: f64::from(r),
            burst: (2.0 * f64::from(r)).max(1.0),
        },
        None => state.limits.rate,
    }
}

/// The `Authorization: Bearer` value, if the header has that scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The collector key of `X-Collector-Key` (and only there) and its site.
/// An admin token there (or as a bearer here) is 403
/// `admin_token_not_collector_key`; everything else wrong is 401
/// `invalid_key` saying what is wrong.
async fn collector_key(headers: &HeaderMap, state: &State) -> Result<(KeyInfo, i32)> {
    let Some(value) = headers.get("x-collector-key") else {
        if let Some(token) = bearer(headers) {
            if let Some(key) = state.keys.lookup(token).await? {
                if key.is_admin() {
                    return Err(Error::AdminTokenAsCollectorKey);
                }
            }
            return Err(Error::InvalidKey {
                reason: "this endpoint reads the collector key from X-Collector-Key, \
                         not from Authorization",
            });
        }
        return Err(Error::InvalidKey {
            reason: "missing X-Collector-Key header",
        });
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() {
        return Err(Error::InvalidKey {
            reason: "the X-Collector-Key header is empty",
        });
    }
    if !crate::auth::is_well_formed(key) {
        return Err(Error::InvalidKey {
            reason: "X-Collector-Key is not shaped like a key (hsc_ and 40 characters)",
        });
    }
    let info = state.keys.lookup(key).await?.ok_or(Error::InvalidKey {
        reason: "X-Collector-Key matches no active key (unknown or revoked)",
    })?;
    match info.site_id {
        Some(site_id) => Ok((info, site_id)),
        None => Err(Error::AdminTokenAsCollectorKey),
    }
}

/// The key of `Authorization: Bearer` (and only there): an admin token,
/// or a collector key the control plane then refuses with 403. Without a
/// bearer, a collector key in X-Collector-Key is still named as such (the
/// control plane's 403 saying an admin token belongs here), but nothing in
/// that header ever authenticates an admin request: an admin token there
/// is a 401.
async fn admin_token(headers: &HeaderMap, state: &State) -> Result<KeyInfo> {
    let Some(token) = bearer(headers) else {
        let sent = headers
            .get("x-collector-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        if let Some(sent) = sent {
            if let Some(key) = state.keys.lookup(sent).await? {
                if !key.is_admin() {
                    return Ok(key);
                }
            }
            return Err(Error::InvalidKey {
                reason: "this endpoint takes an admin token in Authorization: Bearer; \
                         X-Collector-Key is not read as one",
            });
        }
        return Err(Error::InvalidKey {
            reason: "missing Authorization: Bearer <admin token>",
        });
    };
    if !crate::auth::is_well_formed(token) {
        return Err(Error::InvalidKey {
            reason: "the bearer token is not shaped like a token (hsa_ and 40 characters)",
        });
    }
    state.keys.lookup(token).await?.ok_or(Error::InvalidKey {
        reason: "the bearer token matches no active key (unknown or revoked)",
    })
}

/// JSON, unspecified, or curl's default for `-d`/`--data-binary`
/// (`application/x-www-form-urlencoded`, which a JSON body is not: the
/// body is then read as JSON and refused as such if it is not);
/// anything else is refused.
fn check_content_type(headers: &HeaderMap) -> Result<()> {
    let Some(v) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let s = v.to_str().unwrap_or("");
    let mime = s.split(';').next().unwrap_or("").trim();
    if mime.is_empty()
        || mime.eq_ignore_ascii_case("application/json")
        || mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(s.to_string()))
    }
}

/// Validates the body and waits until the writer has committed it.
async fn write(
    state: &State,
    ctx: &Context,
    raw: &[u8],
    idempotency: Option<Idempotency>,
) -> Result<Ack> {
    let parsed = validate::parse_batch(raw, &state.rules, ctx.received_at_micros)?;
    if !parsed.rejects.is_empty() {
        warn!(
            site_id = ctx.site_id,
            rejected = parsed.rejects.len(),
            first_reason = %parsed.rejects[0].error.reason,
            "Rejected rows."
        );
    }
    let upload = Upload {
        upload_id: rand::random::<i64>() & i64::MAX,
        site_id: ctx.site_id,
        key_id: ctx.key.id,
        received_at: ctx.received_at,
        received_at_micros: ctx.received_at_micros,
        samples: parsed.samples,
        rejects: parsed.rejects,
        summary: parsed.summary,
        idempotency,
        bytes_in: ctx.bytes_in as u32,
        bytes_raw: raw.len() as u32,
        processing_time_ms: 0,
    };
    let (accepted, rejected) = (upload.samples.len() as u64, upload.rejects.len() as u64);
    let reply = state.writer.submit(upload)?;
    let ack = reply.await.map_err(|_| Error::Internal {
        reason: "the writer dropped the upload".into(),
    })??;
    if matches!(ack, Ack::Committed(_)) {
        let m = &state.metrics;
        m.rows_accepted.fetch_add(accepted, Ordering::Relaxed);
        m.rows_rejected.fetch_add(rejected, Ordering::Relaxed);
        m.bytes_compressed
            .fetch_add(ctx.bytes_in as u64, Ordering::Relaxed);
        m.bytes_raw.fetch_add(raw.len() as u64, Ordering::Relaxed);
    }
    Ok(ack)
}

/// An upload with an Idempotency-Key: the first one writes; a retry with
/// the same body gets the first answer byte for byte; a reuse with another
/// body is a conflict.
async fn write_once(state: &State, ctx: &Context, raw: &[u8], idem_key: String) -> Result<String> {
    let body_digest = xxhash_rust::xxh3::xxh3_128(raw).to_be_bytes();
    // A row stored before migration 0006 holds SHA-256 instead.
    let same_body = |stored: &[u8]| match stored.len() {
        32 => stored == Sha256::digest(raw).as_slice(),
        _ => stored == body_digest,
    };
    // Each round either answers or learns that someone else committed the
    // key meanwhile, in which case the next lookup finds it.
    for _ in 0..3 {
        let guard = match state.inflight.claim(ctx.key.id, &idem_key) {
            Claim::Wait(rx) => {
                idempotency::wait(rx).await;
                continue;
            }
            Claim::Owner(guard) => guard,
        };
        let client = crate::auth::pooled(&state.pool, crate::auth::POOL_WAIT).await?;
        if let Some(stored) = idempotency::lookup(&client, ctx.key.id, &idem_key).await? {
            if same_body(&stored.body_digest) {
                debug!(
                    site_id = ctx.site_id,
                    "Answered a retry from the idempotency store."
                );
                return Ok(stored.response);
            }
            return Err(Error::IdempotencyConflict);
        }
        drop(client);
        let idem = Idempotency {
            key: idem_key.clone(),
            body_digest,
        };
        match write(state, ctx, raw, Some(idem)).await? {
            Ack::Committed(body) => return Ok(body),
            Ack::Duplicate => drop(guard),
        }
    }
    Err(Error::DatabaseUnavailable {
        reason: "idempotency key kept changing hands".into(),
    })
}

async fn ready(state: &State) -> Result<Response<Full<Bytes>>> {
    let depth = state.writer.queue_len();
    let capacity = state.writer.queue_capacity();
    let database = tokio::time::timeout(Duration::from_secs(2), async {
        let client = state.pool.get().await.ok()?;
        client.query_one("SELECT 1", &[]).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let saturated = depth * 10 >= capacity * 9;
    if !database {
        return Err(Error::NotReady {
            reason: "database unreachable".into(),
        });
    }
    if saturated {
        return Err(Error::NotReady {
            reason: format!("queue saturated ({depth}/{capacity})"),
        });
    }
    Ok(json_response(
        StatusCode::OK,
        format!(
            r#"{{"success":true,"data":{{"database":true,"queue_depth":{depth},"queue_capacity":{capacity}}}}}"#
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each endpoint reads one credential: the collector key for upload,
    /// command poll, command result and heartbeat; the admin token for
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
        ];
        for (method, path, want) in cases {
            assert_eq!(credential_for(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn curls_default_content_type_is_taken_and_others_are_refused() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(ct));
            check_content_type(&h)
        };
        check_content_type(&HeaderMap::new()).unwrap();
        with("application/json").unwrap();
        with("Application/JSON; charset=utf-8").unwrap();
        with("application/x-www-form-urlencoded").unwrap();
        let err = with("text/csv").unwrap_err();
        assert_eq!(err.code(), "unsupported_media_type");
        assert!(
            err.to_string().contains("Content-Type: application/json"),
            "{err}"
        );
    }
}
