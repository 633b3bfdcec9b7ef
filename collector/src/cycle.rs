//! One polling cycle over a whole farm.
//!
//! The miner list names addresses, `host:port` pairs and IPv4 ranges; a cycle
//! polls every miner on it with bounded concurrency and a deadline per miner,
//! so a slow, hanging or dead miner costs at most its own deadline and never
//! delays the others. Every miner on the list yields exactly one sample per
//! cycle: `online: false` with the reason when it did not answer in time.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cgminer::{Client, DEFAULT_PORT};
use crate::error::{Error, Result};
use crate::normalize::normalize;
use crate::sample::Sample;

/// Miners polled at once by default.
pub const DEFAULT_CONCURRENCY: usize = 256;
/// Time one miner gets per cycle by default, well inside the 60 s interval.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// The shortest prefix a range may have: larger ranges are refused.
pub const MIN_RANGE_PREFIX: u8 = 16;

/// Parses a miner list: entries separated by commas or whitespace, each an
/// IP address (port 4028), `ip:port`, `[ipv6]:port`, or an IPv4 range in
/// CIDR notation (`192.168.1.0/24`, optionally `…/24:4029`) standing for
/// every host address of the range. A miner listed twice is polled once;
/// the order of first appearance is kept.
pub fn parse_miners(list: &str) -> Result<Vec<SocketAddr>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
    {
        for addr in parse_entry(entry)? {
            if seen.insert(addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// One entry of the miner list; see [`parse_miners`].
pub fn parse_entry(entry: &str) -> Result<Vec<SocketAddr>> {
    let bad = |reason: &str| Error::MinerList {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some((net, rest)) = entry.split_once('/') {
        let (prefix, port) = match rest.split_once(':') {
            Some((prefix, port)) => (prefix, parse_port(port).ok_or_else(|| bad("bad port"))?),
            None => (rest, DEFAULT_PORT),
        };
        let net: Ipv4Addr = net
            .parse()
            .map_err(|_| bad("a range must be an IPv4 network such as 192.168.1.0/24"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("the prefix length must be 0..=32"))?;
        if prefix < MIN_RANGE_PREFIX {
            return Err(bad(&format!(
                "ranges larger than /{MIN_RANGE_PREFIX} (65,536 addresses) are refused; split the range"
            )));
        }
        return Ok(hosts(net, prefix)
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), port))
            .collect());
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("port 0 is not a miner's port"));
        }
        return Ok(vec![addr]);
    }
    Err(bad(
        "expected an IP address, ip:port or an IPv4 range such as 192.168.1.0/24",
    ))
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse().ok().filter(|p| *p != 0)
}

/// The host addresses of an IPv4 network: without the network and broadcast
/// addresses, except for /31 (two hosts, RFC 3021) and /32 (one).
fn hosts(net: Ipv4Addr, prefix: u8) -> impl Iterator<Item = Ipv4Addr> {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    let first = u32::from(net) & mask;
    let last = first | !mask;
    let (lo, hi) = if prefix >= 31 {
        (first, last)
    } else {
        (first + 1, last - 1)
    };
    (lo..=hi).map(Ipv4Addr::from)
}

/// How a cycle polls.
#[derive(Debug, Clone)]
pub struct CycleConfig {
    /// Miners polled at once (at least 1).
    pub concurrency: usize,
    /// Time one miner gets, all its requests and retries included; past it
    /// the miner is reported offline.
    pub deadline: Duration,
}

impl Default for CycleConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

/// What one cycle collected.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// One sample per miner, in the order of the miner list.
    pub samples: Vec<Sample>,
    pub online: usize,
    pub offline: usize,
    /// When the cycle started, Unix seconds: every sample's `timestamp`.
    pub timestamp: i64,
    pub elapsed: Duration,
    /// Failed requests of the cycle by error code ([`Error::code`]), a miner
    /// past its deadline counted as `deadline`.
    pub errors: BTreeMap<&'static str, u64>,
}

/// Polls every miner once. A miner's `miner_id` is its `ip:port` (the
/// normaliser reads no identity from the answers) and its `ip_address` the
/// IP; every sample carries the cycle's start as its `timestamp`.
pub async fn run(client: &Client, miners: &[SocketAddr], config: &CycleConfig) -> Cycle {
    let started = Instant::now();
    let timestamp = unix_now();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut samples: Vec<Option<Sample>> = vec![None; miners.len()];
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut record = |(i, (sample, codes)): (usize, (Sample, Vec<&'static str>)),
                      samples: &mut Vec<Option<Sample>>| {
        samples[i] = Some(sample);
        for code in codes {
            *errors.entry(code).or_default() += 1;
        }
    };
    for (index, &addr) in miners.iter().enumerate() {
        // Waiting for a slot before spawning bounds the tasks alive too.
        let permit = loop {
            tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => {
                    break permit.expect("the semaphore is never closed");
                }
                Some(done) = tasks.join_next() => {
                    if let Ok(done) = done {
                        record(done, &mut samples);
                    }
                }
            }
        };
        let client = client.clone();
        let deadline = config.deadline;
        tasks.spawn(async move {
            let sample = poll_one(&client, addr, deadline, timestamp).await;
            drop(permit);
            (index, sample)
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(done) = done {
            record(done, &mut samples);
        }
    }
    let samples: Vec<Sample> = samples
        .into_iter()
        .zip(miners)
        .map(|(sample, addr)| {
            // A poll task that panicked still leaves its miner's sample.
            sample.unwrap_or_else(|| {
                let ip = addr.ip().to_string();
                Sample::offline(&addr.to_string(), Some(&ip), timestamp, "poll failed")
            })
        })
        .collect();
    let online = samples.iter().filter(|s| s.online).count();
    let cycle = Cycle {
        offline: samples.len() - online,
        online,
        samples,
        timestamp,
        elapsed: started.elapsed(),
        errors,
    };
    tracing::info!(
        miners = miners.len(),
        online = cycle.online,
        offline = cycle.offline,
        elapsed_ms = cycle.elapsed.as_millis() as u64,
        "Polled the farm."
    );
    cycle
}

/// One miner's sample and the codes of its failed requests.
async fn poll_one(
    client: &Client,
    addr: SocketAddr,
    deadline: Duration,
    timestamp: i64,
) -> (Sample, Vec<&'static str>) {
    let miner_id = addr.to_string();
    let ip = addr.ip().to_string();
    match tokio::time::timeout(deadline, client.poll(addr)).await {
        Ok(answers) => {
            let codes = answers.errors.iter().map(Error::code).collect();
            (normalize(&miner_id, Some(&ip), &answers, timestamp), codes)
        }
        Err(_) => (
            Sample::offline(
                &miner_id,
                Some(&ip),
                timestamp,
                &format!(
                    "{addr}: no complete answer within the {} ms deadline",
                    deadline.as_millis()
                ),
            ),
            vec!["deadline"],
        ),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_port_and_bare_host_parse_with_the_default_port() {
        assert_eq!(
            parse_miners("10.0.0.5:4029, 10.0.0.6 [::1]:4030").unwrap(),
            vec![
                addr("10.0.0.5:4029"),
                addr("10.0.0.6:4028"),
                addr("[::1]:4030")
            ]
        );
    }

    #[test]
    fn a_range_stands_for_its_host_addresses() {
        assert_eq!(
            parse_miners("192.168.1.0/30").unwrap(),
            vec![addr("192.168.1.1:4028"), addr("192.168.1.2:4028")]
        );
        assert_eq!(
            parse_entry("192.168.1.7/30:4029").unwrap(),
            vec![addr("192.168.1.5:4029"), addr("192.168.1.6:4029")]
        );
        assert_eq!(
            parse_entry("10.1.2.3/32").unwrap(),
            vec![addr("10.1.2.3:4028")]
        );
        assert_eq!(parse_entry("10.0.0.0/24").unwrap().len(), 254);
        assert_eq!(parse_entry("10.0.0.0/16").unwrap().len(), 65_534);
    }

    #[test]
    fn duplicates_are_polled_once() {
        assert_eq!(
            parse_miners("192.168.1.0/30,192.168.1.2,192.168.1.1:4028").unwrap(),
            vec![addr("192.168.1.1:4028"), addr("192.168.1.2:4028")]
        );
    }

    #[test]
    fn ranges_larger_than_a_16_are_refused() {
        let err = parse_miners("10.0.0.0/8").unwrap_err();
        assert_eq!(err.code(), "bad_miner_list");
        assert!(err.to_string().contains("larger than /16"), "{err}");
        assert!(parse_entry("10.0.0.0/15").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for entry in [
            "miner-7",
            "10.0.0.300",
            "10.0.0.1:99999",
            "10.0.0.1:0",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "::/120",
            "10.0.0.0/24:port",
        ] {
            let err = parse_entry(entry).unwrap_err();
            assert_eq!(err.code(), "bad_miner_list", "{entry}");
            assert!(err.to_string().contains(entry), "{err}");
        }
    }
}
