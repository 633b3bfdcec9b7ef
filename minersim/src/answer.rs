//! The CGMiner API answers: a request (one command, `summary+pools` joins
//! read commands) in, one JSON document out, in the miner's shape, with its
//! firmware's quirks. Field names follow cgminer's API-README, bmminer
//! (Antminer) and btminer (Whatsminer) as pyasic reads them.

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::miner::{round2, Pool, Reading, Shape, State};

/// A marker in a string, replaced by an invalid UTF-8 sequence on the wire.
const BAD_UTF8_MARKER: &str = "~bad-utf8~";
/// Bytes that are not UTF-8 (a lead byte followed by a non-continuation).
const BAD_UTF8: &[u8] = &[0xC3, 0x28];
/// Share difficulty the simulated pools hand out.
const POOL_DIFF: i64 = 65_536;
/// Read-only commands, the only ones that may be joined with `+`.
const READ_COMMANDS: [&str; 6] = ["summary", "stats", "pools", "devs", "edevs", "version"];
/// Commands that change the miner.
const PRIVILEGED_COMMANDS: [&str; 12] = [
    "restart",
    "reboot",
    "restart_btminer",
    "enable",
    "ascenable",
    "power_on",
    "disable",
    "ascdisable",
    "power_off",
    "addpool",
    "switchpool",
    "ascset",
];
/// cgminer's message codes (api.c).
const MSG_POOL: i64 = 7;
const MSG_DEVS: i64 = 9;
const MSG_SUMM: i64 = 11;
const MSG_INVCMD: i64 = 14;
const MSG_MINEVER: i64 = 22;
pub(crate) const MSG_INVJSON: i64 = 23;
const MSG_INVPID: i64 = 26;
const MSG_SWITCHP: i64 = 27;
const MSG_ACCDENY: i64 = 45;
const MSG_MISPDP: i64 = 52;
const MSG_ADDPOOL: i64 = 55;
const MSG_MINESTATS: i64 = 70;
const MSG_ASCENA: i64 = 110;
const MSG_ASCDIS: i64 = 111;
const MSG_ASCSETOK: i64 = 119;
const MSG_ASCSETERR: i64 = 120;
/// btminer's answer code to a command it carried out.
const BTMINER_OK: i64 = 131;

/// The firmware quirks a miner shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `}{` with no comma between the objects of `STATS`.
    pub missing_comma: bool,
    /// Invalid UTF-8 inside a string (the STATUS description).
    pub bad_utf8: bool,
    /// Fractional numbers sent as JSON strings (`"GHS 5s":"110234.56"`).
    pub numbers_as_strings: bool,
}

impl Quirks {
    pub const ALL: Quirks = Quirks {
        missing_comma: true,
        bad_utf8: true,
        numbers_as_strings: true,
    };
}

/// A parsed request: `{"command":"pools","parameter":"0"}` or `pools|0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: String,
    pub parameter: Option<String>,
}

impl Request {
    /// Parses a complete request; None when it is neither JSON nor text.
    pub fn parse(buf: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(buf)
            .ok()?
            .trim_matches(['\0', '\n', '\r', ' ']);
        if text.starts_with('{') {
            let v: Value = serde_json::from_str(text).ok()?;
            let command = v.get("command")?.as_str()?.to_string();
            let parameter = match v.get("parameter") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            return Some(Request { command, parameter });
        }
        let (command, parameter) = match text.split_once('|') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (text, None),
        };
        (!command.is_empty()).then(|| Request {
            command: command.to_string(),
            parameter,
        })
    }
}

/// What the miner says and the clock it says it at.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub state: &'a mut State,
    pub shape: Shape,
    pub quirks: Quirks,
    pub now: Instant,
    /// Unix seconds.
    pub when: i64,
}

/// The answer to `req`, without the trailing NUL.
pub fn answer(ctx: &mut Ctx<'_>, req: &Request) -> Vec<u8> {
    let commands: Vec<&str> = req.command.split('+').collect();
    let mut out = if commands.len() == 1 {
        single(ctx, commands[0], req.parameter.as_deref())
    } else {
        joined(ctx, &commands)
    };
    if ctx.quirks.bad_utf8 {
        out = replace_marker(&out);
    }
    out
}

/// `summary+pools`: `{"summary":[{…}],"pools":[{…}],"id":1}`, each command
/// once, blanks skipped; a privileged or unknown part gets its own E STATUS
/// and the others are still answered (cgminer's API-README).
fn joined(ctx: &mut Ctx<'_>, commands: &[&str]) -> Vec<u8> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = b"{".to_vec();
    for &c in commands {
        if c.is_empty() || seen.contains(&c) {
            continue;
        }
        if !seen.is_empty() {
            out.push(b',');
        }
        seen.push(c);
        out.extend(serde_json::to_vec(c).expect("json"));
        out.extend_from_slice(b":[");
        if READ_COMMANDS.contains(&c) {
            out.extend(single(ctx, c, None));
        } else if PRIVILEGED_COMMANDS.contains(&c) {
            out.extend(error(
                ctx,
                MSG_ACCDENY,
                &format!("Access denied to '{c}' command"),
            ));
        } else {
            out.extend(error(ctx, MSG_INVCMD, "Invalid command"));
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"id\":1}");
    out
}

fn single(ctx: &mut Ctx<'_>, command: &str, param: Option<&str>) -> Vec<u8> {
    let tick = ctx.when as u64;
    match (command, ctx.shape) {
        ("summary", shape) => {
            let r = ctx.state.reading(ctx.now, tick);
            let item = match shape {
                Shape::Antminer => antminer_summary(&r, ctx.when),
                Shape::Whatsminer => whatsminer_summary(ctx.state, &r, ctx.when),
            };
            doc(ctx, status(ctx, MSG_SUMM, "Summary"), "SUMMARY", vec![item])
        }
        ("stats", Shape::Antminer) => {
            let r = ctx.state.reading(ctx.now, tick);
            let items = antminer_stats(ctx.state, &r);
            doc(
                ctx,
                status(ctx, MSG_MINESTATS, "CGMiner stats"),
                "STATS",
                items,
            )
        }
        ("stats", Shape::Whatsminer) | ("devs" | "edevs", _) => {
            let r = ctx.state.reading(ctx.now, tick);
            let items = boards(ctx.state, &r, ctx.shape);
            let key = if command == "stats" { "STATS" } else { "DEVS" };
            let msg = format!("{} ASC(s)", items.len());
            doc(ctx, status(ctx, MSG_DEVS, &msg), key, items)
        }
        ("pools", _) => {
            let r = ctx.state.reading(ctx.now, tick);
            let items = pools(ctx.state, &r, ctx.when);
            let msg = format!("{} Pool(s)", items.len());
            doc(ctx, status(ctx, MSG_POOL, &msg), "POOLS", items)
        }
        ("version", Shape::Antminer) => {
            let item = json!({
                "BMMiner": "1.0.0", "API": "3.1", "Miner": "uart_trans.1.3",
                "CompileTime": "Thu Mar 16 14:06:06 CST 2023",
                "Type": ctx.state.nominal.model,
            });
            doc(
                ctx,
                status(ctx, MSG_MINEVER, "CGMiner versions"),
                "VERSION",
                vec![item],
            )
        }
        ("restart" | "reboot" | "restart_btminer", _) => {
            ctx.state.restart(ctx.now);
            match ctx.shape {
                // cgminer answers a bare STATUS before it restarts.
                Shape::Antminer => br#"{"STATUS":"RESTART","id":1}"#.to_vec(),
                Shape::Whatsminer => done(ctx, 'S', 0, ""),
            }
        }
        ("enable" | "ascenable" | "power_on", _) => {
            ctx.state.advance(ctx.now);
            ctx.state.enabled = true;
            done(ctx, 'I', MSG_ASCENA, "ASC 0 sent enable message")
        }
        ("disable" | "ascdisable" | "power_off", _) => {
            ctx.state.advance(ctx.now);
            ctx.state.enabled = false;
            done(ctx, 'I', MSG_ASCDIS, "ASC 0 set disable flag")
        }
        ("addpool", _) => addpool(ctx, param),
        ("switchpool", _) => switchpool(ctx, param),
        ("ascset", _) => ascset(ctx, param),
        _ => error(ctx, MSG_INVCMD, "Invalid command"),
    }
}

fn addpool(ctx: &mut Ctx<'_>, param: Option<&str>) -> Vec<u8> {
    let mut parts = param.unwrap_or("").splitn(3, ',');
    let url = parts.next().unwrap_or("").trim();
    let user = parts.next().unwrap_or("").trim();
    if url.is_empty() || user.is_empty() {
        return error(ctx, MSG_MISPDP, "Missing addpool details");
    }
    ctx.state.pools.push(Pool {
        url: url.to_string(),
        user: user.to_string(),
    });
    let msg = format!("Added pool {}: '{url}'", ctx.state.pools.len() - 1);
    done(ctx, 'S', MSG_ADDPOOL, &msg)
}

fn switchpool(ctx: &mut Ctx<'_>, param: Option<&str>) -> Vec<u8> {
    let n = ctx.state.pools.len();
    match param.and_then(|p| p.trim().parse::<usize>().ok()) {
        Some(id) if id < n => {
            ctx.state.active_pool = id;
            let msg = format!("Switching to pool {id}:'{}'", ctx.state.pools[id].url);
            done(ctx, 'S', MSG_SWITCHP, &msg)
        }
        _ => {
            let msg = format!(
                "Invalid pool id {} - range is 0 - {}",
                param.unwrap_or(""),
                n - 1
            );
            error(ctx, MSG_INVPID, &msg)
        }
    }
}

/// `ascset|0,fan,70` (fan duty in percent) or `ascset|0,freq,600` (MHz).
fn ascset(ctx: &mut Ctx<'_>, param: Option<&str>) -> Vec<u8> {
    let parts: Vec<&str> = param.unwrap_or("").split(',').map(str::trim).collect();
    let value = parts.get(2).and_then(|v| v.parse::<f64>().ok());
    match (parts.get(1).copied(), value) {
        (Some("fan"), Some(pct)) if (0.0..=100.0).contains(&pct) => {
            ctx.state.fan_pct = Some(pct as u32);
            done(ctx, 'S', MSG_ASCSETOK, "ASC 0 set OK")
        }
        (Some("freq" | "frequency"), Some(mhz)) if (100.0..=1200.0).contains(&mhz) => {
            ctx.state.advance(ctx.now);
            ctx.state.frequency_mhz = mhz;
            done(ctx, 'S', MSG_ASCSETOK, "ASC 0 set OK")
        }
        _ => error(
            ctx,
            MSG_ASCSETERR,
            "ASC 0 set failed: use fan,0-100 or freq,100-1200",
        ),
    }
}

fn status(ctx: &Ctx<'_>, code: i64, msg: &str) -> Value {
    status_as(ctx, 'S', code, msg)
}

fn status_as(ctx: &Ctx<'_>, severity: char, code: i64, msg: &str) -> Value {
    json!({"STATUS": severity.to_string(), "When": ctx.when, "Code": code, "Msg": msg, "Description": description(ctx)})
}

fn description(ctx: &Ctx<'_>) -> String {
    let base = match ctx.shape {
        Shape::Antminer => "cgminer 1.0.0",
        Shape::Whatsminer => "btminer",
    };
    if ctx.quirks.bad_utf8 {
        format!("{base} {BAD_UTF8_MARKER}")
    } else {
        base.to_string()
    }
}

/// A command carried out: cgminer's STATUS with `severity` (S, or I for
/// enable/disable); btminer's flat `Code 131, "API command OK"`.
fn done(ctx: &Ctx<'_>, severity: char, code: i64, msg: &str) -> Vec<u8> {
    let v = match ctx.shape {
        Shape::Antminer => json!({"STATUS": [status_as(ctx, severity, code, msg)], "id": 1}),
        Shape::Whatsminer => json!({
            "STATUS": "S", "When": ctx.when, "Code": BTMINER_OK, "Msg": "API command OK",
            "Description": "",
        }),
    };
    serde_json::to_vec(&v).expect("json")
}

/// An error: cgminer wraps STATUS in an array; btminer sends it flat.
pub fn error(ctx: &Ctx<'_>, code: i64, msg: &str) -> Vec<u8> {
    let v = match ctx.shape {
        Shape::Antminer => json!({"STATUS": [{
            "STATUS": "E", "When": ctx.when, "Code": code, "Msg": msg, "Description": description(ctx),
        }], "id": 1}),
        Shape::Whatsminer => json!({
            "STATUS": "E", "When": ctx.when, "Code": code,
            "Msg": if code == MSG_INVCMD { "invalid cmd" } else { msg }, "Description": "whatsminer v1.1",
        }),
    };
    serde_json::to_vec(&v).expect("json")
}

/// `{"STATUS":[…],"KEY":[items…],"id":1}`; bmminer leaves out the comma
/// between the objects of STATS (`}{`) when the quirk is on.
fn doc(ctx: &Ctx<'_>, status: Value, key: &str, items: Vec<Value>) -> Vec<u8> {
    let sep: &[u8] = if ctx.quirks.missing_comma && key == "STATS" {
        b""
    } else {
        b","
    };
    let mut out = b"{\"STATUS\":[".to_vec();
    out.extend(serde_json::to_vec(&status).expect("json"));
    out.extend_from_slice(format!("],\"{key}\":[").as_bytes());
    for (i, mut item) in items.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        if ctx.quirks.numbers_as_strings {
            stringify_fractions(&mut item);
        }
        out.extend(serde_json::to_vec(&item).expect("json"));
    }
    out.extend_from_slice(b"],\"id\":1}");
    out
}

/// Fractional numbers become strings, as some firmware sends them.
fn stringify_fractions(v: &mut Value) {
    if let Value::Object(map) = v {
        for field in map.values_mut() {
            if let Value::Number(n) = field {
                if n.is_f64() {
                    *field = Value::String(n.to_string());
                }
            }
        }
    }
}

fn replace_marker(out: &[u8]) -> Vec<u8> {
    let marker = BAD_UTF8_MARKER.as_bytes();
    let mut res = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        if out[i..].starts_with(marker) {
            res.extend_from_slice(BAD_UTF8);
            i += marker.len();
        } else {
            res.push(out[i]);
            i += 1;
        }
    }
    res
}

fn antminer_summary(r: &Reading, when: i64) -> Value {
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

fn whatsminer_summary(state: &State, r: &Reading, when: i64) -> Value {
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

fn antminer_stats(state: &State, r: &Reading) -> Vec<Value> {
    let n = &state.nominal;
    let head = json!({
        "BMMiner": "1.0.0", "Miner": "uart_trans.1.3",
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
fn boards(state: &State, r: &Reading, shape: Shape) -> Vec<Value> {
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

fn pools(state: &State, r: &Reading, when: i64) -> Vec<Value> {
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
    fn requests_parse_as_json_or_text() {
        let r = Request::parse(br#"{"command":"switchpool","parameter":1}"#).unwrap();
        assert_eq!(r.command, "switchpool");
        assert_eq!(r.parameter.as_deref(), Some("1"));
        let r = Request::parse(b"addpool|stratum+tcp://a:1,w,x\n").unwrap();
        assert_eq!(r.command, "addpool");
        assert_eq!(r.parameter.as_deref(), Some("stratum+tcp://a:1,w,x"));
        assert!(Request::parse(br#"{"cmd":"summary"}"#).is_none());
        assert!(Request::parse(b"").is_none());
    }

    #[test]
    fn chip_strings_group_by_eight_and_mark_failed_chips() {
        assert_eq!(chip_string(10, 11), "oooooooo oox");
        assert_eq!(chip_string(8, 8), "oooooooo");
    }

    #[test]
    fn the_marker_becomes_invalid_utf8() {
        let out = replace_marker(format!("\"a {BAD_UTF8_MARKER}\"").as_bytes());
        assert!(std::str::from_utf8(&out).is_err());
        assert_eq!(String::from_utf8_lossy(&out), "\"a \u{FFFD}(\"");
    }
}
