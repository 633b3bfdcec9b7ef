//! The CGMiner API client: one TCP connection per request on port 4028.
//!
//! A request is `{"command":"…","parameter":"…"}`; the answer is JSON ended
//! by a NUL byte or by the miner closing the connection. Every request is
//! bounded: a connect timeout, a timeout on the whole request, a size limit
//! on the answer. Failed reads are retried with exponential backoff and
//! jitter, a bounded number of times; a privileged command is retried only
//! when the miner cannot have received it (the connection was never made).

mod command;
pub(crate) mod parse;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use command::{PrivilegedCommand, ReadCommand};

use crate::error::{Error, Result};

/// The CGMiner API's usual port.
pub const DEFAULT_PORT: u16 = 4028;
/// Answers beyond this are refused (a full Antminer `stats` is ~5 KiB).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Limits and retry policy of the client.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time allowed to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole request, connection included.
    pub request_timeout: Duration,
    /// Largest answer accepted, in bytes (the NUL excluded).
    pub max_answer_bytes: usize,
    /// Tries per request, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the first retry; doubles with each further retry.
    pub backoff_base: Duration,
    /// Ceiling of one backoff.
    pub backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_answer_bytes: MAX_ANSWER_BYTES,
            attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Short limits for tests on loopback.
    pub fn test_config() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
            max_answer_bytes: MAX_ANSWER_BYTES,
            attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
        }
    }
}

/// Talks to miners; holds no connection, so one client serves a whole farm.
#[derive(Debug, Clone, Default)]
pub struct Client {
    config: Config,
}

impl Client {
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sends a read-only command, retrying network failures.
    pub async fn query(&self, addr: SocketAddr, command: ReadCommand) -> Result<Value> {
        self.with_retries(addr, command.as_str(), None, false).await
    }

    /// Sends a privileged command: only for a command adit asked for.
    /// Retried only while the connection could not be made.
    pub async fn execute(
        &self,
        addr: SocketAddr,
        command: PrivilegedCommand,
        parameter: Option<&str>,
    ) -> Result<Value> {
        self.with_retries(addr, command.as_str(), parameter, true)
            .await
    }

    async fn with_retries(
        &self,
        addr: SocketAddr,
        command: &'static str,
        parameter: Option<&str>,
        privileged: bool,
    ) -> Result<Value> {
        let attempts = self.config.attempts.max(1);
        let mut attempt = 1;
        loop {
            let err = match self.request(addr, command, parameter).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let may_retry = if privileged {
                err.before_send()
            } else {
                err.is_retryable()
            };
            if !may_retry || attempt >= attempts {
                return Err(err);
            }
            let pause = backoff(
                attempt - 1,
                self.config.backoff_base,
                self.config.backoff_max,
                jitter_unit(),
            );
            tracing::debug!(%addr, command, attempt, error = %err, pause_ms = pause.as_millis() as u64, "Retrying a miner request.");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// One request on one connection, within the timeouts.
    async fn request(
        &self,
        addr: SocketAddr,
        command: &'static str,
        parameter: Option<&str>,
    ) -> Result<Value> {
        let started = Instant::now();
        let connect_limit = self.config.connect_timeout.min(self.config.request_timeout);
        let mut stream = match tokio::time::timeout(connect_limit, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    addr,
                    timeout_ms: millis(connect_limit),
                })
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Error::Refused { addr })
            }
            Ok(Err(source)) => {
                return Err(Error::Io {
                    addr,
                    command,
                    source,
                })
            }
            Ok(Ok(stream)) => stream,
        };
        let remaining = self
            .config
            .request_timeout
            .saturating_sub(started.elapsed());
        let body = request_body(command, parameter);
        let limit = self.config.max_answer_bytes;
        let exchange = async {
            stream.write_all(&body).await?;
            read_answer(&mut stream, limit).await
        };
        let raw = match tokio::time::timeout(remaining, exchange).await {
            Err(_) => {
                return Err(Error::Timeout {
                    addr,
                    command,
                    timeout_ms: millis(self.config.request_timeout),
                })
            }
            Ok(Err(ReadError::TooLarge)) => {
                return Err(Error::TooLarge {
                    addr,
                    command,
                    limit_bytes: limit,
                })
            }
            Ok(Err(ReadError::Io(source))) => {
                return Err(Error::Io {
                    addr,
                    command,
                    source,
                })
            }
            Ok(Ok(raw)) => raw,
        };
        let answer = parse::parse_answer(&raw).map_err(|reason| Error::Malformed {
            addr,
            command,
            reason,
        })?;
        if let Some(status) = parse::status_of(&answer) {
            if status.is_failure() {
                return Err(Error::Miner {
                    addr,
                    command,
                    status: status.status,
                    code: status.code,
                    message: status.message,
                });
            }
        }
        Ok(answer)
    }
}

/// The request's JSON; `parameter` is left out when there is none.
fn request_body(command: &str, parameter: Option<&str>) -> Vec<u8> {
    let body = match parameter {
        Some(p) => serde_json::json!({ "command": command, "parameter": p }),
        None => serde_json::json!({ "command": command }),
    };
    body.to_string().into_bytes()
}

#[derive(Debug)]
enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads up to the first NUL byte, EOF, or the end of the first complete
/// top-level JSON value (firmware that ends its answer with a newline and
/// keeps the connection open), refusing more than `limit` bytes.
async fn read_answer(
    stream: &mut TcpStream,
    limit: usize,
) -> std::result::Result<Vec<u8>, ReadError> {
    let mut answer = Vec::with_capacity(8 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut shape = JsonEnd::default();
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(answer);
        }
        let (mut data, mut ended) = match chunk[..n].iter().position(|&b| b == 0) {
            Some(nul) => (&chunk[..nul], true),
            None => (&chunk[..n], false),
        };
        if let Some(end) = shape.feed(data) {
            data = &data[..=end];
            ended = true;
        }
        if answer.len() + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        answer.extend_from_slice(data);
        if ended {
            return Ok(answer);
        }
    }
}

/// Finds where the first top-level JSON object or array closes, across
/// chunks, by counting brackets outside strings. Byte-wise is safe with
/// invalid UTF-8: `"`, `\\`, brackets never occur inside a multi-byte sequence.
#[derive(Debug, Default)]
struct JsonEnd {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonEnd {
    /// The index in `bytes` of the closing bracket, once it comes.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// The pause before retry number `retry` (0 for the first): "equal jitter",
/// half of the exponential step fixed and half random, capped at `max`.
/// `unit` is a random number in `[0, 1)`.
pub fn backoff(retry: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let step = base
        .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let half = step / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// A random number in `[0, 1)` from the standard library's randomly keyed
/// hasher (jitter needs spread between miners, not cryptographic quality).
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(0, base, max, 0.0), Duration::from_millis(50));
        assert!(backoff(0, base, max, 0.999_999) < base);
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(2, base, max, 0.5), Duration::from_millis(300));
        assert_eq!(backoff(10, base, max, 1.0), max);
        assert_eq!(backoff(u32::MAX, base, max, 0.0), max / 2);
    }

    #[test]
    fn jitter_spreads_over_the_unit_interval() {
        let draws: Vec<f64> = (0..200).map(|_| jitter_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.iter().any(|&u| u < 0.25) && draws.iter().any(|&u| u > 0.75));
    }

    #[test]
    fn the_end_of_a_json_answer_is_found_across_chunks() {
        let mut end = JsonEnd::default();
        assert_eq!(end.feed(br#"{"a":["}",{"b":"\\"}"#), None);
        assert_eq!(end.feed(br#",1]}\n"#), Some(3));
        // The `}{` quirk sits inside the array, not at the top level.
        let stats = br#"{"STATS":[{"a":1}{"b":2}],"id":1}"#;
        assert_eq!(JsonEnd::default().feed(stats), Some(stats.len() - 1));
        // Garbage before any bracket opens does not end it.
        assert_eq!(JsonEnd::default().feed(b",\"id\":1}"), None);
    }

    #[test]
    fn the_request_names_the_command_and_only_a_given_parameter() {
        assert_eq!(request_body("summary", None), br#"{"command":"summary"}"#);
        assert_eq!(
            request_body("switchpool", Some("1")),
            br#"{"command":"switchpool","parameter":"1"}"#
        );
    }
}
