//! Commands from adit: fetched from `GET /api/collector/commands/pending`,
//! run on the miner they name over the CGMiner API, and reported with
//! `POST /api/collector/commands/{id}/result`.
//!
//! Rules:
//! - A command runs only on a miner of this collector's list (its
//!   `miner_id` is the `ip:port` the collector reports, or its `ip_address`
//!   names one listed IP); any other target fails without a request.
//! - Commands to one miner run one after another, in adit's order; other
//!   miners' commands run beside them.
//! - `restart` and `reboot` send `restart` (the CGMiner API restarts the
//!   mining process; it cannot reboot the board, and the result says so);
//!   `enable`/`disable` send `ascenable`/`ascdisable` for every ASC the
//!   miner counts; `set_pool` is `addpool` then `switchpool` to the new
//!   pool; `set_fan` and `set_frequency` are `ascset` on CGMiner/bmminer
//!   firmware, and fail with the reason on Whatsminer, whose btminer API
//!   sets them only through its encrypted privileged interface.
//! - A miner that does not answer, or refuses, makes the command `failed`
//!   with the reason.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::cgminer::parse::status_of;
use crate::cgminer::{Client, PrivilegedCommand, ReadCommand};
use crate::error::Error;
use crate::normalize::looks_like_whatsminer;

/// One command as adit hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: i64,
    pub miner_id: String,
    pub ip_address: Option<String>,
    pub command: String,
    pub params: Map<String, Value>,
}

/// What came of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub completed: bool,
    pub code: Option<i64>,
    pub message: String,
}

impl Outcome {
    fn done(message: String) -> Self {
        Self {
            completed: true,
            code: Some(0),
            message,
        }
    }

    fn failed(message: String) -> Self {
        Self {
            completed: false,
            code: None,
            message,
        }
    }

    fn from_error(what: &str, e: &Error) -> Self {
        let code = match e {
            Error::Miner { code, .. } => *code,
            _ => None,
        };
        let cause = if e.is_retryable() {
            "the miner did not answer"
        } else {
            "the miner refused"
        };
        Self {
            completed: false,
            code,
            message: format!("{what}: {cause}: {e}"),
        }
    }

    /// The body of `POST /api/collector/commands/{id}/result`.
    pub fn body(&self) -> Value {
        let mut message = self.message.clone();
        if message.len() > 4096 {
            let mut cut = 4093;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let code = self.code.and_then(|c| i32::try_from(c).ok());
        json!({
            "status": if self.completed { "completed" } else { "failed" },
            "result_code": code,
            "result_message": message,
        })
    }
}

/// The commands of a `pending` answer (`{"success":true,"commands":[…]}`);
/// an item that is not a command is skipped with a warning.
pub fn parse_pending(answer: &Value) -> Vec<Command> {
    let items = answer
        .get("commands")
        .or_else(|| answer.get("data").and_then(|d| d.get("commands")))
        .and_then(Value::as_array);
    let Some(items) = items else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|c| {
            let parsed = Some(Command {
                id: c.get("command_id")?.as_i64()?,
                miner_id: c.get("miner_id")?.as_str()?.to_string(),
                ip_address: c
                    .get("ip_address")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                command: c.get("command")?.as_str()?.to_string(),
                params: c
                    .get("params")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            });
            if parsed.is_none() {
                tracing::warn!(item = %c, "Skipped a pending command adit sent in a shape the collector does not read.");
            }
            parsed
        })
        .collect()
}

/// The miner of `cmd` among `miners`: its `miner_id` as `ip:port` (or a
/// bare IP on port 4028), else its `ip_address` if exactly one listed
/// miner has that IP (or one of them is on port 4028).
pub fn resolve(cmd: &Command, miners: &[SocketAddr]) -> Result<SocketAddr, String> {
    if let Ok(addr) = crate::cycle::parse_entry(cmd.miner_id.trim()) {
        if let [addr] = addr.as_slice() {
            if miners.contains(addr) {
                return Ok(*addr);
            }
        }
    }
    if let Some(ip) = cmd
        .ip_address
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    {
        let same: Vec<&SocketAddr> = miners.iter().filter(|m| m.ip() == ip).collect();
        match same.as_slice() {
            [one] => return Ok(**one),
            [] => {}
            many => {
                if let Some(m) = many
                    .iter()
                    .find(|m| m.port() == crate::cgminer::DEFAULT_PORT)
                {
                    return Ok(**m);
                }
                return Err(format!(
                    "miner {:?}: {ip} has {} ports on this collector's list; name one as ip:port",
                    cmd.miner_id,
                    many.len()
                ));
            }
        }
    }
    Err(format!(
        "miner {:?}{} is not on this collector's miner list",
        cmd.miner_id,
        cmd.ip_address
            .as_deref()
            .map(|ip| format!(" ({ip})"))
            .unwrap_or_default()
    ))
}

/// Runs `cmd` on the miner at `addr`.
pub async fn execute(client: &Client, addr: SocketAddr, cmd: &Command) -> Outcome {
    if let Some(delay) = cmd.params.get("delay_seconds").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_secs(delay.min(3600))).await;
    }
    match cmd.command.as_str() {
        "restart" => match client.execute(addr, PrivilegedCommand::Restart, None).await {
            Ok(a) => Outcome::done(format!("{addr}: mining process restarted ({})", said(&a))),
            Err(e) => Outcome::from_error("restart", &e),
        },
        "reboot" => match client.execute(addr, PrivilegedCommand::Restart, None).await {
            Ok(a) => Outcome::done(format!(
                "{addr}: reboot done as a restart of the mining process, the most the CGMiner API \
                 can do (it cannot reboot the control board) ({})",
                said(&a)
            )),
            Err(e) => Outcome::from_error("reboot (restart over the CGMiner API)", &e),
        },
        "enable" => toggle(client, addr, PrivilegedCommand::AscEnable).await,
        "disable" => toggle(client, addr, PrivilegedCommand::AscDisable).await,
        "set_pool" => set_pool(client, addr, &cmd.params).await,
        "set_fan" => match cmd.params.get("speed") {
            Some(Value::Number(n)) => ascset(client, addr, "set_fan", &format!("fan,{n}")).await,
            Some(Value::String(s)) if s == "auto" => Outcome::failed(format!(
                "set_fan: {addr}: automatic fan control cannot be chosen over the CGMiner API \
                 (ascset takes a duty in percent)"
            )),
            other => Outcome::failed(format!("set_fan: speed {other:?} is not 0-100")),
        },
        "set_frequency" => match cmd.params.get("frequency_mhz").and_then(Value::as_f64) {
            Some(mhz) => ascset(client, addr, "set_frequency", &format!("freq,{mhz}")).await,
            None => Outcome::failed("set_frequency: frequency_mhz is missing".into()),
        },
        other => Outcome::failed(format!(
            "{other:?} is not a command this collector runs (restart, reboot, enable, disable, \
             set_pool, set_fan, set_frequency)"
        )),
    }
}

/// The miner's own words in an answer: its STATUS message, or the answer.
fn said(answer: &Value) -> String {
    match status_of(answer) {
        Some(s) if !s.message.is_empty() => format!("miner said: {}", s.message),
        Some(s) => format!("miner said: STATUS {}", s.status),
        None => format!("miner said: {}", super::adit::brief(answer)),
    }
}

/// `ascenable`/`ascdisable` on every ASC the miner counts (`asccount`;
/// ASC 0 when the firmware does not count them).
async fn toggle(client: &Client, addr: SocketAddr, which: PrivilegedCommand) -> Outcome {
    let what = if which == PrivilegedCommand::AscEnable {
        "enable"
    } else {
        "disable"
    };
    let count = match client.query(addr, ReadCommand::Asccount).await {
        Ok(a) => a
            .get("ASCS")
            .and_then(|v| v.get(0))
            .and_then(|v| v.get("Count"))
            .and_then(Value::as_u64)
            .filter(|n| (1..=64).contains(n))
            .unwrap_or(1),
        Err(e) if e.is_retryable() => return Outcome::from_error(what, &e),
        Err(_) => 1,
    };
    let mut last = Value::Null;
    for asc in 0..count {
        match client.execute(addr, which, Some(&asc.to_string())).await {
            Ok(a) => last = a,
            Err(e) => return Outcome::from_error(&format!("{what} (ASC {asc} of {count})"), &e),
        }
    }
    Outcome::done(format!("{addr}: {what}d {count} ASC(s) ({})", said(&last)))
}

/// `addpool url,worker,password` then `switchpool` to the pool it added.
async fn set_pool(client: &Client, addr: SocketAddr, p: &Map<String, Value>) -> Outcome {
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (url, worker) = (text("pool_url"), text("worker"));
    let password = p
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("x")
        .to_string();
    if url.is_empty() || worker.is_empty() {
        return Outcome::failed("set_pool: pool_url and worker are required".into());
    }
    // addpool's parameter is comma-separated; cgminer's escapes are not
    // understood by every firmware, so such values are refused.
    if [&url, &worker, &password]
        .iter()
        .any(|v| v.contains([',', '\\', '|']))
    {
        return Outcome::failed(
            "set_pool: pool_url, worker and password cannot contain ',', '\\' or '|' over the CGMiner API"
                .into(),
        );
    }
    let added = match client
        .execute(
            addr,
            PrivilegedCommand::AddPool,
            Some(&format!("{url},{worker},{password}")),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return Outcome::from_error("set_pool: addpool", &e),
    };
    let index = match added_index(&added) {
        Some(i) => i,
        None => match client.query(addr, ReadCommand::Pools).await {
            Ok(pools) => match last_pool_with(&pools, &url) {
                Some(i) => i,
                None => {
                    return Outcome::failed(format!(
                        "set_pool: {addr} took addpool but lists no pool {url}"
                    ))
                }
            },
            Err(e) => return Outcome::from_error("set_pool: pools after addpool", &e),
        },
    };
    match client
        .execute(
            addr,
            PrivilegedCommand::SwitchPool,
            Some(&index.to_string()),
        )
        .await
    {
        Ok(a) => Outcome::done(format!(
            "{addr}: pool {index} added ({url}, worker {worker}) and switched to ({})",
            said(&a)
        )),
        Err(e) => Outcome::from_error(&format!("set_pool: switchpool {index}"), &e),
    }
}

/// The index in cgminer's `Added pool N: 'url'`.
fn added_index(answer: &Value) -> Option<u64> {
    let msg = status_of(answer)?.message;
    let rest = msg.split_once("Added pool ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The index of the last pool in a `pools` answer with this URL.
fn last_pool_with(pools: &Value, url: &str) -> Option<u64> {
    pools
        .get("POOLS")?
        .as_array()?
        .iter()
        .rev()
        .filter(|p| p.get("URL").and_then(Value::as_str) == Some(url))
        .find_map(|p| p.get("POOL").and_then(Value::as_u64))
}

/// `ascset 0,<setting>` where the firmware's API has it.
async fn ascset(client: &Client, addr: SocketAddr, what: &str, setting: &str) -> Outcome {
    let summary = match client.query(addr, ReadCommand::Summary).await {
        Ok(s) => s,
        Err(e) => return Outcome::from_error(what, &e),
    };
    if looks_like_whatsminer(&summary) {
        return Outcome::failed(format!(
            "{what}: {addr} is a Whatsminer: btminer sets fan and frequency only through its \
             encrypted privileged API, which this collector does not speak; nothing was sent"
        ));
    }
    match client
        .execute(
            addr,
            PrivilegedCommand::AscSet,
            Some(&format!("0,{setting}")),
        )
        .await
    {
        Ok(a) => Outcome::done(format!("{addr}: ascset 0,{setting} ({})", said(&a))),
        Err(e) => Outcome::from_error(&format!("{what} (ascset 0,{setting})"), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(miner: &str, ip: Option<&str>) -> Command {
        Command {
            id: 1,
            miner_id: miner.into(),
            ip_address: ip.map(str::to_string),
            command: "restart".into(),
            params: Map::new(),
        }
    }

    #[test]
    fn a_command_targets_only_a_listed_miner() {
        let miners: Vec<SocketAddr> = [
            "10.0.0.1:4028",
            "10.0.0.2:4029",
            "10.0.0.3:4028",
            "10.0.0.3:4030",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(resolve(&cmd("10.0.0.2:4029", None), &miners), Ok(miners[1]));
        assert_eq!(resolve(&cmd("10.0.0.1", None), &miners), Ok(miners[0]));
        assert_eq!(
            resolve(&cmd("rig-7", Some("10.0.0.2")), &miners),
            Ok(miners[1])
        );
        assert_eq!(
            resolve(&cmd("rig-8", Some("10.0.0.3")), &miners),
            Ok(miners[2])
        );
        let err = resolve(&cmd("10.0.0.9:4028", None), &miners).unwrap_err();
        assert!(err.contains("not on this collector's miner list"), "{err}");
        assert!(resolve(&cmd("rig", Some("192.168.0.1")), &miners).is_err());
        assert!(resolve(&cmd("10.0.0.2:4028", None), &miners).is_err());
    }

    #[test]
    fn pending_answers_and_result_bodies_have_adit_shapes() {
        let answer = json!({"success": true, "count": 2, "commands": [
            {"command_id": 7, "miner_id": "10.0.0.1:4028", "ip_address": null, "command": "set_pool",
             "params": {"pool_url": "stratum+tcp://p:3333", "worker": "w"}, "priority": 5,
             "expires_at": "2026-12-05T15:00:00Z"},
            {"command_id": "x"}
        ]});
        let got = parse_pending(&answer);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, 7);
        assert_eq!(got[0].params["worker"], "w");
        let body = Outcome::failed("x".repeat(5000)).body();
        assert_eq!(body["status"], "failed");
        assert!(body["result_message"].as_str().unwrap().len() <= 4096);
        let ok = Outcome::done("fine".into()).body();
        assert_eq!(
            ok,
            json!({"status": "completed", "result_code": 0, "result_message": "fine"})
        );
    }

    #[test]
    fn the_new_pool_index_comes_from_the_answer_or_the_pool_list() {
        let added =
            json!({"STATUS":[{"STATUS":"S","Code":55,"Msg":"Added pool 3: 'stratum+tcp://p:1'"}]});
        assert_eq!(added_index(&added), Some(3));
        let flat = json!({"STATUS":"S","Code":131,"Msg":"API command OK"});
        assert_eq!(added_index(&flat), None);
        let pools =
            json!({"POOLS":[{"POOL":0,"URL":"a"},{"POOL":1,"URL":"b"},{"POOL":2,"URL":"b"}]});
        assert_eq!(last_pool_with(&pools, "b"), Some(2));
        assert_eq!(last_pool_with(&pools, "c"), None);
    }
}
