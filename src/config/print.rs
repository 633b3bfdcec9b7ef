//! `adit config print`: the effective configuration as a TOML file (it can
//! be read back with `--config`), each value followed by its source;
//! secrets masked.

use std::fmt::Write as _;

use super::effective::Kind;
use super::{Effective, Entry};

/// What replaces a secret.
pub const MASK: &str = "****";

/// Words that make a key, query parameter or environment variable secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "signature",
];

/// The effective configuration, then the S3 settings the archive reads from
/// the environment (`env`: the process's variables).
pub fn render(effective: &Effective, env: impl IntoIterator<Item = (String, String)>) -> String {
    let mut out = String::from(
        "# The configuration `adit serve` runs with here, each value with its source\n\
         # (default, file:line, env VAR or flag). Secrets are masked.\n",
    );
    match &effective.file {
        Some((path, from)) => {
            let _ = writeln!(out, "# Configuration file: {} ({from}).", path.display());
        }
        None => out.push_str("# No configuration file (--config / ADIT_CONFIG).\n"),
    }
    let lines: Vec<(String, &Entry)> = effective
        .entries
        .iter()
        .map(|e| (assignment(e), e))
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut heading = None;
    for (line, e) in &lines {
        if e.heading != heading {
            heading.clone_from(&e.heading);
            if let Some(h) = &heading {
                let _ = write!(out, "\n# {h}\n");
            }
        }
        let _ = writeln!(out, "{line:<width$}  # {}", e.source);
    }
    let mut aws: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect();
    if !aws.is_empty() {
        aws.sort();
        out.push_str("\n# S3 settings from the environment (read when archive_url is s3://…):\n");
        for (k, v) in aws {
            let v = if is_secret_name(&k) {
                MASK.to_string()
            } else {
                mask(&v)
            };
            let _ = writeln!(out, "#   {k}={v}");
        }
    }
    out
}

/// `key = value` in TOML, or a comment for an unset option.
fn assignment(e: &Entry) -> String {
    let Some(raw) = &e.value else {
        return format!("# {} is unset", e.key);
    };
    let value = if is_secret_name(&e.key) {
        MASK.to_string()
    } else {
        mask(raw)
    };
    let bare = match e.kind {
        Kind::Bool => value.parse::<bool>().is_ok(),
        Kind::Count | Kind::Integer => value.parse::<i128>().is_ok(),
        Kind::Float => value.parse::<f64>().is_ok_and(f64::is_finite),
        _ => false,
    };
    if bare {
        format!("{} = {value}", e.key)
    } else {
        format!("{} = {}", e.key, toml_string(&value))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// `value` with the secrets it may hold masked: the password of a URL
/// (`postgres://user:pw@host/db`), secret query parameters
/// (`?sslpassword=…`, `?token=…`) and `password=…` in a key=value
/// connection string.
pub fn mask(value: &str) -> String {
    if let Some(scheme_end) = value.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &value[rest_start..];
        // The user info ends at the last '@' before the query: a password
        // written with '/' or '@' in it unescaped is still hidden whole.
        let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
        let mut out = value[..rest_start].to_string();
        let mut tail = rest;
        if let Some(at) = rest[..query_start].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out.push_str(&rest[..=colon]);
                out.push_str(MASK);
                tail = &rest[at..];
            }
        }
        out.push_str(&mask_query(tail));
        return out;
    }
    if value.contains('=') && !value.contains('?') {
        return mask_pairs(value);
    }
    value.to_string()
}

/// Masks secret parameters of the `?a=b&c=d` part of a URL.
fn mask_query(path_and_query: &str) -> String {
    let Some(q) = path_and_query.find('?') else {
        return path_and_query.to_string();
    };
    let (path, query) = path_and_query.split_at(q + 1);
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}{}", masked.join("&"))
}

/// Masks `password=…` (quoted or not) in `host=h user=u password=p`.
fn mask_pairs(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let key = rest[key_start..eq].trim();
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        let end = if let Some(quoted) = after.strip_prefix('\'') {
            quoted.find('\'').map_or(after.len(), |i| i + 2)
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        if is_secret_name(key) {
            out.push_str(MASK);
        } else {
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_secret_parameters_are_masked() {
        assert_eq!(
            mask("postgres://adit:hunter2@127.0.0.1:5432/adit"),
            "postgres://adit:****@127.0.0.1:5432/adit"
        );
        assert_eq!(
            mask("postgres://adit@127.0.0.1/adit?sslmode=require&sslpassword=x"),
            "postgres://adit@127.0.0.1/adit?sslmode=require&sslpassword=****"
        );
        assert_eq!(
            mask("s3://KEY:SECRET@bucket/prefix?token=abc"),
            "s3://KEY:****@bucket/prefix?token=****"
        );
        assert_eq!(mask("file:///var/lib/adit"), "file:///var/lib/adit");
        // A password holding '@' or '/' (unescaped) is still hidden whole.
        assert_eq!(mask("postgres://u:p@ss@h/d"), "postgres://u:****@h/d");
        assert_eq!(mask("postgres://u:p/w@h/d"), "postgres://u:****@h/d");
    }

    #[test]
    fn key_value_connection_strings_are_masked() {
        assert_eq!(
            mask("host=/run/postgresql user=adit password=hunter2 dbname=adit"),
            "host=/run/postgresql user=adit password=**** dbname=adit"
        );
        assert_eq!(
            mask("user=adit password='a b c' dbname=adit"),
            "user=adit password=**** dbname=adit"
        );
    }

    #[test]
    fn aws_secrets_from_the_environment_are_masked() {
        let out = render(
            &Effective::default(),
            [
                (
                    "AWS_SECRET_ACCESS_KEY".to_string(),
                    "wJalrXUtnFEMI".to_string(),
                ),
                ("AWS_SESSION_TOKEN".to_string(), "FQoGZXIvYXdzE".to_string()),
                ("AWS_REGION".to_string(), "eu-west-1".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ],
        );
        assert!(out.contains("AWS_SECRET_ACCESS_KEY=****"), "{out}");
        assert!(out.contains("AWS_SESSION_TOKEN=****"), "{out}");
        assert!(out.contains("AWS_REGION=eu-west-1"), "{out}");
        assert!(!out.contains("wJalr") && !out.contains("FQoG") && !out.contains("HOME"));
    }
}
