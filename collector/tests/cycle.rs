//! One polling cycle against a farm of simulated miners on 127.0.0.1 (real
//! TCP, adit-minersim's listeners).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adit_collector::cgminer::{Client, Config};
use adit_collector::cycle::{self, CycleConfig};
use adit_minersim::{Farm, Mode, Shape, Shares};
use tokio::net::TcpSocket;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Per-request limits short enough for loopback, long enough that a slow
/// miner's three requests fit in the deadline and a hanging miner's retries
/// do not.
fn client() -> Client {
    Client::new(Config {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        attempts: 3,
        ..Config::test_config()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_over_200_miners_gives_one_sample_each_and_the_stuck_ones_offline() {
    const FARM: usize = 180;
    const DEAD: usize = 20;
    let mut cfg = adit_minersim::Config::test_config(FARM);
    cfg.shares = Shares {
        dead: 0.0,
        hang: 0.1,
        slow: 0.15,
        flapping: 0.05,
        malformed: 0.05,
    };
    cfg.slow_delay = Duration::from_millis(300);
    let farm = Farm::start(cfg).await.unwrap();
    // The simulator's dead miners free their port, which any process on
    // the machine may then take; these are bound and never listen, so their
    // ports stay taken and refuse connections for the whole test.
    let dead: Vec<TcpSocket> = (0..DEAD)
        .map(|_| {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            socket
        })
        .collect();
    let dead_addrs: Vec<SocketAddr> = dead.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut addrs: Vec<SocketAddr> = farm.addrs();
    addrs.extend(&dead_addrs);
    let count = |mode| farm.miners().iter().filter(|m| m.mode == mode).count();
    for mode in [Mode::Normal, Mode::Hang, Mode::Slow] {
        assert!(count(mode) > 0, "the farm has no {mode:?} miner");
    }

    let config = CycleConfig {
        concurrency: 256,
        deadline: Duration::from_millis(2500),
    };
    let before = unix_now();
    let cycle = cycle::run(&client(), &addrs, &config).await;
    let after = unix_now();

    assert_eq!(cycle.samples.len(), FARM + DEAD);
    assert_eq!(cycle.online + cycle.offline, FARM + DEAD);
    assert_eq!(
        cycle.online,
        cycle.samples.iter().filter(|s| s.online).count()
    );
    assert!((before..=after).contains(&cycle.timestamp));
    // 200 miners fit in one wave of 256: the cycle takes about one deadline;
    // the bound only catches a stuck miner delaying the others.
    assert!(
        cycle.elapsed < config.deadline + Duration::from_secs(15),
        "{:?}",
        cycle.elapsed
    );

    let mut compared = 0;
    let mut antminers = 0;
    for (m, s) in farm.miners().iter().zip(&cycle.samples) {
        assert_eq!(s.miner_id, m.addr.to_string());
        assert_eq!(s.ip_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.timestamp, cycle.timestamp);
        match m.mode {
            Mode::Hang => {
                assert!(!s.online, "{s:?}");
                let why = s.error_message.as_deref().unwrap();
                assert!(why.contains("2500 ms deadline"), "{why}");
            }
            Mode::Normal | Mode::Slow => {
                assert!(s.online, "{:?} miner {}: {s:?}", m.mode, m.index);
                let snap = farm.snapshot(m.index).unwrap();
                let want = snap.nominal.hashrate_ghs;
                let got = s.hashrate_ghs.unwrap();
                assert!((got - want).abs() <= want * 1e-9, "{got} != {want}");
                // The simulator answers no `devdetails`, where a
                // Whatsminer's model comes from: only Antminers' is checked.
                if m.shape == Shape::Antminer {
                    assert_eq!(s.model.as_deref(), Some(snap.nominal.model.as_str()));
                    antminers += 1;
                }
                assert_eq!(s.pool_url.as_deref(), Some(snap.active_pool_url.as_str()));
                compared += 1;
            }
            Mode::Dead | Mode::Flapping | Mode::Malformed => {}
        }
    }
    assert!(compared >= 100 && antminers > 0, "{compared} {antminers}");
    for (addr, s) in dead_addrs.iter().zip(&cycle.samples[FARM..]) {
        assert_eq!(s.miner_id, addr.to_string());
        assert!(!s.online, "{s:?}");
        assert!(
            s.error_message.as_deref().unwrap().contains("refused"),
            "{s:?}"
        );
    }
    assert!(cycle.offline >= DEAD + count(Mode::Hang));
    drop(dead);
    farm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_miners_are_polled_at_once_than_the_limit() {
    let mut cfg = adit_minersim::Config::test_config(8);
    cfg.mode = Some(Mode::Hang);
    let farm = Farm::start(cfg).await.unwrap();
    let config = CycleConfig {
        concurrency: 4,
        deadline: Duration::from_millis(400),
    };
    let cycle = cycle::run(&client(), &farm.addrs(), &config).await;
    assert_eq!(cycle.offline, 8);
    // Eight hanging miners, four at a time: two waves of one deadline each
    // (unbounded, all eight would hang side by side for one deadline).
    assert!(cycle.elapsed >= 2 * config.deadline, "{:?}", cycle.elapsed);
    farm.shutdown().await;
}

#[tokio::test]
async fn an_empty_list_is_an_empty_cycle() {
    let cycle = cycle::run(&client(), &[], &CycleConfig::default()).await;
    assert!(cycle.samples.is_empty());
    assert_eq!((cycle.online, cycle.offline), (0, 0));
}
