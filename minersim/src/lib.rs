//! adit's CGMiner simulator: N fake miners, one TCP listener each, speaking
//! the CGMiner JSON API (one request in, one JSON document ended by NUL out,
//! then close). Values come from the load generator's fleet model
//! (`adit_load::fleet`); each miner answers in its model's shape (Antminer
//! or Whatsminer) with its firmware's quirks, and a deterministic share of
//! the farm is dead, hanging, slow, flapping or malformed. Privileged
//! commands change the miner: `restart` resets uptime and counters,
//! `addpool` + `switchpool` change the active pool, `enable`/`disable`
//! start and stop hashing, `ascset` sets fan duty and frequency.
//!
//! Listeners bind loopback unless told otherwise; every connection has a
//! read timeout, a request size limit and a per-miner connection cap.

pub mod answer;
pub mod miner;
mod serve;
mod shapes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use answer::{Quirks, Request};
pub use miner::Shape;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind miner {index} on {addr}: {source}")]
    Bind {
        index: usize,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("out of file descriptors at miner {index} of {count}: raise the open-file limit (ulimit -n)")]
    TooManyFiles { index: usize, count: usize },
    #[error("{host} is not a loopback address; allow it explicitly to serve off this machine")]
    NotLoopback { host: IpAddr },
    #[error("ports {base}..{base}+{count} run past 65535")]
    PortRange { base: u16, count: usize },
    #[error("shares add up to {sum}, more than 1")]
    Shares { sum: f64 },
    #[error("fleet model: {0}")]
    Fleet(String),
}

impl Error {
    /// A machine-readable code for logs and exit messages.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "bind_failed",
            Self::TooManyFiles { .. } => "too_many_files",
            Self::NotLoopback { .. } => "not_loopback",
            Self::PortRange { .. } => "port_range",
            Self::Shares { .. } => "bad_shares",
            Self::Fleet(_) => "fleet_model",
        }
    }
}

/// How a miner behaves on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Answers every request at once.
    Normal,
    /// Nothing listens on its port: connections are refused.
    Dead,
    /// Accepts and reads, never answers; closes after the hang limit.
    Hang,
    /// Answers after `slow_delay`.
    Slow,
    /// Up for one `flap_period`, down (connection closed unanswered) the next.
    Flapping,
    /// Answers with the first half of the document, then NUL and close.
    Malformed,
}

/// Shares of the farm in each mode; the rest is normal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shares {
    pub dead: f64,
    pub hang: f64,
    pub slow: f64,
    pub flapping: f64,
    pub malformed: f64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub count: usize,
    /// Miner i listens on base_port + i; 0 = any free port per miner.
    pub base_port: u16,
    pub host: IpAddr,
    /// Serve on a non-loopback host.
    pub allow_remote: bool,
    /// Seeds the fleet model and the mode and quirk draws.
    pub seed: u64,
    /// Every miner in this mode; None = drawn by `shares`.
    pub mode: Option<Mode>,
    pub shares: Shares,
    /// Share of miners with every firmware quirk (the others answer clean JSON).
    pub quirk_share: f64,
    pub slow_delay: Duration,
    pub flap_period: Duration,
    /// A hanging miner closes the connection after this long.
    pub hang_limit: Duration,
    /// A request must arrive whole within this long.
    pub read_timeout: Duration,
    pub max_request_bytes: usize,
    /// Connections served at once per miner; more are closed unanswered.
    pub max_connections_per_miner: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            count: 10,
            base_port: 4028,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            allow_remote: false,
            seed: 42,
            mode: None,
            shares: Shares::default(),
            quirk_share: 0.25,
            slow_delay: Duration::from_secs(3),
            flap_period: Duration::from_secs(60),
            hang_limit: Duration::from_secs(120),
            read_timeout: Duration::from_secs(5),
            max_request_bytes: 8192,
            max_connections_per_miner: 8,
        }
    }
}

impl Config {
    /// Small and quick for tests: ephemeral ports, short delays.
    pub fn test_config(count: usize) -> Self {
        Self {
            count,
            base_port: 0,
            slow_delay: Duration::from_millis(700),
            flap_period: Duration::from_secs(1),
            hang_limit: Duration::from_secs(10),
            read_timeout: Duration::from_secs(2),
            ..Self::default()
        }
    }

    /// Miner `index`'s mode: `mode` if set, else a deterministic draw.
    pub fn mode_of(&self, index: usize) -> Mode {
        if let Some(m) = self.mode {
            return m;
        }
        let u = unit(self.seed, index, 1);
        let s = self.shares;
        let bands = [
            (s.dead, Mode::Dead),
            (s.hang, Mode::Hang),
            (s.slow, Mode::Slow),
            (s.flapping, Mode::Flapping),
            (s.malformed, Mode::Malformed),
        ];
        let mut edge = 0.0;
        for (share, mode) in bands {
            edge += share;
            if u < edge {
                return mode;
            }
        }
        Mode::Normal
    }

    pub fn quirks_of(&self, index: usize) -> Quirks {
        if unit(self.seed, index, 2) < self.quirk_share {
            Quirks::ALL
        } else {
            Quirks::default()
        }
    }

    fn check(&self) -> Result<()> {
        if !self.host.is_loopback() && !self.allow_remote {
            return Err(Error::NotLoopback { host: self.host });
        }
        if self.base_port != 0 && usize::from(self.base_port) + self.count > 65_536 {
            return Err(Error::PortRange {
                base: self.base_port,
                count: self.count,
            });
        }
        let s = self.shares;
        let sum = s.dead + s.hang + s.slow + s.flapping + s.malformed;
        if sum > 1.0 + 1e-9
            || [s.dead, s.hang, s.slow, s.flapping, s.malformed]
                .iter()
                .any(|x| *x < 0.0)
        {
            return Err(Error::Shares { sum });
        }
        Ok(())
    }
}

/// A uniform draw in [0, 1) for (seed, miner, purpose).
fn unit(seed: u64, index: usize, purpose: u64) -> f64 {
    let h = miner::mix(seed ^ miner::mix(index as u64 ^ (purpose << 56)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What a test or the operator may know of one simulated miner.
#[derive(Debug, Clone)]
pub struct MinerInfo {
    pub index: usize,
    pub addr: SocketAddr,
    pub mode: Mode,
    pub shape: Shape,
    pub quirks: Quirks,
    pub miner_id: String,
    pub model: String,
}

/// A miner's state as a test may check it, beside what the wire says.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The fleet sample the miner started from (model, hashrates, boards).
    pub nominal: miner::Nominal,
    pub active_pool_url: String,
    pub enabled: bool,
    pub restarts: u64,
    pub fan_pct: Option<u32>,
    pub frequency_mhz: f64,
}

/// A running farm; dropping it (or `shutdown`) stops every listener.
#[derive(Debug)]
pub struct Farm {
    miners: Vec<MinerInfo>,
    /// None for a dead miner (nothing serves it).
    states: Vec<Option<Arc<Mutex<miner::State>>>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Farm {
    /// Binds every miner's listener and starts serving.
    pub async fn start(cfg: Config) -> Result<Farm> {
        cfg.check()?;
        let nominals = miner::nominals(cfg.count, cfg.seed)?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut miners = Vec::with_capacity(cfg.count);
        let mut states = Vec::with_capacity(cfg.count);
        let started = Instant::now();
        let cfg = Arc::new(cfg);
        for (index, nominal) in nominals.into_iter().enumerate() {
            let port = match cfg.base_port {
                0 => 0,
                base => base + index as u16,
            };
            let want = SocketAddr::new(cfg.host, port);
            let listener = TcpListener::bind(want).await.map_err(|source| {
                // EMFILE: every listening miner holds a descriptor.
                if source.raw_os_error() == Some(24) {
                    Error::TooManyFiles {
                        index,
                        count: cfg.count,
                    }
                } else {
                    Error::Bind {
                        index,
                        addr: want,
                        source,
                    }
                }
            })?;
            let addr = listener.local_addr().map_err(|source| Error::Bind {
                index,
                addr: want,
                source,
            })?;
            let info = MinerInfo {
                index,
                addr,
                mode: cfg.mode_of(index),
                shape: nominal.shape(),
                quirks: cfg.quirks_of(index),
                miner_id: nominal.miner_id.clone(),
                model: nominal.model.clone(),
            };
            if info.mode == Mode::Dead {
                // Nothing listens: the port refuses connections.
                drop(listener);
                states.push(None);
            } else {
                let state = Arc::new(Mutex::new(miner::State::new(nominal, started)));
                let sim = serve::Miner {
                    info: info.clone(),
                    state: state.clone(),
                    cfg: cfg.clone(),
                    started,
                };
                tasks.spawn(serve::listen(listener, sim, stopped.clone()));
                states.push(Some(state));
            }
            miners.push(info);
        }
        Ok(Farm {
            miners,
            states,
            stop,
            tasks,
        })
    }

    pub fn miners(&self) -> &[MinerInfo] {
        &self.miners
    }

    /// Miner `index`'s state now; None for a dead miner or a wrong index.
    pub fn snapshot(&self, index: usize) -> Option<Snapshot> {
        let state = self.states.get(index)?.as_ref()?;
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        Some(Snapshot {
            nominal: s.nominal.clone(),
            active_pool_url: s.active().url.clone(),
            enabled: s.enabled,
            restarts: s.restarts(),
            fan_pct: s.fan_pct,
            frequency_mhz: s.frequency_mhz,
        })
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.miners.iter().map(|m| m.addr).collect()
    }

    /// Stops accepting and waits for the listeners to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
