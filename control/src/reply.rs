//! What the control plane answers: a status and a JSON body.

/// An HTTP answer, independent of the server that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            body: value.to_string(),
        }
    }

    /// `{"success": true, "data": data}`.
    pub fn data(data: serde_json::Value) -> Self {
        Self::json(200, &serde_json::json!({"success": true, "data": data}))
    }
}
