//! What the control plane answers: a status and a JSON body. Every body
//! is an envelope that starts with `success` (as the upload path's do):
//! `{"success":true,"data":…}` (or the seed's shapes for collectors), or
//! `{"success":false,"error":…,"code":…,"details":[…]}`. serde_json's
//! maps sort their keys, so the envelope is written here in order.

use serde_json::Value;

/// An HTTP answer, independent of the server that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// `{"success": <success>, <k>: <v>, …}` with the members in order.
    pub fn envelope(status: u16, success: bool, members: &[(&str, Value)]) -> Self {
        let mut body = String::with_capacity(64);
        body.push_str(if success {
            r#"{"success":true"#
        } else {
            r#"{"success":false"#
        });
        for (k, v) in members {
            body.push(',');
            adit_types::push_json_string(&mut body, k);
            body.push(':');
            body.push_str(&v.to_string());
        }
        body.push('}');
        Self { status, body }
    }

    /// `{"success": true, "data": data}`.
    pub fn data(data: Value) -> Self {
        Self::envelope(200, true, &[("data", data)])
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
        let r = Reply::envelope(
            400,
            false,
            &[
                ("error", json!("bad")),
                ("code", json!("c")),
                ("details", json!([])),
            ],
        );
        assert_eq!(
            r.body,
            r#"{"success":false,"error":"bad","code":"c","details":[]}"#
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["code"], "c");
    }
}
