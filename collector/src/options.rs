//! The collector's command line and configuration file.
//!
//! Every setting is a flag, an environment variable `ADIT_COLLECTOR_…` and
//! a key of the TOML file named by `--config` (the flag's name without the
//! dashes in front: `adit-url = "http://…"`). A flag or variable wins over
//! the file, the file over the built-in default. A key the file has but
//! the collector does not know is refused, naming the file and the key.
//! Whatever the operator set in any of these ways also wins over adit's
//! central configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::agent::AgentConfig;
use crate::error::{Error, Result};
use crate::settings::{Local, Settings};

/// Where batches wait when no `--spool-dir` is given.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/adit-collector/spool";

const LONG_ABOUT: &str = "\
adit-collector runs on a farm's edge box. Every --interval it asks each miner on the list for \
summary, stats and pools over the CGMiner API (TCP 4028), turns the answers into one sample per \
miner (a miner that does not answer is reported offline), writes the cycle durably to a disk spool \
and uploads the spool to adit oldest first (gzip, one Idempotency-Key per batch, retries through \
outages). Every --command-interval it fetches the commands adit holds for the site, runs them on \
the miners and reports the results; every --heartbeat-interval it reports its own state.

adit may publish a central configuration (intervals, timeouts, retry policy, spool limits, remote \
control on/off); the collector fetches it at start and whenever a heartbeat answer names another \
version, and applies it without a restart. A setting given here (flag, environment variable or \
config file) wins over the central value.

Each flag can also be set by its environment variable or as a key of the --config TOML file \
(the flag's name without the leading dashes). SIGTERM or SIGINT stops polling, finishes the upload \
under way and exits 0; the spool keeps what is not sent.";

#[derive(Debug, Clone, Parser)]
#[command(name = "adit-collector", version, about = "The adit edge collector: polls miners over the CGMiner API, spools and uploads their samples to adit, runs adit's commands.", long_about = LONG_ABOUT)]
pub struct Cli {
    /// A TOML file with any of the settings below (keys as the flags are
    /// named, e.g. `adit-url`, `spool-max-bytes`); flags and environment
    /// variables win over it.
    #[arg(long, env = "ADIT_COLLECTOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// adit's base URL, http://… or https://…, e.g. https://adit.example:8443
    /// (required).
    #[arg(long, env = "ADIT_COLLECTOR_ADIT_URL", value_name = "URL")]
    pub adit_url: Option<String>,

    /// The site's collector key, sent as X-Collector-Key (required).
    #[arg(
        long,
        env = "ADIT_COLLECTOR_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,

    /// Miners to poll (required): IP (port 4028), ip:port or an IPv4 range
    /// such as 192.168.1.0/24 (every host address, optionally /24:4029);
    /// repeat the flag or separate with commas.
    #[arg(long, env = "ADIT_COLLECTOR_MINERS", value_name = "LIST")]
    pub miners: Vec<String>,

    /// Time between polling cycles [default: 60s].
    #[arg(long, env = "ADIT_COLLECTOR_INTERVAL", value_name = "DURATION")]
    pub interval: Option<humantime::Duration>,

    /// Time between fetches of pending commands [default: 30s].
    #[arg(long, env = "ADIT_COLLECTOR_COMMAND_INTERVAL", value_name = "DURATION")]
    pub command_interval: Option<humantime::Duration>,

    /// Time between heartbeats to adit [default: 30s].
    #[arg(
        long,
        env = "ADIT_COLLECTOR_HEARTBEAT_INTERVAL",
        value_name = "DURATION"
    )]
    pub heartbeat_interval: Option<humantime::Duration>,

    /// Time one CGMiner request gets [default: 5s].
    #[arg(long, env = "ADIT_COLLECTOR_CGMINER_TIMEOUT", value_name = "DURATION")]
    pub cgminer_timeout: Option<humantime::Duration>,

    /// Directory of the disk spool, where batches wait until adit has them
    /// [default: /var/lib/adit-collector/spool].
    #[arg(long, env = "ADIT_COLLECTOR_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Spool cap in bytes; past it the oldest batches are dropped, warned
    /// and counted [default: 1073741824 (1 GiB)].
    #[arg(long, env = "ADIT_COLLECTOR_SPOOL_MAX_BYTES", value_name = "BYTES")]
    pub spool_max_bytes: Option<u64>,

    /// Serve the collector's own Prometheus /metrics on this address, e.g.
    /// 127.0.0.1:9108 [default: not served].
    #[arg(long, env = "ADIT_COLLECTOR_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// A PEM file of certificate authorities to trust for an https adit,
    /// beside the system's store (for an adit with its own CA or a
    /// self-signed certificate).
    #[arg(long, env = "ADIT_COLLECTOR_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Run commands from adit (false: never fetch them, whatever the
    /// central configuration says) [default: true].
    #[arg(long, env = "ADIT_COLLECTOR_REMOTE_CONTROL", value_name = "BOOL")]
    pub remote_control: Option<bool>,
}

/// The TOML file: the same settings, kebab-case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileOptions {
    adit_url: Option<String>,
    key: Option<String>,
    miners: Option<MinerList>,
    interval: Option<FileDuration>,
    command_interval: Option<FileDuration>,
    heartbeat_interval: Option<FileDuration>,
    cgminer_timeout: Option<FileDuration>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    metrics_listen: Option<String>,
    ca_file: Option<PathBuf>,
    remote_control: Option<bool>,
}

/// `interval = "90s"` (any humantime duration) or `interval = 90` (seconds).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileDuration {
    Text(String),
    Seconds(u64),
}

/// `miners = "10.0.0.0/24"` or `miners = ["10.0.0.5", "10.0.1.0/24"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MinerList {
    One(String),
    Many(Vec<String>),
}

impl Cli {
    /// The collector's configuration: flags and variables, then the file,
    /// then the defaults; missing or out-of-bounds settings refused.
    pub fn into_config(self) -> Result<AgentConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileOptions::default(),
        };
        let origin = |flag: &str| match &self.config {
            Some(p) => format!(
                "--{flag} (or {}, or {flag} in {})",
                env_name(flag),
                p.display()
            ),
            None => format!("--{flag} (or {})", env_name(flag)),
        };
        let required = |flag: &str| Error::Settings {
            source_name: origin(flag),
            reason: "is required".into(),
        };
        let adit_url = self
            .adit_url
            .clone()
            .or(file.adit_url)
            .ok_or_else(|| required("adit-url"))?;
        check_url(&adit_url).map_err(|reason| Error::Settings {
            source_name: origin("adit-url"),
            reason,
        })?;
        let key = self
            .key
            .clone()
            .or(file.key)
            .ok_or_else(|| required("key"))?;
        if key.trim().is_empty() {
            return Err(required("key"));
        }
        let miners_text = if self.miners.is_empty() {
            match file.miners {
                Some(MinerList::One(s)) => s,
                Some(MinerList::Many(v)) => v.join(","),
                None => String::new(),
            }
        } else {
            self.miners.join(",")
        };
        let miners = crate::cycle::parse_miners(&miners_text)?;
        if miners.is_empty() {
            return Err(required("miners"));
        }
        let file_path = self.config.clone().unwrap_or_default();
        let duration = |flag: &str,
                        cli: Option<humantime::Duration>,
                        file: Option<FileDuration>,
                        lo: Duration,
                        hi: Duration|
         -> Result<Option<Duration>> {
            let value = match (cli, file) {
                (Some(d), _) => Some(Duration::from(d)),
                (None, Some(FileDuration::Seconds(n))) => Some(Duration::from_secs(n)),
                (None, Some(FileDuration::Text(text))) => Some(
                    humantime::parse_duration(&text).map_err(|e| Error::Settings {
                        source_name: format!("{}: {flag}", file_path.display()),
                        reason: format!("{text:?} is not a duration such as 60s: {e}"),
                    })?,
                ),
                (None, None) => None,
            };
            match value {
                Some(d) if d < lo || d > hi => Err(Error::Settings {
                    source_name: origin(flag),
                    reason: format!(
                        "{} is outside {}..={}",
                        humantime::format_duration(d),
                        humantime::format_duration(lo),
                        humantime::format_duration(hi)
                    ),
                }),
                other => Ok(other),
            }
        };
        let s = |n| Duration::from_secs(n);
        let local = Local {
            interval: duration("interval", self.interval, file.interval, s(1), s(86_400))?,
            command_interval: duration(
                "command-interval",
                self.command_interval,
                file.command_interval,
                s(1),
                s(3600),
            )?,
            heartbeat_interval: duration(
                "heartbeat-interval",
                self.heartbeat_interval,
                file.heartbeat_interval,
                s(1),
                s(3600),
            )?,
            cgminer_timeout: duration(
                "cgminer-timeout",
                self.cgminer_timeout,
                file.cgminer_timeout,
                Duration::from_millis(100),
                s(60),
            )?,
            spool_max_bytes: self.spool_max_bytes.or(file.spool_max_bytes),
            remote_control: self.remote_control.or(file.remote_control),
        };
        if local.spool_max_bytes.is_some_and(|b| b < 1 << 16) {
            return Err(Error::Settings {
                source_name: origin("spool-max-bytes"),
                reason: "must be at least 65536 bytes".into(),
            });
        }
        let metrics_listen = match (self.metrics_listen, file.metrics_listen) {
            (Some(a), _) => Some(a),
            (None, Some(text)) => Some(text.parse().map_err(|_| Error::Settings {
                source_name: format!("{}: metrics-listen", file_path.display()),
                reason: format!("{text:?} is not an address such as 127.0.0.1:9108"),
            })?),
            (None, None) => None,
        };
        let spool_dir = self
            .spool_dir
            .clone()
            .or(file.spool_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
        let mut cfg = AgentConfig::new(&adit_url, &key, miners, spool_dir);
        cfg.metrics_listen = metrics_listen;
        cfg.ca_file = self.ca_file.clone().or(file.ca_file);
        cfg.defaults = Settings::default();
        cfg.local = local;
        Ok(cfg)
    }
}

fn env_name(flag: &str) -> String {
    match flag {
        "key" => "ADIT_COLLECTOR_KEY".into(),
        f => format!("ADIT_COLLECTOR_{}", f.to_uppercase().replace('-', "_")),
    }
}

fn read_file(path: &Path) -> Result<FileOptions> {
    let bad = |reason: String| Error::Settings {
        source_name: format!("config file {}", path.display()),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    toml::from_str(&text).map_err(|e| bad(e.to_string().trim_end().to_string()))
}

/// adit's URL: `http://host[:port]` or `https://host[:port]`.
fn check_url(url: &str) -> std::result::Result<(), String> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    if rest.trim_end_matches('/').is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    url.parse::<hyper::Uri>()
        .map(|_| ())
        .map_err(|e| format!("{url:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("adit-collector").chain(args.iter().copied())).unwrap()
    }

    fn file(tag: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "adit-collector-options-{tag}-{}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file_and_both_count_as_set_locally() {
        let path = file(
            "both",
            r#"
adit-url = "http://127.0.0.1:9"
key = "from-file"
miners = ["10.0.0.1", "10.0.1.0/30:4029"]
interval = "2m"
heartbeat-interval = 15
spool-max-bytes = 1048576
remote-control = false
metrics-listen = "127.0.0.1:9108"
"#,
        );
        let p = path.to_str().unwrap();
        let cfg = cli(&["--config", p, "--key", "from-flag", "--interval", "90s"])
            .into_config()
            .unwrap();
        assert_eq!(cfg.key, "from-flag");
        assert_eq!(cfg.adit_url, "http://127.0.0.1:9");
        assert_eq!(cfg.miners.len(), 3);
        assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9108".parse().unwrap()));
        assert_eq!(cfg.spool_dir, PathBuf::from(DEFAULT_SPOOL_DIR));
        assert_eq!(
            cfg.local,
            Local {
                interval: Some(Duration::from_secs(90)),
                heartbeat_interval: Some(Duration::from_secs(15)),
                spool_max_bytes: Some(1 << 20),
                remote_control: Some(false),
                ..Local::default()
            }
        );
        let s = cfg.settings();
        assert_eq!(s.interval, Duration::from_secs(90));
        assert_eq!(s.command_interval, Duration::from_secs(30), "the default");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_file_and_the_key() {
        let path = file(
            "unknown",
            "adit-url = \"http://x:1\"\npoll-everything = true\n",
        );
        let err = cli(&["--config", path.to_str().unwrap()])
            .into_config()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(path.to_str().unwrap()), "{text}");
        assert!(text.contains("poll-everything"), "{text}");
        assert_eq!(err.code(), "bad_settings");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_and_out_of_bounds_settings_are_refused() {
        let err = cli(&["--key", "k", "--miners", "10.0.0.1"])
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("--adit-url"), "{err}");
        let base = ["--adit-url", "http://127.0.0.1:9", "--key", "k"];
        let err = cli(&base).into_config().unwrap_err();
        assert!(err.to_string().contains("--miners"), "{err}");
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(&["--miners", "10.0.0.1"]);
            a.extend_from_slice(extra);
            cli(&a).into_config()
        };
        assert!(with(&[]).is_ok());
        assert!(with(&["--interval", "0s"]).is_err());
        assert!(with(&["--heartbeat-interval", "2h"]).is_err());
        assert!(with(&["--spool-max-bytes", "10"]).is_err());
        let err = cli(&[
            "--adit-url",
            "ftp://a:1",
            "--key",
            "k",
            "--miners",
            "10.0.0.1",
        ])
        .into_config()
        .unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        let tls = cli(&[
            "--adit-url",
            "https://adit.example:8443",
            "--key",
            "k",
            "--miners",
            "10.0.0.1",
        ]);
        assert!(tls.into_config().is_ok());
        assert!(with(&["--miners", "10.0.0.0/8"]).is_err());
    }

    #[test]
    fn miners_repeat_or_come_as_a_comma_list() {
        let cfg = cli(&[
            "--adit-url",
            "http://127.0.0.1:9",
            "--key",
            "k",
            "--miners",
            "10.0.0.1,10.0.0.2:4029",
            "--miners",
            "10.0.0.3",
        ])
        .into_config()
        .unwrap();
        let got: Vec<String> = cfg.miners.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.0.1:4028", "10.0.0.2:4029", "10.0.0.3:4028"]);
    }
}
