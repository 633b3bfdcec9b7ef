//! adit's control plane as the collector calls it: JSON requests with the
//! collector key (`X-Collector-Key`), each bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::error::{Error, Result};

/// Longest control-plane answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Calls one adit with one collector key.
#[derive(Debug, Clone)]
pub(crate) struct Adit {
    client: Client<crate::tls::Connector, Full<Bytes>>,
    base: String,
    key: String,
    timeout: Duration,
}

impl Adit {
    pub(crate) fn new(
        base: &str,
        key: &str,
        timeout: Duration,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .build(crate::tls::connector(tls, timeout)),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            timeout,
        }
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A request answered with 200 and a JSON body; anything else is an
    /// error naming the request and what came back.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if status != StatusCode::OK {
            return Err(Error::Adit {
                request: format!("{method} {path}"),
                reason: format!("HTTP {}: {}", status.as_u16(), brief(&answer)),
            });
        }
        Ok(answer)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let request = format!("{method} {path}");
        let fail = |reason: String| Error::Adit {
            request: request.clone(),
            reason,
        };
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header("x-collector-key", &self.key)
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| fail(format!("request not built: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(req)
                .await
                .map_err(|e| fail(crate::upload::error_chain(&e)))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {} ms", self.timeout.as_millis())))??;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned())
            })
        };
        Ok((status, value))
    }
}

/// An answer shortened for a log line or an error.
pub(crate) fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
