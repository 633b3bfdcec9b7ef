//! `adit top` against a real adit that is receiving uploads: run in tmux,
//! its pane read with `tmux capture-pane`; figures that could be wrong are
//! checked (rows/s above zero, the busiest site first with its hour from
//! the stats endpoint), and `q` and Ctrl-C end it. `--once` prints one
//! frame to stdout.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        let ok = Command::new("tmux").arg("-V").output();
        assert!(
            ok.is_ok_and(|o| o.status.success()),
            "tmux not found: run `make setup`"
        );
        Self {
            socket: format!("adit-top-{}-{}", std::process::id(), rand::random::<u32>()),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Starts `command` in a detached 120x40 session.
    fn start(&self, session: &str, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
    }

    fn pane(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn alive(&self, session: &str) -> bool {
        self.run(&["has-session", "-t", session]).status.success()
    }

    fn keys(&self, session: &str, keys: &str) {
        assert!(self
            .run(&["send-keys", "-t", session, keys])
            .status
            .success());
    }

    /// Waits (up to 10 s) for the session's command to exit.
    async fn wait_gone(&self, session: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive(session) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The number after `label ` on the first line starting with `prefix`.
fn figure(frame: &str, prefix: &str, label: &str) -> Option<f64> {
    let line = frame.lines().find(|l| l.trim_start().starts_with(prefix))?;
    let rest = &line[line.find(&format!("{label} "))? + label.len() + 1..];
    rest.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

/// A site's line: its rows/s and its uploads over the last hour.
fn site_line(frame: &str, site: i32) -> Option<(usize, f64, String)> {
    let (i, line) = frame
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(&format!("site {site} ")))?;
    let mut cols = line.split_whitespace().skip(2);
    let rate = cols.next()?.replace(',', "").parse().ok()?;
    let uploads = cols.next()?.to_string();
    Some((i, rate, uploads))
}

/// A server taking uploads from a busy site (41, 100 rows an upload) and a
/// quiet one (42, 2 rows), every 50 ms until stopped (at most 60 s).
struct Loaded {
    srv: TestServer,
    admin: String,
    stop: Arc<AtomicBool>,
    load: tokio::task::JoinHandle<()>,
}

async fn loaded(name: &str) -> Loaded {
    let srv = TestServer::start(name).await;
    let (busy, quiet) = (srv.key(41).await, srv.key(42).await);
    let admin = admin_token(&srv).await;
    let stop = Arc::new(AtomicBool::new(false));
    let addr = srv.addr;
    let flag = stop.clone();
    let load = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            n += 1;
            let big = array(&rows(&format!("busy{n}"), 100));
            assert_eq!(upload(addr, &busy, &big, &[]).await.0, StatusCode::OK);
            let small = array(&rows(&format!("quiet{n}"), 2));
            assert_eq!(upload(addr, &quiet, &small, &[]).await.0, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Loaded {
        srv,
        admin,
        stop,
        load,
    }
}

impl Loaded {
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.load.await.unwrap();
        self.srv.stop().await;
    }
}

fn top_command(l: &Loaded, extra: &str) -> String {
    format!(
        "{} top --url http://{} --token {} --interval 1s {extra}",
        env!("CARGO_BIN_EXE_adit"),
        l.srv.addr,
        l.admin
    )
}

/// Asserts on a frame's figures: rows/s, uploads by status, the busy site
/// above the quiet one with its hour from the stats endpoint.
fn check_frame(frame: &str) {
    let rows = figure(frame, "INGEST", "rows/s").unwrap_or_else(|| panic!("no rows/s:\n{frame}"));
    assert!(rows > 0.0, "rows/s is {rows}:\n{frame}");
    let ok = figure(frame, "UPLOADS/s", "200").unwrap_or_else(|| panic!("no 200s:\n{frame}"));
    assert!(ok > 0.0, "{frame}");
    assert!(figure(frame, "LATENCY", "p99").is_some(), "{frame}");
    assert!(figure(frame, "WRITER", "queue").is_some(), "{frame}");
    let (busy_at, busy_rate, busy_uploads) =
        site_line(frame, 41).unwrap_or_else(|| panic!("site 41 missing:\n{frame}"));
    let (quiet_at, quiet_rate, _) =
        site_line(frame, 42).unwrap_or_else(|| panic!("site 42 missing:\n{frame}"));
    assert!(
        busy_rate > quiet_rate,
        "{busy_rate} <= {quiet_rate}:\n{frame}"
    );
    assert!(busy_at < quiet_at, "busiest site first:\n{frame}");
    // Its last hour comes from /api/collector/stats (the admin token works).
    let uploads: f64 = busy_uploads
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no hour for site 41 ({busy_uploads}):\n{frame}"));
    assert!(uploads >= 1.0, "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_in_tmux_shows_the_live_figures_and_quits_on_q() {
    let l = loaded("top_tmux").await;
    let tmux = Tmux::new();
    tmux.start("top", &top_command(&l, ""));
    // Frames come every second; the second one has rates.
    let deadline = Instant::now() + Duration::from_secs(20);
    let frame = loop {
        let pane = tmux.pane("top");
        let ready = figure(&pane, "INGEST", "rows/s").is_some_and(|r| r > 0.0)
            && site_line(&pane, 41).is_some_and(|(_, _, u)| u != "-")
            && site_line(&pane, 42).is_some();
        if ready {
            break pane;
        }
        assert!(
            Instant::now() < deadline,
            "no frame with rows/s and both sites in 20 s; pane:\n{pane}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    check_frame(&frame);
    assert!(frame.contains("database up"), "{frame}");
    // It keeps refreshing: the clock in the first line changes.
    let first_line = frame.lines().next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.pane("top").lines().next().unwrap_or("") == first_line {
        assert!(Instant::now() < deadline, "the frame was not redrawn");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tmux.keys("top", "q");
    assert!(tmux.wait_gone("top").await, "adit top did not quit on q");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_in_tmux_quits_on_ctrl_c() {
    let l = loaded("top_ctrl_c").await;
    let tmux = Tmux::new();
    tmux.start("top", &top_command(&l, ""));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmux.pane("top").contains("INGEST") {
        assert!(Instant::now() < deadline, "no frame: {}", tmux.pane("top"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tmux.keys("top", "C-c");
    assert!(
        tmux.wait_gone("top").await,
        "adit top did not quit on Ctrl-C"
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_prints_one_frame_with_rates() {
    let l = loaded("top_once").await;
    // Let both sites upload before the first scrape.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adit"));
    cmd.args([
        "top",
        "--url",
        &format!("http://{}", l.srv.addr),
        "--interval",
        "1s",
        "--once",
    ])
    .env("ADIT_ADMIN_TOKEN", &l.admin)
    .env("RUST_LOG", "warn");
    // One interval between its two scrapes, then it exits.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let frame = String::from_utf8(out.stdout).unwrap();
    assert!(!frame.contains('\x1b'), "escape codes in --once output");
    check_frame(&frame);
    l.stop().await;
}

#[test]
fn top_once_against_no_server_fails_saying_why() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_adit"))
        .args([
            "top",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--once",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(["top", "--url", "https://127.0.0.1:1", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http://"));
}
