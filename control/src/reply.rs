//! What the control plane answers on success: a JSON body that starts with
//! `success` (as every adit answer does), `{"success":true,"data":…}` or
//! the shapes edge collectors already parse (`{"success":true,
//! "commands":[…],"count":n}`). Failures are [`crate::ControlError`]s,
//! which the server renders with their status. serde_json's maps sort their
//! keys, so the envelope is written here in order.

use serde_json::Value;

/// A 200 answer's body, independent of the server that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub body: String,
}

impl Reply {
    /// `{"success": true, <k>: <v>, …}` with the members in order.
    pub fn envelope(members: &[(&str, Value)]) -> Self {
        let mut body = String::with_capacity(64);
        body.push_str(r#"{"success":true"#);
        for (k, v) in members {
            body.push(',');
            adit_types::push_json_string(&mut body, k);
            body.push(':');
            body.push_str(&v.to_string());
        }
        body.push('}');
        Self { body }
    }

    /// `{"success": true, "data": data}`.
    pub fn data(data: Value) -> Self {
        Self::envelope(&[("data", data)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_starts_with_success() {
        let r = Reply::data(json!({"b": 1, "a": "x\"y"}));
        assert_eq!(r.body, r#"{"success":true,"data":{"a":"x\"y","b":1}}"#);
        let r = Reply::envelope(&[("count", json!(1)), ("commands", json!([]))]);
        assert_eq!(r.body, r#"{"success":true,"count":1,"commands":[]}"#);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["count"], 1);
    }
}
