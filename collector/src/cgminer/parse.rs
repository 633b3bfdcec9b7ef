//! Raw CGMiner API answer bytes → JSON, through the quirks real firmware has.
//!
//! Repairs, all outside JSON strings (a `}{` inside a pool password stays):
//! - the answer ends at the first NUL byte (the protocol's terminator);
//! - invalid UTF-8 is replaced by U+FFFD, never refused;
//! - `}{` (objects with no comma between them, Antminer `stats`) gets its comma;
//! - a comma before `}` or `]`, or right after `[` (btminer, bmminer), is dropped;
//! - raw control characters inside strings (newlines in Whatsminer version
//!   strings) are escaped.
//!
//! Numbers sent as strings are left as they are here: the normaliser reads
//! every number leniently (`crate::normalize::num`).

use serde_json::Value;

/// The answer's status as the miner states it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    /// `S` success, `I` info, `W` warning, `E` error, `F` fatal.
    pub(crate) status: String,
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
}

impl Status {
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self.status.as_str(), "E" | "F")
    }
}

/// Parses one answer. `Err` carries the reason for `Error::Malformed`.
pub(crate) fn parse_answer(raw: &[u8]) -> Result<Value, String> {
    let raw = match raw.iter().position(|&b| b == 0) {
        Some(end) => &raw[..end],
        None => raw,
    };
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return Err("empty answer".to_owned());
    }
    let repaired = repair(text);
    let value: Value = serde_json::from_str(&repaired).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("answer is not a JSON object".to_owned());
    }
    Ok(value)
}

/// The status of a parsed answer: CGMiner's `"STATUS":[{"STATUS":"S",…}]`
/// or the Whatsminer form `"STATUS":"S","Msg":…` at the top level.
pub(crate) fn status_of(answer: &Value) -> Option<Status> {
    let (holder, status) = match answer.get("STATUS")? {
        Value::Array(items) => {
            let first = items.first()?;
            (first, first.get("STATUS")?.as_str()?)
        }
        Value::String(s) => (answer, s.as_str()),
        _ => return None,
    };
    let message = match holder.get("Msg").or_else(|| holder.get("msg")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let code = holder.get("Code").and_then(|c| match c {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Some(Status {
        status: status.to_owned(),
        code,
        message,
    })
}

/// Applies the structural repairs outside strings in one pass.
fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    // The last significant (non-whitespace) character written outside strings.
    let mut last = '\0';
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
            } else if c == '\\' {
                escaped = true;
                out.push(c);
            } else if c == '"' {
                in_string = false;
                out.push(c);
                last = '"';
            } else if (c as u32) < 0x20 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push(c);
            }
            continue;
        }
        if c.is_whitespace() {
            out.push(c);
            continue;
        }
        match c {
            '{' if last == '}' => out.push(','),
            '}' | ']' if last == ',' => drop_last_comma(&mut out),
            ',' if last == '[' || last == ',' => continue,
            _ => {}
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        last = c;
    }
    out
}

/// Removes the last comma written (only whitespace follows it).
fn drop_last_comma(out: &mut String) {
    if let Some(pos) = out.rfind(',') {
        out.remove(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trailing_nul_and_what_follows_it_are_cut() {
        let v = parse_answer(b"{\"a\":1}\0garbage").unwrap();
        assert_eq!(v, json!({"a": 1}));
        assert_eq!(parse_answer(b"{\"a\":1}\0").unwrap(), json!({"a": 1}));
    }

    #[test]
    fn objects_without_a_comma_get_one() {
        let raw = br#"{"STATS":[{"Type":"Antminer S19"}{"STATS":0,"fan1":5610}],"id":1}"#;
        let v = parse_answer(raw).unwrap();
        assert_eq!(v["STATS"][1]["fan1"], 5610);
        // With whitespace between them too.
        let v = parse_answer(b"{\"S\":[{\"a\":1}\n {\"b\":2}]}").unwrap();
        assert_eq!(v["S"][1]["b"], 2);
    }

    #[test]
    fn a_brace_pair_inside_a_string_is_left_alone() {
        let v = parse_answer(br#"{"User":"w}{x","n":[1,2]}"#).unwrap();
        assert_eq!(v["User"], "w}{x");
        let v = parse_answer(br#"{"User":"a,}b\"}{","n":1}"#).unwrap();
        assert_eq!(v["User"], "a,}b\"}{");
    }

    #[test]
    fn stray_commas_are_dropped() {
        let v = parse_answer(br#"{"A":[,{"x":1},],"B":{"y":2,},}"#).unwrap();
        assert_eq!(v, json!({"A": [{"x": 1}], "B": {"y": 2}}));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let v = parse_answer(b"{\"Type\":\"Antminer S19\xff\xfe Pro\"}").unwrap();
        assert_eq!(v["Type"], "Antminer S19\u{fffd}\u{fffd} Pro");
    }

    #[test]
    fn control_characters_inside_strings_are_escaped() {
        let v = parse_answer(b"{\"Firmware Version\":\"'2021\n0322'\"}").unwrap();
        assert_eq!(v["Firmware Version"], "'2021\n0322'");
    }

    #[test]
    fn empty_truncated_and_non_object_answers_are_malformed() {
        assert_eq!(parse_answer(b"").unwrap_err(), "empty answer");
        assert_eq!(parse_answer(b"\0{\"a\":1}").unwrap_err(), "empty answer");
        assert!(parse_answer(br#"{"STATUS":[{"STATUS":"S""#).is_err());
        assert!(parse_answer(b"[1,2]").is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    #[test]
    fn status_in_both_shapes() {
        let cg = json!({"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}]});
        let s = status_of(&cg).unwrap();
        assert!(s.is_failure());
        assert_eq!((s.code, s.message.as_str()), (Some(14), "Invalid command"));
        let wm = json!({"STATUS":"S","Code":131,"Msg":{"fw_ver":"20230803.11.REL"}});
        let s = status_of(&wm).unwrap();
        assert!(!s.is_failure());
        assert_eq!(s.code, Some(131));
        assert!(status_of(&json!({"x": 1})).is_none());
    }
}
