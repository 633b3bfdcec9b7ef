//! The two answer shapes' items: bmminer's (Antminer S19/S21: `GHS 5s`,
//! `temp2_N`, `chain_rateN`, `fanN`) and btminer's (Whatsminer M50:
//! `MHS av`, `Temperature`, `Fan Speed In/Out`, `Power`), filled from a
//! miner's `Reading`. Names as pyasic's bmminer and btminer backends read
//! them and cgminer's API-README lists them.

use serde_json::{json, Map, Value};

use crate::miner::{round2, Reading, Shape, State};

/// Share difficulty the simulated pools hand out.
const POOL_DIFF: i64 = 65_536;

pub(crate) fn antminer_summary(r: &Reading, when: i64) -> Value {
    let per_min = r.accepted as f64 / (r.uptime_s.max(1) as f64 / 60.0);
    json!({
        "Elapsed": r.uptime_s,
        "GHS 5s": r.ghs_5s,
        "GHS av": r.ghs_av,
        "GHS 30m": r.ghs_av,
        "Found Blocks": 0,
        "Getworks": r.uptime_s / 30,
        "Accepted": r.accepted,
        "Rejected": r.rejected,
        "Hardware Errors": r.hw_errors,
        "Utility": round2(per_min),
        "Discarded": r.accepted * 2,
        "Stale": 0,
        "Get Failures": 0,
        "Local Work": r.accepted * 3,
        "Remote Failures": 0,
        "Network Blocks": r.uptime_s / 600,
        "Total MH": round2(r.ghs_av * 1000.0 * r.uptime_s as f64),
        "Work Utility": round2(per_min * 1.01),
        "Difficulty Accepted": (r.accepted * POOL_DIFF) as f64,
        "Difficulty Rejected": (r.rejected * POOL_DIFF) as f64,
        "Difficulty Stale": 0.0,
        "Best Share": r.accepted * 1_000,
        "Device Hardware%": percent(r.hw_errors, r.accepted),
        "Device Rejected%": percent(r.rejected, r.accepted),
        "Pool Rejected%": percent(r.rejected, r.accepted),
        "Pool Stale%": 0.0,
        "Last getwork": when,
    })
}

pub(crate) fn whatsminer_summary(state: &State, r: &Reading, when: i64) -> Value {
    let n = &state.nominal;
    let temp = avg(&r.board_temp);
    let mhs = |g: f64| round2(g * 1000.0);
    let (fan_in, fan_out) = (
        r.fans_rpm.first().copied().unwrap_or(0),
        r.fans_rpm.get(1).copied().unwrap_or(0),
    );
    json!({
        "Elapsed": r.uptime_s,
        "MHS av": mhs(r.ghs_av),
        "MHS 5s": mhs(r.ghs_5s),
        "MHS 1m": mhs(r.ghs_av),
        "MHS 5m": mhs(r.ghs_av),
        "MHS 15m": mhs(r.ghs_av),
        "HS RT": mhs(r.ghs_5s),
        "Accepted": r.accepted,
        "Rejected": r.rejected,
        "Hardware Errors": r.hw_errors,
        "Total MH": round2(r.ghs_av * 1000.0 * r.uptime_s as f64),
        "Temperature": temp,
        "freq_avg": r.frequency_mhz,
        "Fan Speed In": fan_in,
        "Fan Speed Out": fan_out,
        "Power": r.power_w,
        "Power_RT": r.power_w,
        "Power Rate": round2(r.power_w / (r.ghs_av / 1000.0).max(1.0)),
        "Device Hardware%": percent(r.hw_errors, r.accepted),
        "Device Rejected%": percent(r.rejected, r.accepted),
        "Pool Rejected%": percent(r.rejected, r.accepted),
        "Pool Stale%": 0.0,
        "Last getwork": when,
        "Uptime": r.uptime_s,
        "Chip Temp Min": round2(temp - 1.5),
        "Chip Temp Max": round2(temp + 4.0),
        "Chip Temp Avg": round2(temp + 1.0),
        "Env Temp": 25.0,
        "Power Mode": "Normal",
        "Factory GHS": n.hashrate_expected_ghs as i64,
        "Power Limit": (n.power_consumption * 1.1) as i64,
        "Error Code Count": 0,
        "Firmware Version": "'20230911.12.Rel'",
        "MAC": mac(&n.miner_id),
    })
}

pub(crate) fn antminer_stats(state: &State, r: &Reading) -> Vec<Value> {
    let n = &state.nominal;
    let head = json!({
        "BMMiner": "2.0.0", "Miner": "uart_trans.1.3",
        "CompileTime": "Thu Mar 16 14:06:06 CST 2023", "Type": n.model,
    });
    let mut m = Map::new();
    let mut put = |k: String, v: Value| {
        m.insert(k, v);
    };
    put("STATS".into(), json!(0));
    put("ID".into(), json!("BTM_SOC0"));
    put("Elapsed".into(), json!(r.uptime_s));
    put("Calls".into(), json!(0));
    put("Wait".into(), json!(0.0));
    put("Max".into(), json!(0.0));
    put("Min".into(), json!(99_999_999.0));
    put("GHS 5s".into(), json!(r.ghs_5s));
    put("GHS av".into(), json!(r.ghs_av));
    put("miner_count".into(), json!(n.boards.len()));
    put("frequency".into(), json!(r.frequency_mhz));
    put("fan_num".into(), json!(r.fans_rpm.len()));
    for (i, rpm) in r.fans_rpm.iter().enumerate() {
        put(format!("fan{}", i + 1), json!(rpm));
    }
    put("temp_num".into(), json!(n.boards.len()));
    let mut total_acn = 0;
    for (i, b) in n.boards.iter().enumerate() {
        let c = i + 1;
        let t = r.board_temp[i];
        // Inlet (PCB), chip and outlet: the fleet's [t - 1.5, t, t + 1].
        put(format!("temp{c}"), json!(round2(t - 1.5)));
        put(format!("temp2_{c}"), json!(t));
        put(format!("temp3_{c}"), json!(round2(t + 1.0)));
        put(format!("chain_acn{c}"), json!(b.chips_ok));
        put(
            format!("chain_acs{c}"),
            json!(chip_string(b.chips_ok, b.chips_total)),
        );
        put(
            format!("chain_hw{c}"),
            json!(r.hw_errors / n.boards.len() as i64),
        );
        put(format!("chain_rate{c}"), json!(r.board_ghs[i]));
        put(format!("freq_avg{c}"), json!(r.frequency_mhz));
        total_acn += b.chips_ok;
    }
    put("total_rateideal".into(), json!(n.hashrate_expected_ghs));
    put("total_freqavg".into(), json!(r.frequency_mhz));
    put("total_acn".into(), json!(total_acn));
    put("total_rate".into(), json!(r.ghs_av));
    put("rate_unit".into(), json!("GH"));
    vec![head, Value::Object(m)]
}

/// Per hashboard, as btminer's `devs` lists them (also its `stats` here).
pub(crate) fn boards(state: &State, r: &Reading, shape: Shape) -> Vec<Value> {
    let n = &state.nominal;
    let per_board_share = r.accepted / n.boards.len().max(1) as i64;
    n.boards
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let t = r.board_temp[i];
            let mhs = round2(r.board_ghs[i] * 1000.0);
            let mut v = json!({
                "ASC": i, "Name": if shape == Shape::Whatsminer { "SM" } else { "BTM" },
                "ID": i, "Slot": i, "Enabled": if r.enabled { "Y" } else { "N" },
                "Status": "Alive", "Temperature": t,
                "Chip Frequency": r.frequency_mhz,
                "MHS av": mhs, "MHS 5s": mhs, "MHS 1m": mhs,
                "Accepted": per_board_share, "Rejected": r.rejected / n.boards.len().max(1) as i64,
                "Hardware Errors": r.hw_errors / n.boards.len().max(1) as i64,
                "Effective Chips": b.chips_ok, "Chip Count": b.chips_total,
                "Chip Temp Min": round2(t - 1.5), "Chip Temp Max": round2(t + 1.0),
                "Chip Temp Avg": t, "PCB SN": format!("{}B{i}", mac(&n.miner_id).replace(':', "")),
            });
            if shape == Shape::Whatsminer {
                v["Fan Speed In"] = json!(r.fans_rpm.first().copied().unwrap_or(0));
                v["Fan Speed Out"] = json!(r.fans_rpm.get(1).copied().unwrap_or(0));
            }
            v
        })
        .collect()
}

pub(crate) fn pools(state: &State, r: &Reading, when: i64) -> Vec<Value> {
    state
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let active = i == state.active_pool;
            let (acc, rej) = if active {
                (r.accepted, r.rejected)
            } else {
                (0, 0)
            };
            let priority = if active { 0 } else { i + 1 };
            json!({
                "POOL": i, "URL": p.url, "Status": "Alive", "Priority": priority,
                "Quota": 1, "Long Poll": "N", "Getworks": r.uptime_s / 30,
                "Accepted": acc, "Rejected": rej, "Discarded": acc * 2, "Stale": 0,
                "Get Failures": 0, "Remote Failures": 0, "User": p.user,
                "Last Share Time": if active { when } else { 0 },
                "Diff": "65.5K", "Diff1 Shares": 0, "Proxy Type": "", "Proxy": "",
                "Difficulty Accepted": (acc * POOL_DIFF) as f64,
                "Difficulty Rejected": (rej * POOL_DIFF) as f64,
                "Difficulty Stale": 0.0, "Last Share Difficulty": POOL_DIFF as f64,
                "Has Stratum": true, "Stratum Active": active,
                "Stratum URL": p.url.rsplit("//").next().unwrap_or(&p.url),
                "Has GBT": false, "Best Share": acc * 1_000,
                "Pool Rejected%": percent(rej, acc), "Pool Stale%": 0.0,
            })
        })
        .collect()
}

/// `oooooooo oooooxxx …`: one `o` per good chip, `x` per failed, by eights.
fn chip_string(ok: i32, total: i32) -> String {
    let mut s = String::new();
    for i in 0..total.max(0) {
        if i > 0 && i % 8 == 0 {
            s.push(' ');
        }
        s.push(if i < ok { 'o' } else { 'x' });
    }
    s
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    round2(part as f64 / whole as f64 * 100.0)
}

fn avg(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    round2(xs.iter().sum::<f64>() / xs.len() as f64)
}

fn mac(id: &str) -> String {
    let h = crate::miner::mix(
        id.bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31) ^ u64::from(b)),
    );
    let b = h.to_be_bytes();
    format!("C6:08:{:02X}:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_strings_group_by_eight_and_mark_failed_chips() {
        assert_eq!(chip_string(10, 11), "oooooooo oox");
        assert_eq!(chip_string(8, 8), "oooooooo");
    }
}
