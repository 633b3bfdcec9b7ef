//! `GET /api/inventory/…` (admin token): authenticated here, answered by
//! [`adit_control::inventory`].

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use adit_control::inventory::Route;
use adit_control::query::Query;

use crate::auth::admin_token;
use crate::{json_response, Result, State};

/// Where the inventory routes start.
pub(crate) const PREFIX: &str = "/api/inventory/";

/// The inventory route of `path`, if it is one (its site id may still be
/// malformed: a 400 then).
pub(crate) fn route(path: &str) -> Option<adit_control::Result<Route<'_>>> {
    Route::parse(path.strip_prefix(PREFIX)?)
}

pub(crate) async fn inventory<B>(req: Request<B>, state: &State) -> Result<Response<Full<Bytes>>> {
    let key = admin_token(req.headers(), state).await?;
    let who = match key.site_id {
        // A collector key: 403 saying an admin token belongs here.
        Some(site_id) => adit_control::Principal::Collector {
            key_id: key.id,
            site_id,
        },
        None => adit_control::Principal::Admin { key_id: key.id },
    };
    let path = req.uri().path();
    let route = route(path).expect("routed here")?;
    let query = Query::parse(req.uri().query())?;
    let reply = adit_control::inventory::handle(&state.control, who, route, &query).await?;
    Ok(json_response(StatusCode::OK, reply.body))
}
