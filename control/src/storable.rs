//! What PostgreSQL refuses to store, checked before any query so that a
//! request carrying it is answered 400 `unstorable_value` (naming the
//! field) instead of a 503 its sender would retry for ever.
//!
//! - `text` and `jsonb` refuse the NUL character (`\u0000`), in JSON
//!   member names too.
//! - Invalid UTF-8 and unpaired UTF-16 surrogate escapes never get this
//!   far: serde_json refuses them while parsing (400 `invalid_request`).
//! - `jsonb` stores numbers as `numeric`; serde_json refuses numbers past
//!   f64 (`1e200000`, 400 `invalid_request`) and every finite f64 fits
//!   `numeric`, so a parsed number is always storable.

use serde_json::Value;

use crate::{ControlError, Result};

const NUL: &str = "contains \\u0000, which cannot be stored";
const NUL_NAME: &str = "a member name contains \\u0000, which cannot be stored";

/// A string for a `text` column.
pub(crate) fn text(field: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(ControlError::Unstorable {
            field: field.into(),
            reason: NUL.into(),
        });
    }
    Ok(())
}

/// A value for a `jsonb` column (its path in the reason).
pub(crate) fn json(field: &str, v: &Value) -> Result<()> {
    fn walk(v: &Value, path: &mut String) -> std::result::Result<(), String> {
        match v {
            Value::String(s) if s.contains('\0') => Err(format!("{path} {NUL}")),
            Value::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(o) => {
                for (k, item) in o {
                    if k.contains('\0') {
                        return Err(format!("{path}: {NUL_NAME}"));
                    }
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    let mut path = field.to_string();
    walk(v, &mut path).map_err(|reason| ControlError::Unstorable {
        field: field.into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_found_in_text_strings_and_member_names() {
        assert!(text("f", "plain \u{1} text").is_ok());
        assert!(text("f", "a\0b").is_err());
        assert!(json("x", &json!({"a": [1, "b", {"c": 1e308}], "d": null})).is_ok());
        let reason = |v: Value| match json("x", &v) {
            Err(ControlError::Unstorable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(json!({"a": [1, {"b": "c\u{0}"}]})),
            "x.a[1].b contains \\u0000, which cannot be stored"
        );
        assert_eq!(
            reason(json!({"a": {"k\u{0}": 1}})),
            "x.a: a member name contains \\u0000, which cannot be stored"
        );
        assert!(json("x", &json!(["\u{0}"])).is_err());
    }

    #[test]
    fn what_serde_json_refuses_never_reaches_the_checks() {
        for body in [
            r#"{"a": 1e200000}"#,
            r#"{"a": -1e200000}"#,
            "{\"a\": \"\\ud800\"}",
            "{\"a\": \"\\udc00x\"}",
        ] {
            assert!(serde_json::from_str::<Value>(body).is_err(), "{body}");
        }
        assert!(serde_json::from_slice::<Value>(b"{\"a\": \"\xff\"}").is_err());
    }
}
