//! Connections: accepting (plain TCP or TLS), the connection cap, the
//! keep-alive idle timeout and graceful shutdown. Requests themselves are
//! [`crate::handle`]d.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::{Error, State};

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS acceptor for the front door from PEM files: the certificate chain
/// (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Read { path, source }
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(read_err(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(read_err(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The answer to a connection over the cap, written before closing it:
/// [`Error::TooManyConnections`] as raw HTTP/1.1.
fn over_capacity() -> Vec<u8> {
    let e = Error::TooManyConnections;
    let status = e.status();
    let body = e.body();
    let retry_after = e
        .retry_after()
        .and_then(|v| v.to_str().ok().map(|v| format!("retry-after: {v}\r\n")))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{retry_after}\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// Serves `state` on `listener` (through `tls` when given) until
/// `shutdown` completes, then stops accepting, closes idle connections and
/// lets open requests finish (up to `shutdown_grace`).
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = state.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            state
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream, tls.is_some()));
            continue;
        };
        let st = state.clone();
        let stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            st.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            match tls {
                None => serve_connection(stream, st.clone(), stop, peer).await,
                Some(tls) => {
                    match tokio::time::timeout(st.limits.header_read_timeout, tls.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => serve_connection(stream, st.clone(), stop, peer).await,
                        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed."),
                        Err(_) => debug!("TLS handshake timed out."),
                    }
                }
            }
            st.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    info!("Stopped accepting; waiting for open requests.");
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!("Open requests outlived the shutdown grace period.");
    }
}

/// Answers a connection over the cap with 503 (plain HTTP) or just closes
/// it (TLS, where a plaintext answer would be noise).
async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(&over_capacity())).await;
        let _ = stream.shutdown().await;
    }
}

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    started: Instant,
    busy: AtomicUsize,
    /// Milliseconds after `started` at which the last request ended.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let done = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some(now.duration_since(self.started).saturating_sub(done))
    }
}

/// Marks a request in flight until dropped (also when the client hangs up
/// and hyper drops the handler).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: &Arc<Activity>) -> Self {
        a.busy.fetch_add(1, Ordering::AcqRel);
        Self(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.started.elapsed().as_millis() as u64;
        a.last_done_ms.store(ms, Ordering::Release);
        a.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection<IO>(
    io: IO,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &state.limits;
    let activity = Arc::new(Activity {
        started: Instant::now(),
        busy: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
    });
    let st = state.clone();
    let act = activity.clone();
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(crate::PeerAddr(peer));
        let st = st.clone();
        let busy = Busy::new(&act);
        async move {
            let resp = crate::handle(req, &st).await;
            drop(busy);
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let idle = limits.keep_alive_timeout;
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let mut next_check = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "Connection ended with an error.");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(next_check), if !closing => {
                let now = Instant::now();
                match activity.idle_for(now) {
                    Some(d) if d >= idle => {
                        debug!("Closing an idle kept-alive connection.");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(d) => next_check = tokio::time::Instant::now() + (idle - d),
                    None => next_check = tokio::time::Instant::now() + idle,
                }
            }
        }
    }
}

/// Raises this process's open-file limit to its hard limit, so the
/// connection cap, not the descriptor table, decides; returns the limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            if lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Ok(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    Ok(u64::MAX)
}
