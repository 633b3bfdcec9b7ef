//! CGMiner API answers of one miner → one upload [`Sample`].
//!
//! Antminer (bmminer: `summary`, `stats`, `pools`) and Whatsminer (btminer:
//! `summary`, `devs`, `pools`, `devdetails`) name the same things
//! differently; the rules per field are on `antminer` and `whatsminer`
//! below. Every number is read leniently: a JSON number or a string holding
//! one (`"37603.30"`); an empty string, `"inf"` or `"nan"` is absent.

use serde_json::{Map, Value};

use crate::cgminer::ReadCommand;
use crate::error::Error;
use crate::sample::{truncate_chars, Board, Sample, MAX_ERROR_MESSAGE_CHARS};

/// What one poll of a miner brought back; a command that failed has no
/// answer and its error in `errors`.
#[derive(Debug, Default)]
pub struct Answers {
    pub summary: Option<Value>,
    pub stats: Option<Value>,
    pub pools: Option<Value>,
    pub devs: Option<Value>,
    pub devdetails: Option<Value>,
    pub version: Option<Value>,
    pub errors: Vec<Error>,
}

impl Answers {
    /// Where the answer to `command` is kept: `edevs` shares `devs`'s slot,
    /// and the answers the normaliser does not read share `version`'s.
    pub(crate) fn slot(&mut self, command: ReadCommand) -> &mut Option<Value> {
        match command {
            ReadCommand::Summary => &mut self.summary,
            ReadCommand::Stats => &mut self.stats,
            ReadCommand::Pools => &mut self.pools,
            ReadCommand::Devs | ReadCommand::Edevs => &mut self.devs,
            ReadCommand::Devdetails => &mut self.devdetails,
            ReadCommand::Version
            | ReadCommand::Config
            | ReadCommand::Coin
            | ReadCommand::Asccount => &mut self.version,
        }
    }
}

/// The firmware family an answer set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    Antminer,
    Whatsminer,
    /// Another CGMiner firmware: only the common `summary` and `pools` fields.
    Other,
}

/// Whatsminer's `summary` counts in MH/s and has fields Antminer lacks.
pub fn looks_like_whatsminer(summary: &Value) -> bool {
    first(Some(summary), "SUMMARY").is_some_and(|s| {
        !s.contains_key("GHS av")
            && s.contains_key("MHS av")
            && ["Factory GHS", "Fan Speed In", "Chip Temp Avg", "Power Mode"]
                .iter()
                .any(|k| s.contains_key(*k))
    })
}

pub fn make_of(answers: &Answers) -> Make {
    if answers.summary.as_ref().is_some_and(looks_like_whatsminer)
        || rows(answers.devs.as_ref(), "DEVS").any(|d| d.contains_key("Effective Chips"))
    {
        return Make::Whatsminer;
    }
    let antminer_stats = rows(answers.stats.as_ref(), "STATS").any(|s| {
        s.get("Type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("Antminer"))
            || s.contains_key("BMMiner")
            || s.contains_key("chain_acn1")
            || s.contains_key("chain")
    });
    if antminer_stats {
        Make::Antminer
    } else {
        Make::Other
    }
}

/// One sample from one poll. `timestamp` is when the miner was asked.
pub fn normalize(
    miner_id: &str,
    ip_address: Option<&str>,
    answers: &Answers,
    timestamp: i64,
) -> Sample {
    let answered = answers.summary.is_some() || answers.stats.is_some() || answers.devs.is_some();
    if !answered {
        let why = match answers.errors.first() {
            Some(e) => e.to_string(),
            None => "no answer".to_owned(),
        };
        return Sample::offline(miner_id, ip_address, timestamp, &why);
    }
    let mut sample = Sample {
        miner_id: miner_id.to_owned(),
        ip_address: ip_address.map(str::to_owned),
        online: true,
        timestamp,
        ..Sample::default()
    };
    common(&mut sample, answers);
    match make_of(answers) {
        Make::Antminer => antminer(&mut sample, answers),
        Make::Whatsminer => whatsminer(&mut sample, answers),
        Make::Other => {}
    }
    finish(&mut sample, answers);
    sample
}

/// Fields every CGMiner firmware names the same way.
fn common(sample: &mut Sample, answers: &Answers) {
    if let Some(s) = first(answers.summary.as_ref(), "SUMMARY") {
        sample.accepted_shares = int_of(s, &["Accepted"]);
        sample.rejected_shares = int_of(s, &["Rejected"]);
        sample.hardware_errors = int_of(s, &["Hardware Errors"]);
        sample.uptime_seconds = int_of(s, &["Elapsed"]);
    }
    if let Some(pool) = active_pool(answers.pools.as_ref()) {
        sample.pool_url = text_of(pool, &["URL"]);
        sample.worker_name = text_of(pool, &["User"]);
    }
}

/// Antminer S19/S21 (bmminer). `summary`: `GHS 30m` (else `GHS av`) →
/// hashrate, `GHS 5s`. `stats`, the element with the counters: per chain N
/// `chain_rateN` (GH/s, often a string), `chain_acnN` (chips found),
/// `chain_acsN` (one character per chip: `o` good, `x` bad, `-` missing),
/// `temp_chipN` / `temp_pcbN` (`"78-50-69-70"`, zeros are absent sensors;
/// older firmware: `temp2_N` / `tempN`), `fanN` up to `fan_num`,
/// `total_freqavg`, `total_rateideal` in `rate_unit`. The element with `Type`
/// gives the model and `CompileTime` the firmware. The `new_api` shape (a
/// `chain` array with `rate_real`, `asic_num`, `temp_pcb`, `temp_chip`) is read too.
fn antminer(sample: &mut Sample, answers: &Answers) {
    let summary = first(answers.summary.as_ref(), "SUMMARY");
    let stats: Vec<&Map<String, Value>> = rows(answers.stats.as_ref(), "STATS").collect();
    let info = stats.iter().find(|s| s.contains_key("Type")).copied();
    let counters = stats
        .iter()
        .find(|s| {
            s.contains_key("chain_acn1") || s.contains_key("fan1") || s.contains_key("Elapsed")
        })
        .copied();
    let chains = stats
        .iter()
        .find_map(|s| s.get("chain").and_then(Value::as_array));

    sample.hashrate_ghs = summary
        .and_then(|s| num_of(s, &["GHS 30m", "GHS av"]))
        .or_else(|| counters.and_then(|c| num_of(c, &["rate_30m", "GHS av", "total rate"])));
    sample.hashrate_5s_ghs = summary
        .and_then(|s| num_of(s, &["GHS 5s"]))
        .or_else(|| counters.and_then(|c| num_of(c, &["GHS 5s"])));
    if let Some(info) = info {
        sample.model = text_of(info, &["Type"]);
        sample.firmware_version = text_of(info, &["CompileTime", "Miner"]);
    }

    let mut chip_temps = Vec::new();
    let mut pcb_temps = Vec::new();
    if let Some(c) = counters {
        let scale = rate_unit_in_ghs(c.get("rate_unit"));
        sample.hashrate_expected_ghs = num_of(c, &["total_rateideal"]).map(|r| r * scale);
        sample.uptime_seconds = sample.uptime_seconds.or_else(|| int_of(c, &["Elapsed"]));
        sample.fan_speeds = antminer_fans(c);
        let freqs: Vec<f64> = (1..=16)
            .filter_map(|i| num_of(c, &[&format!("freq{i}")]))
            .filter(|&f| f > 0.0)
            .collect();
        sample.frequency_avg = num_of(c, &["total_freqavg", "frequency"])
            .filter(|&f| f > 0.0)
            .or_else(|| mean(&freqs));
        if sample.hardware_errors.is_none() {
            let hw: Vec<i64> = (1..=16)
                .filter_map(|i| int_of(c, &[&format!("chain_hw{i}")]))
                .collect();
            sample.hardware_errors = (!hw.is_empty()).then(|| hw.iter().sum());
        }
        for i in 1..=16 {
            let acn = int_of(c, &[&format!("chain_acn{i}")]);
            let rate = num_of(c, &[&format!("chain_rate{i}")]);
            let acs = c
                .get(&format!("chain_acs{i}"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if acn.unwrap_or(0) == 0 && rate.unwrap_or(0.0) == 0.0 && acs.trim().is_empty() {
                continue;
            }
            let chips = sensor_list(c.get(&format!("temp_chip{i}")))
                .or_else(|| sensor_list(c.get(&format!("temp2_{i}"))))
                .unwrap_or_default();
            let pcb = sensor_list(c.get(&format!("temp_pcb{i}")))
                .or_else(|| sensor_list(c.get(&format!("temp{i}"))))
                .unwrap_or_default();
            let (chips_ok, chips_total) = chip_counts(acs, acn);
            sample.boards.push(Board {
                id: i - 1,
                hashrate: rate,
                temp: max(&pcb),
                chips_ok,
                chips_total,
            });
            chip_temps.extend(chips);
            pcb_temps.extend(pcb);
        }
    }
    if sample.boards.is_empty() {
        for chain in chains.into_iter().flatten() {
            let Some(chain) = chain.as_object() else {
                continue;
            };
            let chips = sensor_list(chain.get("temp_chip")).unwrap_or_default();
            let pcb = sensor_list(chain.get("temp_pcb")).unwrap_or_default();
            sample.boards.push(Board {
                id: int_of(chain, &["index"]).unwrap_or(sample.boards.len() as i64),
                hashrate: num_of(chain, &["rate_real"]),
                temp: max(&pcb),
                chips_ok: int_of(chain, &["asic_num"]),
                chips_total: None,
            });
            chip_temps.extend(chips);
            pcb_temps.extend(pcb);
        }
    }
    // A failed sensor's reading (255 °C) does not skew the aggregates; it
    // is dropped from the list and named by `limits::fit`.
    let source = if chip_temps.is_empty() {
        &pcb_temps
    } else {
        &chip_temps
    };
    let temps: Vec<f64> = source
        .iter()
        .copied()
        .filter(|&t| limits::plausible_temperature(t))
        .collect();
    sample.temperature_avg = mean(&temps).map(round1);
    sample.temperature_min = min(&temps);
    sample.temperature_max = max(&temps);
    sample.temperature_chips = chip_temps;
}

/// `fan1…fanN` with N from `fan_num` (a stopped fan reports 0 and counts);
/// without `fan_num`, the fans that report a speed.
fn antminer_fans(c: &Map<String, Value>) -> Vec<i64> {
    match int_of(c, &["fan_num"]) {
        Some(n) if (1..=16).contains(&n) => (1..=n)
            .map(|i| int_of(c, &[&format!("fan{i}")]).unwrap_or(0))
            .collect(),
        _ => (1..=16)
            .filter_map(|i| int_of(c, &[&format!("fan{i}")]))
            .filter(|&rpm| rpm > 0)
            .collect(),
    }
}

/// Chips good and in all from the `chain_acs` string; without it, the
/// `chain_acn` count as good and the total unknown.
fn chip_counts(acs: &str, acn: Option<i64>) -> (Option<i64>, Option<i64>) {
    let total = acs.chars().filter(|c| matches!(c, 'o' | 'x' | '-')).count() as i64;
    if total == 0 {
        return (acn, None);
    }
    let ok = acs.chars().filter(|&c| c == 'o').count() as i64;
    (Some(ok), Some(total))
}

/// Whatsminer M50 (btminer). `summary`: `MHS 15m` (else `MHS 5m`, `MHS 1m`,
/// `MHS av`) → hashrate, `MHS 5s`, all MH/s; `Factory GHS` (else `Target
/// MHS`) → expected; `Chip Temp Avg/Min/Max`; `Fan Speed In` and `Fan Speed
/// Out`; `Power` (else `Power_RT`) in W; `freq_avg`; `Firmware Version`
/// (quoted, `'20210322.22.REL'`); `Error Code Count` and `Error Code N`.
/// `devs`, one row per board: `ASC` (else `Slot`), `MHS 1m` (else `MHS av`),
/// `Temperature` (the board), `Chip Temp Avg`, `Effective Chips`,
/// `Chip Frequency`. `devdetails`: `Model`. The API does not report chips
/// per board expected, so `chips_total` stays absent.
fn whatsminer(sample: &mut Sample, answers: &Answers) {
    let summary = first(answers.summary.as_ref(), "SUMMARY");
    let devs: Vec<&Map<String, Value>> = rows(answers.devs.as_ref(), "DEVS").collect();
    let mhs_to_ghs = |v: f64| v / 1000.0;

    if let Some(s) = summary {
        sample.hashrate_ghs = num_of(s, &["MHS 15m", "MHS 5m", "MHS 1m", "MHS av"]).map(mhs_to_ghs);
        sample.hashrate_5s_ghs = num_of(s, &["MHS 5s"]).map(mhs_to_ghs);
        sample.hashrate_expected_ghs =
            num_of(s, &["Factory GHS"]).or_else(|| num_of(s, &["Target MHS"]).map(mhs_to_ghs));
        sample.temperature_avg = num_of(s, &["Chip Temp Avg"]).map(round1);
        sample.temperature_min = num_of(s, &["Chip Temp Min"]);
        sample.temperature_max = num_of(s, &["Chip Temp Max"]);
        sample.fan_speeds = ["Fan Speed In", "Fan Speed Out"]
            .iter()
            .filter_map(|k| int_of(s, &[k]))
            .collect();
        sample.power_consumption = num_of(s, &["Power", "Power_RT"]).filter(|&w| w > 0.0);
        sample.frequency_avg = num_of(s, &["freq_avg"]).filter(|&f| f > 0.0);
        sample.firmware_version = text_of(s, &["Firmware Version"])
            .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_owned())
            .filter(|v| !v.is_empty());
        sample.error_message = whatsminer_error_codes(s);
    }
    if sample.fan_speeds.is_empty() {
        if let Some(d) = devs.first() {
            sample.fan_speeds = ["Fan Speed In", "Fan Speed Out"]
                .iter()
                .filter_map(|k| int_of(d, &[k]))
                .collect();
        }
    }
    let mut chip_avgs = Vec::new();
    let mut freqs = Vec::new();
    for (n, d) in devs.iter().enumerate() {
        if let Some(t) = num_of(d, &["Chip Temp Avg"]).filter(|&t| t != 0.0) {
            chip_avgs.push(t);
        }
        if let Some(f) = num_of(d, &["Chip Frequency", "Frequency"]).filter(|&f| f > 0.0) {
            freqs.push(f);
        }
        sample.boards.push(Board {
            id: int_of(d, &["ASC", "Slot", "ID"]).unwrap_or(n as i64),
            hashrate: num_of(d, &["MHS 1m", "MHS av"]).map(mhs_to_ghs),
            temp: num_of(d, &["Temperature"]),
            chips_ok: int_of(d, &["Effective Chips"]),
            chips_total: None,
        });
    }
    if sample.temperature_max.is_none() {
        let maxes: Vec<f64> = devs
            .iter()
            .filter_map(|d| num_of(d, &["Chip Temp Max"]))
            .collect();
        let mins: Vec<f64> = devs
            .iter()
            .filter_map(|d| num_of(d, &["Chip Temp Min"]))
            .collect();
        sample.temperature_max = max(&maxes);
        sample.temperature_min = min(&mins);
        sample.temperature_avg = mean(&chip_avgs).map(round1);
    }
    sample.temperature_chips = chip_avgs;
    if sample.frequency_avg.is_none() {
        sample.frequency_avg = mean(&freqs).or_else(|| {
            summary
                .and_then(|s| num_of(s, &["Target Freq"]))
                .filter(|&f| f > 0.0)
        });
    }
    sample.model = first(answers.devdetails.as_ref(), "DEVDETAILS")
        .and_then(|d| text_of(d, &["Model"]))
        .map(|m| {
            if m.starts_with("M") {
                format!("Whatsminer {m}")
            } else {
                m
            }
        });
}

/// `"error codes: 2010, 5070"` from `Error Code Count` and `Error Code N`.
fn whatsminer_error_codes(s: &Map<String, Value>) -> Option<String> {
    let count = int_of(s, &["Error Code Count"]).unwrap_or(0).clamp(0, 64);
    let codes: Vec<String> = (0..count)
        .filter_map(|i| s.get(&format!("Error Code {i}")))
        .map(|v| match v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        })
        .collect();
    (!codes.is_empty()).then(|| format!("error codes: {}", codes.join(", ")))
}

/// Derived fields, adit's row rules, and in `error_message` what the miner
/// reported as errors, what was dropped, and the commands that failed.
fn finish(sample: &mut Sample, answers: &Answers) {
    if let (Some(watts), Some(ghs)) = (sample.power_consumption, sample.hashrate_ghs) {
        if watts > 0.0 && ghs > 0.0 {
            sample.efficiency = Some(round1(watts / (ghs / 1000.0)));
        }
    }
    let dropped = limits::fit(sample);
    if !sample.boards.is_empty() {
        sample.boards_total = Some(sample.boards.len() as i64);
        sample.boards_healthy = Some(sample.boards.iter().filter(|b| healthy(b)).count() as i64);
    }
    let mut notes: Vec<String> = sample.error_message.take().into_iter().collect();
    if !dropped.is_empty() {
        notes.push(format!("out of range, not sent: {}", dropped.join(", ")));
    }
    notes.extend(answers.errors.iter().map(Error::to_string));
    if !notes.is_empty() {
        sample.error_message = Some(truncate_chars(&notes.join("; "), MAX_ERROR_MESSAGE_CHARS));
    }
}

/// A board hashes and has no chip missing from what it reports.
fn healthy(board: &Board) -> bool {
    let hashing = board.hashrate.is_some_and(|h| h > 0.0);
    let chips = match (board.chips_ok, board.chips_total) {
        (Some(ok), Some(total)) => ok > 0 && ok == total,
        (Some(ok), None) => ok > 0,
        (None, _) => true,
    };
    hashing && chips
}

/// The pool the miner works for: the `Stratum Active` one, else the alive
/// one of highest priority (lowest `Priority`), else the first listed.
fn active_pool(pools: Option<&Value>) -> Option<&Map<String, Value>> {
    let all: Vec<&Map<String, Value>> = rows(pools, "POOLS").collect();
    all.iter()
        .find(|p| p.get("Stratum Active").is_some_and(truthy))
        .or_else(|| {
            all.iter()
                .filter(|p| p.get("Status").and_then(Value::as_str) == Some("Alive"))
                .min_by_key(|p| int_of(p, &["Priority"]).unwrap_or(i64::MAX))
        })
        .or_else(|| all.first())
        .copied()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.trim(), "true" | "Y" | "y" | "1"),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// `GH` (the default), `TH`, `MH` or `PH` → factor to GH/s.
fn rate_unit_in_ghs(unit: Option<&Value>) -> f64 {
    match unit
        .and_then(Value::as_str)
        .map(|u| u.trim().to_ascii_uppercase())
    {
        Some(u) if u.starts_with("MH") => 0.001,
        Some(u) if u.starts_with("TH") => 1000.0,
        Some(u) if u.starts_with("PH") => 1_000_000.0,
        _ => 1.0,
    }
}

/// Temperature sensors: `"78-50-69-70"`, an array, or one number; zeros
/// (absent sensors) dropped. `None` when the field is absent or empty.
fn sensor_list(v: Option<&Value>) -> Option<Vec<f64>> {
    let values: Vec<f64> = match v? {
        Value::String(s) => s
            .split('-')
            .filter_map(|p| num(&Value::String(p.to_owned())))
            .collect(),
        Value::Array(items) => items.iter().filter_map(num).collect(),
        other => num(other).into_iter().collect(),
    };
    let values: Vec<f64> = values.into_iter().filter(|&t| t != 0.0).collect();
    (!values.is_empty()).then_some(values)
}

/// The rows of `answer[key]` that are objects.
fn rows<'a>(answer: Option<&'a Value>, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    answer
        .and_then(|a| a.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn first<'a>(answer: Option<&'a Value>, key: &str) -> Option<&'a Map<String, Value>> {
    rows(answer, key).next()
}

/// A number sent as a number or as a string; absent if not finite.
pub(crate) fn num(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// The first of `keys` holding a number.
fn num_of(map: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| map.get(*k).and_then(num))
}

/// The first of `keys` holding a whole number (a float is truncated).
fn int_of(map: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| {
        let v = map.get(*k)?;
        if let Some(i) = v.as_i64() {
            return Some(i);
        }
        if let Value::String(s) = v {
            if let Ok(i) = s.trim().parse::<i64>() {
                return Some(i);
            }
        }
        let f = num(v)?;
        (f.abs() < 9.0e15).then(|| f.trunc() as i64)
    })
}

/// The first of `keys` holding a non-empty string (a number is written out).
fn text_of(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match map.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::min)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

mod limits;

#[cfg(test)]
mod tests;
