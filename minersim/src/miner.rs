//! One simulated miner: its nominal figures, taken from a sample of the load
//! generator's fleet, and its live state (counters that advance with time,
//! pools, enabled, fan and frequency settings).

use std::time::Instant;

use adit_load::fleet::Fleet;
use serde::Deserialize;

use crate::{Error, Result};

/// Accepted shares per second at 110 TH/s (the fleet adds 50..400 a minute).
const SHARES_PER_S_AT_110TH: f64 = 3.75;
/// Rejected shares per accepted share.
const REJECT_RATIO: f64 = 0.005;
/// Hardware errors per second while hashing.
const HW_ERRORS_PER_S: f64 = 1.0 / 600.0;
/// Fleet rounds drawn at most to find every miner online once.
const MAX_ROUNDS: usize = 32;
/// Fan speed at 100 % in RPM.
const FAN_MAX_RPM: f64 = 6600.0;

/// The answer shape a miner speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Bitmain (S19, S21): bmminer/cgminer field names, GH/s.
    Antminer,
    /// MicroBT (M50): btminer field names, MH/s.
    Whatsminer,
}

/// A hashboard as the fleet sampled it.
#[derive(Debug, Clone, Deserialize)]
pub struct Board {
    pub hashrate: f64,
    pub temp: f64,
    pub chips_ok: i32,
    pub chips_total: i32,
}

/// A miner's nominal figures: one online sample of the fleet model.
#[derive(Debug, Clone, Deserialize)]
pub struct Nominal {
    pub miner_id: String,
    pub model: String,
    pub hashrate_ghs: f64,
    pub hashrate_expected_ghs: f64,
    pub fan_speeds: Vec<i32>,
    pub frequency_avg: f64,
    pub accepted_shares: i64,
    pub rejected_shares: i64,
    pub hardware_errors: i64,
    pub uptime_seconds: i64,
    pub power_consumption: f64,
    pub pool_url: String,
    pub worker_name: String,
    pub boards: Vec<Board>,
    online: bool,
}

impl Nominal {
    pub fn shape(&self) -> Shape {
        if self.model.starts_with("Whatsminer") {
            Shape::Whatsminer
        } else {
            Shape::Antminer
        }
    }
}

/// Draws `count` miners from the fleet model of site 1 with `seed`: each
/// miner's first online sample (the fleet has about 5 % offline per round).
pub fn nominals(count: usize, seed: u64) -> Result<Vec<Nominal>> {
    let mut fleet = Fleet::new(1, count, seed);
    let mut found: Vec<Option<Nominal>> = vec![None; count];
    for _ in 0..MAX_ROUNDS {
        let round = fleet.collect(None, 60);
        let samples: Vec<Nominal> =
            serde_json::from_slice(&round.json).map_err(|e| Error::Fleet(e.to_string()))?;
        for (slot, sample) in found.iter_mut().zip(samples) {
            if slot.is_none() && sample.online {
                *slot = Some(sample);
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            n.ok_or_else(|| Error::Fleet(format!("miner {i} offline in {MAX_ROUNDS} fleet rounds")))
        })
        .collect()
}

/// A pool as the miner holds it.
#[derive(Debug, Clone)]
pub struct Pool {
    pub url: String,
    pub user: String,
}

/// The live figures of a miner at one moment.
#[derive(Debug, Clone)]
pub struct Reading {
    pub uptime_s: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub hw_errors: i64,
    /// Average hashrate since the (re)start, GH/s; 0 when disabled.
    pub ghs_av: f64,
    /// The last five seconds, GH/s; 0 when disabled.
    pub ghs_5s: f64,
    /// Per board, GH/s.
    pub board_ghs: Vec<f64>,
    /// Per board: the board's temperature as the fleet draws it (°C).
    pub board_temp: Vec<f64>,
    pub fans_rpm: Vec<i32>,
    pub frequency_mhz: f64,
    pub power_w: f64,
    pub enabled: bool,
}

/// A miner's mutable state; counters accrue lazily on each `advance`.
#[derive(Debug)]
pub struct State {
    pub nominal: Nominal,
    pub pools: Vec<Pool>,
    pub active_pool: usize,
    pub enabled: bool,
    /// Fan duty set by `ascset fan`, percent; None = automatic.
    pub fan_pct: Option<u32>,
    pub frequency_mhz: f64,
    uptime_s: f64,
    accepted: f64,
    rejected: f64,
    hw_errors: f64,
    last: Instant,
    restarts: u64,
}

impl State {
    pub fn new(nominal: Nominal, now: Instant) -> Self {
        let pools = vec![
            Pool {
                url: nominal.pool_url.clone(),
                user: nominal.worker_name.clone(),
            },
            Pool {
                url: "stratum+tcp://backup.example.com:3333".into(),
                user: nominal.worker_name.clone(),
            },
        ];
        Self {
            pools,
            active_pool: 0,
            enabled: true,
            fan_pct: None,
            frequency_mhz: nominal.frequency_avg,
            uptime_s: nominal.uptime_seconds as f64,
            accepted: nominal.accepted_shares as f64,
            rejected: nominal.rejected_shares as f64,
            hw_errors: nominal.hardware_errors as f64,
            last: now,
            restarts: 0,
            nominal,
        }
    }

    /// Hashrate scale of the current frequency against the nominal one.
    fn scale(&self) -> f64 {
        if !self.enabled || self.nominal.frequency_avg <= 0.0 {
            return 0.0;
        }
        self.frequency_mhz / self.nominal.frequency_avg
    }

    /// Accrues uptime always, shares and errors while hashing.
    pub fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.uptime_s += dt;
        let rate = self.nominal.hashrate_ghs * self.scale() / 110_000.0 * SHARES_PER_S_AT_110TH;
        if rate > 0.0 {
            self.accepted += rate * dt;
            self.rejected += rate * dt * REJECT_RATIO;
            self.hw_errors += HW_ERRORS_PER_S * dt;
        }
    }

    /// `restart`: uptime and counters start again from zero, hashing resumes.
    pub fn restart(&mut self, now: Instant) {
        self.advance(now);
        self.uptime_s = 0.0;
        self.accepted = 0.0;
        self.rejected = 0.0;
        self.hw_errors = 0.0;
        self.enabled = true;
        self.restarts += 1;
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    pub fn active(&self) -> &Pool {
        &self.pools[self.active_pool]
    }

    /// The figures now; `tick` (whole seconds of the clock) varies the 5 s
    /// hashrate and the fans a little, the same for the same tick.
    pub fn reading(&mut self, now: Instant, tick: u64) -> Reading {
        self.advance(now);
        let scale = self.scale();
        let wobble = |salt: u64, span: f64| {
            let h = mix(tick ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.restarts);
            (h % 10_000) as f64 / 10_000.0 * 2.0 * span - span
        };
        let ghs_av = round2(self.nominal.hashrate_ghs * scale);
        let ghs_5s = round2(ghs_av * (1.0 + wobble(1, 0.03)));
        let board_ghs = self
            .nominal
            .boards
            .iter()
            .map(|b| round2(b.hashrate * scale))
            .collect();
        let hot = if self.enabled { 0.0 } else { -20.0 };
        let board_temp = self
            .nominal
            .boards
            .iter()
            .map(|b| round1(b.temp + hot))
            .collect();
        let fans_rpm = self
            .nominal
            .fan_speeds
            .iter()
            .enumerate()
            .map(|(i, &rpm)| match self.fan_pct {
                Some(pct) => (FAN_MAX_RPM * f64::from(pct) / 100.0) as i32,
                None => (f64::from(rpm) * (1.0 + wobble(10 + i as u64, 0.02))) as i32,
            })
            .collect();
        let power_w = if self.enabled {
            round1(self.nominal.power_consumption * (0.2 + 0.8 * scale))
        } else {
            round1(self.nominal.power_consumption * 0.02)
        };
        Reading {
            uptime_s: self.uptime_s as i64,
            accepted: self.accepted as i64,
            rejected: self.rejected as i64,
            hw_errors: self.hw_errors as i64,
            ghs_av,
            ghs_5s,
            board_ghs,
            board_temp,
            fans_rpm,
            frequency_mhz: if self.enabled {
                self.frequency_mhz
            } else {
                0.0
            },
            power_w,
            enabled: self.enabled,
        }
    }
}

/// A 64-bit mix (splitmix64's finaliser): deterministic shares and noise.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_miner_gets_an_online_sample_of_the_fleet() {
        let all = nominals(300, 42).unwrap();
        assert_eq!(all.len(), 300);
        assert!(all.iter().all(|n| n.hashrate_ghs > 0.0 && n.online));
        assert!(all.iter().any(|n| n.shape() == Shape::Whatsminer));
        assert!(all.iter().any(|n| n.shape() == Shape::Antminer));
        let again = nominals(300, 42).unwrap();
        assert_eq!(all[7].miner_id, again[7].miner_id);
        assert_eq!(all[7].hashrate_ghs, again[7].hashrate_ghs);
    }

    #[test]
    fn counters_advance_with_time_and_restart_resets_them() {
        let t0 = Instant::now();
        let n = nominals(1, 1).unwrap().remove(0);
        let mut s = State::new(n, t0);
        let a = s.reading(t0, 0);
        let b = s.reading(t0 + Duration::from_secs(600), 0);
        assert!(b.accepted > a.accepted, "{} -> {}", a.accepted, b.accepted);
        assert_eq!(b.uptime_s - a.uptime_s, 600);
        s.restart(t0 + Duration::from_secs(600));
        let c = s.reading(t0 + Duration::from_secs(610), 0);
        assert_eq!(c.uptime_s, 10);
        assert!(c.accepted < 100, "{}", c.accepted);
    }

    #[test]
    fn a_disabled_miner_hashes_nothing_and_its_shares_stand_still() {
        let t0 = Instant::now();
        let mut s = State::new(nominals(1, 3).unwrap().remove(0), t0);
        s.enabled = false;
        let a = s.reading(t0, 0);
        let b = s.reading(t0 + Duration::from_secs(60), 0);
        assert_eq!((a.ghs_av, a.ghs_5s), (0.0, 0.0));
        assert_eq!(a.accepted, b.accepted);
        assert!(b.uptime_s > a.uptime_s);
    }
}
