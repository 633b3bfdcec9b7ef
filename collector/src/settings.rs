//! The settings a running collector may change without a restart, and how
//! they are chosen: a value the operator set on the box (a flag, an
//! environment variable or a key of the TOML file) wins; else the value of
//! the central configuration adit hands out (`GET /api/collector/config`);
//! else the built-in default.
//!
//! A central value outside its bounds is ignored with a warning and the
//! value below it in that order is kept; keys the collector does not know
//! are ignored the same way (adit refuses them when a configuration is
//! published, so one here comes from a newer adit).

use std::time::Duration;

use serde_json::{Map, Value};

/// The tunable settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Time between polling cycles (`collection_interval`).
    pub interval: Duration,
    /// Time between heartbeats (`heartbeat_interval`).
    pub heartbeat_interval: Duration,
    /// Time between fetches of pending commands (`command_interval`).
    pub command_interval: Duration,
    /// Time one CGMiner request gets (`cgminer_api_timeout`).
    pub cgminer_timeout: Duration,
    /// Retries of a CGMiner read request (`retry_policy.max_retries`).
    pub cgminer_retries: u32,
    /// Waits between upload tries after network errors or 5xx, the last one
    /// repeating (`retry_policy.backoff_seconds`); empty: exponential
    /// backoff from 1 s to 5 min.
    pub upload_backoff: Vec<Duration>,
    /// Spool cap in bytes (`buffer_config.max_buffer_size`, MiB centrally).
    pub spool_max_bytes: u64,
    /// Spooled batches older than this are dropped and counted
    /// (`buffer_config.max_buffer_hours`); None: kept until the cap.
    pub spool_max_age: Option<Duration>,
    /// Fetch and run commands from adit (`features.enable_remote_control`).
    pub remote_control: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(30),
            command_interval: Duration::from_secs(30),
            cgminer_timeout: Duration::from_secs(5),
            cgminer_retries: 2,
            upload_backoff: Vec::new(),
            spool_max_bytes: 1 << 30,
            spool_max_age: None,
            remote_control: true,
        }
    }
}

/// The values the operator set on the box; `None` = not set there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    pub interval: Option<Duration>,
    pub heartbeat_interval: Option<Duration>,
    pub command_interval: Option<Duration>,
    pub cgminer_timeout: Option<Duration>,
    pub spool_max_bytes: Option<u64>,
    pub remote_control: Option<bool>,
}

/// The central configuration's keys (contract names) and their bounds.
pub const CENTRAL_KEYS: [&str; 7] = [
    "collection_interval",
    "heartbeat_interval",
    "command_interval",
    "cgminer_api_timeout",
    "retry_policy",
    "buffer_config",
    "features",
];

/// A central configuration as adit hands it out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Central {
    /// None: no configuration is active for this collector.
    pub version: Option<String>,
    /// The `config` document (empty when none).
    pub config: Map<String, Value>,
}

impl Central {
    /// Reads the answer of `GET /api/collector/config`, inside adit's
    /// `{"success":true,"data":…}` envelope or bare.
    pub fn from_answer(answer: &Value) -> Result<Self, String> {
        let body = answer.get("data").unwrap_or(answer);
        let version = match body.get("version") {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) => Some(v.clone()),
            Some(other) => return Err(format!("version is not a string: {other}")),
        };
        let config = match body.get("config") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(format!("config is not an object: {other}")),
        };
        Ok(Self { version, config })
    }
}

/// What [`merge`] chose, and what it left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub settings: Settings,
    /// Central keys ignored because the operator set the value locally.
    pub kept_local: Vec<&'static str>,
    /// Central keys ignored as unknown or out of bounds, with the reason.
    pub refused: Vec<String>,
}

/// Local values over central ones over `defaults`.
pub fn merge(defaults: &Settings, local: &Local, central: &Central) -> Merged {
    let mut m = Merged {
        settings: defaults.clone(),
        kept_local: Vec::new(),
        refused: Vec::new(),
    };
    let c = &central.config;
    for key in c.keys() {
        if !CENTRAL_KEYS.contains(&key.as_str()) && key != "version" {
            m.refused
                .push(format!("{key}: not a setting the collector knows"));
        }
    }
    let s = &mut m.settings;
    let mut central_secs = |key: &'static str, lo: u64, hi: u64| -> Option<Duration> {
        let v = c.get(key)?;
        match v.as_u64().filter(|n| (lo..=hi).contains(n)) {
            Some(n) => Some(Duration::from_secs(n)),
            None => {
                m.refused
                    .push(format!("{key}: {v} is not whole seconds in {lo}..={hi}"));
                None
            }
        }
    };
    let interval = central_secs("collection_interval", 10, 86_400);
    let heartbeat = central_secs("heartbeat_interval", 5, 3600);
    let command = central_secs("command_interval", 5, 3600);
    let timeout = central_secs("cgminer_api_timeout", 1, 60);
    pick(
        &mut s.interval,
        local.interval,
        interval,
        "collection_interval",
        &mut m.kept_local,
    );
    pick(
        &mut s.heartbeat_interval,
        local.heartbeat_interval,
        heartbeat,
        "heartbeat_interval",
        &mut m.kept_local,
    );
    pick(
        &mut s.command_interval,
        local.command_interval,
        command,
        "command_interval",
        &mut m.kept_local,
    );
    pick(
        &mut s.cgminer_timeout,
        local.cgminer_timeout,
        timeout,
        "cgminer_api_timeout",
        &mut m.kept_local,
    );
    if let Some(policy) = object(
        c,
        "retry_policy",
        &["max_retries", "backoff_seconds"],
        &mut m.refused,
    ) {
        if let Some(v) = policy.get("max_retries") {
            match v.as_u64().filter(|n| *n <= 10) {
                Some(n) => s.cgminer_retries = n as u32,
                None => m
                    .refused
                    .push(format!("retry_policy.max_retries: {v} is not in 0..=10")),
            }
        }
        if let Some(v) = policy.get("backoff_seconds") {
            let steps: Option<Vec<Duration>> = v
                .as_array()
                .filter(|a| (1..=10).contains(&a.len()))
                .and_then(|a| {
                    a.iter()
                        .map(|x| {
                            x.as_u64()
                                .filter(|n| (1..=3600).contains(n))
                                .map(Duration::from_secs)
                        })
                        .collect()
                });
            match steps {
                Some(steps) => s.upload_backoff = steps,
                None => m.refused.push(format!(
                    "retry_policy.backoff_seconds: {v} is not 1-10 values in 1..=3600"
                )),
            }
        }
    }
    let mut cap = None;
    if let Some(buffer) = object(
        c,
        "buffer_config",
        &["max_buffer_size", "max_buffer_hours"],
        &mut m.refused,
    ) {
        if let Some(v) = buffer.get("max_buffer_size") {
            match v.as_u64().filter(|n| (1..=1_048_576).contains(n)) {
                Some(mib) => cap = Some(mib << 20),
                None => m.refused.push(format!(
                    "buffer_config.max_buffer_size: {v} is not MiB in 1..=1048576"
                )),
            }
        }
        if let Some(v) = buffer.get("max_buffer_hours") {
            match v.as_u64().filter(|n| (1..=720).contains(n)) {
                Some(h) => s.spool_max_age = Some(Duration::from_secs(h * 3600)),
                None => m.refused.push(format!(
                    "buffer_config.max_buffer_hours: {v} is not hours in 1..=720"
                )),
            }
        }
    }
    pick(
        &mut s.spool_max_bytes,
        local.spool_max_bytes,
        cap,
        "buffer_config.max_buffer_size",
        &mut m.kept_local,
    );
    let mut remote = None;
    let features = [
        "enable_remote_control",
        "enable_auto_discovery",
        "enable_auto_reboot",
    ];
    if let Some(f) = object(c, "features", &features, &mut m.refused) {
        for (k, v) in f {
            if !v.is_boolean() {
                m.refused
                    .push(format!("features.{k}: {v} is not true or false"));
            }
        }
        remote = f.get("enable_remote_control").and_then(Value::as_bool);
    }
    pick(
        &mut s.remote_control,
        local.remote_control,
        remote,
        "features.enable_remote_control",
        &mut m.kept_local,
    );
    m
}

/// Local over central over what `slot` holds (the default).
fn pick<T>(
    slot: &mut T,
    local: Option<T>,
    central: Option<T>,
    key: &'static str,
    kept_local: &mut Vec<&'static str>,
) {
    match (local, central) {
        (Some(l), c) => {
            if c.is_some() {
                kept_local.push(key);
            }
            *slot = l;
        }
        (None, Some(c)) => *slot = c,
        (None, None) => {}
    }
}

/// `config[key]` as an object whose keys are all in `allowed`.
fn object<'a>(
    c: &'a Map<String, Value>,
    key: &str,
    allowed: &[&str],
    refused: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    let v = c.get(key)?;
    let Some(obj) = v.as_object() else {
        refused.push(format!("{key}: {v} is not an object"));
        return None;
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            refused.push(format!("{key}.{k}: not a setting the collector knows"));
        }
    }
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn central(v: Value) -> Central {
        Central::from_answer(&json!({"success": true, "data": {"version": "v1", "config": v}}))
            .unwrap()
    }

    #[test]
    fn central_values_apply_over_the_defaults() {
        let c = central(json!({
            "collection_interval": 120, "heartbeat_interval": 15, "command_interval": 10,
            "cgminer_api_timeout": 3,
            "retry_policy": {"max_retries": 4, "backoff_seconds": [1, 5, 30]},
            "buffer_config": {"max_buffer_size": 256, "max_buffer_hours": 48},
            "features": {"enable_remote_control": false, "enable_auto_reboot": true}
        }));
        assert_eq!(c.version.as_deref(), Some("v1"));
        let m = merge(&Settings::default(), &Local::default(), &c);
        assert!(m.refused.is_empty() && m.kept_local.is_empty(), "{m:?}");
        let s = m.settings;
        assert_eq!(s.interval, Duration::from_secs(120));
        assert_eq!(s.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(s.command_interval, Duration::from_secs(10));
        assert_eq!(s.cgminer_timeout, Duration::from_secs(3));
        assert_eq!(s.cgminer_retries, 4);
        assert_eq!(
            s.upload_backoff,
            [1, 5, 30].map(Duration::from_secs).to_vec()
        );
        assert_eq!(s.spool_max_bytes, 256 << 20);
        assert_eq!(s.spool_max_age, Some(Duration::from_secs(48 * 3600)));
        assert!(!s.remote_control);
    }

    #[test]
    fn what_the_operator_set_wins_and_is_named() {
        let c = central(json!({
            "collection_interval": 120, "heartbeat_interval": 15,
            "buffer_config": {"max_buffer_size": 256},
            "features": {"enable_remote_control": false}
        }));
        let local = Local {
            interval: Some(Duration::from_secs(30)),
            spool_max_bytes: Some(1000),
            remote_control: Some(true),
            ..Local::default()
        };
        let m = merge(&Settings::default(), &local, &c);
        assert_eq!(m.settings.interval, Duration::from_secs(30));
        assert_eq!(m.settings.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(m.settings.spool_max_bytes, 1000);
        assert!(m.settings.remote_control);
        assert_eq!(
            m.kept_local,
            [
                "collection_interval",
                "buffer_config.max_buffer_size",
                "features.enable_remote_control"
            ]
        );
        // A local value stands with no central configuration too.
        let none = merge(&Settings::default(), &local, &Central::default());
        assert_eq!(none.settings.interval, Duration::from_secs(30));
        assert!(none.kept_local.is_empty());
    }

    #[test]
    fn out_of_bounds_and_unknown_keys_are_refused_and_the_default_kept() {
        let c = central(json!({
            "collection_interval": 5, "heartbeat_interval": 3601, "command_interval": "10",
            "cgminer_api_timeout": 0, "poll_everything": true,
            "retry_policy": {"max_retries": 11, "backoff_seconds": []},
            "buffer_config": {"max_buffer_size": 0, "max_buffer_hours": 721, "x": 1},
            "features": {"enable_remote_control": "no"}
        }));
        let m = merge(&Settings::default(), &Local::default(), &c);
        assert_eq!(m.settings, Settings::default());
        let joined = m.refused.join("\n");
        for key in [
            "collection_interval",
            "heartbeat_interval",
            "command_interval",
            "cgminer_api_timeout",
            "poll_everything",
            "retry_policy.max_retries",
            "retry_policy.backoff_seconds",
            "buffer_config.max_buffer_size",
            "buffer_config.max_buffer_hours",
            "buffer_config.x",
            "features.enable_remote_control",
        ] {
            assert!(joined.contains(key), "{key} not refused in:\n{joined}");
        }
        // The bounds themselves are accepted.
        let edge = central(json!({"collection_interval": 10, "heartbeat_interval": 3600}));
        let s = merge(&Settings::default(), &Local::default(), &edge).settings;
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.heartbeat_interval, Duration::from_secs(3600));
    }

    #[test]
    fn no_active_configuration_means_defaults() {
        let c = Central::from_answer(&json!({"success": true, "data": {"version": null, "config": null, "activated_at": null}})).unwrap();
        assert_eq!(c, Central::default());
        assert_eq!(
            merge(&Settings::default(), &Local::default(), &c).settings,
            Settings::default()
        );
        assert!(Central::from_answer(&json!({"version": 3})).is_err());
        assert!(Central::from_answer(&json!({"version": "v", "config": [1]})).is_err());
    }
}
