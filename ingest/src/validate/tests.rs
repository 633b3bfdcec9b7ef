use adit_types::{RowError, UploadSummary, MAX_LISTED_ERRORS};

use super::*;
use crate::Error;

const NOW: i64 = 1_763_800_000_000_000; // 2025-11-22T08:26:40Z

fn parse(body: &str) -> Parsed {
    parse_batch(body.as_bytes(), &Rules::default(), NOW).expect("batch parses")
}

fn reject_of(row: &str) -> RowError {
    let p = parse(&format!("[{row}]"));
    assert!(p.samples.is_empty(), "row should be rejected: {row}");
    p.rejects[0].error.clone()
}

#[test]
fn seed_sample_parses_every_field() {
    let p = parse(
        r#"[{"miner_id":"SN1","ip_address":"192.168.1.100","online":true,"hashrate_ghs":110000,
        "temperature_chips":[62,65.5],"fan_speeds":[5200,5300],"accepted_shares":12500,
        "boards":[{"id":0,"hashrate":36700,"temp":65,"chips_ok":76,"chips_total":76},
                  {"id":1,"hashrate":36800,"temp":67,"chips_ok":75,"chips_total":76}],
        "boards_total":2,"error_message":"","latency_ms":45}]"#,
    );
    assert_eq!(p.summary.processed, 1);
    assert_eq!(p.summary.online, 1);
    let s = &p.samples[0];
    assert_eq!(s.ts_micros, NOW, "no timestamp means receive time");
    assert_eq!(s.temperature_chips, Some(vec![62.0, 65.5]));
    assert_eq!(s.fan_speeds, Some(vec![5200, 5300]));
    let b = s.boards.as_ref().unwrap();
    assert!(adit_types::implicit_board_ids(b), "ids 0..n are implicit");
    assert_eq!((b[0].chips_ok, b[1].chips_ok), (Some(76), Some(75)));
    assert_eq!(s.error_message.as_deref(), Some(""));
    assert_eq!(s.extra, None);
}

#[test]
fn unknown_fields_are_kept_verbatim() {
    let p = parse(
        r#"[{"miner_id":"a","vendor":{"x":[1,2]},"psu":"ok","boards":[{"id":5,"volt":12.1}]}]"#,
    );
    let s = &p.samples[0];
    assert_eq!(
        s.extra.as_deref(),
        Some(r#"{"vendor":{"x":[1,2]},"psu":"ok","boards":[{"id":5,"volt":12.1}]}"#)
    );
    assert_eq!(s.boards.as_ref().unwrap()[0].id, Some(5));
}

#[test]
fn bad_rows_are_rejected_alone_with_raw_json() {
    let p = parse(r#"[{"miner_id":"ok"}, {"miner_id":"hot","temperature_max":900}, 7]"#);
    assert_eq!((p.summary.processed, p.summary.rejected), (1, 2));
    assert_eq!(
        p.rejects[0].raw_json,
        r#"{"miner_id":"hot","temperature_max":900}"#
    );
    assert_eq!(p.rejects[0].error.index, 1);
    assert_eq!(p.rejects[0].error.field, "temperature_max");
    assert_eq!(p.rejects[1].error.field, "row");
    assert_eq!(p.summary.errors.len(), 2);
}

#[test]
fn row_rules() {
    let cases = [
        (r#"{"online":true}"#, "miner_id"),
        (r#"{"miner_id":""}"#, "miner_id"),
        (r#"{"miner_id":"a\u0007b"}"#, "miner_id"),
        (
            &format!(r#"{{"miner_id":"{}"}}"#, "x".repeat(65)),
            "miner_id",
        ),
        (
            &format!(r#"{{"miner_id":"a","model":"{}"}}"#, "x".repeat(257)),
            "model",
        ),
        (r#"{"miner_id":"a","hashrate_ghs":-1}"#, "hashrate_ghs"),
        (r#"{"miner_id":"a","hashrate_ghs":1e9}"#, "hashrate_ghs"),
        (r#"{"miner_id":"a","hashrate_ghs":"fast"}"#, "hashrate_ghs"),
        (r#"{"miner_id":"a","hashrate_ghs":1e400}"#, "hashrate_ghs"),
        (r#"{"miner_id":"a","fan_speeds":[1,30001]}"#, "fan_speeds"),
        (r#"{"miner_id":"a","fan_speeds":[1.5]}"#, "fan_speeds"),
        (
            r#"{"miner_id":"a","power_consumption":100001}"#,
            "power_consumption",
        ),
        (
            r#"{"miner_id":"a","accepted_shares":-3}"#,
            "accepted_shares",
        ),
        (r#"{"miner_id":"a","online":"yes"}"#, "online"),
        (r#"{"miner_id":"a","miner_id":"b"}"#, "miner_id"),
        (r#"{"miner_id":"a","x":1,"x":2}"#, "x"),
        (r#"{"miner_id":"a","pool_url":"a\u0000b"}"#, "pool_url"),
        (
            r#"{"miner_id":"a","boards":[{"temp":300}]}"#,
            "boards[0].temp",
        ),
        (r#"{"miner_id":"a","boards":[1]}"#, "boards[0]"),
        (r#"{"miner_id":"a","timestamp":"yesterday"}"#, "timestamp"),
        (r#"{"miner_id":"a","timestamp":4000000000}"#, "timestamp"),
        (
            r#"{"miner_id":"a","timestamp":"2020-01-01T00:00:00Z"}"#,
            "timestamp",
        ),
    ];
    for (row, field) in cases {
        assert_eq!(reject_of(row).field, field, "{row}");
    }
    let chips = format!(
        r#"{{"miner_id":"a","temperature_chips":[{}]}}"#,
        vec!["1"; 1025].join(",")
    );
    assert_eq!(reject_of(&chips).field, "temperature_chips");
}

#[test]
fn timestamps_in_both_forms() {
    let secs = NOW / 1_000_000 - 60;
    let p = parse(&format!(
        r#"[{{"miner_id":"a","timestamp":{secs}}},{{"miner_id":"b","timestamp":"2025-11-22T08:00:00.5+01:00"}},{{"miner_id":"c","timestamp":{secs}.25}}]"#
    ));
    assert_eq!(p.samples[0].ts_micros, secs * 1_000_000);
    assert_eq!(p.samples[1].ts_micros, 1_763_794_800_500_000);
    assert_eq!(p.samples[2].ts_micros, secs * 1_000_000 + 250_000);
}

#[test]
fn integral_floats_count_as_integers_and_nulls_as_absent() {
    let p =
        parse(r#"[{"miner_id":"a","accepted_shares":12.0,"fan_speeds":[5200.0],"model":null}]"#);
    assert_eq!(p.samples[0].accepted_shares, Some(12));
    assert_eq!(p.samples[0].fan_speeds, Some(vec![5200]));
    assert_eq!(p.samples[0].model, None);
}

#[test]
fn whole_batch_errors() {
    let rules = Rules {
        max_rows: 2,
        ..Rules::default()
    };
    let run = |b: &str| parse_batch(b.as_bytes(), &rules, NOW).unwrap_err();
    assert!(matches!(run(r#"{"miner_id":"a"}"#), Error::NotAnArray));
    assert!(matches!(
        run(r#"[{"miner_id":"a"}"#),
        Error::MalformedJson { .. }
    ));
    assert!(matches!(
        run(r#"[{"hashrate_ghs":NaN}]"#),
        Error::MalformedJson { .. }
    ));
    assert!(matches!(
        run(r#"[{},{},{}]"#),
        Error::TooManyRows { rows: 3, limit: 2 }
    ));
    let deep = format!("[{}{}]", "[".repeat(64), "]".repeat(64));
    assert!(matches!(run(&deep), Error::TooDeep { limit: 64 }));
    let bad_utf8 = b"[{\"miner_id\":\"\xff\"}]";
    assert!(matches!(
        parse_batch(bad_utf8, &rules, NOW),
        Err(Error::MalformedJson { .. })
    ));
}

#[test]
fn empty_array_is_an_empty_batch() {
    let p = parse("[]");
    assert_eq!(p.summary, UploadSummary::default());
}

#[test]
fn errors_list_is_capped_but_every_reject_is_kept() {
    let body = format!("[{}]", vec!["{}"; 150].join(","));
    let p = parse(&body);
    assert_eq!(p.rejects.len(), 150);
    assert_eq!(p.summary.errors.len(), MAX_LISTED_ERRORS);
    assert_eq!(p.summary.rejected, 150);
}

/// What PostgreSQL's `jsonb` refuses in kept JSON (unknown members, a
/// boards array with unknown board members) rejects the row alone.
#[test]
fn json_kept_for_jsonb_is_refused_row_by_row_when_postgres_would_refuse_it() {
    let p = parse(
        r#"[{"miner_id":"x1","junk":1e200000},{"miner_id":"x2","online":true},
            {"miner_id":"x3","vendor":{"v":[1,-2e-20000]}},
            {"miner_id":"x4","boards":[{"id":0,"psu":9e131072}]},
            {"miner_id":"x5","boards":[{"id":0,"psu":"\u0000"}]},
            {"miner_id":"x6","boards":[{"id":0,"\u0000":1}]},
            {"miner_id":"x7","junk":1e131071,"s":"1e999999","b":[{"id":1,"v":1e-16383}]}]"#,
    );
    let fields: Vec<(u32, &str)> = p
        .rejects
        .iter()
        .map(|r| (r.error.index, r.error.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (0, "junk"),
            (2, "vendor"),
            (3, "boards"),
            (4, "boards"),
            (5, "boards")
        ]
    );
    assert!(
        p.rejects[0]
            .error
            .reason
            .contains("PostgreSQL cannot store"),
        "{}",
        p.rejects[0].error.reason
    );
    assert!(p.rejects[3].error.reason.contains("\\u0000"));
    let kept: Vec<&str> = p.samples.iter().map(|s| s.miner_id.as_str()).collect();
    assert_eq!(kept, ["x2", "x7"]);
}
