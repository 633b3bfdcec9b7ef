//! What the configuration layers resolved to: each option's value, what
//! kind of value it is and where it came from. Plain data: the command line
//! ([`crate::cli::ServeArgs`]) carries it, `adit config print` shows it.

use std::fmt;
use std::path::PathBuf;

/// What a value is, which decides the TOML type a file gives it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A whole number that cannot be negative.
    Count,
    /// A whole number that may be negative.
    Integer,
    Float,
    Duration,
    ByteSize,
    Address,
    Path,
    Text,
    Choice,
}

/// Where an option's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File { path: PathBuf, line: usize },
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One option's effective value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub kind: Kind,
    /// The `--help` group it belongs to.
    pub heading: Option<String>,
    /// As the command line would give it; `None` when unset.
    pub value: Option<String>,
    pub source: Source,
}

/// Every option's value and source, and the file read (with where its
/// path came from).
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub file: Option<(PathBuf, Source)>,
    pub entries: Vec<Entry>,
}

impl Effective {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}
