//! Sending spooled batches to adit: `POST {adit_url}/api/collector/upload`.
//!
//! Every batch goes through the spool first (see [`crate::spool`]); [`drain`]
//! then sends the spool oldest first. How an answer is handled:
//! - 200: sent, the batch leaves the spool;
//! - 429 or 503: adit is busy, the batch stays and is tried again after the
//!   answer's `Retry-After` (or the backoff if it names none);
//! - no answer (refused, reset, timeout) or another 5xx: the batch stays and
//!   is tried again with exponential backoff;
//! - 401: the key is wrong; the batch stays (an operator must fix the key)
//!   and draining stops;
//! - any other 4xx (400, 413, 415, 422, …): the batch can never succeed; it is
//!   dropped with an error log and counted.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tracing::{error, warn};

use crate::error::{Error, Result};
use crate::sample::Sample;
use crate::spool::{Batch, Spool};

/// adit's row limit per upload.
pub const DEFAULT_MAX_ROWS: usize = 20_000;
/// Time one upload request gets, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The path adit takes uploads on.
pub const UPLOAD_PATH: &str = "/api/collector/upload";
/// An answer body kept for the log up to this many bytes.
const MAX_LOGGED_BODY: usize = 512;

/// Splits `samples` into upload bodies of at most `max_rows` rows each
/// (gzip JSON arrays), with their row counts. No samples, no bodies.
pub fn encode_batches(samples: &[Sample], max_rows: usize) -> Result<Vec<(Vec<u8>, usize)>> {
    use std::io::Write;
    samples
        .chunks(max_rows.max(1))
        .map(|chunk| {
            let json = serde_json::to_vec(chunk).map_err(|e| Error::Encode {
                reason: e.to_string(),
            })?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&json)
                .and_then(|()| gz.finish())
                .map(|body| (body, chunk.len()))
                .map_err(|e| Error::Encode {
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Pushes one cycle's samples into the spool, split above `max_rows`;
/// returns the new batches' keys. Once this returns the cycle is collected.
pub fn spool_samples(
    spool: &mut Spool,
    samples: &[Sample],
    max_rows: usize,
) -> Result<Vec<String>> {
    encode_batches(samples, max_rows)?
        .into_iter()
        .map(|(body, rows)| spool.push(body, rows))
        .collect()
}

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// adit took the batch (200).
    Sent,
    /// adit is busy (429/503): try again, after `retry_after` if it named one.
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer, or a server error: try again with backoff.
    Network { reason: String },
    /// 401: the collector key is wrong; keep the batch until an operator fixes it.
    Unauthorized { body: String },
    /// Another 4xx: the batch can never succeed.
    Rejected { status: u16, body: String },
}

impl Outcome {
    /// Whether the same batch may succeed later unchanged (401 included:
    /// it succeeds once the key is fixed).
    pub fn keeps_batch(&self) -> bool {
        match self {
            Self::Sent | Self::Rejected { .. } => false,
            Self::Busy { .. } | Self::Network { .. } | Self::Unauthorized { .. } => true,
        }
    }
}

/// Sends batches to one adit with one collector key.
#[derive(Debug, Clone)]
pub struct Uploader {
    client: Client<crate::tls::Connector, Full<Bytes>>,
    url: String,
    key: String,
    timeout: Duration,
}

impl Uploader {
    /// `adit_url` is the base, such as `http://127.0.0.1:8080` or
    /// `https://adit.example:8443` (a trailing `/` is ignored); HTTPS
    /// trusts the system's roots.
    pub fn new(adit_url: &str, key: &str, timeout: Duration) -> Self {
        Self::with_tls(adit_url, key, timeout, crate::tls::native_config())
    }

    /// As [`Uploader::new`], with the TLS configuration `tls` (from
    /// [`crate::tls::client_config`], e.g. trusting a CA file).
    pub fn with_tls(
        adit_url: &str,
        key: &str,
        timeout: Duration,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .build(crate::tls::connector(tls, timeout)),
            url: format!("{}{UPLOAD_PATH}", adit_url.trim_end_matches('/')),
            key: key.to_string(),
            timeout,
        }
    }

    /// Sends `batch` once and classifies the answer.
    pub async fn send(&self, batch: &Batch) -> Outcome {
        let request = Request::post(&self.url)
            .header("x-collector-key", &self.key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("idempotency-key", &batch.key)
            .body(Full::new(Bytes::from(batch.body.clone())));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Rejected {
                    status: 0,
                    body: format!("request not built: {e}"),
                }
            }
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Network {
                reason: format!("no answer within {} ms", self.timeout.as_millis()),
            },
            Ok(Err(e)) => Outcome::Network {
                reason: error_chain(&e),
            },
            Ok(Ok((status, retry_after, body))) => classify(status, retry_after, &body),
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    let text = || String::from_utf8_lossy(&body[..body.len().min(MAX_LOGGED_BODY)]).into_owned();
    match status {
        StatusCode::OK => Outcome::Sent,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Outcome::Busy {
            status: status.as_u16(),
            retry_after,
        },
        StatusCode::UNAUTHORIZED => Outcome::Unauthorized { body: text() },
        s if s.is_client_error() => Outcome::Rejected {
            status: s.as_u16(),
            body: text(),
        },
        s => Outcome::Network {
            reason: format!("HTTP {}: {}", s.as_u16(), text()),
        },
    }
}

/// An error and its sources, `: `-joined (hyper's own message alone says
/// little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff with jitter for network failures: `base`, doubling
/// up to `max`, each wait between half and all of the current step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            step: base,
        }
    }

    /// The next wait; each call doubles the step up to `max`.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Between half and all of the step.
        let half = step / 2;
        half + half.mul_f64(f64::from(nanos % 1000) / 1000.0)
    }

    /// After a success: the next failure waits `base` again.
    pub fn reset(&mut self) {
        self.step = self.base;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

/// What one [`drain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Batches adit took.
    pub sent: u64,
    /// Batches adit refused for good (dropped).
    pub rejected: u64,
    /// Why draining stopped with batches left, if it did: the outcome of
    /// the last send (busy, network, unauthorized).
    pub stopped: Option<Outcome>,
}

impl Drained {
    /// How long to wait before draining again after this one stopped on a
    /// retryable failure: `Retry-After` when adit named it, else the backoff.
    /// `None` when the spool was emptied or the key is wrong.
    pub fn wait(&self, backoff: &mut Backoff) -> Option<Duration> {
        match &self.stopped {
            Some(Outcome::Busy {
                retry_after: Some(after),
                ..
            }) => Some(*after),
            Some(Outcome::Busy { .. } | Outcome::Network { .. }) => Some(backoff.next_wait()),
            Some(Outcome::Sent | Outcome::Unauthorized { .. } | Outcome::Rejected { .. })
            | None => None,
        }
    }
}

/// Sends the spool oldest first until it is empty or a send fails in a way
/// that keeps the batch (then the batch stays first in line). Rejected
/// batches are dropped, logged at error and counted.
pub async fn drain(spool: &mut Spool, uploader: &Uploader) -> Result<Drained> {
    let mut done = Drained::default();
    while let Some(batch) = spool.peek()? {
        let outcome = uploader.send(&batch).await;
        match &outcome {
            Outcome::Sent => {
                spool.remove_oldest()?;
                done.sent += 1;
            }
            Outcome::Rejected { status, body } => {
                error!(
                    key = %batch.key,
                    rows = batch.rows,
                    status,
                    answer = %body,
                    "upload rejected for good: batch dropped"
                );
                spool.reject_oldest()?;
                done.rejected += 1;
            }
            Outcome::Unauthorized { body } => {
                error!(
                    key = %batch.key,
                    answer = %body,
                    "adit refuses the collector key (401): batches kept until the key is fixed"
                );
                done.stopped = Some(outcome);
                break;
            }
            Outcome::Busy {
                status,
                retry_after,
            } => {
                warn!(key = %batch.key, status, ?retry_after, "adit busy: upload retried later");
                done.stopped = Some(outcome);
                break;
            }
            Outcome::Network { reason } => {
                warn!(key = %batch.key, %reason, "adit not reached: upload retried later");
                done.stopped = Some(outcome);
                break;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    /// A loopback HTTP server answering the scripted statuses in turn (200
    /// after the script), with a `Retry-After` on 429/503; it records each
    /// request's `Idempotency-Key`.
    async fn scripted(
        script: Vec<(u16, Option<&'static str>)>,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (record, script) = (record.clone(), script.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (record, script) = (record.clone(), script.clone());
                        async move {
                            let key = req
                                .headers()
                                .get("idempotency-key")
                                .map(|v| v.to_str().unwrap().to_string())
                                .unwrap_or_default();
                            record.lock().unwrap().push(key);
                            let _ = req.into_body().collect().await;
                            let (status, retry) =
                                script.lock().unwrap().pop_front().unwrap_or((200, None));
                            let mut resp = hyper::Response::builder().status(status);
                            if let Some(r) = retry {
                                resp = resp.header("retry-after", r);
                            }
                            resp.body(Full::new(Bytes::from_static(b"{}")))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, seen)
    }

    fn spool_of(tag: &str, n: usize) -> (crate::spool::tests::TempDir, Spool, Vec<String>) {
        let tmp = crate::spool::tests::TempDir::new(tag);
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        let keys = (0..n)
            .map(|i| {
                spool_samples(&mut spool, &[sample(i)], DEFAULT_MAX_ROWS)
                    .unwrap()
                    .remove(0)
            })
            .collect();
        (tmp, spool, keys)
    }

    #[tokio::test]
    async fn drain_stops_on_busy_keeps_the_key_and_drops_what_can_never_succeed() {
        let (_tmp, mut spool, keys) = spool_of("drain", 4);
        let (url, seen) = scripted(vec![
            (200, None),
            (429, Some("17")),
            (413, None),
            (503, None),
        ])
        .await;
        let uploader = Uploader::new(&url, "k", Duration::from_secs(5));
        let mut backoff = Backoff::default();

        let done = drain(&mut spool, &uploader).await.unwrap();
        assert_eq!((done.sent, done.rejected), (1, 0));
        assert_eq!(done.wait(&mut backoff), Some(Duration::from_secs(17)));
        assert_eq!(spool.len(), 3, "the busy batch stays first in line");

        // The retried batch goes with the same key; 413 drops it for good.
        let done = drain(&mut spool, &uploader).await.unwrap();
        assert_eq!((done.sent, done.rejected), (0, 1));
        assert_eq!(spool.rejected_batches(), 1);
        assert!(matches!(
            done.stopped,
            Some(Outcome::Busy {
                status: 503,
                retry_after: None
            })
        ));
        assert!(done.wait(&mut backoff).unwrap() <= Duration::from_secs(1));
        assert_eq!(spool.len(), 2);

        let done = drain(&mut spool, &uploader).await.unwrap();
        assert_eq!((done.sent, done.rejected, done.stopped), (2, 0, None));
        assert!(spool.is_empty());
        let seen = seen.lock().unwrap().clone();
        let expect = [&keys[0], &keys[1], &keys[1], &keys[2], &keys[2], &keys[3]];
        assert_eq!(seen.iter().collect::<Vec<_>>(), expect);
    }

    fn sample(i: usize) -> Sample {
        Sample {
            miner_id: format!("m{i}"),
            online: true,
            timestamp: 1_764_900_000,
            ..Sample::default()
        }
    }

    fn gunzip(body: &[u8]) -> Vec<Sample> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut json)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn a_cycle_above_the_row_limit_is_split_in_order() {
        let samples: Vec<Sample> = (0..45).map(sample).collect();
        let batches = encode_batches(&samples, 20).unwrap();
        let rows: Vec<usize> = batches.iter().map(|b| b.1).collect();
        assert_eq!(rows, vec![20, 20, 5]);
        let back: Vec<Sample> = batches.iter().flat_map(|b| gunzip(&b.0)).collect();
        assert_eq!(back, samples);
        assert!(encode_batches(&[], 20).unwrap().is_empty());
        assert_eq!(encode_batches(&samples, DEFAULT_MAX_ROWS).unwrap().len(), 1);
    }

    #[test]
    fn answers_are_classified() {
        let s = |code: u16| StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(s(200), None, b""), Outcome::Sent);
        let busy = classify(s(429), Some(Duration::from_secs(7)), b"");
        assert_eq!(
            busy,
            Outcome::Busy {
                status: 429,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(busy.keeps_batch());
        assert!(matches!(
            classify(s(503), None, b""),
            Outcome::Busy { status: 503, .. }
        ));
        assert!(matches!(
            classify(s(401), None, b"no"),
            Outcome::Unauthorized { .. }
        ));
        assert!(classify(s(401), None, b"").keeps_batch());
        for code in [400, 413, 415, 422] {
            let o = classify(s(code), None, b"bad");
            assert!(matches!(o, Outcome::Rejected { status, .. } if status == code));
            assert!(!o.keeps_batch());
        }
        assert!(matches!(
            classify(s(500), None, b""),
            Outcome::Network { .. }
        ));
    }

    #[test]
    fn retry_after_wins_over_the_backoff_and_the_backoff_grows() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let busy = Drained {
            stopped: Some(Outcome::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(42)),
            }),
            ..Drained::default()
        };
        assert_eq!(busy.wait(&mut backoff), Some(Duration::from_secs(42)));
        let net = Drained {
            stopped: Some(Outcome::Network { reason: "x".into() }),
            ..Drained::default()
        };
        let waits: Vec<Duration> = (0..6).map(|_| net.wait(&mut backoff).unwrap()).collect();
        let steps = [1, 2, 4, 8, 8, 8];
        for (w, s) in waits.iter().zip(steps) {
            let s = Duration::from_secs(s);
            assert!(*w >= s / 2 && *w <= s, "{w:?} within half..all of {s:?}");
        }
        backoff.reset();
        assert!(net.wait(&mut backoff).unwrap() <= Duration::from_secs(1));
        assert_eq!(Drained::default().wait(&mut backoff), None);
        let unauthorized = Drained {
            stopped: Some(Outcome::Unauthorized {
                body: String::new(),
            }),
            ..Drained::default()
        };
        assert_eq!(unauthorized.wait(&mut backoff), None);
    }
}
