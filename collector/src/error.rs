//! The collector's one error type.

use std::net::SocketAddr;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a miner. Each variant names the miner and,
/// once a request is under way, the command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection was not established within the connect timeout.
    #[error("{addr}: no connection within {timeout_ms} ms")]
    ConnectTimeout { addr: SocketAddr, timeout_ms: u64 },
    /// The miner's host answered the connection attempt with a refusal.
    #[error("{addr}: connection refused")]
    Refused { addr: SocketAddr },
    /// Connected, but the whole request (send and answer) took too long.
    #[error("{addr}: {command} got no complete answer within {timeout_ms} ms")]
    Timeout {
        addr: SocketAddr,
        command: &'static str,
        timeout_ms: u64,
    },
    /// The answer grew past the size limit before its end; it was dropped.
    #[error("{addr}: {command} answer is larger than {limit_bytes} bytes")]
    TooLarge {
        addr: SocketAddr,
        command: &'static str,
        limit_bytes: usize,
    },
    /// The answer is not JSON even after the firmware quirks are repaired.
    #[error("{addr}: {command} answer is malformed: {reason}")]
    Malformed {
        addr: SocketAddr,
        command: &'static str,
        reason: String,
    },
    /// The miner answered with `STATUS` `E` or `F`: it refused or failed the command.
    #[error("{addr}: {command} failed on the miner (STATUS {status}, code {code:?}): {message}")]
    Miner {
        addr: SocketAddr,
        command: &'static str,
        status: String,
        code: Option<i64>,
        message: String,
    },
    /// Any other socket error (reset, broken pipe, unreachable network).
    #[error("{addr}: {command}: {source}")]
    Io {
        addr: SocketAddr,
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A command from adit that is not on the whitelist.
    #[error("{command:?} is not a command the collector sends to miners")]
    CommandNotAllowed { command: String },
    /// An entry of the miner list is not an address, `host:port` or a range
    /// the collector polls.
    #[error("miner list entry {entry:?}: {reason}")]
    MinerList { entry: String, reason: String },
    /// A spool file or directory could not be read or written (or a batch
    /// could not be stored as given).
    #[error("spool {path}: {action}: {reason}")]
    Spool {
        path: std::path::PathBuf,
        action: &'static str,
        reason: String,
    },
    /// Samples could not be encoded into an upload body.
    #[error("encoding an upload batch: {reason}")]
    Encode { reason: String },
    /// A setting is missing or out of bounds, or the configuration file
    /// cannot be read or has a key the collector does not know.
    #[error("{source_name}: {reason}")]
    Settings { source_name: String, reason: String },
    /// A request to adit's control plane (config, commands, heartbeat)
    /// got no usable answer.
    #[error("adit {request}: {reason}")]
    Adit { request: String, reason: String },
    /// The collector's own `/metrics` listener could not be opened.
    #[error("metrics listener {addr}: {source}")]
    MetricsListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable machine-readable code, for logs, metrics and command results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ConnectTimeout { .. } => "connect_timeout",
            Self::Refused { .. } => "refused",
            Self::Timeout { .. } => "timeout",
            Self::TooLarge { .. } => "too_large",
            Self::Malformed { .. } => "malformed",
            Self::Miner { .. } => "miner_error",
            Self::Io { .. } => "io",
            Self::CommandNotAllowed { .. } => "command_not_allowed",
            Self::MinerList { .. } => "bad_miner_list",
            Self::Spool { .. } => "spool",
            Self::Encode { .. } => "encode",
            Self::Settings { .. } => "bad_settings",
            Self::Adit { .. } => "adit_unreachable",
            Self::MetricsListen { .. } => "metrics_listen",
        }
    }

    /// Whether the same request may succeed if tried again shortly: network
    /// trouble yes; an answer the miner gave (an error status, a malformed
    /// or oversized answer) or a refused command no, it would come back the same.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ConnectTimeout { .. } | Self::Refused { .. } | Self::Timeout { .. } => true,
            Self::Io { .. } => true,
            Self::TooLarge { .. }
            | Self::Malformed { .. }
            | Self::Miner { .. }
            | Self::CommandNotAllowed { .. }
            | Self::MinerList { .. }
            | Self::Spool { .. }
            | Self::Encode { .. }
            | Self::Settings { .. }
            | Self::MetricsListen { .. } => false,
            Self::Adit { .. } => true,
        }
    }

    /// Whether the miner certainly never received the command (the
    /// connection was never made). Only then is a privileged command retried:
    /// a `restart` whose answer was lost may already have happened.
    pub fn before_send(&self) -> bool {
        match self {
            Self::ConnectTimeout { .. }
            | Self::Refused { .. }
            | Self::CommandNotAllowed { .. }
            | Self::MinerList { .. }
            | Self::Spool { .. }
            | Self::Encode { .. }
            | Self::Settings { .. }
            | Self::Adit { .. }
            | Self::MetricsListen { .. } => true,
            Self::Timeout { .. }
            | Self::TooLarge { .. }
            | Self::Malformed { .. }
            | Self::Miner { .. }
            | Self::Io { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:4028".parse().unwrap()
    }

    #[test]
    fn network_errors_are_retryable_answers_are_not() {
        let refused = Error::Refused { addr: addr() };
        assert!(refused.is_retryable() && refused.before_send());
        let timeout = Error::Timeout {
            addr: addr(),
            command: "summary",
            timeout_ms: 5000,
        };
        assert!(timeout.is_retryable() && !timeout.before_send());
        let miner = Error::Miner {
            addr: addr(),
            command: "pools",
            status: "E".into(),
            code: Some(14),
            message: "Invalid command".into(),
        };
        assert!(!miner.is_retryable());
        assert_eq!(miner.code(), "miner_error");
        assert_eq!(
            miner.to_string(),
            "127.0.0.1:4028: pools failed on the miner (STATUS E, code Some(14)): Invalid command"
        );
    }
}
