use std::path::Path;

use adit_types::dataset::{ColumnType, PartitionInterval, WriteMode};

use super::*;

#[test]
fn the_shipped_datasets_load_with_the_seeds_settings() {
    let c = Catalog::shipped().unwrap();
    let names: Vec<&str> = c.iter().map(|d| d.name()).collect();
    assert_eq!(
        names,
        [
            "agent_analysis_results",
            "inventory",
            "market_data",
            "metrics_aggregated",
            "strategy_executions"
        ]
    );
    let metrics = c.get("metrics_aggregated").unwrap().dataset();
    assert_eq!(metrics.retention.days, 30);
    assert_eq!(metrics.partition, PartitionInterval::Day);
    let rate = metrics.column("error_rate").unwrap();
    assert_eq!((rate.min, rate.max), (Some(0.0), Some(1.0)));
    let bars = c.get("market_data").unwrap().dataset();
    assert_eq!(bars.mode, WriteMode::Upsert);
    assert_eq!(bars.key, ["timestamp", "asset", "timeframe"]);
    assert_eq!(bars.retention.days, 365);
    assert_eq!(
        bars.column("timeframe").unwrap().allowed,
        ["1m", "5m", "1h", "4h", "1d"]
    );
    assert_eq!(
        bars.column("volume").unwrap().ty,
        ColumnType::Numeric {
            precision: 30,
            scale: 8
        }
    );
    assert_eq!(bars.checks.len(), 3);
    for name in ["agent_analysis_results", "strategy_executions"] {
        let d = c.get(name).unwrap().dataset();
        assert_eq!(
            (d.retention.days, d.partition),
            (730, PartitionInterval::Week)
        );
        assert_eq!(d.mode, WriteMode::Append);
    }
    assert!(c.get("market_data").unwrap().is_shipped());
}

#[test]
fn an_unknown_dataset_is_named_as_such() {
    let e = Catalog::shipped().unwrap().get("nope").unwrap_err();
    assert_eq!(e.code(), "unknown_dataset");
}

const GOOD: &str = r#"
name = "sensor"
time_column = "ts"
partition = "month"
retention = "90d"
[[columns]]
name = "ts"
type = "timestamptz"
required = true
[[columns]]
name = "value"
type = "double"
"#;

/// The error a declaration gets, with `from` replaced by `to` in [`GOOD`].
fn refused(from: &str, to: &str) -> String {
    let text = GOOD.replace(from, to);
    assert_ne!(text, GOOD, "{from:?} not found");
    let e = parse_declaration(Path::new("ops/sensor.toml"), &text).unwrap_err();
    assert_eq!(e.code(), "invalid_declaration", "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("ops/sensor.toml: "), "{msg}");
    msg
}

#[test]
fn a_bad_declaration_says_which_file_and_what_is_wrong() {
    assert!(parse_declaration(Path::new("x.toml"), GOOD).is_ok());
    let e = refused("\"double\"", "\"float\"");
    assert!(e.contains("unknown type \"float\""), "{e}");
    let e = refused(
        "partition = \"month\"",
        "partition = \"month\"\nkey = [\"id\"]",
    );
    assert!(e.contains("key column \"id\" is not declared"), "{e}");
    let e = refused("type = \"timestamptz\"", "type = \"text\"");
    assert!(
        e.contains("time column \"ts\" is text, not timestamptz"),
        "{e}"
    );
    let e = refused("name = \"value\"", "name = \"ts\"");
    assert!(e.contains("column \"ts\" is declared twice"), "{e}");
    let e = refused("name = \"sensor\"", "name = \"Sensor; DROP\"");
    assert!(e.contains("not a safe SQL name"), "{e}");
    let e = refused("name = \"value\"", "name = \"site_id\"");
    assert!(e.contains("adit adds this column"), "{e}");
    let e = refused("name = \"sensor\"", "name = \"ingest_rejects\"");
    assert!(e.contains("adit's own tables"), "{e}");
    let e = refused("name = \"sensor\"", "name = \"adit_x\"");
    assert!(e.contains("adit's own tables"), "{e}");
    let e = refused("retention = \"90d\"", "retention = \"90 days\"");
    assert!(e.contains("retention"), "{e}");
    let e = refused("type = \"double\"", "type = \"double\"\nmaximum = 3");
    assert!(e.contains("unknown field `maximum`"), "{e}");
    let e = refused("type = \"double\"", "type = \"text\"\nmin = 0");
    assert!(e.contains("min/max apply to numbers"), "{e}");
    let e = refused("type = \"double\"", "type = \"double\"\nmin = 2\nmax = 1");
    assert!(e.contains("min 2 is above max 1"), "{e}");
    let e = refused(
        "partition = \"month\"",
        "partition = \"month\"\nmode = \"upsert\"",
    );
    assert!(e.contains("needs a key"), "{e}");
    let e = refused(
        "partition = \"month\"",
        "partition = \"month\"\nmode = \"upsert\"\nkey = [\"value\"]",
    );
    assert!(e.contains("must be required"), "{e}");
    let e = refused(
        "type = \"double\"\n",
        "type = \"double\"\n[[checks]]\nrule = \"not_less\"\ncolumn = \"value\"\nthan = [\"nope\"]\n",
    );
    assert!(e.contains("check: column \"nope\" is not declared"), "{e}");
    let e = refused("required = true", "required = false");
    assert!(e.contains("must be required = true"), "{e}");
}

#[test]
fn an_operators_directory_adds_datasets_and_cannot_shadow_shipped_ones() {
    let dir = std::env::temp_dir().join(format!("adit-datasets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sensor.toml"), GOOD).unwrap();
    std::fs::write(dir.join("README.md"), "not a declaration").unwrap();
    let c = Catalog::load(Some(&dir)).unwrap();
    assert_eq!(c.len(), 6);
    assert!(!c.get("sensor").unwrap().is_shipped());

    std::fs::write(dir.join("other.toml"), GOOD).unwrap();
    let e = Catalog::load(Some(&dir)).unwrap_err().to_string();
    assert!(
        e.contains("other.toml") && e.contains("name the file sensor.toml"),
        "{e}"
    );
    std::fs::remove_file(dir.join("other.toml")).unwrap();

    let shadow = GOOD.replace("name = \"sensor\"", "name = \"market_data\"");
    std::fs::write(dir.join("market_data.toml"), shadow).unwrap();
    let e = Catalog::load(Some(&dir)).unwrap_err().to_string();
    assert!(
        e.contains("a shipped dataset is already named \"market_data\""),
        "{e}"
    );
    std::fs::remove_file(dir.join("market_data.toml")).unwrap();

    let same_table = GOOD.replace(
        "name = \"sensor\"",
        "name = \"bars\"\ntable = \"market_data\"",
    );
    std::fs::write(dir.join("bars.toml"), same_table).unwrap();
    let e = Catalog::load(Some(&dir)).unwrap_err().to_string();
    assert!(
        e.contains("table \"market_data\" is already dataset"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let e = Catalog::load(Some(&dir)).unwrap_err();
    assert_eq!(e.code(), "invalid_declaration");
    assert!(e.to_string().contains("cannot read the datasets directory"));
}

#[test]
fn the_canonical_json_ignores_layout_and_comments() {
    let a = parse_declaration(Path::new("a"), GOOD).unwrap();
    let b = parse_declaration(Path::new("b"), &format!("# comment\n{GOOD}\n\n")).unwrap();
    let (a, b) = (Declared::new(a, false), Declared::new(b, false));
    assert_eq!(a.canonical_json(), b.canonical_json());
    let back: Dataset = serde_json::from_str(&a.canonical_json()).unwrap();
    assert_eq!(&back, a.dataset());
}
