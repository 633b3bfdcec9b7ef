//! The options a configuration file may set: exactly `adit serve`'s, read
//! from clap's own definitions. A new `serve` option (a field of
//! [`ServeArgs`](crate::cli::ServeArgs) with its `env` and default) is at
//! once a file key, an environment variable and a line of `adit config
//! print`; only a value type never seen before needs a [`Kind`] here.

use std::any::TypeId;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::CommandFactory as _;

use super::effective::Kind;
use crate::bytesize::ByteSize;
use crate::cli::{Cli, LogFormat};

/// `serve` arguments that are not file keys: clap's own, the file's path,
/// and hidden benchmarking switches.
const NOT_IN_FILE: &[&str] = &["help", "version", "config"];

/// One file key: the `serve` option it sets.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file key: the option's id (its long name with _ for -).
    pub key: String,
    pub kind: Kind,
    /// Set on the top-level command (`--log-format`), not on `serve`.
    pub global: bool,
    pub arg: clap::Arg,
}

impl Spec {
    /// The flag as typed on the command line.
    pub fn flag(&self) -> String {
        format!("--{}", self.arg.get_long().unwrap_or(&self.key))
    }

    /// The default as clap shows and parses it, if there is one.
    pub fn default_value(&self) -> Option<String> {
        self.arg
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned())
    }

    /// What the file may give, for refusals.
    pub fn allowed(&self) -> String {
        match self.kind {
            Kind::Bool => "true or false".into(),
            Kind::Count => "a whole number (not negative)".into(),
            Kind::Integer => "a whole number".into(),
            Kind::Float => "a number".into(),
            Kind::Duration => {
                "a duration string with units, such as \"500ms\", \"30s\", \"5min\" or \"7days\""
                    .into()
            }
            Kind::ByteSize => "a byte size: a string with a unit such as \"8MiB\" or \"512KiB\", \
                 or a whole number of bytes"
                .into(),
            Kind::Address => "an address string host:port, such as \"127.0.0.1:8080\"".into(),
            Kind::Path => "a path string".into(),
            Kind::Text => "a string".into(),
            Kind::Choice => {
                let names: Vec<String> = self
                    .arg
                    .get_possible_values()
                    .iter()
                    .map(|p| format!("\"{}\"", p.get_name()))
                    .collect();
                format!("one of {}", names.join(", "))
            }
        }
    }
}

/// Every file key: the global ones (`log_format`) first, then `adit serve
/// --help`'s order.
pub fn serve_options() -> Vec<Spec> {
    let mut cmd = Cli::command();
    cmd.build();
    let serve = cmd
        .find_subcommand("serve")
        .expect("adit has a serve command");
    let mut specs = serve
        .get_arguments()
        .filter(|a| !NOT_IN_FILE.contains(&a.get_id().as_str()) && !a.is_hide_set())
        .map(|a| Spec {
            key: a.get_id().to_string(),
            kind: kind_of(a),
            global: a.is_global_set(),
            arg: a.clone(),
        })
        .collect::<Vec<_>>();
    specs.sort_by_key(|s| !s.global);
    specs
}

/// The [`Kind`] of an option, from the type its value parser produces.
fn kind_of(arg: &clap::Arg) -> Kind {
    let t = arg.get_value_parser().type_id();
    let is = |id: TypeId| t == id;
    if is(TypeId::of::<bool>()) {
        Kind::Bool
    } else if is(TypeId::of::<usize>()) || is(TypeId::of::<u64>()) || is(TypeId::of::<u32>()) {
        Kind::Count
    } else if is(TypeId::of::<i32>()) || is(TypeId::of::<i64>()) {
        Kind::Integer
    } else if is(TypeId::of::<f64>()) || is(TypeId::of::<f32>()) {
        Kind::Float
    } else if is(TypeId::of::<humantime::Duration>()) {
        Kind::Duration
    } else if is(TypeId::of::<ByteSize>()) {
        Kind::ByteSize
    } else if is(TypeId::of::<SocketAddr>()) {
        Kind::Address
    } else if is(TypeId::of::<PathBuf>()) {
        Kind::Path
    } else if is(TypeId::of::<String>()) {
        Kind::Text
    } else if is(TypeId::of::<LogFormat>()) {
        Kind::Choice
    } else {
        panic!(
            "`adit serve --{}` has a value type the configuration file does not know: \
             add it to config::options::kind_of",
            arg.get_id()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serve_option_is_a_key_of_a_known_kind() {
        let specs = serve_options();
        let key = |k: &str| specs.iter().find(|s| s.key == k).map(|s| s.kind);
        assert_eq!(key("listen"), Some(Kind::Address));
        assert_eq!(key("database_url"), Some(Kind::Text));
        assert_eq!(key("no_live"), Some(Kind::Bool));
        assert_eq!(key("flush_interval"), Some(Kind::Duration));
        assert_eq!(key("max_body_bytes"), Some(Kind::ByteSize));
        assert_eq!(key("writers"), Some(Kind::Count));
        assert_eq!(key("retention_telemetry_days"), Some(Kind::Integer));
        assert_eq!(key("hashrate_drop_share"), Some(Kind::Float));
        assert_eq!(key("log_format"), Some(Kind::Choice));
        assert_eq!(key("archive_url"), Some(Kind::Text));
        assert_eq!(key("tls_cert"), Some(Kind::Path));
        for absent in ["help", "config", "discard"] {
            assert_eq!(key(absent), None, "{absent}");
        }
        assert!(specs.iter().find(|s| s.key == "log_format").unwrap().global);
    }
}
