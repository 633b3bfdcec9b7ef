//! The collector configuration document (`config_data`): every key
//! optional, each value in its range, unknown keys refused (at every
//! level, naming the key and the keys allowed there), and a `version` key,
//! if present, equal to the configuration's version. Pure: no database.

use serde_json::{Map, Value};

use crate::{ControlError, Result};

/// Keys of the document's top level.
pub const KEYS: &[&str] = &[
    "version",
    "collection_interval",
    "heartbeat_interval",
    "command_interval",
    "cgminer_api_timeout",
    "retry_policy",
    "buffer_config",
    "features",
];

/// Whole seconds, with their ranges.
const SECONDS: &[(&str, i64, i64)] = &[
    ("collection_interval", 10, 86_400),
    ("heartbeat_interval", 5, 3600),
    ("command_interval", 5, 3600),
    ("cgminer_api_timeout", 1, 60),
];

const RETRY_POLICY: &[&str] = &["max_retries", "backoff_seconds"];
/// Most values in `retry_policy.backoff_seconds` (the last one repeats).
pub const MAX_BACKOFF_STEPS: usize = 10;
const BUFFER_CONFIG: &[&str] = &["max_buffer_size", "max_buffer_hours"];
const FEATURES: &[&str] = &[
    "enable_remote_control",
    "enable_auto_discovery",
    "enable_auto_reboot",
];

/// Checks `doc` (the request's `config`) for a configuration named
/// `version`; the first problem is an `invalid_field` error whose field is
/// its path (`config.retry_policy.max_retries`).
pub fn check(version: &str, doc: &Value) -> Result<()> {
    let top = object(doc, "config", KEYS)?;
    for (k, v) in top {
        let path = format!("config.{k}");
        match k.as_str() {
            "version" => {
                if v.as_str() != Some(version) {
                    return Err(invalid(
                        &path,
                        format!(
                            "must equal the configuration's version {version:?} (or be left out)"
                        ),
                    ));
                }
            }
            "retry_policy" => {
                for (k, v) in object(v, &path, RETRY_POLICY)? {
                    let path = format!("{path}.{k}");
                    match k.as_str() {
                        "max_retries" => int_in(v, &path, 0, 10)?,
                        _ => backoff(v, &path)?,
                    }
                }
            }
            "buffer_config" => {
                for (k, v) in object(v, &path, BUFFER_CONFIG)? {
                    let path = format!("{path}.{k}");
                    match k.as_str() {
                        "max_buffer_size" => int_in(v, &path, 1, 1_048_576)?,
                        _ => int_in(v, &path, 1, 720)?,
                    }
                }
            }
            "features" => {
                for (k, v) in object(v, &path, FEATURES)? {
                    if !v.is_boolean() {
                        return Err(invalid(&format!("{path}.{k}"), "must be true or false"));
                    }
                }
            }
            _ => {
                let (_, lo, hi) = SECONDS
                    .iter()
                    .find(|(name, ..)| name == k)
                    .expect("object() let only known keys through");
                int_in(v, &path, *lo, *hi)?;
            }
        }
    }
    Ok(())
}

fn invalid(field: &str, reason: impl Into<String>) -> ControlError {
    ControlError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `v` as an object whose keys are all in `allowed`.
fn object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>> {
    let map = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object"))?;
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            &format!("{path}.{k}"),
            format!("unknown key; the keys allowed are {}", allowed.join(", ")),
        ));
    }
    Ok(map)
}

/// `v` as a whole number in `lo..=hi`.
fn int_in(v: &Value, path: &str, lo: i64, hi: i64) -> Result<()> {
    match v.as_i64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(()),
        _ => Err(invalid(path, format!("must be a whole number {lo}-{hi}"))),
    }
}

/// 1-10 whole numbers of seconds, each 1-3600.
fn backoff(v: &Value, path: &str) -> Result<()> {
    let steps = v
        .as_array()
        .filter(|a| (1..=MAX_BACKOFF_STEPS).contains(&a.len()))
        .ok_or_else(|| {
            invalid(
                path,
                format!("must be a list of 1-{MAX_BACKOFF_STEPS} whole numbers of seconds"),
            )
        })?;
    for (i, s) in steps.iter().enumerate() {
        int_in(s, &format!("{path}[{i}]"), 1, 3600)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(doc: Value) -> (String, String) {
        match check("v1", &doc) {
            Err(ControlError::InvalidField { field, reason }) => (field, reason),
            other => panic!("{doc}: {other:?}"),
        }
    }

    #[test]
    fn a_full_document_and_an_empty_one_pass() {
        let full = json!({
            "version": "v1",
            "collection_interval": 60, "heartbeat_interval": 30, "command_interval": 30,
            "cgminer_api_timeout": 5,
            "retry_policy": {"max_retries": 3, "backoff_seconds": [1, 2, 4, 8, 16, 32, 60]},
            "buffer_config": {"max_buffer_size": 1024, "max_buffer_hours": 24},
            "features": {"enable_remote_control": true, "enable_auto_discovery": false,
                         "enable_auto_reboot": false}
        });
        check("v1", &full).unwrap();
        check("v1", &json!({})).unwrap();
        check("v1", &json!({"retry_policy": {}, "features": {}})).unwrap();
    }

    #[test]
    fn unknown_keys_are_named_with_the_allowed_ones() {
        let (field, reason) = field_of(json!({"collection_intervall": 60}));
        assert_eq!(field, "config.collection_intervall");
        assert!(reason.contains("unknown key"), "{reason}");
        assert!(
            reason.contains("collection_interval, heartbeat_interval"),
            "{reason}"
        );
        let (field, reason) = field_of(json!({"features": {"enable_telnet": true}}));
        assert_eq!(field, "config.features.enable_telnet");
        assert!(reason.contains("enable_remote_control"), "{reason}");
        assert_eq!(
            field_of(json!({"buffer_config": {"max_size": 1}})).0,
            "config.buffer_config.max_size"
        );
    }

    #[test]
    fn values_outside_their_range_or_type_are_refused() {
        for (doc, want) in [
            (
                json!({"collection_interval": 9}),
                "config.collection_interval",
            ),
            (
                json!({"collection_interval": 86_401}),
                "config.collection_interval",
            ),
            (
                json!({"collection_interval": 60.5}),
                "config.collection_interval",
            ),
            (
                json!({"collection_interval": "60"}),
                "config.collection_interval",
            ),
            (
                json!({"collection_interval": null}),
                "config.collection_interval",
            ),
            (
                json!({"heartbeat_interval": 4}),
                "config.heartbeat_interval",
            ),
            (json!({"command_interval": 3601}), "config.command_interval"),
            (
                json!({"cgminer_api_timeout": 0}),
                "config.cgminer_api_timeout",
            ),
            (
                json!({"cgminer_api_timeout": 61}),
                "config.cgminer_api_timeout",
            ),
            (
                json!({"retry_policy": {"max_retries": 11}}),
                "config.retry_policy.max_retries",
            ),
            (
                json!({"retry_policy": {"max_retries": -1}}),
                "config.retry_policy.max_retries",
            ),
            (
                json!({"retry_policy": {"backoff_seconds": []}}),
                "config.retry_policy.backoff_seconds",
            ),
            (
                json!({"retry_policy": {"backoff_seconds": vec![1; 11]}}),
                "config.retry_policy.backoff_seconds",
            ),
            (
                json!({"retry_policy": {"backoff_seconds": [1, 0]}}),
                "config.retry_policy.backoff_seconds[1]",
            ),
            (
                json!({"buffer_config": {"max_buffer_size": 0}}),
                "config.buffer_config.max_buffer_size",
            ),
            (
                json!({"buffer_config": {"max_buffer_size": 1_048_577}}),
                "config.buffer_config.max_buffer_size",
            ),
            (
                json!({"buffer_config": {"max_buffer_hours": 721}}),
                "config.buffer_config.max_buffer_hours",
            ),
            (
                json!({"features": {"enable_remote_control": 1}}),
                "config.features.enable_remote_control",
            ),
            (json!({"features": []}), "config.features"),
            (json!({"version": "v2"}), "config.version"),
            (json!([]), "config"),
        ] {
            assert_eq!(field_of(doc).0, want);
        }
    }
}
