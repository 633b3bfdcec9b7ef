//! The two reads `adit top` makes of a running adit: `/metrics` and, with
//! an admin token, `GET /api/collector/stats`. Plain HTTP/1.1, one
//! connection per request, bounded by a timeout.

use std::time::Duration;

use anyhow::{bail, Context as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Where adit is: host and port of an `http://` URL.
#[derive(Debug, Clone)]
pub(super) struct Target {
    authority: String,
}

/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Parses `http://host:port[/]`; other schemes are refused.
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url {url}: adit top reads plain http:// URLs (for a TLS listener, use a plain one on loopback)");
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("--url {url}: give the server's address only, e.g. http://127.0.0.1:8080");
        }
        Ok(Self {
            authority: authority.to_string(),
        })
    }

    /// GETs `path` (with `Authorization: Bearer token` when given); answers
    /// the status and body.
    pub(super) async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_inner(path, token))
            .await
            .with_context(|| format!("GET {path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }

    async fn get_inner(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot connect to {}", self.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path)
            .header("host", &self.authority)
            .header(
                "user-agent",
                concat!("adit-top/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new())?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_addresses_are_taken() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/").unwrap().authority,
            "127.0.0.1:8080"
        );
        assert!(Target::parse("https://127.0.0.1:8443").is_err());
        assert!(Target::parse("http://127.0.0.1:8080/metrics").is_err());
        assert!(Target::parse("127.0.0.1:8080").is_err());
    }
}
