//! `strategy_executions` and `agent_analysis_results`: the same strategy
//! runs seen twice. Each strategy runs on its cadence (every 1, 5, 15, 60
//! or 240 minutes); a run asks three agents (macro, on-chain, technical)
//! for a score and a confidence, each an LLM call with its model, tokens,
//! cost, reasoning, signals and the input it saw, then combines the scores
//! into a conviction, a BUY/SELL/HOLD signal and what was done with it.
//! Both datasets draw the runs from the same seed, so one run's
//! `execution_id` is in both.

use std::collections::VecDeque;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::RngExt;

use super::{normal, rfc3339, uuid, Steps, MICROS_PER_MINUTE};

/// Strategy, asset, cadence in minutes.
const STRATEGIES: &[(&str, &str, i64)] = &[
    ("btc-momentum-1m", "BTC/USDT", 1),
    ("eth-scalper-1m", "ETH/USDT", 1),
    ("btc-trend-5m", "BTC/USDT", 5),
    ("sol-breakout-5m", "SOL/USDT", 5),
    ("eth-mean-reversion-5m", "ETH/USDT", 5),
    ("multi-asset-rotation-15m", "BTC/USDT", 15),
    ("avax-momentum-15m", "AVAX/USDT", 15),
    ("link-onchain-15m", "LINK/USDT", 15),
    ("btc-macro-1h", "BTC/USDT", 60),
    ("eth-macro-1h", "ETH/USDT", 60),
    ("nvda-earnings-drift-1h", "NVDA", 60),
    ("spy-regime-1h", "SPY", 60),
    ("btc-swing-4h", "BTC/USDT", 240),
    ("eth-swing-4h", "ETH/USDT", 240),
    ("defi-basket-4h", "AAVE/USDT", 240),
    ("gold-hedge-4h", "GLD", 240),
];

const AGENTS: [&str; 3] = ["macro", "onchain", "ta"];
/// How much each agent's score weighs in the conviction.
const WEIGHTS: [f64; 3] = [0.3, 0.3, 0.4];
/// Model and dollars per thousand tokens.
const MODELS: [(&str, f64); 4] = [
    ("gpt-4o", 0.005),
    ("gpt-4o-mini", 0.000_3),
    ("claude-3-5-sonnet", 0.006),
    ("deepseek-chat", 0.000_5),
];
const USERS: usize = 24;

pub(super) fn executions_per_minute() -> f64 {
    STRATEGIES.iter().map(|(_, _, c)| 1.0 / *c as f64).sum()
}

#[derive(Debug)]
pub(super) struct Agents {
    rng: StdRng,
    users: Vec<String>,
    /// Per strategy: the minute offset of its runs within its cadence.
    offsets: Vec<i64>,
    /// A slowly drifting market mood per strategy, which the agents' scores
    /// follow.
    mood: Vec<f64>,
    minute: i64,
    /// `strategy_executions` rows, else `agent_analysis_results` rows.
    executions: bool,
}

impl Agents {
    pub(super) fn new(mut rng: StdRng, start: i64, executions: bool) -> Self {
        let users = (0..USERS).map(|_| uuid(&mut rng)).collect();
        let offsets = STRATEGIES
            .iter()
            .map(|(_, _, c)| rng.random_range(0..*c))
            .collect();
        Self {
            rng,
            users,
            offsets,
            mood: vec![0.0; STRATEGIES.len()],
            minute: start.div_euclid(MICROS_PER_MINUTE) * MICROS_PER_MINUTE,
            executions,
        }
    }
}

fn macro_signals(rng: &mut StdRng, score: f64) -> String {
    let pick = |good: &'static str, bad: &'static str, rng: &mut StdRng| {
        if score + 0.3 * normal(rng) > 0.0 {
            good
        } else {
            bad
        }
    };
    format!(
        r#"{{"etf_flow":"{}","fed_rate":"{}","dxy_trend":"{}","risk_appetite":{:.2}}}"#,
        pick("positive", "negative", rng),
        pick("dovish", "hawkish", rng),
        pick("down", "up", rng),
        (score + 0.2 * normal(rng)).clamp(-1.0, 1.0)
    )
}

fn onchain_signals(rng: &mut StdRng, score: f64) -> String {
    format!(
        r#"{{"exchange_netflow":"{}","whale_accumulation":{},"active_addresses_7d_change":{:.4},"funding_rate":{:.5}}}"#,
        if score > 0.0 { "outflow" } else { "inflow" },
        score + 0.3 * normal(rng) > 0.2,
        0.05 * score + 0.02 * normal(rng),
        0.0001 + 0.0002 * score + 0.0001 * normal(rng)
    )
}

fn ta_signals(rng: &mut StdRng, score: f64, price: f64) -> String {
    format!(
        r#"{{"trend":"{}","rsi_14":{:.2},"macd_cross":"{}","support":{:.2},"resistance":{:.2},"patterns":["{}"]}}"#,
        if score > 0.1 {
            "up"
        } else if score < -0.1 {
            "down"
        } else {
            "sideways"
        },
        (50.0 + 25.0 * score + 5.0 * normal(rng)).clamp(0.0, 100.0),
        if score > 0.0 { "bullish" } else { "bearish" },
        price * (1.0 - rng.random_range(0.01..0.05)),
        price * (1.0 + rng.random_range(0.01..0.05)),
        [
            "higher_lows",
            "double_bottom",
            "range",
            "lower_highs",
            "flag"
        ][rng.random_range(0..5)]
    )
}

const REASONS: [[&str; 3]; 3] = [
    [
        "Liquidity is improving and rate expectations are easing; macro backdrop supportive.",
        "Mixed macro data; no clear direction from rates or flows.",
        "Tightening financial conditions and a firm dollar weigh on risk assets.",
    ],
    [
        "Coins leaving exchanges and large holders accumulating.",
        "On-chain activity flat; flows balanced across exchanges.",
        "Exchange inflows rising and long-term holders distributing.",
    ],
    [
        "Price above both EMAs with a bullish MACD cross; momentum intact.",
        "Price ranging between support and resistance; indicators neutral.",
        "Lower highs under the 55 EMA and a bearish MACD cross.",
    ],
];

fn tone(score: f64) -> usize {
    if score > 0.2 {
        0
    } else if score < -0.2 {
        2
    } else {
        1
    }
}

impl Steps for Agents {
    fn step(&mut self, out: &mut VecDeque<String>) {
        let t = self.minute;
        self.minute += MICROS_PER_MINUTE;
        let m = t / MICROS_PER_MINUTE;
        let rng = &mut self.rng;
        for (s, &(strategy, asset, cadence)) in STRATEGIES.iter().enumerate() {
            if m.rem_euclid(cadence) != self.offsets[s] {
                continue;
            }
            self.mood[s] = (0.97 * self.mood[s] + 0.15 * normal(rng)).clamp(-1.0, 1.0);
            let mood = self.mood[s];
            let at = t + rng.random_range(0..20_000_000);
            let execution_id = uuid(rng);
            let user = self.users[rng.random_range(0..self.users.len())].clone();
            let price = 100.0 * (1.0 + 0.1 * mood) * rng.random_range(0.99..1.01);
            let mut scores = [0.0; 3];
            let (mut total_ms, mut total_tokens, mut total_cost) = (0i64, 0i64, 0.0f64);
            let mut agent_rows = Vec::with_capacity(3);
            for (i, agent) in AGENTS.iter().enumerate() {
                let score = (mood + 0.25 * normal(rng)).clamp(-1.0, 1.0);
                let score = (score * 100.0).round() / 100.0;
                scores[i] = score;
                let confidence = (rng.random_range(0.35..0.95f64) * 100.0).round() / 100.0;
                let (model, per_k) = MODELS[rng.random_range(0..MODELS.len())];
                let tokens = rng.random_range(800..6_000i64);
                let cost = (tokens as f64 / 1000.0 * per_k * 1e6).round() / 1e6;
                let ms = rng.random_range(400..9_000i64);
                total_ms += ms;
                total_tokens += tokens;
                total_cost += cost;
                let signals = match i {
                    0 => macro_signals(rng, score),
                    1 => onchain_signals(rng, score),
                    _ => ta_signals(rng, score, price),
                };
                let closes: Vec<String> = (0..8)
                    .map(|k| format!("{:.2}", price * (1.0 + 0.004 * (k as f64 - 4.0) * mood)))
                    .collect();
                let input = format!(
                    r#"{{"asset":"{asset}","timeframe":"{}","price":{price:.2},"closes":[{}],"as_of":"{}"}}"#,
                    ["1m", "5m", "1h", "4h"][(cadence as f64).log(5.0).clamp(0.0, 3.0) as usize],
                    closes.join(","),
                    rfc3339(t)
                );
                let mut row = String::with_capacity(900);
                let _ = write!(
                    row,
                    r#"{{"timestamp":"{}","execution_id":"{execution_id}","strategy_id":"{strategy}","agent_type":"{agent}","score":{score:.2},"confidence":{confidence:.2},"reasoning":"{}","signals":{signals},"execution_time_ms":{ms},"tokens_used":{tokens},"llm_model":"{model}","llm_cost":{cost:.6},"input_data":{input}}}"#,
                    rfc3339(at + i as i64 * 1000),
                    REASONS[i][tone(score)],
                );
                agent_rows.push(row);
            }
            let conviction: f64 = scores.iter().zip(WEIGHTS).map(|(s, w)| s * w).sum();
            let conviction = (conviction * 100.0).round() / 100.0;
            let signal = if conviction > 0.3 {
                "BUY"
            } else if conviction < -0.3 {
                "SELL"
            } else {
                "HOLD"
            };
            let failed = signal != "HOLD" && rng.random_bool(0.04);
            let (action, status) = match (signal, failed) {
                ("HOLD", _) => ("skipped", "completed"),
                (_, false) => ("executed", "completed"),
                (_, true) => ("failed", "failed"),
            };
            let trade = match action {
                "executed" => format!(r#""{}""#, uuid(rng)),
                _ => "null".to_string(),
            };
            let error = match failed {
                true => r#""exchange rejected the order: insufficient margin""#,
                false => "null",
            };
            let mut row = String::with_capacity(600);
            let _ = write!(
                row,
                r#"{{"timestamp":"{}","execution_id":"{execution_id}","strategy_id":"{strategy}","user_id":"{user}","conviction_score":{conviction:.2},"signal":"{signal}","reasoning":"Weighted agent scores give {conviction:.2} for {asset}.","agent_scores":{{"macro":{:.2},"onchain":{:.2},"ta":{:.2}}},"action_taken":"{action}","trade_id":{trade},"total_execution_time_ms":{},"total_tokens_used":{total_tokens},"total_cost":{total_cost:.6},"status":"{status}","error_message":{error}}}"#,
                rfc3339(at),
                scores[0],
                scores[1],
                scores[2],
                total_ms + rng.random_range(50..400),
            );
            // Both datasets draw every value above, so their runs agree.
            if self.executions {
                out.push_back(row);
            } else {
                out.extend(agent_rows);
            }
        }
    }
}
