//! One listener per miner: accept, read one bounded request, answer in the
//! miner's mode, close.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::answer::{self, Ctx, Request};
use crate::miner::State;
use crate::{Config, MinerInfo, Mode};

#[derive(Debug, Clone)]
pub(crate) struct Miner {
    pub(crate) info: MinerInfo,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) cfg: Arc<Config>,
    pub(crate) started: Instant,
}

/// Why no request could be read.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// The client closed before sending anything.
    Closed,
    TooLarge,
    Io,
}

pub(crate) async fn listen(listener: TcpListener, miner: Miner, mut stop: watch::Receiver<bool>) {
    let miner = Arc::new(miner);
    let slots = Arc::new(Semaphore::new(miner.cfg.max_connections_per_miner));
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or a reset before accept: keep serving.
                Err(_) => continue,
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: closed unanswered
        };
        let miner = miner.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, &miner, stop).await;
            drop(permit);
        });
    }
}

async fn connection(mut stream: TcpStream, miner: &Miner, mut stop: watch::Receiver<bool>) {
    let cfg = &miner.cfg;
    if miner.info.mode == Mode::Flapping && is_down(miner) {
        return;
    }
    let read = tokio::time::timeout(
        cfg.read_timeout,
        read_request(&mut stream, cfg.max_request_bytes),
    )
    .await;
    let request = match read {
        Err(_) | Ok(Err(ReadError::Closed | ReadError::Io)) => return,
        Ok(Err(ReadError::TooLarge)) => None,
        Ok(Ok(buf)) => Some(Request::parse(&buf)),
    };
    match miner.info.mode {
        Mode::Hang => {
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(cfg.hang_limit) => {}
            }
            return;
        }
        Mode::Slow => tokio::time::sleep(cfg.slow_delay).await,
        _ => {}
    }
    let mut out = respond(miner, request);
    if miner.info.mode == Mode::Malformed {
        out.truncate(out.len() / 2);
    }
    out.push(0);
    // A client that does not read is not waited for longer than one that
    // does not write.
    let _ = tokio::time::timeout(cfg.read_timeout, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

/// The answer; `request` is None when it was too large, Some(None) when it
/// did not parse.
fn respond(miner: &Miner, request: Option<Option<Request>>) -> Vec<u8> {
    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut state = miner.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut ctx = Ctx {
        state: &mut state,
        shape: miner.info.shape,
        quirks: miner.info.quirks,
        now: Instant::now(),
        when,
    };
    match request {
        Some(Some(req)) => answer::answer(&mut ctx, &req),
        Some(None) => answer::error(&ctx, answer::MSG_INVJSON, "Invalid JSON"),
        None => answer::error(&ctx, answer::MSG_INVJSON, "Request too large"),
    }
}

/// A flapping miner is down in every other period, half of them in phase.
fn is_down(miner: &Miner) -> bool {
    let period = miner.cfg.flap_period.as_millis().max(1);
    let n = miner.started.elapsed().as_millis() / period + miner.info.index as u128;
    n % 2 == 1
}

/// Reads until a whole JSON object, a newline or NUL, or the client's EOF.
async fn read_request(stream: &mut TcpStream, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            return match buf.is_empty() {
                true => Err(ReadError::Closed),
                false => Ok(buf),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > max {
            return Err(ReadError::TooLarge);
        }
        if is_complete(&buf) {
            return Ok(buf);
        }
    }
}

fn is_complete(buf: &[u8]) -> bool {
    let start = buf.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| buf[i]) {
        None => false,
        Some(b'{') => match serde_json::from_slice::<serde::de::IgnoredAny>(buf) {
            Ok(_) => true,
            Err(e) => !e.is_eof(),
        },
        Some(_) => buf.contains(&b'\n') || buf.contains(&0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_complete_at_the_end_of_its_object_or_line() {
        assert!(!is_complete(br#"{"command":"sum"#));
        assert!(is_complete(br#"{"command":"summary"}"#));
        assert!(is_complete(b"{\"command\":\"summary\"}\0"));
        assert!(!is_complete(b"summary"));
        assert!(is_complete(b"summary\n"));
        assert!(is_complete(b"{]"));
    }
}
