use super::*;
use crate::cgminer::parse::parse_answer as parse;

const TS: i64 = 1_764_920_000;

fn fixture(bytes: &[u8]) -> Option<Value> {
    Some(parse(bytes).expect("fixture parses"))
}

fn antminer_s19() -> Answers {
    Answers {
        summary: fixture(include_bytes!(
            "../../tests/fixtures/antminer_s19_summary.json"
        )),
        stats: fixture(include_bytes!(
            "../../tests/fixtures/antminer_s19_stats.json"
        )),
        pools: fixture(include_bytes!(
            "../../tests/fixtures/antminer_s19_pools.json"
        )),
        ..Answers::default()
    }
}

fn whatsminer_m50() -> Answers {
    Answers {
        summary: fixture(include_bytes!(
            "../../tests/fixtures/whatsminer_m50_summary.json"
        )),
        devs: fixture(include_bytes!(
            "../../tests/fixtures/whatsminer_m50_devs.json"
        )),
        pools: fixture(include_bytes!(
            "../../tests/fixtures/whatsminer_m50_pools.raw"
        )),
        devdetails: fixture(include_bytes!(
            "../../tests/fixtures/whatsminer_m50_devdetails.json"
        )),
        ..Answers::default()
    }
}

#[test]
fn antminer_s19_maps_to_the_upload_fields() {
    let answers = antminer_s19();
    assert_eq!(make_of(&answers), Make::Antminer);
    let s = normalize("SN-S19", Some("10.0.0.12"), &answers, TS);
    assert!(s.online);
    assert_eq!(s.timestamp, TS);
    assert_eq!(s.hashrate_ghs, Some(108950.12)); // GHS 30m
    assert_eq!(s.hashrate_5s_ghs, Some(104870.23)); // a string in the answer
    assert_eq!(s.hashrate_expected_ghs, Some(110000.0));
    assert_eq!(s.model.as_deref(), Some("Antminer S19 Pro"));
    assert_eq!(
        s.firmware_version.as_deref(),
        Some("Thu Nov  2 10:21:13 CST 2023")
    );
    assert_eq!(s.uptime_seconds, Some(86412));
    assert_eq!(
        (s.accepted_shares, s.rejected_shares, s.hardware_errors),
        (Some(6012), Some(7), Some(412))
    );
    // fan_num 4: the stopped third fan is reported as 0.
    assert_eq!(s.fan_speeds, vec![5760, 5640, 0, 5700]);
    assert_eq!(s.frequency_avg, Some(525.0));
    // Four chip sensors per board, three boards; the empty fourth slot is not a board.
    assert_eq!(s.temperature_chips.len(), 12);
    assert_eq!(s.temperature_max, Some(80.0));
    assert_eq!(s.temperature_min, Some(63.0));
    assert_eq!(s.temperature_avg, Some(71.3));
    assert_eq!(s.boards.len(), 3);
    assert_eq!(
        s.boards[0],
        Board {
            id: 0,
            hashrate: Some(36710.41),
            temp: Some(64.0),
            chips_ok: Some(114),
            chips_total: Some(114),
        }
    );
    // Board 3 has one bad (x) and one missing (-) chip.
    assert_eq!(
        (s.boards[2].chips_ok, s.boards[2].chips_total),
        (Some(112), Some(114))
    );
    assert_eq!((s.boards_total, s.boards_healthy), (Some(3), Some(2)));
    assert_eq!(
        s.pool_url.as_deref(),
        Some("stratum+tcp://btc.pool.example:3333")
    );
    assert_eq!(s.worker_name.as_deref(), Some("farm1.s19-0412"));
    // Stock Antminer firmware reports no power over this API.
    assert_eq!((s.power_consumption, s.efficiency), (None, None));
    assert_eq!(s.error_message, None);
}

#[test]
fn antminer_s21_with_numbers_as_strings_invalid_utf8_and_a_nul() {
    let answers = Answers {
        stats: fixture(include_bytes!(
            "../../tests/fixtures/antminer_s21_stats.raw"
        )),
        ..Answers::default()
    };
    let s = normalize("SN-S21", None, &answers, TS);
    assert!(s.online);
    assert_eq!(s.model.as_deref(), Some("Antminer S21"));
    // Without summary the counters element stands in.
    assert_eq!(s.hashrate_ghs, Some(200120.77));
    assert_eq!(s.hashrate_expected_ghs, Some(200000.0));
    assert_eq!(s.uptime_seconds, Some(3600));
    assert_eq!(s.fan_speeds, vec![3480, 3420, 3510, 3450]);
    assert_eq!(s.frequency_avg, Some(490.0));
    assert_eq!(s.hardware_errors, Some(4)); // chain_hw1..3 summed
    assert_eq!((s.boards_total, s.boards_healthy), (Some(3), Some(3)));
    assert_eq!(s.boards[1].chips_total, Some(108));
    assert_eq!(s.temperature_max, Some(82.0));
}

#[test]
fn antminer_new_api_chain_array() {
    let stats = serde_json::json!({"STATUS":[{"STATUS":"S"}],"STATS":[{"Type":"Antminer S21 Pro",
        "chain":[{"index":0,"rate_real":78210.5,"asic_num":65,"temp_pcb":[50,51,66,67],"temp_chip":[60,61,76,77]},
                 {"index":1,"rate_real":"0","asic_num":0,"temp_pcb":[0,0,0,0],"temp_chip":[0,0,0,0]}]}]});
    let answers = Answers {
        stats: Some(stats),
        ..Answers::default()
    };
    let s = normalize("SN", None, &answers, TS);
    assert_eq!(s.boards.len(), 2);
    assert_eq!(s.boards[0].hashrate, Some(78210.5));
    assert_eq!(s.boards[0].temp, Some(67.0));
    assert_eq!((s.boards_total, s.boards_healthy), (Some(2), Some(1)));
    assert_eq!(s.temperature_chips, vec![60.0, 61.0, 76.0, 77.0]);
}

#[test]
fn whatsminer_m50_maps_to_the_upload_fields() {
    let answers = whatsminer_m50();
    assert_eq!(make_of(&answers), Make::Whatsminer);
    let s = normalize("SN-M50", Some("10.0.1.7"), &answers, TS);
    assert!(s.online);
    // MH/s → GH/s, the 15-minute window.
    assert!((s.hashrate_ghs.unwrap() - 118455.904_87).abs() < 1e-6);
    assert!((s.hashrate_5s_ghs.unwrap() - 121344.8712).abs() < 1e-6);
    assert_eq!(s.hashrate_expected_ghs, Some(118440.0));
    assert_eq!(
        (s.temperature_min, s.temperature_avg, s.temperature_max),
        (Some(61.25), Some(74.7), Some(84.5))
    );
    assert_eq!(s.temperature_chips, vec![73.91, 75.10, 74.97]);
    assert_eq!(s.fan_speeds, vec![4560, 4620]);
    assert_eq!(s.frequency_avg, Some(587.0));
    assert_eq!(s.power_consumption, Some(3306.0));
    // 3306 W / 118.456 TH/s.
    assert_eq!(s.efficiency, Some(27.9));
    assert_eq!(
        (s.accepted_shares, s.rejected_shares, s.hardware_errors),
        (Some(3891), Some(4), Some(27))
    );
    assert_eq!(s.uptime_seconds, Some(52230));
    assert_eq!(s.firmware_version.as_deref(), Some("20240509.22.REL"));
    assert_eq!(s.model.as_deref(), Some("Whatsminer M50.VH50"));
    // The active pool is listed second; the trailing commas were repaired.
    assert_eq!(
        s.pool_url.as_deref(),
        Some("stratum+tcp://btc.pool.example:3333")
    );
    assert_eq!(s.worker_name.as_deref(), Some("farm1.m50-0077"));
    assert_eq!(s.boards.len(), 3);
    assert_eq!(s.boards[2].id, 2);
    assert!((s.boards[2].hashrate.unwrap() - 39555.86352).abs() < 1e-6);
    assert_eq!(
        (
            s.boards[2].temp,
            s.boards[2].chips_ok,
            s.boards[2].chips_total
        ),
        (Some(64.0), Some(147), None)
    );
    assert_eq!((s.boards_total, s.boards_healthy), (Some(3), Some(3)));
    assert_eq!(s.error_message.as_deref(), Some("error codes: 2010"));
}

#[test]
fn a_miner_that_does_not_answer_is_offline_with_the_reason() {
    let addr = "10.0.0.9:4028".parse().unwrap();
    let answers = Answers {
        errors: vec![Error::Refused { addr }],
        ..Answers::default()
    };
    let s = normalize("SN-dead", Some("10.0.0.9"), &answers, TS);
    assert!(!s.online);
    assert_eq!(
        s.error_message.as_deref(),
        Some("10.0.0.9:4028: connection refused")
    );
    assert_eq!(s.hashrate_ghs, None);
    assert!(s.boards.is_empty());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["online"], false);
    assert!(json.get("hashrate_ghs").is_none());
}

#[test]
fn a_partial_answer_is_online_and_names_what_failed() {
    let mut answers = antminer_s19();
    answers.pools = None;
    answers.errors.push(Error::Timeout {
        addr: "10.0.0.12:4028".parse().unwrap(),
        command: "pools",
        timeout_ms: 5000,
    });
    let s = normalize("SN-S19", None, &answers, TS);
    assert!(s.online);
    assert_eq!(s.pool_url, None);
    assert_eq!(
        s.error_message.as_deref(),
        Some("10.0.0.12:4028: pools got no complete answer within 5000 ms")
    );
}

#[test]
fn the_sample_serialises_with_adit_field_names() {
    let s = normalize("SN-M50", Some("10.0.1.7"), &whatsminer_m50(), TS);
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "miner_id",
        "ip_address",
        "online",
        "hashrate_ghs",
        "hashrate_5s_ghs",
        "hashrate_expected_ghs",
        "temperature_avg",
        "temperature_min",
        "temperature_max",
        "temperature_chips",
        "fan_speeds",
        "frequency_avg",
        "accepted_shares",
        "rejected_shares",
        "hardware_errors",
        "uptime_seconds",
        "power_consumption",
        "efficiency",
        "pool_url",
        "worker_name",
        "boards",
        "boards_total",
        "boards_healthy",
        "model",
        "firmware_version",
        "error_message",
        "timestamp",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    assert_eq!(json["boards"][0]["chips_ok"], 148);
    assert!(json["boards"][0].get("chips_total").is_none());
    let back: Sample = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn numbers_are_read_from_strings_and_junk_is_absent() {
    use serde_json::json;
    assert_eq!(num(&json!("37603.30")), Some(37603.3));
    assert_eq!(num(&json!(" 12 ")), Some(12.0));
    assert_eq!(num(&json!("0.1163%")), Some(0.1163));
    assert_eq!(num(&json!(42)), Some(42.0));
    for junk in [
        json!(""),
        json!("inf"),
        json!("nan"),
        json!("N/A"),
        json!(null),
        json!(true),
    ] {
        assert_eq!(num(&junk), None, "{junk}");
    }
    let m = json!({"a":"7","b":7.9,"c":"x"});
    let m = m.as_object().unwrap();
    assert_eq!(int_of(m, &["a"]), Some(7));
    assert_eq!(int_of(m, &["b"]), Some(7));
    assert_eq!(int_of(m, &["c", "a"]), Some(7));
}

#[test]
fn sensor_strings_drop_absent_sensors() {
    use serde_json::json;
    assert_eq!(
        sensor_list(Some(&json!("73-45-0-65"))),
        Some(vec![73.0, 45.0, 65.0])
    );
    assert_eq!(sensor_list(Some(&json!("0-0-0-0"))), None);
    assert_eq!(
        sensor_list(Some(&json!([50, "51", 0]))),
        Some(vec![50.0, 51.0])
    );
    assert_eq!(sensor_list(Some(&json!(79))), Some(vec![79.0]));
    assert_eq!(sensor_list(None), None);
}

#[test]
fn rate_units_scale_to_ghs() {
    use serde_json::json;
    assert_eq!(rate_unit_in_ghs(Some(&json!("TH"))), 1000.0);
    assert_eq!(rate_unit_in_ghs(Some(&json!("MH/s"))), 0.001);
    assert_eq!(rate_unit_in_ghs(Some(&json!("GH"))), 1.0);
    assert_eq!(rate_unit_in_ghs(None), 1.0);
}

#[test]
fn a_failed_sensor_does_not_cost_the_whole_sample() {
    let mut answers = antminer_s19();
    let stats = answers.stats.as_mut().unwrap();
    stats["STATS"][1]["temp_chip2"] = Value::from("78-255-80-66");
    stats["STATS"][1]["fan2"] = Value::from(-1);
    let s = normalize("SN-S19", None, &answers, TS);
    assert_eq!(s.temperature_max, Some(80.0));
    assert_eq!(s.temperature_chips.len(), 11);
    assert_eq!(s.fan_speeds, vec![5760, 0, 5700]);
    assert_eq!(
        s.error_message.as_deref(),
        Some("out of range, not sent: 1 temperature_chips readings, 1 fan_speeds readings")
    );
}
