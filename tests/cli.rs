//! The command line as a newcomer meets it: `adit serve -h` short,
//! `--help` grouped, byte sizes with units. Runs the real binary where the
//! output is what matters, and the parser directly for values.

use std::process::Command;

use adit::cli::{Cli, Command as Sub};
use clap::Parser as _;

fn adit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run adit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_short_help_shows_first_run_options_and_points_to_the_rest() {
    let (ok, short, _) = adit(&["serve", "-h"]);
    assert!(ok);
    let (ok, long, _) = adit(&["serve", "--help"]);
    assert!(ok);
    for flag in ["--database-url", "--listen", "--archive-url", "--tls-cert"] {
        assert!(short.contains(flag), "-h lacks {flag}:\n{short}");
    }
    for flag in ["--max-connections", "--lateness", "--high-temperature-c"] {
        assert!(!short.contains(flag), "-h shows {flag}:\n{short}");
        assert!(long.contains(flag), "--help lacks {flag}");
    }
    assert!(short.contains("adit serve --help"), "{short}");
    assert!(
        short.lines().count() * 2 < long.lines().count(),
        "-h ({} lines) is not short against --help ({} lines)",
        short.lines().count(),
        long.lines().count()
    );
}

#[test]
fn serve_long_help_groups_every_option() {
    let (_, long, _) = adit(&["serve", "--help"]);
    let headings = [
        "Network:",
        "TLS:",
        "Limits:",
        "Writer:",
        "Archive:",
        "Rollups and retention:",
        "Control plane:",
    ];
    let mut at = 0;
    for h in headings {
        let i = long
            .find(&format!("\n{h}\n"))
            .unwrap_or_else(|| panic!("no {h}:\n{long}"));
        assert!(i > at, "{h} out of order");
        at = i;
    }
    // Options sit under their own group.
    let section = |h: &str| {
        let start = long.find(&format!("\n{h}\n")).unwrap();
        let rest = &long[start + h.len() + 2..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    assert!(section("Limits:").contains("--max-body-bytes"));
    assert!(section("Archive:").contains("--archive-flush-interval"));
    assert!(section("Rollups and retention:").contains("--retention-telemetry-days"));
    assert!(section("Control plane:").contains("--heartbeat-interval"));
    assert!(
        long.contains("[default: 8MiB]"),
        "byte sizes print with units"
    );
}

fn serve(args: &[&str]) -> Result<adit::serve::ServeConfig, clap::Error> {
    let mut argv = vec![
        "adit",
        "serve",
        "--database-url",
        "postgres://x@127.0.0.1/x",
    ];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv)?.command {
        Sub::Serve(a) => Ok(a.into_config()),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn byte_sizes_take_units() {
    let c = serve(&[
        "--max-body-bytes",
        "8MiB",
        "--max-decompressed-bytes",
        "64MB",
        "--max-header-bytes",
        "16KiB",
        "--inflight-budget-bytes",
        "1GiB",
    ])
    .unwrap();
    assert_eq!(c.limits.max_body_bytes, 8 << 20);
    assert_eq!(c.limits.max_decompressed_bytes, 64_000_000);
    assert_eq!(c.limits.max_header_bytes, 16 << 10);
    assert_eq!(c.limits.inflight_budget_bytes, 1 << 30);
    // Plain numbers of bytes keep working, and the defaults are unchanged.
    assert_eq!(
        serve(&["--max-body-bytes", "1048576"])
            .unwrap()
            .limits
            .max_body_bytes,
        1 << 20
    );
    let d = serve(&[]).unwrap();
    assert_eq!(d.limits.max_body_bytes, 8 << 20);
    assert_eq!(d.limits.max_decompressed_bytes, 32 << 20);
    assert_eq!(d.limits.inflight_budget_bytes, 192 << 20);
}

#[test]
fn a_bad_byte_size_says_what_is_expected() {
    let (ok, _, err) = adit(&[
        "serve",
        "--database-url",
        "postgres://x@127.0.0.1/x",
        "--max-body-bytes",
        "8 parsecs",
    ]);
    assert!(!ok);
    assert!(err.contains("--max-body-bytes"), "{err}");
    assert!(err.contains("such as 8MiB"), "{err}");
}
