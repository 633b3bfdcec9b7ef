//! A simulated fleet: per-site miners of real models, with plausible
//! hashrate, power and temperatures, about 5% offline, the odd hot board,
//! and cumulative share counters that grow and sometimes reset (reboots).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// A miner model and its nominal figures.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub name: &'static str,
    pub hashrate_ghs: f64,
    pub power_w: f64,
    pub boards: usize,
    pub chips_per_board: i32,
    pub fans: usize,
    pub frequency_mhz: f64,
}

pub const MODELS: [Model; 4] = [
    Model {
        name: "Antminer S19 Pro",
        hashrate_ghs: 110_000.0,
        power_w: 3250.0,
        boards: 3,
        chips_per_board: 114,
        fans: 4,
        frequency_mhz: 580.0,
    },
    Model {
        name: "Antminer S19j Pro",
        hashrate_ghs: 100_000.0,
        power_w: 3050.0,
        boards: 3,
        chips_per_board: 126,
        fans: 4,
        frequency_mhz: 545.0,
    },
    Model {
        name: "Antminer S21",
        hashrate_ghs: 200_000.0,
        power_w: 3500.0,
        boards: 3,
        chips_per_board: 108,
        fans: 4,
        frequency_mhz: 490.0,
    },
    Model {
        name: "Whatsminer M50",
        hashrate_ghs: 118_000.0,
        power_w: 3306.0,
        boards: 3,
        chips_per_board: 105,
        fans: 2,
        frequency_mhz: 610.0,
    },
];

/// Share of miners that are offline at any time.
const OFFLINE_SHARE: f64 = 0.05;
/// Share of miners with one overheating board.
const HOT_SHARE: f64 = 0.02;
/// Chance per sample that a miner rebooted and its counters reset.
const RESET_CHANCE: f64 = 0.001;

#[derive(Debug, Clone)]
struct Miner {
    id: String,
    ip: String,
    model: Model,
    hot_board: Option<usize>,
    accepted: i64,
    rejected: i64,
    hw_errors: i64,
    uptime_s: i64,
}

/// One collection round of a site.
#[derive(Debug, Clone)]
pub struct Round {
    /// A JSON array with one sample per miner.
    pub json: Vec<u8>,
    pub rows: usize,
    /// Sum of `accepted_shares` over the round: a checksum for --verify.
    pub accepted_sum: i64,
}

/// The miners of one site.
#[derive(Debug)]
pub struct Fleet {
    pub site_id: i32,
    miners: Vec<Miner>,
    rng: StdRng,
}

#[derive(Serialize)]
struct Board {
    id: usize,
    hashrate: f64,
    temp: f64,
    chips_ok: i32,
    chips_total: i32,
}

#[derive(Serialize)]
struct SampleJson<'a> {
    miner_id: &'a str,
    ip_address: &'a str,
    online: bool,
    hashrate_ghs: f64,
    hashrate_5s_ghs: f64,
    hashrate_expected_ghs: f64,
    temperature_avg: f64,
    temperature_min: f64,
    temperature_max: f64,
    temperature_chips: Vec<f64>,
    fan_speeds: Vec<i32>,
    frequency_avg: f64,
    accepted_shares: i64,
    rejected_shares: i64,
    hardware_errors: i64,
    uptime_seconds: i64,
    power_consumption: f64,
    efficiency: f64,
    pool_url: &'a str,
    worker_name: String,
    pool_latency_ms: i32,
    boards: Vec<Board>,
    boards_total: usize,
    boards_healthy: usize,
    overall_health: &'a str,
    model: &'a str,
    firmware_version: &'a str,
    error_message: &'a str,
    latency_ms: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Fleet {
    pub fn new(site_id: i32, miners: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ (site_id as u64).wrapping_mul(0x9e37_79b9));
        let miners = (0..miners)
            .map(|i| {
                let model = MODELS[rng.random_range(0..MODELS.len())];
                Miner {
                    id: format!("S{site_id}-M{i:05}"),
                    ip: format!("10.{}.{}.{}", site_id % 256, i / 250, i % 250 + 2),
                    model,
                    hot_board: rng
                        .random_bool(HOT_SHARE)
                        .then(|| rng.random_range(0..model.boards)),
                    accepted: rng.random_range(0..1_000_000),
                    rejected: rng.random_range(0..1_000),
                    hw_errors: rng.random_range(0..100),
                    uptime_s: rng.random_range(0..3_000_000),
                }
            })
            .collect();
        Self {
            site_id,
            miners,
            rng,
        }
    }

    pub fn len(&self) -> usize {
        self.miners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.miners.is_empty()
    }

    /// One collection round: a JSON array with a sample of every miner.
    /// `timestamp` (Unix seconds) is included when given.
    pub fn collect_json(&mut self, timestamp: Option<i64>, interval_s: i64) -> Vec<u8> {
        self.collect(timestamp, interval_s).json
    }

    /// One collection round and its checksum.
    pub fn collect(&mut self, timestamp: Option<i64>, interval_s: i64) -> Round {
        let site_id = self.site_id;
        let rng = &mut self.rng;
        let samples: Vec<SampleJson> = self
            .miners
            .iter_mut()
            .map(|m| {
                let online = !rng.random_bool(OFFLINE_SHARE);
                if rng.random_bool(RESET_CHANCE) {
                    m.accepted = 0;
                    m.rejected = 0;
                    m.hw_errors = 0;
                    m.uptime_s = 0;
                }
                if online {
                    m.accepted += rng.random_range(50..400);
                    m.rejected += i64::from(rng.random_bool(0.05));
                    m.hw_errors += i64::from(rng.random_bool(0.01));
                    m.uptime_s += interval_s;
                }
                sample(m, site_id, online, timestamp, rng)
            })
            .collect();
        Round {
            accepted_sum: samples.iter().map(|s| s.accepted_shares).sum(),
            rows: samples.len(),
            json: serde_json::to_vec(&samples).expect("samples serialize"),
        }
    }
}

fn sample<'a>(
    m: &'a Miner,
    site_id: i32,
    online: bool,
    ts: Option<i64>,
    rng: &mut StdRng,
) -> SampleJson<'a> {
    let model = &m.model;
    let load = if online {
        rng.random_range(0.93..1.04)
    } else {
        0.0
    };
    let hashrate = round1(model.hashrate_ghs * load);
    let base_temp = if online {
        rng.random_range(58.0..72.0)
    } else {
        25.0
    };
    let boards: Vec<Board> = (0..model.boards)
        .map(|id| {
            let hot = m.hot_board == Some(id) && online;
            let chips_ok = if hot {
                model.chips_per_board - rng.random_range(1..6)
            } else {
                model.chips_per_board
            };
            Board {
                id,
                hashrate: round1(hashrate / model.boards as f64 * if hot { 0.8 } else { 1.0 }),
                temp: round1(
                    base_temp
                        + if hot {
                            rng.random_range(20.0..30.0)
                        } else {
                            rng.random_range(0.0..4.0)
                        },
                ),
                chips_ok,
                chips_total: model.chips_per_board,
            }
        })
        .collect();
    let temps: Vec<f64> = boards.iter().map(|b| b.temp).collect();
    let t_max = temps.iter().cloned().fold(f64::MIN, f64::max);
    let t_min = temps.iter().cloned().fold(f64::MAX, f64::min);
    let power = if online {
        round1(model.power_w * rng.random_range(0.97..1.03))
    } else {
        0.0
    };
    let healthy = boards
        .iter()
        .filter(|b| b.chips_ok == b.chips_total)
        .count();
    SampleJson {
        miner_id: &m.id,
        ip_address: &m.ip,
        online,
        hashrate_ghs: hashrate,
        hashrate_5s_ghs: round1(hashrate * rng.random_range(0.97..1.03)),
        hashrate_expected_ghs: model.hashrate_ghs,
        temperature_avg: round1(temps.iter().sum::<f64>() / temps.len() as f64),
        temperature_min: t_min,
        temperature_max: t_max,
        temperature_chips: temps
            .iter()
            .flat_map(|&t| [t - 1.5, t, t + 1.0])
            .map(round1)
            .collect(),
        fan_speeds: (0..model.fans)
            .map(|_| {
                if online {
                    rng.random_range(4800..6200)
                } else {
                    0
                }
            })
            .collect(),
        frequency_avg: if online { model.frequency_mhz } else { 0.0 },
        accepted_shares: m.accepted,
        rejected_shares: m.rejected,
        hardware_errors: m.hw_errors,
        uptime_seconds: m.uptime_s,
        power_consumption: power,
        efficiency: if hashrate > 0.0 {
            round1(power / (hashrate / 1000.0))
        } else {
            0.0
        },
        pool_url: "stratum+tcp://pool.example.com:3333",
        worker_name: format!("site{site_id}.{}", m.id),
        pool_latency_ms: rng.random_range(20..90),
        boards_total: model.boards,
        boards_healthy: healthy,
        boards,
        overall_health: if !online {
            "offline"
        } else if healthy < model.boards {
            "degraded"
        } else {
            "healthy"
        },
        model: model.name,
        firmware_version: "Vnish 1.2.3",
        error_message: if online {
            ""
        } else {
            "no response on TCP 4028"
        },
        latency_ms: rng.random_range(5..60),
        timestamp: ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_has_one_sample_per_miner_with_some_offline() {
        let mut fleet = Fleet::new(3, 1000, 7);
        let body = fleet.collect_json(Some(1_700_000_000), 60);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(rows.len(), 1000);
        let offline = rows.iter().filter(|r| r["online"] == false).count();
        assert!((20..=90).contains(&offline), "about 5% offline: {offline}");
        assert_eq!(rows[0]["timestamp"], 1_700_000_000);
        assert!(rows[0]["miner_id"].as_str().unwrap().starts_with("S3-"));
    }

    #[test]
    fn counters_never_decrease_except_on_reset() {
        let mut fleet = Fleet::new(1, 50, 1);
        let a: Vec<serde_json::Value> =
            serde_json::from_slice(&fleet.collect_json(None, 60)).unwrap();
        let b: Vec<serde_json::Value> =
            serde_json::from_slice(&fleet.collect_json(None, 60)).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let (x, y) = (
                x["accepted_shares"].as_i64().unwrap(),
                y["accepted_shares"].as_i64().unwrap(),
            );
            assert!(y >= x || y < 400, "grows or resets: {x} -> {y}");
        }
    }
}
