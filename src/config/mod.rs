//! `adit serve`'s configuration from four layers: flags > environment
//! variables > a TOML file (`--config` / `ADIT_CONFIG`) > defaults.
//!
//! clap stays the one parser: a file value becomes the option's default
//! before the command line is parsed, so clap itself lets flags and
//! environment variables win over it; afterwards each option's source is
//! read back from clap (`ValueSource`) and the file's lines.
//! The options are `serve`'s own ([`options::serve_options`]): adding a
//! field to `ServeArgs` adds the file key, the example check and the
//! `config print` line with it.

pub mod effective;
pub mod file;
pub mod options;
pub mod print;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches as _};

use crate::cli::{Cli, Command, ConfigCommand, ServeArgs};
pub use effective::{Effective, Entry, Kind, Source};
use options::Spec;

/// Why a configuration was refused before anything started.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}:{line}: unknown key `{key}`{hint}; the keys are `adit serve`'s options \
         (see adit.example.toml): {allowed}",
        path.display()
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
        allowed: String,
    },
    #[error("{}:{line}: `{key}` takes {allowed}, not a TOML {found}", path.display())]
    WrongType {
        path: PathBuf,
        line: usize,
        key: String,
        found: &'static str,
        allowed: String,
    },
    /// `reason` says what is allowed (the option's parser's words, or the
    /// kind of value the option takes).
    #[error("{}:{line}: `{key}` = {value} is refused: {reason}", path.display())]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
    #[error("`{key}` (from {source_of}) needs `{partner}` too: set both or neither")]
    Unpaired {
        key: &'static str,
        source_of: Source,
        partner: &'static str,
    },
}

/// Parses the process's command line, with the configuration file when
/// `serve` or `config print` names one. `adit serve -h`
/// shows only the options a first run needs ([`crate::cli::SERVE_SHORT_HELP`]);
/// `--help` all of them.
pub fn parse_command_line() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = <Cli as clap::CommandFactory>::command();
    if wants_short_serve_help(&args) {
        cmd = cmd.mut_subcommand("serve", crate::cli::short_serve_help);
    }
    parse(cmd, args)
}

fn wants_short_serve_help(args: &[std::ffi::OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "serve") && args.iter().skip(2).any(|a| a == "-h")
}

/// A refused command line: clap's own errors (usage, `--help`) or a
/// configuration refused with its file and line.
#[derive(Debug)]
pub enum Refused {
    Clap(clap::Error),
    Config(Vec<ConfigError>),
}

impl From<clap::Error> for Refused {
    fn from(e: clap::Error) -> Self {
        Self::Clap(e)
    }
}

/// Parses `args` with `cmd` (the `Cli` command, maybe with its short
/// help), exiting with clap's usage, or with status 2 and one line per
/// problem when the configuration is refused.
pub fn parse(cmd: clap::Command, args: Vec<OsString>) -> Cli {
    match try_parse(cmd, args) {
        Ok(cli) => cli,
        Err(Refused::Clap(e)) => e.exit(),
        Err(Refused::Config(errors)) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(2)
        }
    }
}

/// Which command reads the configuration file.
#[derive(Debug, Clone, Copy)]
enum Target {
    Serve,
    Print,
}

/// [`parse`] without exiting.
pub fn try_parse(mut cmd: clap::Command, args: Vec<OsString>) -> Result<Cli, Refused> {
    let Some((target, config)) = find_target(&cmd, &args) else {
        let matches = cmd.try_get_matches_from(args)?;
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let specs = options::serve_options();
    let mut values = Vec::new();
    if let Some(path) = &config {
        values = file::read(path, &specs).map_err(Refused::Config)?;
        // Pairs (--tls-cert/--tls-key) are checked after parsing, across
        // all layers; clap would not count a file value as given.
        cmd = on_target(cmd, target, |c| {
            c.mut_args(|a| a.requires(clap::builder::Resettable::Reset))
        });
        for v in &values {
            let spec = specs.iter().find(|s| s.key == v.key).expect("checked key");
            let raw = v.raw.clone();
            let set = move |a: clap::Arg| a.default_value(raw).required(false);
            cmd = if spec.global {
                cmd.mut_arg(&spec.key, set)
            } else {
                on_target(cmd, target, |c| c.mut_arg(&spec.key, set))
            };
        }
    }
    let matches = cmd.try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let leaf = leaf_matches(&matches, target).expect("the target command matched");
    let in_file = |key: &str| {
        let line = values.iter().find(|v| v.key == key)?.line;
        Some((config.clone()?, line))
    };
    let entries = specs
        .iter()
        .map(|spec| entry(leaf, spec, in_file(&spec.key)))
        .collect();
    let effective = Effective {
        file: config
            .clone()
            .map(|p| (p, source_of(leaf, "config", None, None))),
        entries,
    };
    let args = serve_args(&mut cli).expect("the target command parsed");
    check_pairs(args, &effective).map_err(|e| Refused::Config(vec![e]))?;
    args.effective = effective;
    Ok(cli)
}

/// The command that reads a file (`serve` or `config print`) and the file
/// named by `--config` or `ADIT_CONFIG`, from a first lenient parse.
fn find_target(cmd: &clap::Command, args: &[OsString]) -> Option<(Target, Option<PathBuf>)> {
    let pre = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    let (target, leaf) = match pre.subcommand()? {
        ("serve", m) => (Target::Serve, m),
        ("config", m) => match m.subcommand()? {
            ("print", m) => (Target::Print, m),
            _ => return None,
        },
        _ => return None,
    };
    let config = leaf
        .try_get_one::<PathBuf>("config")
        .ok()
        .flatten()
        .cloned();
    Some((target, config))
}

fn on_target(
    cmd: clap::Command,
    target: Target,
    f: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    match target {
        Target::Serve => cmd.mut_subcommand("serve", f),
        Target::Print => cmd.mut_subcommand("config", |c| c.mut_subcommand("print", f)),
    }
}

fn leaf_matches(m: &ArgMatches, target: Target) -> Option<&ArgMatches> {
    match target {
        Target::Serve => m.subcommand_matches("serve"),
        Target::Print => m.subcommand_matches("config")?.subcommand_matches("print"),
    }
}

fn serve_args(cli: &mut Cli) -> Option<&mut ServeArgs> {
    match &mut cli.command {
        Command::Serve(a) => Some(a),
        Command::Config {
            command: ConfigCommand::Print(a),
        } => Some(a),
        _ => None,
    }
}

fn entry(leaf: &ArgMatches, spec: &Spec, from_file: Option<(PathBuf, usize)>) -> Entry {
    let value = leaf
        .get_raw(&spec.key)
        .and_then(|mut raw| raw.next())
        .map(|v| v.to_string_lossy().into_owned());
    Entry {
        key: spec.key.clone(),
        kind: spec.kind,
        heading: spec.arg.get_help_heading().map(str::to_string),
        value,
        source: source_of(leaf, &spec.key, Some(spec), from_file),
    }
}

/// Where `id`'s value came from: clap knows flags and the environment; a
/// default that the file set is the file's.
fn source_of(
    leaf: &ArgMatches,
    id: &str,
    spec: Option<&Spec>,
    from_file: Option<(PathBuf, usize)>,
) -> Source {
    let arg_env = || {
        spec.and_then(|s| s.arg.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    };
    match leaf.value_source(id) {
        Some(ValueSource::CommandLine) => Source::Flag(match spec {
            Some(s) => s.flag(),
            None => format!("--{id}"),
        }),
        Some(ValueSource::EnvVariable) => {
            Source::Env(arg_env().unwrap_or_else(|| format!("ADIT_{}", id.to_uppercase())))
        }
        _ => match from_file {
            Some((path, line)) => Source::File { path, line },
            None => Source::Default,
        },
    }
}

/// Options that only work together, checked across all layers.
fn check_pairs(args: &ServeArgs, effective: &Effective) -> Result<(), ConfigError> {
    let source = |key: &str| {
        effective
            .get(key)
            .map_or(Source::Default, |e| e.source.clone())
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(_), None) => Err(ConfigError::Unpaired {
            key: "tls_cert",
            source_of: source("tls_cert"),
            partner: "tls_key",
        }),
        (None, Some(_)) => Err(ConfigError::Unpaired {
            key: "tls_key",
            source_of: source("tls_key"),
            partner: "tls_cert",
        }),
        _ => Ok(()),
    }
}
