//! `adit top`: a terminal view of a running adit, what `vector top` is to
//! Vector. Every `--interval` it reads `/metrics` (rates over the interval,
//! latency percentiles from the histogram, queue, flushes, archive backlog,
//! rollup lag, rows per site) and, with an admin token, the last hour per
//! site from `GET /api/collector/stats`, and redraws one frame. `q` or
//! Ctrl-C quits; `--once` prints a single frame (two scrapes an interval
//! apart, so rates are real) and exits.

mod client;
mod prom;
mod terminal;
mod view;

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use client::Target;
use prom::Scrape;
use view::{Delta, Frame};

/// `adit top` options.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The adit to watch (plain http://host:port).
    #[arg(long, env = "ADIT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin token, for the per-site hour from /api/collector/stats
    /// (without it, sites show rows/s from /metrics only).
    #[arg(long, env = "ADIT_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Time between refreshes.
    #[arg(long, env = "ADIT_TOP_INTERVAL", default_value = "1s")]
    pub interval: humantime::Duration,
    /// Print one frame (rates over one interval) and exit.
    #[arg(long)]
    pub once: bool,
}

/// Shortest refresh interval taken.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.url)?;
    let interval: Duration = args.interval.into();
    if interval < MIN_INTERVAL {
        bail!("--interval {}: at least 100ms", args.interval);
    }
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    if args.once {
        let first = scrape(&target).await?;
        let started = Instant::now();
        tokio::time::sleep(interval).await;
        let now = scrape(&target).await?;
        let seconds = started.elapsed().as_secs_f64();
        let stats = stats(&target, token).await;
        let frame = Frame {
            url: &args.url,
            interval_s: interval.as_secs_f64(),
            clock: clock(),
            now: &now,
            delta: Some(Delta {
                before: &first,
                now: &now,
                seconds,
            }),
            stats,
            ansi: false,
        };
        print!("{}", frame.render());
        return Ok(());
    }
    watch(&args.url, &target, token, interval).await
}

/// Redraws until `q` or Ctrl-C.
async fn watch(
    url: &str,
    target: &Target,
    token: Option<&str>,
    interval: Duration,
) -> anyhow::Result<()> {
    let screen = terminal::Screen::enter()?;
    let mut quit = terminal::quit_keys();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Scrape, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = quit.recv() => break,
            _ = &mut ctrl_c => break,
        }
        let text = match scrape(target).await {
            Ok(now) => {
                let at = Instant::now();
                let stats = stats(target, token).await;
                let text = Frame {
                    url,
                    interval_s: interval.as_secs_f64(),
                    clock: clock(),
                    now: &now,
                    delta: last.as_ref().map(|(before, then)| Delta {
                        before,
                        now: &now,
                        seconds: at.duration_since(*then).as_secs_f64(),
                    }),
                    stats,
                    ansi: screen.ansi(),
                }
                .render();
                last = Some((now, at));
                text
            }
            Err(e) => format!(
                "adit top  {url}  {}\n\ncannot read /metrics: {e:#}\n",
                clock()
            ),
        };
        screen.draw(&text)?;
    }
    drop(screen);
    std::io::stdout().flush()?;
    Ok(())
}

async fn scrape(target: &Target) -> anyhow::Result<Scrape> {
    let (status, body) = target.get("/metrics", None).await?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    Ok(Scrape::parse(&body))
}

/// The last hour per site, when a token is given (an error is shown in
/// the frame, not fatal).
async fn stats(
    target: &Target,
    token: Option<&str>,
) -> Option<Result<Vec<view::SiteHour>, String>> {
    let token = token?;
    Some(
        target
            .get("/api/collector/stats?hours=1", Some(token))
            .await
            .context("stats")
            .map_err(|e| format!("{e:#}"))
            .and_then(|(_, body)| view::parse_stats(&body)),
    )
}

fn clock() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}
