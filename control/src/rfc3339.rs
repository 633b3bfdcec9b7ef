//! Times as every control-plane answer writes them: RFC 3339 in UTC, whole
//! seconds, offset `+00:00` (`2025-12-05T11:15:38+00:00`). A leaf: it
//! depends on nothing of the crate, so every endpoint module may use it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// `t` as the API writes a time.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// `t` as a JSON string, or `null` when there is none.
pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(ts(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_whole_seconds_with_a_utc_offset() {
        let t = DateTime::from_timestamp(1_764_933_338, 987_000_000).unwrap();
        assert_eq!(ts(t), "2025-12-05T11:15:38+00:00");
        assert_eq!(opt_ts(Some(t)), Value::String(ts(t)));
        assert_eq!(opt_ts(None), Value::Null);
    }
}
