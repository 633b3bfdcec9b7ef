//! The `adit-collector` binary as an operator meets it: `--help` explains
//! every setting, a configuration file with a key the collector does not
//! know is refused naming the file and the key, and SIGTERM stops a running
//! collector with exit 0, its unsent cycles kept in the spool.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_adit-collector");

fn temp(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "adit-collector-bin-{tag}-{}-{nanos}",
        std::process::id()
    ))
}

/// A command with no `ADIT_COLLECTOR_*` variable inherited from the caller.
fn collector() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("ADIT_COLLECTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = collector().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "config",
        "adit-url",
        "key",
        "miners",
        "interval",
        "command-interval",
        "heartbeat-interval",
        "cgminer-timeout",
        "spool-dir",
        "spool-max-bytes",
        "metrics-listen",
        "ca-file",
        "remote-control",
    ] {
        assert!(
            help.contains(&format!("--{flag} ")),
            "--{flag} missing:\n{help}"
        );
        let env = format!("ADIT_COLLECTOR_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} missing:\n{help}");
    }
    for words in [
        "CGMiner",
        "spool",
        "central configuration",
        "SIGTERM",
        "192.168.1.0/24",
    ] {
        assert!(help.contains(words), "{words:?} missing:\n{help}");
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_naming_file_and_key() {
    let path = temp("bad").with_extension("toml");
    std::fs::write(
        &path,
        "adit-url = \"http://127.0.0.1:9\"\nkey = \"k\"\nminers = \"127.0.0.1\"\npoll_interval = \"10s\"\n",
    )
    .unwrap();
    let out = collector().arg("--config").arg(&path).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("poll_interval"), "{err}");

    // A setting missing everywhere is named with its flag and variable.
    let out = collector()
        .args(["--key", "k", "--miners", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--adit-url") && err.contains("ADIT_COLLECTOR_ADIT_URL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_with_exit_0_and_the_spool_keeps_what_was_not_sent() {
    let farm = adit_minersim::Farm::start(adit_minersim::Config {
        mode: Some(adit_minersim::Mode::Normal),
        ..adit_minersim::Config::test_config(3)
    })
    .await
    .unwrap();
    let miners: Vec<String> = farm.addrs().iter().map(ToString::to_string).collect();
    // adit is not there: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let adit = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let spool = temp("spool");
    let config = temp("cfg").with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "adit-url = \"{adit}\"\nkey = \"k\"\nminers = {miners:?}\ninterval = \"1s\"\n\
             heartbeat-interval = \"1s\"\ncgminer-timeout = \"500ms\"\n"
        ),
    )
    .unwrap();
    let mut child = collector()
        .arg("--config")
        .arg(&config)
        .arg("--spool-dir")
        .arg(&spool)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let batches = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while batches() < 2 {
        assert!(Instant::now() < deadline, "no cycle spooled");
        assert!(
            child.try_wait().unwrap().is_none(),
            "collector exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: signalling our own child by its id.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let kept = batches();
    assert!(kept >= 2, "{kept} batches kept");
    std::fs::remove_file(&config).unwrap();
    std::fs::remove_dir_all(&spool).unwrap();
    farm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_adit_keeps_the_start_waiting_still_exits_0() {
    // adit accepts and never answers: the start waits for its configuration.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let adit = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let spool = temp("spool-start");
    let mut child = collector()
        .args(["--adit-url", &adit, "--key", "k", "--miners", "127.0.0.1:1"])
        .arg("--spool-dir")
        .arg(&spool)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "still starting");
    // SAFETY: signalling our own child by its id.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status.code(),
        Some(0),
        "a clean stop, not killed: {status:?}"
    );
    held.abort();
    let _ = std::fs::remove_dir_all(&spool);
}
