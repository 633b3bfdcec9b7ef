//! `market_data`: bars of a few dozen assets at every timeframe. Each
//! asset's price walks minute by minute (geometric, its own volatility);
//! the 1m bars are aggregated into 5m, 1h, 4h and 1d bars, each sent when
//! it closes, stamped with its start (aligned to its timeframe). Prices are
//! in cents, so a bar's high and low hold its open and close exactly.
//! Indicators (EMA 21/55, RSI 14, MACD 12/26 with its 9-bar signal,
//! Bollinger 20 ± 2σ) come from each series' own closes; those that need
//! more bars than the series has are left out (null).
//!
//! A share of bars goes out first as a preliminary version (a close
//! within the bar's range, part of its volume) and again, a few minutes
//! later, final: the same key with new values, as exchanges correct bars.

use std::collections::VecDeque;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::RngExt;

use super::{normal, rfc3339, Steps, MICROS_PER_MINUTE};

/// Symbol, starting price, volatility per minute, volume per minute.
pub(super) const ASSETS: &[(&str, f64, f64, f64)] = &[
    ("BTC/USDT", 64_000.0, 0.0009, 35.0),
    ("ETH/USDT", 3_100.0, 0.0012, 420.0),
    ("SOL/USDT", 150.0, 0.0018, 9_000.0),
    ("BNB/USDT", 560.0, 0.0011, 1_100.0),
    ("AVAX/USDT", 34.0, 0.0020, 12_000.0),
    ("LINK/USDT", 15.5, 0.0019, 30_000.0),
    ("DOT/USDT", 7.2, 0.0017, 40_000.0),
    ("LTC/USDT", 82.0, 0.0014, 3_000.0),
    ("BCH/USDT", 460.0, 0.0015, 700.0),
    ("ATOM/USDT", 8.6, 0.0018, 25_000.0),
    ("UNI/USDT", 9.8, 0.0021, 22_000.0),
    ("AAVE/USDT", 120.0, 0.0019, 1_500.0),
    ("INJ/USDT", 26.0, 0.0024, 9_000.0),
    ("NEAR/USDT", 6.1, 0.0022, 60_000.0),
    ("APT/USDT", 9.0, 0.0021, 30_000.0),
    ("FIL/USDT", 5.8, 0.0020, 40_000.0),
    ("ETC/USDT", 27.0, 0.0016, 8_000.0),
    ("TAO/USDT", 420.0, 0.0026, 300.0),
    ("MKR/USDT", 2_400.0, 0.0017, 60.0),
    ("COMP/USDT", 55.0, 0.0019, 2_000.0),
    ("AAPL", 190.0, 0.0006, 80_000.0),
    ("MSFT", 410.0, 0.0005, 40_000.0),
    ("NVDA", 120.0, 0.0011, 600_000.0),
    ("TSLA", 250.0, 0.0012, 200_000.0),
    ("AMZN", 180.0, 0.0007, 90_000.0),
    ("GOOGL", 170.0, 0.0007, 50_000.0),
    ("META", 500.0, 0.0009, 30_000.0),
    ("SPY", 540.0, 0.0003, 150_000.0),
    ("QQQ", 460.0, 0.0004, 90_000.0),
    ("GLD", 215.0, 0.0003, 20_000.0),
];

/// Timeframes and their length in minutes.
const TIMEFRAMES: [(&str, i64); 5] = [("1m", 1), ("5m", 5), ("1h", 60), ("4h", 240), ("1d", 1440)];
/// Share of bars sent first preliminary, then corrected.
pub(super) const CORRECTED_SHARE: f64 = 0.03;
const SOURCES: [&str; 3] = ["binance", "coinbase", "kraken"];
const EQUITY_SOURCE: &str = "polygon";

/// A bar in cents (volume in units of 1e-8).
#[derive(Debug, Clone, Copy)]
struct Bar {
    start: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
}

/// An exponential moving average.
#[derive(Debug, Clone, Copy)]
struct Ema {
    k: f64,
    value: Option<f64>,
}

impl Ema {
    fn new(n: u32) -> Self {
        Self {
            k: 2.0 / (f64::from(n) + 1.0),
            value: None,
        }
    }

    fn push(&mut self, x: f64) -> f64 {
        let v = match self.value {
            None => x,
            Some(v) => v + self.k * (x - v),
        };
        self.value = Some(v);
        v
    }
}

/// The indicator state of one series.
#[derive(Debug, Clone)]
struct Indicators {
    ema21: Ema,
    ema55: Ema,
    ema12: Ema,
    ema26: Ema,
    signal: Ema,
    prev_close: Option<f64>,
    /// Wilder's averages of gains and losses, after 14 changes.
    gains: f64,
    losses: f64,
    changes: u32,
    last20: VecDeque<f64>,
}

/// A bar's indicator values.
#[derive(Debug, Clone, Copy, Default)]
struct Values {
    ema21: f64,
    ema55: f64,
    rsi: Option<f64>,
    macd: f64,
    signal: f64,
    bb: Option<(f64, f64, f64)>,
}

impl Indicators {
    fn new() -> Self {
        Self {
            ema21: Ema::new(21),
            ema55: Ema::new(55),
            ema12: Ema::new(12),
            ema26: Ema::new(26),
            signal: Ema::new(9),
            prev_close: None,
            gains: 0.0,
            losses: 0.0,
            changes: 0,
            last20: VecDeque::with_capacity(21),
        }
    }

    fn push(&mut self, close: f64) -> Values {
        if let Some(prev) = self.prev_close {
            let (gain, loss) = ((close - prev).max(0.0), (prev - close).max(0.0));
            self.changes += 1;
            if self.changes <= 14 {
                self.gains += gain / 14.0;
                self.losses += loss / 14.0;
            } else {
                self.gains = (self.gains * 13.0 + gain) / 14.0;
                self.losses = (self.losses * 13.0 + loss) / 14.0;
            }
        }
        self.prev_close = Some(close);
        let rsi = (self.changes >= 14).then(|| {
            if self.losses == 0.0 {
                100.0
            } else {
                100.0 - 100.0 / (1.0 + self.gains / self.losses)
            }
        });
        let macd = self.ema12.push(close) - self.ema26.push(close);
        self.last20.push_back(close);
        if self.last20.len() > 20 {
            self.last20.pop_front();
        }
        let bb = (self.last20.len() == 20).then(|| {
            let mean = self.last20.iter().sum::<f64>() / 20.0;
            let var = self.last20.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0;
            let sd = var.sqrt();
            (mean + 2.0 * sd, mean, mean - 2.0 * sd)
        });
        Values {
            ema21: self.ema21.push(close),
            ema55: self.ema55.push(close),
            rsi,
            macd,
            signal: self.signal.push(macd),
            bb,
        }
    }
}

#[derive(Debug)]
struct Series {
    /// The bar being built (timeframes above 1m).
    building: Option<Bar>,
    indicators: Indicators,
}

#[derive(Debug)]
struct Asset {
    symbol: &'static str,
    source: &'static str,
    cents: i64,
    vol: f64,
    volume: f64,
    /// One series per timeframe.
    series: Vec<Series>,
}

#[derive(Debug)]
pub(super) struct Market {
    rng: StdRng,
    assets: Vec<Asset>,
    minute: i64,
    /// Final versions of preliminary bars, with the minute they go out.
    corrections: VecDeque<(i64, String)>,
}

impl Market {
    pub(super) fn new(mut rng: StdRng, start: i64) -> Self {
        let assets = ASSETS
            .iter()
            .map(|&(symbol, price, vol, volume)| Asset {
                symbol,
                source: if symbol.contains('/') {
                    SOURCES[rng.random_range(0..SOURCES.len())]
                } else {
                    EQUITY_SOURCE
                },
                cents: (price * rng.random_range(0.9..1.1) * 100.0).round() as i64,
                vol,
                volume,
                series: TIMEFRAMES
                    .iter()
                    .map(|_| Series {
                        building: None,
                        indicators: Indicators::new(),
                    })
                    .collect(),
            })
            .collect();
        Self {
            rng,
            assets,
            minute: start.div_euclid(MICROS_PER_MINUTE) * MICROS_PER_MINUTE,
            corrections: VecDeque::new(),
        }
    }
}

/// The 1m bar of an asset starting at `start`: a few steps of its walk.
fn minute_bar(rng: &mut StdRng, a: &mut Asset, start: i64) -> Bar {
    let open = a.cents;
    let (mut high, mut low, mut price) = (open, open, open as f64);
    for _ in 0..4 {
        price *= (a.vol / 2.0 * normal(rng)).exp();
        let c = (price.round() as i64).max(1);
        high = high.max(c);
        low = low.min(c);
    }
    let close = (price.round() as i64).max(1);
    a.cents = close;
    let hour = start.rem_euclid(86_400_000_000) as f64 / 3_600_000_000.0;
    let activity = 1.0 + 0.4 * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos();
    let volume = a.volume * activity * (0.5 * normal(rng)).exp();
    Bar {
        start,
        open,
        high,
        low,
        close,
        volume: (volume * 1e8).round() as i64,
    }
}

fn cents(x: i64) -> String {
    format!("{}.{:02}", x / 100, x % 100)
}

fn price(x: f64) -> String {
    format!("{x:.2}")
}

fn row(symbol: &str, tf: &str, bar: &Bar, v: &Values, source: &str) -> String {
    let mut out = String::with_capacity(420);
    let _ = write!(
        out,
        r#"{{"timestamp":"{}","asset":"{}","timeframe":"{tf}","open":{},"high":{},"low":{},"close":{},"volume":{}.{:08},"ema_21":{},"ema_55":{},"rsi_14":"#,
        rfc3339(bar.start),
        symbol,
        cents(bar.open),
        cents(bar.high),
        cents(bar.low),
        cents(bar.close),
        bar.volume / 100_000_000,
        bar.volume % 100_000_000,
        price(v.ema21),
        price(v.ema55),
    );
    match v.rsi {
        Some(r) => out.push_str(&format!("{r:.2}")),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        r#","macd":{},"macd_signal":{},"#,
        price(v.macd),
        price(v.signal)
    );
    match v.bb {
        Some((u, m, l)) => {
            let _ = write!(
                out,
                r#""bb_upper":{},"bb_middle":{},"bb_lower":{},"#,
                price(u),
                price(m),
                price(l)
            );
        }
        None => out.push_str(r#""bb_upper":null,"bb_middle":null,"bb_lower":null,"#),
    }
    let _ = write!(out, r#""source":"{source}"}}"#);
    out
}

impl Steps for Market {
    fn step(&mut self, out: &mut VecDeque<String>) {
        let t = self.minute;
        self.minute += MICROS_PER_MINUTE;
        while self.corrections.front().is_some_and(|(due, _)| *due <= t) {
            let (_, row) = self.corrections.pop_front().expect("checked");
            out.push_back(row);
        }
        let rng = &mut self.rng;
        let mut pending: Vec<(i64, String)> = Vec::new();
        for a in &mut self.assets {
            let one = minute_bar(rng, a, t);
            let (symbol, source) = (a.symbol, a.source);
            for (i, &(tf, minutes)) in TIMEFRAMES.iter().enumerate() {
                let bar = if minutes == 1 {
                    one
                } else {
                    let b = a.series[i].building.get_or_insert(Bar {
                        start: t.div_euclid(minutes * MICROS_PER_MINUTE)
                            * (minutes * MICROS_PER_MINUTE),
                        open: one.open,
                        high: one.high,
                        low: one.low,
                        close: one.close,
                        volume: 0,
                    });
                    b.high = b.high.max(one.high);
                    b.low = b.low.min(one.low);
                    b.close = one.close;
                    b.volume += one.volume;
                    let closes = (t + MICROS_PER_MINUTE) % (minutes * MICROS_PER_MINUTE) == 0;
                    if !closes {
                        continue;
                    }
                    a.series[i].building.take().expect("just built")
                };
                let state = &mut a.series[i].indicators;
                if rng.random_bool(CORRECTED_SHARE) {
                    // First a preliminary version, then the final one.
                    let prelim = Bar {
                        close: rng.random_range(bar.low..=bar.high),
                        volume: (bar.volume as f64 * rng.random_range(0.6..0.95)) as i64,
                        ..bar
                    };
                    let v = state.clone().push(prelim.close as f64 / 100.0);
                    out.push_back(row(symbol, tf, &prelim, &v, source));
                    let v = state.push(bar.close as f64 / 100.0);
                    let due = t + rng.random_range(1..=5) * MICROS_PER_MINUTE;
                    pending.push((due, row(symbol, tf, &bar, &v, source)));
                } else {
                    let v = state.push(bar.close as f64 / 100.0);
                    out.push_back(row(symbol, tf, &bar, &v, source));
                }
            }
        }
        self.corrections.extend(pending);
        self.corrections
            .make_contiguous()
            .sort_by_key(|(due, _)| *due);
    }
}
