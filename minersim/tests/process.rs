//! The `adit-minersim` binary as a process: starts, lists its miners,
//! answers over TCP, stops cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the child when the test ends, pass or fail.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_its_miners_over_tcp() {
    let child = Command::new(env!("CARGO_BIN_EXE_adit-minersim"))
        .args(["--count", "3", "--base-port", "0", "--seed", "7"])
        .args(["--quirk-share", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start adit-minersim");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let head = lines.next().unwrap().unwrap();
    assert!(head.contains("3 miners"), "{head}");
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            line.split_whitespace().nth(2).unwrap().parse().unwrap()
        })
        .collect();
    for addr in addrs {
        assert!(addr.ip().is_loopback());
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(br#"{"command":"summary"}"#).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out.pop(), Some(0), "NUL-terminated");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["STATUS"][0]["STATUS"], "S");
        assert!(v["SUMMARY"][0]["Elapsed"].as_i64().unwrap() > 0);
    }
    let pid = guard.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
