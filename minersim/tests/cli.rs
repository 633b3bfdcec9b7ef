//! The `adit-minersim` binary as an operator runs it: it lists its miners,
//! each answers over the CGMiner API on its port, a dead one refuses, and
//! SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_binary_serves_its_listed_miners_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adit-minersim"))
        .args(["--count", "4", "--base-port", "0", "--mode", "normal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let head = lines.next().unwrap().unwrap();
    assert!(
        head.starts_with("adit-minersim: 4 miners on 127.0.0.1:"),
        "{head}"
    );
    // With --base-port 0 one line per miner says which port is whose.
    let miners: Vec<(usize, SocketAddr, String)> = (0..4)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f[0], "miner", "{line}");
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].to_string(),
            )
        })
        .collect();
    assert_eq!(
        miners.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    for (_, addr, mode) in &miners {
        assert_eq!(mode, "Normal");
        let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(br#"{"command":"summary"}"#).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        assert_eq!(answer.last(), Some(&0), "a CGMiner answer ends with NUL");
        let text = String::from_utf8_lossy(&answer[..answer.len() - 1]).into_owned();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["STATUS"][0]["STATUS"], "S", "{text}");
        assert!(v["SUMMARY"][0].is_object(), "{text}");
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends it cleanly: {status:?}");
}

#[test]
fn a_dead_miner_refuses_connections() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adit-minersim"))
        .args(["--count", "2", "--base-port", "0", "--mode", "dead"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let head = lines.next().unwrap().unwrap();
    assert!(head.contains("(dead 2,"), "{head}");
    let line = lines.next().unwrap().unwrap();
    let addr: SocketAddr = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_as_soon_as_the_farm_is_announced_exits_cleanly() {
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_adit-minersim"))
            .args(["--count", "2", "--base-port", "0", "--mode", "normal"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let head = lines.next().unwrap().unwrap();
        assert!(head.starts_with("adit-minersim: 2 miners"), "{head}");
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "SIGTERM right after the listing: {status:?}"
        );
    }
}
