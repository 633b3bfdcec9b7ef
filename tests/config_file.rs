//! The configuration file as an operator meets it: the real `adit` binary
//! with `--config` / `ADIT_CONFIG`, each precedence rule (flag > env >
//! file > default), each refusal (with file and line, before anything
//! starts), `adit config print` (sources, masking), `adit serve` really
//! running on the file's values, JSON logs, and adit.example.toml checked
//! against the real option set.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use adit::config::{file, options};
use common::{free_port, fresh_database, get, wait_healthy};
use hyper::StatusCode;

/// A URL nothing listens on: a test that reached the database would fail.
const NO_DB: &str = "postgres://adit@127.0.0.1:9/none";

/// A configuration file for one test, removed at the end.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "adit-config-{name}-{}-{}.toml",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `adit` with `args`, with only `env` of adit's variables set.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adit"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ADIT_") || k.starts_with("AWS_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run adit")
}

/// `adit config print` parsed: key -> (value as printed, source).
fn print(args: &[&str], env: &[(&str, &str)]) -> BTreeMap<String, (String, String)> {
    let mut argv = vec!["config", "print"];
    argv.extend_from_slice(args);
    let out = run(&argv, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "config print failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| {
            let (assignment, source) = l.rsplit_once("  # ").expect("a source");
            let (key, value) = assignment.split_once(" = ").unwrap();
            (
                key.to_string(),
                (value.trim().to_string(), source.trim().to_string()),
            )
        })
        .collect()
}

fn value_and_source<'a>(
    printed: &'a BTreeMap<String, (String, String)>,
    key: &str,
) -> (&'a str, &'a str) {
    let (v, s) = printed.get(key).unwrap_or_else(|| panic!("no {key}"));
    (v.as_str(), s.as_str())
}

fn refusal(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused with status 2: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing printed");
    stderr
}

/// Options of five kinds, as a file sets them.
const FILE: &str = "# five kinds of value\n\
                    flush_interval = \"7ms\"\n\
                    no_live = true\n\
                    writers = 3\n\
                    listen = \"127.0.0.1:9001\"\n\
                    max_body_bytes = \"1MiB\"\n";

#[test]
fn the_file_beats_the_defaults() {
    let f = ConfigFile::new("file-default", FILE);
    let p = print(&["--config", f.path()], &[("DATABASE_URL", NO_DB)]);
    let at = |line: usize| format!("{}:{line}", f.path());
    assert_eq!(
        value_and_source(&p, "flush_interval"),
        ("\"7ms\"", at(2).as_str())
    );
    assert_eq!(value_and_source(&p, "no_live"), ("true", at(3).as_str()));
    assert_eq!(value_and_source(&p, "writers"), ("3", at(4).as_str()));
    assert_eq!(
        value_and_source(&p, "listen"),
        ("\"127.0.0.1:9001\"", at(5).as_str())
    );
    assert_eq!(
        value_and_source(&p, "max_body_bytes"),
        ("\"1MiB\"", at(6).as_str())
    );
    // What the file leaves out keeps its default.
    assert_eq!(value_and_source(&p, "queue_capacity"), ("1024", "default"));
    assert_eq!(
        value_and_source(&p, "archive_flush_interval"),
        ("\"5m\"", "default")
    );
    // Without a file: the defaults.
    let p = print(&[], &[("DATABASE_URL", NO_DB)]);
    assert_eq!(
        value_and_source(&p, "flush_interval"),
        ("\"5ms\"", "default")
    );
    assert_eq!(value_and_source(&p, "no_live"), ("false", "default"));
    assert_eq!(value_and_source(&p, "writers"), ("2", "default"));
}

#[test]
fn the_environment_beats_the_file() {
    let f = ConfigFile::new("env-file", FILE);
    let p = print(
        &[],
        &[
            ("DATABASE_URL", NO_DB),
            ("ADIT_CONFIG", f.path()),
            ("ADIT_FLUSH_INTERVAL", "9ms"),
            ("ADIT_NO_LIVE", "false"),
            ("ADIT_WRITERS", "5"),
        ],
    );
    assert_eq!(
        value_and_source(&p, "flush_interval"),
        ("\"9ms\"", "env ADIT_FLUSH_INTERVAL")
    );
    assert_eq!(
        value_and_source(&p, "no_live"),
        ("false", "env ADIT_NO_LIVE")
    );
    assert_eq!(value_and_source(&p, "writers"), ("5", "env ADIT_WRITERS"));
    // The file still sets what the environment does not.
    assert_eq!(
        value_and_source(&p, "listen"),
        ("\"127.0.0.1:9001\"", format!("{}:5", f.path()).as_str())
    );
}

#[test]
fn a_flag_beats_the_environment() {
    let f = ConfigFile::new("flag-env", FILE);
    let p = print(
        &["--flush-interval", "11ms", "--no-live", "--writers", "7"],
        &[
            ("DATABASE_URL", NO_DB),
            ("ADIT_CONFIG", f.path()),
            ("ADIT_FLUSH_INTERVAL", "9ms"),
            ("ADIT_NO_LIVE", "false"),
            ("ADIT_WRITERS", "5"),
        ],
    );
    assert_eq!(
        value_and_source(&p, "flush_interval"),
        ("\"11ms\"", "flag --flush-interval")
    );
    assert_eq!(value_and_source(&p, "no_live"), ("true", "flag --no-live"));
    assert_eq!(value_and_source(&p, "writers"), ("7", "flag --writers"));
}

#[test]
fn a_flag_beats_the_file() {
    let f = ConfigFile::new("flag-file", "no_live = false\nflush_interval = \"7ms\"\n");
    let p = print(
        &[
            "--config",
            f.path(),
            "--no-live",
            "--flush-interval",
            "13ms",
        ],
        &[("DATABASE_URL", NO_DB)],
    );
    assert_eq!(value_and_source(&p, "no_live"), ("true", "flag --no-live"));
    assert_eq!(
        value_and_source(&p, "flush_interval"),
        ("\"13ms\"", "flag --flush-interval")
    );
}

/// The values reach the configuration `serve` runs with, not only the print.
#[test]
fn file_values_reach_the_serve_configuration() {
    use clap::CommandFactory as _;
    let f = ConfigFile::new(
        "into-config",
        "flush_interval = \"7ms\"\nno_live = true\n\
         writers = 3\nmax_body_bytes = \"1MiB\"\nhashrate_drop_share = 0.5\n\
         archive_url = \"file:///tmp/adit-archive\"\narchive_flush_interval = \"2s\"\n",
    );
    // In process the test's own environment applies (DATABASE_URL may be
    // set): the database comes as a flag.
    let argv = [
        "adit",
        "serve",
        "--config",
        f.path(),
        "--writers",
        "4",
        "--database-url",
        "postgres://a@127.0.0.1:9/b",
    ];
    let cli = adit::config::try_parse(adit::cli::Cli::command(), argv.map(Into::into).to_vec())
        .expect("parses");
    let adit::cli::Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    let c = args.into_config();
    assert_eq!(c.database_url, "postgres://a@127.0.0.1:9/b");
    assert_eq!(c.writer.batch.flush_interval, Duration::from_millis(7));
    assert!(!c.control.live_enabled);
    assert_eq!(c.writer.workers, 4, "the flag wins");
    assert_eq!(c.limits.max_body_bytes, 1 << 20);
    assert_eq!(c.control.hashrate_drop_share, 0.5);
    assert_eq!(c.archive_url.as_deref(), Some("file:///tmp/adit-archive"));
    assert_eq!(c.archive_flush_interval, Duration::from_secs(2));
}

#[test]
fn an_unknown_key_is_refused_with_its_line_and_the_keys_allowed() {
    let f = ConfigFile::new(
        "unknown",
        "writers = 2\n\nlisten_address = \"127.0.0.1:1\"\n",
    );
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    assert!(
        err.contains(&format!("{}:3: unknown key `listen_address`", f.path())),
        "{err}"
    );
    for allowed in ["listen", "max_connections", "archive_url", "log_format"] {
        assert!(err.contains(allowed), "{err}");
    }
    // A flag's spelling gets a pointer to the key.
    let f = ConfigFile::new("kebab", "max-body-bytes = \"1MiB\"\n");
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    assert!(err.contains("did you mean `max_body_bytes`?"), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_what_is_allowed() {
    let f = ConfigFile::new(
        "type",
        "writers = \"four\"\nno_live = \"yes\"\nflush_interval = 50\n",
    );
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per problem: {err}");
    assert!(
        lines[0].contains(&format!("{}:1: `writers` takes a whole number", f.path())),
        "{err}"
    );
    assert!(lines[0].ends_with("not a TOML string"), "{err}");
    assert!(
        lines[1].contains(":2: `no_live` takes true or false"),
        "{err}"
    );
    assert!(
        lines[2].contains(":3: `flush_interval` takes a duration string"),
        "{err}"
    );
    assert!(lines[2].contains("not a TOML integer"), "{err}");
}

#[test]
fn an_out_of_range_value_is_refused_with_what_is_allowed() {
    let f = ConfigFile::new(
        "range",
        "hashrate_drop_share = 1.5\nwriters = 0\nmax_connections = -1\n\
         flush_interval = \"5 parsecs\"\nlisten = \"127.0.0.1:99999\"\n",
    );
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert!(
        lines[0].contains(":1: `hashrate_drop_share` = 1.5 is refused"),
        "{err}"
    );
    assert!(
        lines[0].contains("allowed is a number from 0 to 1"),
        "{err}"
    );
    assert!(lines[1].contains(":2: `writers` = 0 is refused"), "{err}");
    assert!(lines[1].contains("at least 1"), "{err}");
    assert!(lines[2].contains(":3: `max_connections` = -1"), "{err}");
    assert!(lines[2].contains("cannot be negative"), "{err}");
    assert!(
        lines[3].contains(":4: `flush_interval` = \"5 parsecs\""),
        "{err}"
    );
    assert!(lines[3].contains("such as \"500ms\""), "{err}");
    assert!(
        lines[4].contains(":5: `listen` = \"127.0.0.1:99999\""),
        "{err}"
    );
    // The same bounds hold for flags and the environment.
    let out = run(&["serve", "--writers", "0"], &[("DATABASE_URL", NO_DB)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = run(
        &["serve"],
        &[
            ("DATABASE_URL", NO_DB),
            ("ADIT_HASHRATE_DROP_SHARE", "-0.1"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("from 0 to 1"));
}

#[test]
fn an_unreadable_or_broken_file_is_refused() {
    let missing = std::env::temp_dir().join("adit-config-does-not-exist.toml");
    let err = refusal(&run(
        &["serve"],
        &[
            ("DATABASE_URL", NO_DB),
            ("ADIT_CONFIG", missing.to_str().unwrap()),
        ],
    ));
    assert!(
        err.contains(&format!(
            "cannot read the configuration file {}",
            missing.display()
        )),
        "{err}"
    );
    let dir = std::env::temp_dir();
    let err = refusal(&run(
        &["serve", "--config", dir.to_str().unwrap()],
        &[("DATABASE_URL", NO_DB)],
    ));
    assert!(err.contains("cannot read the configuration file"), "{err}");
    let f = ConfigFile::new("syntax", "writers = 2\nlisten = \"127.0.0.1:1\n");
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    assert!(
        err.contains(&format!("{}:2: not valid TOML", f.path())),
        "{err}"
    );
}

#[test]
fn a_tls_certificate_without_its_key_is_refused_across_layers() {
    let f = ConfigFile::new("tls", "tls_cert = \"/etc/adit/cert.pem\"\n");
    let err = refusal(&run(
        &["serve", "--config", f.path()],
        &[("DATABASE_URL", NO_DB)],
    ));
    assert!(
        err.contains(&format!(
            "`tls_cert` (from {}:1) needs `tls_key` too",
            f.path()
        )),
        "{err}"
    );
    // The file's certificate with the key from a flag is a pair.
    let p = print(
        &["--config", f.path(), "--tls-key", "/etc/adit/key.pem"],
        &[("DATABASE_URL", NO_DB)],
    );
    assert_eq!(
        value_and_source(&p, "tls_key"),
        ("\"/etc/adit/key.pem\"", "flag --tls-key")
    );
}

#[test]
fn config_print_masks_secrets_and_reads_back() {
    let f = ConfigFile::new(
        "mask",
        "database_url = \"postgres://adit:file-pw-123@127.0.0.1:9/adit\"\n\
         archive_url = \"s3://KEYID:s3-secret-456@bucket/prefix\"\n",
    );
    let out = run(
        &["config", "print", "--config", f.path()],
        &[
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-789"),
            ("AWS_SESSION_TOKEN", "aws-token-000"),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in [
        "file-pw-123",
        "s3-secret-456",
        "aws-secret-789",
        "aws-token-000",
    ] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    assert!(
        text.contains("database_url = \"postgres://adit:****@127.0.0.1:9/adit\""),
        "{text}"
    );
    assert!(
        text.contains("archive_url = \"s3://KEYID:****@bucket/prefix\""),
        "{text}"
    );
    assert!(text.contains("AWS_SECRET_ACCESS_KEY=****"), "{text}");
    assert!(text.contains("AWS_REGION=eu-west-1"), "{text}");
    assert!(text.contains(&format!("Configuration file: {} (flag --config)", f.path())));
    // A password from the environment is masked too.
    let p = print(
        &[],
        &[(
            "DATABASE_URL",
            "postgres://adit:env-pw-321@127.0.0.1:9/adit",
        )],
    );
    assert_eq!(
        value_and_source(&p, "database_url"),
        (
            "\"postgres://adit:****@127.0.0.1:9/adit\"",
            "env DATABASE_URL"
        )
    );

    // The output is a configuration file: read back, it gives the same values.
    let f = ConfigFile::new(
        "mask",
        "writers = 6\nno_live = true\nlisten = \"127.0.0.1:9002\"\n",
    );
    let first = run(
        &[
            "config",
            "print",
            "--config",
            f.path(),
            "--flush-interval",
            "3ms",
        ],
        &[("DATABASE_URL", NO_DB), ("ADIT_LATENESS", "2days")],
    );
    let again = ConfigFile::new("readback", &String::from_utf8_lossy(&first.stdout));
    let a = print(
        &["--config", f.path(), "--flush-interval", "3ms"],
        &[("DATABASE_URL", NO_DB), ("ADIT_LATENESS", "2days")],
    );
    let b = print(&["--config", again.path()], &[]);
    assert_eq!(a.len(), b.len());
    for (key, (value, _)) in &a {
        assert_eq!(&b[key].0, value, "{key}");
    }
}

/// Reads `child`'s stderr lines (each a JSON object) until one has
/// `message`; returns every line parsed.
fn json_lines_until(child: &mut std::process::Child, message: &str) -> Vec<serde_json::Value> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let done = v["fields"]["message"] == message;
        lines.push(v);
        if done {
            return lines;
        }
    }
    panic!("no {message:?} within 30 s; lines: {lines:?}");
}

#[tokio::test]
async fn serve_runs_with_the_files_values() {
    let db = fresh_database("config_file_serve").await;
    let port = free_port();
    let f = ConfigFile::new(
        "serve",
        &format!(
            "# adit for the test\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"{db}\"\n\
             log_format = \"json\"\nrate_limit_per_key = 0\n"
        ),
    );
    let mut child = command(&["serve", "--config", f.path()], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("adit starts");
    let lines = json_lines_until(&mut child, "adit is serving.");
    wait_healthy(port).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, _) = get(addr, "/health").await.expect("health");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, StatusCode::OK);
    let read = lines
        .iter()
        .find(|l| l["fields"]["message"] == "Read the configuration file.")
        .expect("the file is logged");
    assert_eq!(read["fields"]["config"], f.path());
    let serving = lines.last().unwrap();
    assert_eq!(serving["fields"]["listen"], format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let db = fresh_database("config_file_json").await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = command(
        &[
            "--log-format",
            "json",
            "serve",
            "--listen",
            &listen,
            "--writers",
            "3",
        ],
        &[("DATABASE_URL", &db)],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("adit starts");
    let lines = json_lines_until(&mut child, "adit is serving.");
    child.kill().unwrap();
    child.wait().unwrap();
    let serving = lines.last().unwrap();
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["target"], "adit::serve");
    assert_eq!(serving["fields"]["listen"], listen);
    assert_eq!(serving["fields"]["writers"], 3);
    assert_eq!(serving["fields"]["tls"], false);
    assert!(serving["timestamp"].is_string(), "{serving}");

    // ADIT_LOG_FORMAT does the same, and a failure is a JSON line too.
    let out = run(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("DATABASE_URL", NO_DB), ("ADIT_LOG_FORMAT", "json")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: serde_json::Value =
        serde_json::from_str(stderr.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert_eq!(last["fields"]["message"], "adit failed.");
}

/// adit.example.toml sets every option with a default to exactly that
/// default, shows the others commented out, explains each in the comment
/// line above it, and holds nothing adit refuses.
#[test]
fn the_example_file_lists_every_option_with_its_real_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("adit.example.toml");
    let text = std::fs::read_to_string(&path).expect("adit.example.toml");
    let specs = options::serve_options();
    let set = file::parse(&path, &text, &specs).unwrap_or_else(|e| {
        panic!(
            "adit refuses adit.example.toml: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let lines: Vec<&str> = text.lines().collect();
    let commented = |key: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("# {key} = ")))
    };
    for spec in &specs {
        let line = match (spec.default_value(), set.iter().find(|v| v.key == spec.key)) {
            (Some(default), Some(v)) => {
                assert_eq!(v.raw, default, "{} is not its default", spec.key);
                v.line - 1
            }
            (Some(default), None) => panic!("{} = {default:?} is missing", spec.key),
            (None, Some(_)) => panic!("{} has no default: show it commented out", spec.key),
            (None, None) => commented(&spec.key)
                .unwrap_or_else(|| panic!("{} is missing (commented out)", spec.key)),
        };
        let above = lines[line.checked_sub(1).expect("a line above")];
        assert!(
            above.starts_with("# ") && !above.contains(" = "),
            "{} has no explanation above it: {above:?}",
            spec.key
        );
    }
    // Commented-out keys are keys too.
    for l in &lines {
        if let Some(rest) = l.strip_prefix("# ") {
            if let Some((key, _)) = rest.split_once(" = ") {
                if !key.contains(' ') {
                    assert!(specs.iter().any(|s| s.key == key), "{key} is no option");
                }
            }
        }
    }
}
