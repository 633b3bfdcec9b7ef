//! What a new command must be: one of the types collectors understand,
//! with the parameters of its type, and priority, lifetime, timeout and
//! retries in range. Every problem is listed, each with its field.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::Detail;

/// The command types collectors understand.
pub const COMMAND_TYPES: [&str; 7] = [
    "enable",
    "disable",
    "restart",
    "reboot",
    "set_pool",
    "set_fan",
    "set_frequency",
];
/// `set_frequency` bounds, MHz.
pub const FREQUENCY_MHZ: (f64, f64) = (100.0, 2000.0);
/// Longest `ttl_minutes` (7 days).
const MAX_TTL_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// One command as an admin sends it (`POST /api/collector/commands`, or
/// one item of a batch); `command` and `params` are accepted for
/// `command_type` and `parameters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    pub miner_id: String,
    pub site_id: i32,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(alias = "command")]
    pub command_type: String,
    #[serde(default, alias = "params")]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub ttl_minutes: Option<f64>,
    /// Seconds a sent command may go without a result (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// Times a timed-out command is sent again (default 3).
    #[serde(default)]
    pub max_retries: Option<i64>,
}

/// A [`NewCommand`] that passed validation.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub(super) site_id: i32,
    pub(super) miner_id: String,
    pub(super) ip_address: Option<String>,
    pub(super) command: &'static str,
    pub(super) params: Value,
    pub(super) priority: i16,
    pub(super) ttl_s: f64,
    pub(super) timeout_s: i32,
    pub(super) max_retries: i32,
}

/// Checks a command and its parameters; every problem is listed, each
/// field named after `prefix` (`commands[3].` in a batch).
pub(super) fn validate(mut c: NewCommand, prefix: &str) -> std::result::Result<Valid, Vec<Detail>> {
    let mut errs = Problems {
        prefix,
        found: Vec::new(),
    };
    check_target(&c, &mut errs);
    let command = command_type(&c.command_type, &mut errs);
    let params = parameters(c.parameters.take(), command, &mut errs);
    let limits = limits(&c, &mut errs);
    if !errs.found.is_empty() {
        return Err(errs.found);
    }
    Ok(Valid {
        site_id: c.site_id,
        miner_id: c.miner_id,
        ip_address: c.ip_address,
        command: command.unwrap_or_default(),
        params: Value::Object(params),
        priority: limits.priority as i16,
        ttl_s: limits.ttl_minutes * 60.0,
        timeout_s: limits.timeout_s as i32,
        max_retries: limits.max_retries as i32,
    })
}

/// The problems found so far, their fields named after a prefix.
struct Problems<'a> {
    prefix: &'a str,
    found: Vec<Detail>,
}

impl Problems<'_> {
    fn bad(&mut self, field: &str, reason: String) {
        self.found.push(Detail {
            field: format!("{}{field}", self.prefix),
            reason,
        });
    }
}

/// The miner: an id of 1-64 characters without control characters, and
/// an IP address if one is given.
fn check_target(c: &NewCommand, errs: &mut Problems<'_>) {
    let miner_chars = c.miner_id.chars().count();
    if !(1..=64).contains(&miner_chars) || c.miner_id.chars().any(char::is_control) {
        errs.bad(
            "miner_id",
            "must be 1-64 characters without control characters".into(),
        );
    }
    if let Some(ip) = &c.ip_address {
        if ip.parse::<std::net::IpAddr>().is_err() {
            errs.bad("ip_address", format!("{ip:?} is not an IP address"));
        }
    }
}

/// The command type, if it is one of [`COMMAND_TYPES`].
fn command_type(name: &str, errs: &mut Problems<'_>) -> Option<&'static str> {
    let command = COMMAND_TYPES.iter().find(|t| **t == name).copied();
    if command.is_none() {
        errs.bad(
            "command_type",
            format!("{name:?} is not one of {}", COMMAND_TYPES.join(", ")),
        );
    }
    command
}

/// The parameters: an object (none is an empty one) that follows the
/// rules of the command's type ([`check_params`]).
fn parameters(
    given: Option<Value>,
    command: Option<&str>,
    errs: &mut Problems<'_>,
) -> Map<String, Value> {
    let params = match given {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            errs.bad("parameters", "must be an object".into());
            Map::new()
        }
    };
    if let Some(command) = command {
        for (field, reason) in check_params(command, &params) {
            errs.bad(&format!("parameters.{field}"), reason);
        }
    }
    params
}

/// Priority, lifetime, timeout and retries, defaults filled in.
struct Limits {
    priority: i64,
    ttl_minutes: f64,
    timeout_s: i64,
    max_retries: i64,
}

/// Priority 0-9 (default 5), `ttl_minutes` over 0 and at most 7 days
/// (default 30), `timeout_seconds` 1-86400 (default 300), `max_retries`
/// 0-10 (default 3).
fn limits(c: &NewCommand, errs: &mut Problems<'_>) -> Limits {
    let priority = c.priority.unwrap_or(5);
    if !(0..=9).contains(&priority) {
        errs.bad("priority", format!("{priority} is outside 0..=9"));
    }
    let ttl = c.ttl_minutes.unwrap_or(30.0);
    if !(ttl > 0.0 && ttl <= MAX_TTL_MINUTES) {
        errs.bad(
            "ttl_minutes",
            format!("{ttl} is outside (0, {MAX_TTL_MINUTES}]"),
        );
    }
    let timeout = c.timeout_seconds.unwrap_or(300);
    if !(1..=86_400).contains(&timeout) {
        errs.bad("timeout_seconds", format!("{timeout} is outside 1..=86400"));
    }
    let retries = c.max_retries.unwrap_or(3);
    if !(0..=10).contains(&retries) {
        errs.bad("max_retries", format!("{retries} is outside 0..=10"));
    }
    Limits {
        priority,
        ttl_minutes: ttl,
        timeout_s: timeout,
        max_retries: retries,
    }
}

/// The parameter rules of each command type: (field, reason) per problem.
pub fn check_params(command: &str, p: &Map<String, Value>) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let allowed: &[&str] = match command {
        "set_pool" => &["pool_url", "worker", "password"],
        "set_fan" => &["speed"],
        "set_frequency" => &["frequency_mhz"],
        "reboot" | "restart" => &["delay_seconds"],
        _ => &[],
    };
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push((k.clone(), format!("not a parameter of {command}")));
        }
    }
    let text =
        |k: &str, max: usize, required: bool, errs: &mut Vec<(String, String)>| match p.get(k) {
            None if required => errs.push((k.into(), "required".into())),
            None => {}
            Some(Value::String(s))
                if !s.is_empty() && s.chars().count() <= max && s.chars().any(char::is_control) =>
            {
                errs.push((k.into(), "contains control characters".into()));
            }
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => {}
            Some(_) => errs.push((k.into(), format!("must be a string of 1-{max} characters"))),
        };
    match command {
        "set_pool" => {
            text("pool_url", 1024, true, &mut errs);
            text("worker", 256, true, &mut errs);
            text("password", 256, false, &mut errs);
            if let Some(Value::String(url)) = p.get("pool_url") {
                let scheme_ok = url
                    .split_once("://")
                    .is_some_and(|(s, rest)| s.starts_with("stratum") && !rest.is_empty());
                if !scheme_ok {
                    errs.push((
                        "pool_url".into(),
                        "must look like stratum+tcp://host:port".into(),
                    ));
                }
            }
        }
        "set_fan" => match p.get("speed") {
            Some(Value::String(s)) if s == "auto" => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (0.0..=100.0).contains(&v)) => {}
            None => errs.push(("speed".into(), "required (0-100 %, or \"auto\")".into())),
            Some(_) => errs.push(("speed".into(), "must be 0-100 (%) or \"auto\"".into())),
        },
        "set_frequency" => match p.get("frequency_mhz").and_then(Value::as_f64) {
            Some(f) if (FREQUENCY_MHZ.0..=FREQUENCY_MHZ.1).contains(&f) => {}
            _ => errs.push((
                "frequency_mhz".into(),
                format!(
                    "required, {}-{} MHz",
                    FREQUENCY_MHZ.0 as i64, FREQUENCY_MHZ.1 as i64
                ),
            )),
        },
        "reboot" | "restart" => {
            if let Some(v) = p.get("delay_seconds") {
                if v.as_u64().is_none_or(|d| d > 3600) {
                    errs.push(("delay_seconds".into(), "must be 0-3600".into()));
                }
            }
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parameters_are_checked_per_type() {
        let ok = |c: &str, p: Value| check_params(c, &params(p)).is_empty();
        assert!(ok("restart", json!({})));
        assert!(ok("reboot", json!({"delay_seconds": 30})));
        assert!(!ok("enable", json!({"x": 1})));
        assert!(ok(
            "set_pool",
            json!({"pool_url": "stratum+tcp://pool.example:3333", "worker": "w1"})
        ));
        assert!(!ok(
            "set_pool",
            json!({"pool_url": "http://x", "worker": "w1"})
        ));
        assert!(!ok("set_pool", json!({"pool_url": "stratum+tcp://p:1"})));
        assert!(ok("set_fan", json!({"speed": 80})));
        assert!(ok("set_fan", json!({"speed": "auto"})));
        assert!(!ok("set_fan", json!({"speed": 101})));
        assert!(!ok("set_fan", json!({"speed": "max"})));
        assert!(ok("set_frequency", json!({"frequency_mhz": 650})));
        assert!(!ok("set_frequency", json!({"frequency_mhz": 5})));
        assert!(!ok("set_frequency", json!({})));
    }

    #[test]
    fn a_command_lists_every_problem() {
        let c: NewCommand = serde_json::from_value(json!({
            "miner_id": "", "site_id": 1, "command_type": "explode",
            "priority": 12, "ttl_minutes": 0, "ip_address": "nope"
        }))
        .unwrap();
        let errs = validate(c, "").unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "miner_id",
                "ip_address",
                "command_type",
                "priority",
                "ttl_minutes"
            ]
        );
    }
}
