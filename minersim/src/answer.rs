//! The CGMiner API answers: a request (one command, `summary+pools` joins
//! read commands) in, one JSON document out, in the miner's shape, with its
//! firmware's quirks. Field names follow cgminer's API-README, bmminer
//! (Antminer) and btminer (Whatsminer) as pyasic reads them.

use std::time::Instant;

use serde_json::{json, Value};

use crate::miner::{Pool, Shape, State};
use crate::shapes::{antminer_stats, antminer_summary, boards, pools, whatsminer_summary};

/// A marker in a string, replaced by an invalid UTF-8 sequence on the wire.
const BAD_UTF8_MARKER: &str = "~bad-utf8~";
/// Bytes that are not UTF-8 (a lead byte followed by a non-continuation).
const BAD_UTF8: &[u8] = &[0xC3, 0x28];
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
                "BMMiner": "2.0.0", "API": "3.1", "Miner": "uart_trans.1.3",
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
    fn the_marker_becomes_invalid_utf8() {
        let out = replace_marker(format!("\"a {BAD_UTF8_MARKER}\"").as_bytes());
        assert!(std::str::from_utf8(&out).is_err());
        assert_eq!(String::from_utf8_lossy(&out), "\"a \u{FFFD}(\"");
    }
}
