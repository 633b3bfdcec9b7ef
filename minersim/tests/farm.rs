//! The simulator over real TCP on loopback: shapes, quirks, modes and the
//! privileged commands.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use adit_minersim::{Config, Farm, MinerInfo, Mode, Shape};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on any one exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request`, reads to EOF: the raw answer.
async fn ask(addr: SocketAddr, request: &str) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok(out)
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

/// Undoes the firmware quirks the way a collector must: drop the NUL,
/// decode lossily, put the comma back between `}{`.
fn decode(raw: &[u8]) -> Value {
    let body = raw.strip_suffix(&[0]).expect("answer ends with NUL");
    let text = String::from_utf8_lossy(body).replace("}{", "},{");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A number that may come as a string.
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

async fn command(addr: SocketAddr, cmd: &str, param: Option<&str>) -> Value {
    let req = match param {
        Some(p) => serde_json::json!({"command": cmd, "parameter": p}),
        None => serde_json::json!({"command": cmd}),
    };
    decode(&ask(addr, &req.to_string()).await.unwrap())
}

fn first(farm: &Farm, shape: Shape) -> MinerInfo {
    farm.miners()
        .iter()
        .find(|m| m.shape == shape)
        .cloned()
        .unwrap_or_else(|| panic!("no {shape:?} in the farm"))
}

fn status(v: &Value) -> &str {
    let s = &v["STATUS"];
    s.get(0).map_or(s, |x| &x["STATUS"]).as_str().unwrap()
}

#[tokio::test]
async fn both_shapes_answer_summary_stats_and_pools_with_quirks_undone() {
    for quirk_share in [0.0, 1.0] {
        let farm = Farm::start(Config {
            quirk_share,
            ..Config::test_config(16)
        })
        .await
        .unwrap();
        let ant = first(&farm, Shape::Antminer);
        let wm = first(&farm, Shape::Whatsminer);

        let raw = ask(ant.addr, r#"{"command":"stats"}"#).await.unwrap();
        let quirky = quirk_share == 1.0;
        assert_eq!(
            raw.windows(2).any(|w| w == b"}{"),
            quirky,
            "}}{{ only with quirks"
        );
        assert_eq!(
            std::str::from_utf8(&raw).is_err(),
            quirky,
            "bad UTF-8 only with quirks"
        );
        let stats = decode(&raw);
        assert_eq!(status(&stats), "S");
        assert_eq!(stats["STATS"][0]["Type"], ant.model.as_str());
        let chains = &stats["STATS"][1];
        for key in [
            "temp1",
            "temp2_1",
            "temp3_3",
            "chain_rate1",
            "GHS 5s",
            "frequency",
        ] {
            assert!(num(&chains[key]) > 0.0, "{key}: {chains}");
        }
        assert!(chains["fan4"].as_i64().unwrap() > 0);
        assert_eq!(
            chains["chain_rate1"].is_string(),
            quirky,
            "numbers as strings"
        );
        assert!(chains["chain_acs1"]
            .as_str()
            .unwrap()
            .starts_with("oooooooo "));

        let sum = command(ant.addr, "summary", None).await;
        let s = &sum["SUMMARY"][0];
        assert!(num(&s["GHS av"]) > 50_000.0, "{s}");
        assert!(num(&s["GHS 5s"]) > 50_000.0);
        assert!(s["Elapsed"].as_i64().unwrap() > 0);

        let sum = command(wm.addr, "summary", None).await;
        let s = &sum["SUMMARY"][0];
        assert!(num(&s["MHS av"]) > 50_000_000.0, "{s}");
        for key in ["Temperature", "Power", "Fan Speed In", "Fan Speed Out"] {
            assert!(num(&s[key]) > 0.0, "{key}: {s}");
        }
        let stats = command(wm.addr, "devs", None).await;
        assert_eq!(stats["DEVS"].as_array().unwrap().len(), 3);
        assert!(num(&stats["DEVS"][0]["Chip Temp Avg"]) > 0.0);

        for m in [&ant, &wm] {
            let pools = command(m.addr, "pools", None).await;
            let p = &pools["POOLS"][0];
            assert_eq!(p["URL"], "stratum+tcp://pool.example.com:3333");
            assert_eq!(p["Stratum Active"], true);
            assert!(p["User"].as_str().unwrap().ends_with(&m.miner_id));
        }
        farm.shutdown().await;
    }
}

#[tokio::test]
async fn joined_commands_answer_each_part_and_text_requests_work() {
    let farm = Farm::start(Config::test_config(4)).await.unwrap();
    let addr = farm.miners()[0].addr;
    let v = command(addr, "summary+pools", None).await;
    assert_eq!(status(&v["summary"][0]), "S");
    assert!(v["pools"][0]["POOLS"].is_array());
    let v = decode(&ask(addr, "summary|\n").await.unwrap());
    assert!(v["SUMMARY"].is_array());
    // A privileged part is refused, the rest answered; repeats and blanks
    // are dropped.
    let v = command(addr, "summary+restart++summary", None).await;
    assert_eq!(status(&v["summary"][0]), "S");
    assert_eq!(status(&v["restart"][0]), "E");
    assert_eq!(v.as_object().unwrap().len(), 3, "summary, restart, id: {v}");
    let uptime = &command(addr, "summary", None).await["SUMMARY"][0]["Elapsed"];
    assert!(uptime.as_i64().unwrap() > 100, "not restarted: {uptime}");
    farm.shutdown().await;
}

#[tokio::test]
async fn restart_resets_uptime_and_counters() {
    let farm = Farm::start(Config::test_config(6)).await.unwrap();
    for m in farm.miners() {
        let before = &command(m.addr, "summary", None).await["SUMMARY"][0];
        assert!(before["Elapsed"].as_i64().unwrap() > 100, "{before}");
        let r = command(m.addr, "restart", None).await;
        match m.shape {
            // cgminer's bare answer before it restarts.
            Shape::Antminer => assert_eq!(r["STATUS"], "RESTART"),
            Shape::Whatsminer => assert_eq!(r["Code"], 131, "{r}"),
        }
        let after = &command(m.addr, "summary", None).await["SUMMARY"][0];
        assert!(after["Elapsed"].as_i64().unwrap() < 60, "{after}");
        assert!(after["Accepted"].as_i64().unwrap() < before["Accepted"].as_i64().unwrap());
        assert_eq!(farm.snapshot(m.index).unwrap().restarts, 1);
    }
    farm.shutdown().await;
}

#[tokio::test]
async fn counters_advance_with_time() {
    let farm = Farm::start(Config::test_config(1)).await.unwrap();
    let addr = farm.miners()[0].addr;
    let a = command(addr, "summary", None).await["SUMMARY"][0].clone();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let b = command(addr, "summary", None).await["SUMMARY"][0].clone();
    assert!(b["Elapsed"].as_i64() > a["Elapsed"].as_i64(), "{a} {b}");
    assert!(b["Accepted"].as_i64() > a["Accepted"].as_i64(), "{a} {b}");
    farm.shutdown().await;
}

#[tokio::test]
async fn addpool_and_switchpool_change_the_active_pool() {
    let farm = Farm::start(Config::test_config(4)).await.unwrap();
    let addr = farm.miners()[1].addr;
    let url = "stratum+tcp://new.example.org:3333";
    let r = command(addr, "addpool", Some(&format!("{url},farm.w1,x"))).await;
    assert_eq!(status(&r), "S", "{r}");
    let r = command(addr, "switchpool", Some("2")).await;
    assert_eq!(status(&r), "S", "{r}");
    let pools = command(addr, "pools", None).await;
    let active: Vec<&Value> = pools["POOLS"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["Stratum Active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["URL"], url);
    assert_eq!(active[0]["User"], "farm.w1");
    assert_eq!(farm.snapshot(1).unwrap().active_pool_url, url);
    let r = command(addr, "switchpool", Some("9")).await;
    assert_eq!(status(&r), "E");
    farm.shutdown().await;
}

#[tokio::test]
async fn disable_stops_hashing_and_enable_resumes_it_and_ascset_sets_the_fans() {
    let farm = Farm::start(Config::test_config(16)).await.unwrap();
    let ant = first(&farm, Shape::Antminer);
    // cgminer reports enable/disable with severity I (information).
    assert_eq!(status(&command(ant.addr, "disable", None).await), "I");
    let s = command(ant.addr, "summary", None).await;
    assert_eq!(num(&s["SUMMARY"][0]["GHS av"]), 0.0);
    assert_eq!(status(&command(ant.addr, "enable", None).await), "I");
    let s = command(ant.addr, "summary", None).await;
    assert!(num(&s["SUMMARY"][0]["GHS av"]) > 0.0);

    let r = command(ant.addr, "ascset", Some("0,fan,50")).await;
    assert_eq!(status(&r), "S", "{r}");
    let st = command(ant.addr, "stats", None).await;
    assert_eq!(st["STATS"][1]["fan1"], 3300);
    let r = command(ant.addr, "ascset", Some("0,freq,290")).await;
    assert_eq!(status(&r), "S", "{r}");
    let st = command(ant.addr, "stats", None).await;
    assert_eq!(num(&st["STATS"][1]["frequency"]), 290.0);
    assert_eq!(
        status(&command(ant.addr, "ascset", Some("0,volt,9")).await),
        "E"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_get_status_e_in_each_shape() {
    let farm = Farm::start(Config::test_config(16)).await.unwrap();
    let ant = first(&farm, Shape::Antminer);
    let wm = first(&farm, Shape::Whatsminer);
    let a = command(ant.addr, "selfdestruct", None).await;
    assert_eq!(a["STATUS"][0]["STATUS"], "E");
    assert_eq!(a["STATUS"][0]["Code"], 14);
    // btminer sends its error STATUS flat, not in an array.
    let w = command(wm.addr, "selfdestruct", None).await;
    assert_eq!(w["STATUS"], "E");
    assert_eq!(w["Msg"], "invalid cmd");
    let bad = decode(&ask(ant.addr, "{\"command\": 5}").await.unwrap());
    assert_eq!(status(&bad), "E");
    farm.shutdown().await;
}

#[tokio::test]
async fn a_request_over_the_size_limit_gets_an_error() {
    let farm = Farm::start(Config {
        max_request_bytes: 64,
        ..Config::test_config(1)
    })
    .await
    .unwrap();
    let big = format!("{{\"command\":\"{}\"}}", "x".repeat(500));
    let v = decode(&ask(farm.miners()[0].addr, &big).await.unwrap());
    assert_eq!(status(&v), "E");
    farm.shutdown().await;
}

#[tokio::test]
async fn an_incomplete_request_is_dropped_after_the_read_timeout() {
    let farm = Farm::start(Config {
        read_timeout: Duration::from_millis(300),
        ..Config::test_config(1)
    })
    .await
    .unwrap();
    let mut s = TcpStream::connect(farm.miners()[0].addr).await.unwrap();
    s.write_all(b"{\"command\":").await.unwrap();
    let mut out = Vec::new();
    let n = tokio::time::timeout(EXCHANGE_TIMEOUT, s.read_to_end(&mut out))
        .await
        .expect("the miner closes the connection");
    assert!(n.is_err() || out.is_empty(), "no answer: {out:?}");
    farm.shutdown().await;
}

fn in_mode(mode: Mode, count: usize) -> Config {
    Config {
        mode: Some(mode),
        ..Config::test_config(count)
    }
}

#[tokio::test]
async fn a_dead_miner_refuses_connections() {
    let farm = Farm::start(in_mode(Mode::Dead, 2)).await.unwrap();
    for m in farm.miners() {
        let err = TcpStream::connect(m.addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    farm.shutdown().await;
}

#[tokio::test]
async fn a_hanging_miner_never_answers() {
    let farm = Farm::start(in_mode(Mode::Hang, 1)).await.unwrap();
    let addr = farm.miners()[0].addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(br#"{"command":"summary"}"#).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_millis(800), s.read(&mut buf)).await;
    assert!(r.is_err(), "answered: {r:?}");
    farm.shutdown().await;
}

#[tokio::test]
async fn a_slow_miner_answers_after_its_delay() {
    let farm = Farm::start(in_mode(Mode::Slow, 1)).await.unwrap();
    let t = Instant::now();
    let v = command(farm.miners()[0].addr, "summary", None).await;
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(status(&v), "S");
    farm.shutdown().await;
}

#[tokio::test]
async fn a_malformed_miner_sends_truncated_json() {
    let farm = Farm::start(Config {
        quirk_share: 0.0,
        ..in_mode(Mode::Malformed, 1)
    })
    .await
    .unwrap();
    let raw = ask(farm.miners()[0].addr, r#"{"command":"summary"}"#)
        .await
        .unwrap();
    let body = raw.strip_suffix(&[0]).expect("NUL-terminated");
    assert!(body.starts_with(b"{\"STATUS\":"), "{body:?}");
    let err = serde_json::from_slice::<Value>(body).unwrap_err();
    assert!(err.is_eof(), "truncated, not garbled: {err}");
    farm.shutdown().await;
}

#[tokio::test]
async fn a_flapping_miner_is_sometimes_up_and_sometimes_down() {
    let farm = Farm::start(Config {
        flap_period: Duration::from_millis(250),
        ..in_mode(Mode::Flapping, 1)
    })
    .await
    .unwrap();
    let addr = farm.miners()[0].addr;
    let (mut up, mut down) = (0, 0);
    for _ in 0..40 {
        match ask(addr, r#"{"command":"summary"}"#).await {
            Ok(raw) if raw.ends_with(&[0]) => up += 1,
            _ => down += 1,
        }
        if up > 0 && down > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(up > 0 && down > 0, "up {up}, down {down}");
    farm.shutdown().await;
}

#[tokio::test]
async fn shares_pick_a_deterministic_part_of_the_farm() {
    let cfg = Config {
        shares: adit_minersim::Shares {
            dead: 0.1,
            slow: 0.1,
            ..Default::default()
        },
        ..Config::test_config(1000)
    };
    let dead = (0..1000).filter(|&i| cfg.mode_of(i) == Mode::Dead).count();
    let slow = (0..1000).filter(|&i| cfg.mode_of(i) == Mode::Slow).count();
    assert!((60..=140).contains(&dead), "{dead}");
    assert!((60..=140).contains(&slow), "{slow}");
    let again: Vec<Mode> = (0..1000).map(|i| cfg.mode_of(i)).collect();
    assert_eq!(again, (0..1000).map(|i| cfg.mode_of(i)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_non_loopback_host_is_refused_unless_allowed() {
    let err = Farm::start(Config {
        host: "0.0.0.0".parse().unwrap(),
        ..Config::test_config(1)
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), "not_loopback");
}

#[tokio::test]
async fn values_are_the_fleet_models() {
    let farm = Farm::start(Config {
        quirk_share: 0.0,
        ..Config::test_config(16)
    })
    .await
    .unwrap();
    for m in farm.miners() {
        let n = farm.snapshot(m.index).unwrap().nominal;
        assert_eq!(n.model, m.model);
        let s = &command(m.addr, "summary", None).await["SUMMARY"][0];
        match m.shape {
            Shape::Antminer => {
                assert_eq!(num(&s["GHS av"]), n.hashrate_ghs, "{s}");
                let st = command(m.addr, "stats", None).await;
                for (i, b) in n.boards.iter().enumerate() {
                    let c = &st["STATS"][1];
                    assert_eq!(num(&c[format!("temp2_{}", i + 1)]), b.temp);
                    assert_eq!(num(&c[format!("chain_rate{}", i + 1)]), b.hashrate);
                    assert_eq!(c[format!("chain_acn{}", i + 1)], b.chips_ok);
                }
            }
            Shape::Whatsminer => {
                assert_eq!(num(&s["MHS av"]), n.hashrate_ghs * 1000.0, "{s}");
                assert_eq!(num(&s["Power"]), n.power_consumption, "{s}");
                let devs = command(m.addr, "devs", None).await;
                for (i, b) in n.boards.iter().enumerate() {
                    assert_eq!(num(&devs["DEVS"][i]["Temperature"]), b.temp);
                    assert_eq!(devs["DEVS"][i]["Effective Chips"], b.chips_ok);
                }
            }
        }
    }
    farm.shutdown().await;
}
