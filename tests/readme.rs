//! The README stays true to the code it describes: its configuration table
//! lists exactly the options `adit serve` has, and its error tables every
//! error code the OpenAPI document (and so the server) can answer.

use std::collections::BTreeSet;
use std::process::Command;

const README: &str = include_str!("../README.md");
const OPENAPI: &str = include_str!("../openapi.json");

/// Every `--flag` in a help text.
fn flags_of_help(help: &str) -> BTreeSet<String> {
    help.split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .filter(|w| !w.is_empty() && w.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .map(|w| format!("--{w}"))
        .collect()
}

/// The first cell's flags of each row of the README's configuration table.
fn flags_of_readme_table() -> BTreeSet<String> {
    let start = README
        .find("## Configuration")
        .expect("README has a Configuration section");
    let section = &README[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_serve_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut serve = flags_of_help(&help);
    serve.remove("--help");
    let table = flags_of_readme_table();
    let missing: Vec<_> = serve.difference(&table).collect();
    let stale: Vec<_> = table.difference(&serve).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README configuration table: missing {missing:?}, not options of adit serve {stale:?}"
    );
}

#[test]
fn every_error_code_is_in_the_readme() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    let codes = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap();
    let missing: Vec<&str> = codes
        .iter()
        .filter_map(|c| c.as_str())
        .filter(|c| !README.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes the README does not explain: {missing:?}"
    );
}
