//! `collector-cycle`: the edge collector's polling cycle at farm scale, for
//! `make bench`. It polls a running `adit-minersim` farm (miners on
//! `127.0.0.1:<base-port>…`) for a number of cycles on ONE core (a
//! current-thread runtime, the way a small edge box runs it) and writes the
//! cycle times and this process's CPU time per cycle as JSON.
//!
//! The collector's default polling settings are used (concurrency, per-miner
//! deadline, CGMiner timeouts and retries), so what is measured is what a
//! farm gets out of the box.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use adit_collector::cgminer::{Client, Config};
use adit_collector::cycle::{self, CycleConfig};
use anyhow::{bail, Context as _};
use clap::Parser;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "collector-cycle",
    about = "Time the collector's polling cycle over a running adit-minersim farm (one core)"
)]
struct Args {
    /// Miners in the farm (127.0.0.1:base-port … base-port+count-1).
    #[arg(long, default_value_t = 5000)]
    count: u16,
    #[arg(long)]
    base_port: u16,
    /// Cycles measured (after one warm-up cycle).
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Where the figures go (JSON).
    #[arg(long)]
    json: PathBuf,
}

#[derive(Debug, Serialize)]
struct Figures {
    miners: usize,
    cycles: usize,
    cycle_s_median: f64,
    cycle_s_max: f64,
    cpu_s_per_cycle_median: f64,
    online_median: usize,
    offline_median: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.cycles == 0 {
        bail!("--cycles must be at least 1");
    }
    let miners: Vec<SocketAddr> = (0..args.count)
        .map(|i| {
            let port = args.base_port.checked_add(i).context("port past 65535")?;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        })
        .collect::<anyhow::Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(Config::default());
    let config = CycleConfig::default();
    let (mut times, mut cpus, mut online, mut offline) = (vec![], vec![], vec![], vec![]);
    rt.block_on(async {
        let warm = cycle::run(&client, &miners, &config).await;
        eprintln!(
            "  warm-up cycle: {:.2} s, {} online, {} offline",
            warm.elapsed.as_secs_f64(),
            warm.online,
            warm.offline
        );
        for n in 1..=args.cycles {
            let cpu0 = cpu_time()?;
            let c = cycle::run(&client, &miners, &config).await;
            let cpu = cpu_time()?.saturating_sub(cpu0);
            eprintln!(
                "  cycle {n}: {:.2} s, CPU {:.2} s, {} online, {} offline",
                c.elapsed.as_secs_f64(),
                cpu.as_secs_f64(),
                c.online,
                c.offline
            );
            times.push(c.elapsed.as_secs_f64());
            cpus.push(cpu.as_secs_f64());
            online.push(c.online);
            offline.push(c.offline);
        }
        anyhow::Ok(())
    })?;
    let figures = Figures {
        miners: miners.len(),
        cycles: args.cycles,
        cycle_s_median: round3(median(&times)),
        cycle_s_max: round3(times.iter().copied().fold(0.0, f64::max)),
        cpu_s_per_cycle_median: round3(median(&cpus)),
        online_median: median_usize(&online),
        offline_median: median_usize(&offline),
    };
    std::fs::write(&args.json, serde_json::to_vec_pretty(&figures)?)
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    Ok(())
}

/// This process's user + system CPU time (`/proc/self/stat`, clock ticks of
/// 1/100 s).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/self/stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    Ok(Duration::from_millis(ticks * 10))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn median_usize(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
