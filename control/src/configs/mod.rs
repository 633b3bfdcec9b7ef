//! Central collector configuration, kept in `agent_configs`: admins create
//! versioned drafts, activate and deprecate them ([`create`], [`list`],
//! [`show`], [`activate`], [`deprecate`]); a collector fetches its
//! effective configuration and admins see which collector runs which
//! version ([`collectors`]); what a document may hold is in [`document`].
//!
//! States: `draft → active → deprecated`, and `deprecated → active` again
//! (rollback). A collector's effective configuration is the most recently
//! activated active config listing its key id, else the most recently
//! activated active `all` config, else none. Activating an `all` config
//! deprecates the active `all` one; activations and deprecations hold a
//! table lock, so two at once end with exactly one active `all`.

pub mod collectors;
pub mod document;
mod state;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::query::Query;
use crate::rfc3339::{opt_ts, ts};
use crate::{Control, ControlError, Principal, Reply, Result};

pub use collectors::{agents, collector_config};
pub use state::{activate, deprecate, Transition};

/// Longest version: 1-20 characters of `[A-Za-z0-9._-]`.
pub const MAX_VERSION_CHARS: usize = 20;
/// Longest `change_summary`.
pub const MAX_SUMMARY_CHARS: usize = 4096;
/// Most collector key ids one config lists.
pub const MAX_AGENT_IDS: usize = 10_000;
/// The states of a configuration.
pub const STATES: [&str; 3] = ["draft", "active", "deprecated"];

/// The columns [`config_json`] reads, from `agent_configs c`.
const COLUMNS: &str = "c.version, c.status, c.applies_to, c.agent_ids, c.config_data, \
    c.change_summary, c.created_at, c.activated_at, c.deprecated_at, \
    (SELECT coalesce(array_agg(a.key_id ORDER BY a.key_id), '{}') FROM collector_agents a \
     WHERE a.config_version = c.version) AS collectors_running";

/// A configuration as admins see it.
fn config_json(r: &Row) -> Value {
    json!({
        "version": r.get::<_, String>("version"),
        "status": r.get::<_, String>("status"),
        "applies_to": r.get::<_, String>("applies_to"),
        "agent_ids": r.get::<_, Option<Vec<i32>>>("agent_ids").unwrap_or_default(),
        "config": r.get::<_, Value>("config_data"),
        "change_summary": r.get::<_, Option<String>>("change_summary"),
        "created_at": ts(r.get("created_at")),
        "activated_at": opt_ts(r.get("activated_at")),
        "deprecated_at": opt_ts(r.get("deprecated_at")),
        "collectors_running": r.get::<_, Vec<i32>>("collectors_running"),
    })
}

/// True when `v` may name a configuration: 1-20 of `[A-Za-z0-9._-]`.
pub fn valid_version(v: &str) -> bool {
    (1..=MAX_VERSION_CHARS).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The body of `POST /api/collector/configs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConfig {
    version: String,
    config: Value,
    applies_to: Option<String>,
    agent_ids: Option<Vec<i64>>,
    change_summary: Option<String>,
}

/// A checked [`NewConfig`]: `agent_ids` sorted, unique, and present
/// exactly for `specific`.
#[derive(Debug)]
struct Valid {
    version: String,
    config: Value,
    applies_to: &'static str,
    agent_ids: Option<Vec<i32>>,
    change_summary: Option<String>,
}

fn validate(c: NewConfig) -> Result<Valid> {
    if !valid_version(&c.version) {
        return Err(ControlError::bad(
            "version",
            format!("must be 1-{MAX_VERSION_CHARS} characters of A-Z a-z 0-9 . _ -"),
        ));
    }
    document::check(&c.version, &c.config)?;
    crate::storable::json("config", &c.config)?;
    let applies_to = match c.applies_to.as_deref().unwrap_or("all") {
        "all" => "all",
        "specific" => "specific",
        _ => return Err(ControlError::bad("applies_to", "must be all or specific")),
    };
    let mut ids = c.agent_ids.unwrap_or_default();
    ids.sort_unstable();
    ids.dedup();
    let agent_ids = match (applies_to, ids.is_empty()) {
        ("all", true) => None,
        ("all", false) => {
            return Err(ControlError::bad(
                "agent_ids",
                "only a specific configuration lists collectors",
            ))
        }
        (_, true) => {
            return Err(ControlError::bad(
                "agent_ids",
                "a specific configuration lists at least one collector key id",
            ))
        }
        (_, false) if ids.len() > MAX_AGENT_IDS => {
            return Err(ControlError::bad(
                "agent_ids",
                format!("at most {MAX_AGENT_IDS} collector key ids"),
            ))
        }
        (_, false) => Some(
            ids.iter()
                .map(|&id| {
                    i32::try_from(id).ok().filter(|&id| id > 0).ok_or_else(|| {
                        ControlError::bad("agent_ids", format!("{id} is not a key id"))
                    })
                })
                .collect::<Result<Vec<i32>>>()?,
        ),
    };
    if let Some(s) = &c.change_summary {
        if s.chars().count() > MAX_SUMMARY_CHARS {
            return Err(ControlError::bad(
                "change_summary",
                format!("longer than {MAX_SUMMARY_CHARS} characters"),
            ));
        }
        crate::storable::text("change_summary", s)?;
    }
    Ok(Valid {
        version: c.version,
        config: c.config,
        applies_to,
        agent_ids,
        change_summary: c.change_summary,
    })
}

/// `POST /api/collector/configs` (admin): a new draft; a version that
/// exists answers 409 `version_exists`.
pub async fn create(ctl: &Control, who: Principal, body: &[u8]) -> Result<Reply> {
    let admin = who.admin()?;
    let c: NewConfig =
        serde_json::from_slice(body).map_err(|e| ControlError::bad("body", e.to_string()))?;
    let c = validate(c)?;
    let client = ctl.pool.get().await?;
    if let Some(ids) = &c.agent_ids {
        let unknown: Vec<i32> = client
            .query_one(
                "SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}') FROM unnest($1::int4[]) u(id) \
                 WHERE NOT EXISTS (SELECT 1 FROM collector_keys k \
                                   WHERE k.id = u.id AND k.site_id IS NOT NULL)",
                &[ids],
            )
            .await?
            .get(0);
        if !unknown.is_empty() {
            return Err(ControlError::bad(
                "agent_ids",
                format!("no collector key with id {unknown:?}"),
            ));
        }
    }
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO agent_configs AS c (version, config_data, applies_to, agent_ids, \
                   change_summary, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO NOTHING \
                 RETURNING {COLUMNS}"
            ),
            &[
                &c.version,
                &c.config,
                &c.applies_to,
                &c.agent_ids,
                &c.change_summary,
                &admin,
            ],
        )
        .await?
        .ok_or_else(|| ControlError::VersionExists {
            version: c.version.clone(),
        })?;
    tracing::info!(
        version = c.version,
        admin,
        applies_to = c.applies_to,
        "Created collector configuration."
    );
    Ok(Reply::data(config_json(&row)))
}

/// `GET /api/collector/configs` (admin): every configuration, newest
/// first; `?status=` keeps one state.
pub async fn list(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let status = q.get("status");
    if let Some(s) = status {
        if !STATES.contains(&s) {
            return Err(ControlError::bad(
                "status",
                format!("{s:?} is not one of {}", STATES.join(", ")),
            ));
        }
    }
    let client = ctl.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM agent_configs c WHERE $1::text IS NULL OR c.status = $1 \
                 ORDER BY c.created_at DESC, c.id DESC"
            ),
            &[&status],
        )
        .await?;
    let configs: Vec<Value> = rows.iter().map(config_json).collect();
    Ok(Reply::data(json!({ "configs": configs })))
}

/// `GET /api/collector/configs/{version}` (admin).
pub async fn show(ctl: &Control, who: Principal, version: &str) -> Result<Reply> {
    who.admin()?;
    if !valid_version(version) {
        return Err(ControlError::NotFound);
    }
    let client = ctl.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM agent_configs c WHERE c.version = $1"),
            &[&version],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Reply::data(config_json(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_short_and_plain() {
        for ok in ["v1", "v1.1.0", "2026-12-05_a", "a", "12345678901234567890"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in ["", "v 1", "v1/2", "ü", "123456789012345678901", "v1\0"] {
            assert!(!valid_version(bad), "{bad:?}");
        }
    }

    #[test]
    fn agent_ids_go_with_specific_only() {
        let new = |applies_to: Option<&str>, ids: Option<Vec<i64>>| NewConfig {
            version: "v1".into(),
            config: serde_json::json!({}),
            applies_to: applies_to.map(str::to_string),
            agent_ids: ids,
            change_summary: None,
        };
        let v = validate(new(None, None)).unwrap();
        assert_eq!((v.applies_to, v.agent_ids), ("all", None));
        let v = validate(new(Some("all"), Some(vec![]))).unwrap();
        assert_eq!(v.agent_ids, None);
        let v = validate(new(Some("specific"), Some(vec![4, 3, 4]))).unwrap();
        assert_eq!(v.agent_ids, Some(vec![3, 4]));
        for (applies_to, ids) in [
            (Some("all"), Some(vec![3])),
            (Some("specific"), None),
            (Some("specific"), Some(vec![])),
            (Some("specific"), Some(vec![0])),
            (Some("specific"), Some(vec![1 << 40])),
            (Some("some"), None),
        ] {
            assert!(
                matches!(
                    validate(new(applies_to, ids.clone())),
                    Err(ControlError::BadRequest { .. })
                ),
                "{applies_to:?} {ids:?}"
            );
        }
    }
}
