//! `adit-minersim --count N --base-port P`: N simulated CGMiner miners on
//! 127.0.0.1:P…P+N-1 until ctrl-c or SIGTERM.

use std::net::IpAddr;

use adit_minersim::{Config, Farm, Mode, Shares};
use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "adit-minersim",
    about = "Serve N fake miners over the CGMiner JSON API"
)]
struct Args {
    /// Number of miners.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Miner i listens on base-port + i (0: any free port each).
    #[arg(long, default_value_t = 4028)]
    base_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Serve on a host that is not loopback.
    #[arg(long)]
    allow_remote: bool,
    /// Seeds the fleet model and the draws of modes and quirks.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Put every miner in this mode instead of drawing by the shares.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Share of miners whose port refuses connections.
    #[arg(long, default_value_t = 0.0)]
    dead_share: f64,
    /// Share of miners that accept and never answer.
    #[arg(long, default_value_t = 0.0)]
    hang_share: f64,
    /// Share of miners that answer after --slow-delay.
    #[arg(long, default_value_t = 0.0)]
    slow_share: f64,
    /// Share of miners that are up one --flap-period, down the next.
    #[arg(long, default_value_t = 0.0)]
    flapping_share: f64,
    /// Share of miners that answer truncated JSON.
    #[arg(long, default_value_t = 0.0)]
    malformed_share: f64,
    /// Share of miners with firmware quirks (`}{` in stats, invalid UTF-8,
    /// numbers as strings).
    #[arg(long, default_value_t = 0.25)]
    quirk_share: f64,
    #[arg(long, default_value = "3s")]
    slow_delay: humantime::Duration,
    #[arg(long, default_value = "60s")]
    flap_period: humantime::Duration,
    /// A request must arrive whole within this long.
    #[arg(long, default_value = "5s")]
    read_timeout: humantime::Duration,
    /// Print one line per miner (index, address, mode, shape, model); on by
    /// default with --base-port 0.
    #[arg(long)]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = Config {
        count: args.count,
        base_port: args.base_port,
        host: args.host,
        allow_remote: args.allow_remote,
        seed: args.seed,
        mode: args.mode,
        shares: Shares {
            dead: args.dead_share,
            hang: args.hang_share,
            slow: args.slow_share,
            flapping: args.flapping_share,
            malformed: args.malformed_share,
        },
        quirk_share: args.quirk_share,
        slow_delay: args.slow_delay.into(),
        flap_period: args.flap_period.into(),
        read_timeout: args.read_timeout.into(),
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        // Signals are caught from before the farm is announced: a SIGTERM
        // sent as soon as the miners are listed still ends it cleanly.
        let shutdown = shutdown_signal()?;
        let started = std::time::Instant::now();
        let farm = Farm::start(cfg)
            .await
            .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
        let miners = farm.miners();
        let count = |m: Mode| miners.iter().filter(|x| x.mode == m).count();
        let (first, last) = (miners.first(), miners.last());
        println!(
            "adit-minersim: {} miners on {}..{} in {:?} (dead {}, hang {}, slow {}, flapping {}, malformed {})",
            miners.len(),
            first.map(|m| m.addr.to_string()).unwrap_or_default(),
            last.map(|m| m.addr.port().to_string()).unwrap_or_default(),
            started.elapsed(),
            count(Mode::Dead),
            count(Mode::Hang),
            count(Mode::Slow),
            count(Mode::Flapping),
            count(Mode::Malformed),
        );
        if args.list || args.base_port == 0 {
            // With --base-port 0 the system picked the ports: say which is whose.
            for m in miners {
                println!("miner {} {} {:?} {:?} {}", m.index, m.addr, m.mode, m.shape, m.model);
            }
        }
        shutdown.await;
        farm.shutdown().await;
        Ok(())
    })
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM; the handlers are installed when
/// this is called, not when it is first polled.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
