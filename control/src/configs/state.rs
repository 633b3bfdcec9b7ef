//! A configuration's state changes: `draft → active → deprecated`, and
//! `deprecated → active` again (rollback), each in one transaction under a
//! table lock.

use super::{config_json, valid_version, COLUMNS};
use crate::{Control, ControlError, Principal, Reply, Result};

/// What an admin does to a configuration's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Activate,
    Deprecate,
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Deprecate => "deprecate",
        }
    }

    /// The state a configuration in `status` goes to, or `None` when the
    /// transition is not allowed.
    pub fn next(self, status: &str) -> Option<&'static str> {
        match (self, status) {
            (Self::Activate, "draft" | "deprecated") => Some("active"),
            (Self::Deprecate, "active") => Some("deprecated"),
            _ => None,
        }
    }
}

/// `POST /api/collector/configs/{version}/activate` (admin).
pub async fn activate(ctl: &Control, who: Principal, version: &str) -> Result<Reply> {
    transition(ctl, who, version, Transition::Activate).await
}

/// `POST /api/collector/configs/{version}/deprecate` (admin).
pub async fn deprecate(ctl: &Control, who: Principal, version: &str) -> Result<Reply> {
    transition(ctl, who, version, Transition::Deprecate).await
}

/// Moves `version` to its next state in one transaction that holds a lock
/// on `agent_configs` against other activations and deprecations (each
/// statement after it sees what the one before committed). Activating an
/// `all` config first deprecates the active `all` one. Times are taken
/// after the lock, so "most recently activated" follows the order the
/// activations took effect in.
async fn transition(ctl: &Control, who: Principal, version: &str, t: Transition) -> Result<Reply> {
    let admin = who.admin()?;
    if !valid_version(version) {
        return Err(ControlError::NotFound);
    }
    let mut client = ctl.pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE agent_configs IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let row = tx
        .query_opt(
            "SELECT status, applies_to FROM agent_configs WHERE version = $1",
            &[&version],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    let (status, applies_to): (String, String) = (row.get(0), row.get(1));
    let next = t
        .next(&status)
        .ok_or_else(|| ControlError::InvalidTransition {
            version: version.to_string(),
            action: t.verb(),
            status: status.clone(),
        })?;
    let mut replaced = Vec::new();
    if t == Transition::Activate && applies_to == "all" {
        for r in tx
            .query(
                "UPDATE agent_configs SET status = 'deprecated', deprecated_at = clock_timestamp() \
                 WHERE status = 'active' AND applies_to = 'all' RETURNING version",
                &[],
            )
            .await?
        {
            replaced.push(r.get::<_, String>(0));
        }
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE agent_configs c SET status = $2, \
                   activated_at = CASE WHEN $2 = 'active' THEN clock_timestamp() \
                                       ELSE c.activated_at END, \
                   deprecated_at = CASE WHEN $2 = 'active' THEN NULL ELSE clock_timestamp() END \
                 WHERE c.version = $1 RETURNING {COLUMNS}"
            ),
            &[&version, &next],
        )
        .await?;
    tx.commit().await?;
    tracing::info!(
        version,
        admin,
        from = status,
        to = next,
        deprecated = ?replaced,
        "Changed collector configuration state."
    );
    Ok(Reply::data(config_json(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_state_machine() {
        use Transition::{Activate, Deprecate};
        assert_eq!(Activate.next("draft"), Some("active"));
        assert_eq!(Activate.next("deprecated"), Some("active"));
        assert_eq!(Activate.next("active"), None);
        assert_eq!(Deprecate.next("active"), Some("deprecated"));
        assert_eq!(Deprecate.next("draft"), None);
        assert_eq!(Deprecate.next("deprecated"), None);
    }
}
