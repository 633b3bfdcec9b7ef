//! Reading a configuration file: flat TOML whose keys are `serve` options.
//! Each value is checked for its TOML type, then parsed by the option's own
//! clap parser, so the file accepts exactly what the flag accepts; every
//! problem is reported with the file and line.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::effective::Kind;
use super::options::Spec;
use super::ConfigError;

/// One key of the file, its value as the command line would give it.
#[derive(Debug, Clone)]
pub struct FileValue {
    pub key: String,
    pub line: usize,
    pub raw: String,
}

/// Reads `path` and checks every key and value against `specs`.
pub fn read(path: &Path, specs: &[Spec]) -> Result<Vec<FileValue>, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        vec![ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        }]
    })?;
    parse(path, &text, specs)
}

/// Checks the text of a file read from `path`.
pub fn parse(path: &Path, text: &str, specs: &[Spec]) -> Result<Vec<FileValue>, Vec<ConfigError>> {
    let table = DeTable::parse(text).map_err(|e| {
        vec![ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim_end().to_string(),
        }]
    })?;
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in table.get_ref() {
        let line = line_of(text, key.span().start);
        match check(
            path.to_path_buf(),
            line,
            key.get_ref(),
            value.get_ref(),
            specs,
        ) {
            Ok(v) => values.push(v),
            Err(e) => errors.push((line, e)),
        }
    }
    if errors.is_empty() {
        values.sort_by_key(|v| v.line);
        Ok(values)
    } else {
        errors.sort_by_key(|(line, _)| *line);
        Err(errors.into_iter().map(|(_, e)| e).collect())
    }
}

fn check(
    path: PathBuf,
    line: usize,
    key: &str,
    value: &DeValue<'_>,
    specs: &[Spec],
) -> Result<FileValue, ConfigError> {
    let Some(spec) = specs.iter().find(|s| s.key == key) else {
        return Err(ConfigError::UnknownKey {
            path,
            line,
            key: key.to_string(),
            hint: hint(key, value, specs),
            allowed: specs
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let wrong_type = |path: PathBuf| ConfigError::WrongType {
        path,
        line,
        key: key.to_string(),
        found: value.type_str(),
        allowed: spec.allowed(),
    };
    let raw = match (spec.kind, value) {
        (Kind::Bool, DeValue::Boolean(b)) => b.to_string(),
        (Kind::Count | Kind::Integer | Kind::Float | Kind::ByteSize, DeValue::Integer(i)) => {
            let n = i128::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| wrong_type(path.clone()))?;
            if n < 0 && matches!(spec.kind, Kind::Count | Kind::ByteSize) {
                return Err(ConfigError::BadValue {
                    path,
                    line,
                    key: key.to_string(),
                    value: n.to_string(),
                    reason: format!(
                        "{n} is out of range: it cannot be negative (allowed: {})",
                        spec.allowed()
                    ),
                });
            }
            n.to_string()
        }
        (Kind::Float, DeValue::Float(f)) => f.as_str().to_string(),
        (
            Kind::Duration
            | Kind::ByteSize
            | Kind::Address
            | Kind::Path
            | Kind::Text
            | Kind::Choice,
            DeValue::String(s),
        ) => s.to_string(),
        _ => return Err(wrong_type(path)),
    };
    if spec.kind != Kind::Bool {
        validate(spec, &raw).map_err(|reason| ConfigError::BadValue {
            path,
            line,
            key: key.to_string(),
            value: shown(value, &raw),
            reason: if reason.contains("allowed") {
                reason
            } else {
                format!("{reason} (allowed: {})", spec.allowed())
            },
        })?;
    }
    Ok(FileValue {
        key: key.to_string(),
        line,
        raw,
    })
}

/// Runs the option's own clap parser on `raw`; the reason when it refuses.
fn validate(spec: &Spec, raw: &str) -> Result<(), String> {
    let arg = spec
        .arg
        .clone()
        .env(None)
        .required(false)
        .requires(clap::builder::Resettable::Reset)
        .global(false)
        .default_value(None);
    let cmd = clap::Command::new("adit-config")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(arg);
    match cmd.try_get_matches_from([format!("{}={raw}", spec.flag())]) {
        Ok(_) => Ok(()),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(cause) => cause.to_string(),
            None => "not a value this option takes".to_string(),
        }),
    }
}

/// A value as the file wrote it, for messages.
fn shown(value: &DeValue<'_>, raw: &str) -> String {
    match value {
        DeValue::String(_) => format!("{raw:?}"),
        _ => raw.to_string(),
    }
}

/// A nearby key, or a word on sections, for an unknown key.
fn hint(key: &str, value: &DeValue<'_>, specs: &[Spec]) -> String {
    let snake = key.replace('-', "_");
    if let Some(s) = specs
        .iter()
        .filter(|s| distance(&s.key, &snake) <= 2)
        .min_by_key(|s| distance(&s.key, &snake))
    {
        return format!(" (did you mean `{}`?)", s.key);
    }
    if matches!(value, DeValue::Table(_)) {
        return " (the file has no [sections]: write every key at the top level)".into();
    }
    String::new()
}

/// Edit distance between two short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::super::options::serve_options;
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("t.toml"), text, &serve_options())
            .expect_err("refused")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn values_become_what_the_flag_takes() {
        let text = "listen = \"127.0.0.1:9\"\nno_live = true\nwriters = 3\n\
                    max_body_bytes = 1024\nhigh_temperature_c = 90\nflush_interval = \"1s\"\n";
        let got = parse(Path::new("t.toml"), text, &serve_options()).expect("accepted");
        let pairs: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|v| (v.key.as_str(), v.raw.as_str(), v.line))
            .collect();
        assert_eq!(
            pairs,
            [
                ("listen", "127.0.0.1:9", 1),
                ("no_live", "true", 2),
                ("writers", "3", 3),
                ("max_body_bytes", "1024", 4),
                ("high_temperature_c", "90", 5),
                ("flush_interval", "1s", 6),
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_in_line_order() {
        let e = errors("writers = 0\n\nmax-connections = 5\n[archive]\nurl = \"x\"\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("t.toml:1: `writers` = 0"), "{}", e[0]);
        assert!(
            e[1].contains("t.toml:3: unknown key `max-connections`"),
            "{}",
            e[1]
        );
        assert!(e[1].contains("did you mean `max_connections`?"), "{}", e[1]);
        assert!(e[2].contains("t.toml:4: unknown key `archive`"), "{}", e[2]);
        assert!(e[2].contains("no [sections]"), "{}", e[2]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = errors("listen = \"127.0.0.1:9\"\nwriters = = 3\n");
        assert!(e[0].starts_with("t.toml:2: "), "{e:?}");
    }

    #[test]
    fn negative_counts_and_bad_choices_are_out_of_range() {
        let e = errors("max_connections = -1\nlog_format = \"xml\"\n");
        assert!(e[0].contains("cannot be negative"), "{e:?}");
        assert!(e[1].contains("one of \"text\", \"json\""), "{e:?}");
    }

    #[test]
    fn distances() {
        assert_eq!(distance("listen", "listen"), 0);
        assert_eq!(distance("listen", "lisen"), 1);
        assert_eq!(distance("writers", "writer"), 1);
        assert_eq!(distance("abc", "xyz"), 3);
    }
}
