//! `POST /api/collector/upload` and `POST /api/datasets/{name}/upload`:
//! the collector key and its rate, the body read and decompressed within
//! limits, the ingest stage's typed upload (telemetry samples, or a
//! declared dataset's Arrow batch) handed to the writer, and the answer
//! sent once it is committed (or, for a retried Idempotency-Key, the first
//! answer again). Both share every step but the decode.

use std::sync::atomic::Ordering;
use std::time::Instant;

use adit_dataset::BodyFormat;
use adit_ingest::decode::{self, Encoding};
use adit_ingest::Origin;
use adit_types::{DatasetRows, Idempotency, Upload};
use adit_writer::idempotency::{self, Claim};
use adit_writer::Ack;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tracing::{debug, warn};

use crate::auth::{collector_key, KeyInfo};
use crate::datasets::DatasetEntry;
use crate::limits::Rate;
use crate::{json_response, Error, Result, State};

pub(crate) const UPLOAD_PATH: &str = "/api/collector/upload";

/// What an upload carries.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Telemetry,
    Dataset(&'a DatasetEntry),
}

/// Facts about one upload request, gathered before its body is parsed.
struct Context {
    key: KeyInfo,
    site_id: i32,
    received_at: Instant,
    received_at_micros: i64,
    bytes_in: usize,
}

pub(crate) async fn upload<B>(req: Request<B>, state: &State) -> Result<Response<Full<Bytes>>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    receive(req, state, Target::Telemetry).await
}

/// `POST /api/datasets/{name}/upload`: the telemetry upload's contract for
/// the rows of dataset `name` (404 `unknown_dataset` if none is declared).
pub(crate) async fn dataset_upload<B>(
    req: Request<B>,
    state: &State,
    name: &str,
) -> Result<Response<Full<Bytes>>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let entry = state.datasets.get(name)?;
    let started = Instant::now();
    let result = receive(req, state, Target::Dataset(entry)).await;
    let status = match &result {
        Ok(r) => r.status(),
        Err(e) => e.status(),
    };
    state
        .metrics
        .datasets
        .upload(entry.name(), status.as_u16(), started.elapsed());
    result
}

async fn receive<B>(
    req: Request<B>,
    state: &State,
    target: Target<'_>,
) -> Result<Response<Full<Bytes>>>
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
    let encoding =
        Encoding::from_header(parts.headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()))?;
    let ndjson = check_content_type(&parts.headers, target)?;
    let idem_key = parts
        .headers
        .get("idempotency-key")
        .map(|v| {
            adit_types::parse_idempotency_key(v.as_bytes()).ok_or(Error::InvalidIdempotencyKey)
        })
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
        crate::body::read_body(body, content_length, limits.max_body_bytes, &mut held),
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
    let how = How { target, ndjson };
    let body = match idem_key {
        None => match write(state, &ctx, &raw, None, how).await? {
            Ack::Committed {
                summary,
                processing_time_ms,
            } => render(target, summary, processing_time_ms),
            Ack::Duplicate => {
                return Err(Error::Internal {
                    reason: "duplicate without a key".into(),
                })
            }
        },
        Some(idem_key) => write_once(state, &ctx, &raw, idem_key, how).await?,
    };
    Ok(json_response(StatusCode::OK, body))
}

/// The upload rate of `key`: its own, or the server's default.
pub(crate) fn key_rate(key: &KeyInfo, state: &State) -> Rate {
    match key.uploads_per_s {
        Some(r) => Rate {
            per_s: f64::from(r),
            burst: (2.0 * f64::from(r)).max(1.0),
        },
        None => state.limits.rate,
    }
}

/// JSON, unspecified, or curl's default for `-d`/`--data-binary`
/// (`application/x-www-form-urlencoded`, which a JSON body is not: the
/// body is then read as JSON and refused as such if it is not); for a
/// dataset also NDJSON (`application/x-ndjson`), for which it returns
/// true; anything else is refused.
fn check_content_type(headers: &HeaderMap, target: Target<'_>) -> Result<bool> {
    let Some(v) = headers.get(CONTENT_TYPE) else {
        return Ok(false);
    };
    let s = v.to_str().unwrap_or("");
    let mime = s.split(';').next().unwrap_or("").trim();
    if mime.is_empty()
        || mime.eq_ignore_ascii_case("application/json")
        || mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Ok(false);
    }
    if let Target::Dataset(_) = target {
        if BodyFormat::from_content_type(Some(s)) == BodyFormat::Ndjson {
            return Ok(true);
        }
    }
    Err(Error::UnsupportedMediaType(s.to_string()))
}

/// How a body is read: what it carries, and whether it is NDJSON.
#[derive(Clone, Copy)]
struct How<'a> {
    target: Target<'a>,
    ndjson: bool,
}

/// The typed upload of a body: telemetry samples, or the dataset's batch.
fn decode_body(state: &State, raw: &[u8], origin: Origin, how: How<'_>) -> Result<Upload> {
    let entry = match how.target {
        Target::Telemetry => return Ok(adit_ingest::upload(raw, origin, &state.rules)?),
        Target::Dataset(entry) => entry,
    };
    let format = if how.ndjson {
        BodyFormat::Ndjson
    } else {
        BodyFormat::JsonArray
    };
    let limits = adit_dataset::Limits {
        max_rows: state.rules.max_rows,
        max_depth: state.rules.max_depth,
        max_future: state.rules.max_future,
    };
    let decoded = adit_dataset::decode(
        entry.declared(),
        raw,
        format,
        &limits,
        origin.received_at_micros,
    )?;
    let processed = decoded.batch.num_rows() as u32;
    let rejected = decoded.rejects.len() as u32;
    Ok(Upload {
        upload_id: rand::random::<i64>() & i64::MAX,
        site_id: origin.site_id,
        key_id: origin.key_id,
        received_at: origin.received_at,
        received_at_micros: origin.received_at_micros,
        samples: Vec::new(),
        dataset: Some(Box::new(DatasetRows {
            dataset: entry.dataset().clone(),
            batch: decoded.batch,
        })),
        rejects: decoded.rejects,
        summary: adit_types::UploadSummary {
            processed,
            online: 0,
            offline: 0,
            rejected,
            errors: decoded.errors,
        },
        idempotency: origin.idempotency,
        bytes_in: origin.bytes_in as u32,
        bytes_raw: raw.len() as u32,
        processing_time_ms: 0,
    })
}

/// Validates the body and waits until the writer has committed it.
async fn write(
    state: &State,
    ctx: &Context,
    raw: &[u8],
    idempotency: Option<Idempotency>,
    how: How<'_>,
) -> Result<Ack> {
    let origin = Origin {
        site_id: ctx.site_id,
        key_id: ctx.key.id,
        received_at: ctx.received_at,
        received_at_micros: ctx.received_at_micros,
        bytes_in: ctx.bytes_in,
        idempotency,
    };
    let upload = decode_body(state, raw, origin, how)?;
    let dataset = upload.dataset_name().unwrap_or("");
    if let Some(first) = upload.rejects.first() {
        warn!(
            site_id = ctx.site_id,
            dataset,
            rejected = upload.rejects.len(),
            first_reason = %first.error.reason,
            "Rejected rows."
        );
    }
    let (accepted, rejected) = (upload.rows() as u64, upload.rejects.len() as u64);
    let reply = state.writer.submit(upload)?;
    let ack = reply.await.map_err(|_| Error::Internal {
        reason: "the writer dropped the upload".into(),
    })??;
    if let (Ack::Committed { .. }, Target::Dataset(entry)) = (&ack, how.target) {
        let m = &state.metrics;
        m.datasets.committed(entry.name(), accepted, rejected);
        m.sites
            .committed_dataset(entry.name(), ctx.site_id, accepted);
    } else if matches!(ack, Ack::Committed { .. }) {
        let m = &state.metrics;
        m.rows_accepted.fetch_add(accepted, Ordering::Relaxed);
        m.rows_rejected.fetch_add(rejected, Ordering::Relaxed);
        m.bytes_compressed
            .fetch_add(ctx.bytes_in as u64, Ordering::Relaxed);
        m.bytes_raw.fetch_add(raw.len() as u64, Ordering::Relaxed);
        m.sites.committed(ctx.site_id, accepted);
    }
    Ok(ack)
}

/// An upload with an Idempotency-Key: the first one writes; a retry with
/// the same body gets the first answer byte for byte; a reuse with another
/// body is a conflict.
async fn write_once(
    state: &State,
    ctx: &Context,
    raw: &[u8],
    idem_key: String,
    how: How<'_>,
) -> Result<String> {
    let body_digest = match how.target {
        Target::Telemetry => idempotency::body_digest(raw),
        Target::Dataset(entry) => idempotency::dataset_body_digest(entry.name(), raw),
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
            let same = match how.target {
                Target::Telemetry => stored.same_body(raw),
                Target::Dataset(_) => stored.body_digest == body_digest,
            };
            if same {
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
        match write(state, ctx, raw, Some(idem), how).await? {
            Ack::Committed {
                summary,
                processing_time_ms,
            } => return Ok(render(how.target, summary, processing_time_ms)),
            Ack::Duplicate => drop(guard),
        }
    }
    Err(Error::DatabaseUnavailable {
        reason: "idempotency key kept changing hands".into(),
    })
}

/// The 200 body: byte for byte what the writer stored for a retry
/// (`Upload::render`).
fn render(
    target: Target<'_>,
    summary: adit_types::UploadSummary,
    processing_time_ms: u32,
) -> String {
    let ms = u64::from(processing_time_ms);
    match target {
        Target::Telemetry => summary.render(ms),
        Target::Dataset(_) => summary.render_dataset(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curls_default_content_type_is_taken_and_others_are_refused() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(ct));
            check_content_type(&h, Target::Telemetry)
        };
        check_content_type(&HeaderMap::new(), Target::Telemetry).unwrap();
        assert_eq!(
            with("application/x-ndjson").unwrap_err().code(),
            "unsupported_media_type",
            "telemetry takes a JSON array only"
        );
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
