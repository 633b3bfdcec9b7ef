//! Which handler answers which request, and the small ones: health,
//! readiness, metrics and the OpenAPI document.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};

use crate::upload::UPLOAD_PATH;
use crate::{json_response, Error, Result, State};

/// The OpenAPI document of the whole HTTP API (kept in the repository).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Answers one request.
pub async fn handle<B>(req: Request<B>, state: &State) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, UPLOAD_PATH) => {
            let started = Instant::now();
            let result = crate::upload::upload(req, state).await;
            let status = match &result {
                Ok(r) => r.status(),
                Err(e) => e.status(),
            };
            state.metrics.upload(status.as_u16(), started.elapsed());
            result
        }
        (method, path) if crate::datasets::upload_path_name(path).is_some() => {
            let name = crate::datasets::upload_path_name(path)
                .expect("just matched")
                .to_string();
            if method == Method::POST {
                crate::upload::dataset_upload(req, state, &name).await
            } else {
                Err(Error::MethodNotAllowed)
            }
        }
        (&Method::GET, "/metrics") => {
            let text = state.metrics.render(
                &state.writer,
                state.archive.as_deref(),
                state.budget.in_use(),
                state.control.live.stats(),
                &state.control.alerts.counters,
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
            crate::control::control(req, state).await
        }
        (method, path) if crate::inventory::route(path).is_some() => {
            if method == Method::GET {
                crate::inventory::inventory(req, state).await
            } else {
                Err(Error::MethodNotAllowed)
            }
        }
        (_, path)
            if path
                .strip_prefix("/api/")
                .is_some_and(adit_control::alerts::api::owns) =>
        {
            crate::control::control(req, state).await
        }
        (_, UPLOAD_PATH | "/health" | "/ready" | "/metrics" | "/openapi.json") => {
            Err(Error::MethodNotAllowed)
        }
        _ => Err(Error::NotFound),
    };
    result.unwrap_or_else(Error::into_response)
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
