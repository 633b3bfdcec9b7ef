use adit_types::dataset::Dataset;

use super::*;
use crate::Catalog;

fn shipped(name: &str) -> Dataset {
    Catalog::shipped()
        .unwrap()
        .get(name)
        .unwrap()
        .dataset()
        .clone()
}

#[test]
fn the_table_is_partitioned_by_its_time_column_with_site_and_extra() {
    let d = shipped("market_data");
    let sql = create_table(&d);
    assert_eq!(sql.len(), 2);
    assert!(sql[0].starts_with("CREATE TABLE \"market_data\" (\n    \"site_id\" int4 NOT NULL,\n    \"timestamp\" timestamptz NOT NULL,"), "{}", sql[0]);
    assert!(sql[0].contains("\"volume\" numeric(30,8) NOT NULL"));
    assert!(sql[0].contains("\"ema_21\" numeric(20,2),"));
    assert!(sql[0].ends_with("\"extra\" jsonb\n) PARTITION BY RANGE (\"timestamp\")"));
    assert_eq!(
        sql[1],
        "CREATE UNIQUE INDEX \"market_data_key\" ON \"market_data\" (\"site_id\", \"timestamp\", \"asset\", \"timeframe\")"
    );
    let append = create_table(&shipped("metrics_aggregated"));
    assert!(append[1].starts_with("CREATE INDEX \"metrics_aggregated_key\""));
}

#[test]
fn copy_columns_follow_the_declaration() {
    let d = shipped("metrics_aggregated");
    assert_eq!(
        copy_columns(&d),
        "\"site_id\", \"timestamp\", \"service_name\", \"api_endpoint\", \"qps\", \
         \"avg_latency_ms\", \"p95_latency_ms\", \"p99_latency_ms\", \"error_rate\", \
         \"total_requests\", \"extra\""
    );
}

#[test]
fn the_upsert_keeps_the_last_row_per_key_and_updates_the_rest() {
    let sql = upsert(&shipped("market_data"));
    assert!(
        sql.contains("SELECT DISTINCT ON (\"site_id\", \"timestamp\", \"asset\", \"timeframe\")")
    );
    assert!(sql.contains(
        "ORDER BY \"site_id\", \"timestamp\", \"asset\", \"timeframe\", \"adit_row\" DESC"
    ));
    assert!(sql.contains("ON CONFLICT (\"site_id\", \"timestamp\", \"asset\", \"timeframe\") DO UPDATE SET \"open\" = EXCLUDED.\"open\""));
    assert!(sql.ends_with("\"extra\" = EXCLUDED.\"extra\""));
    assert!(!sql.contains("\"asset\" = EXCLUDED"));
}

fn with_column(d: &Dataset, toml_column: &str) -> Dataset {
    let mut d = d.clone();
    let c: adit_types::dataset::Column = toml::from_str(toml_column).unwrap();
    d.columns.push(c);
    d
}

#[test]
fn safe_changes_are_planned_and_unsafe_ones_refused_with_what_to_do() {
    let old = shipped("metrics_aggregated");
    assert_eq!(plan_change(&old, &old).unwrap(), Vec::<String>::new());
    let added = with_column(&old, "name = \"region\"\ntype = \"text\"");
    assert_eq!(
        plan_change(&old, &added).unwrap(),
        ["ALTER TABLE \"metrics_aggregated\" ADD COLUMN IF NOT EXISTS \"region\" text"]
    );
    let mut bounds = old.clone();
    bounds.columns[3].max = Some(1e6);
    bounds.retention.days = 60;
    assert!(plan_change(&old, &bounds).unwrap().is_empty());
    let mut relaxed = old.clone();
    relaxed.columns[1].required = false;
    assert_eq!(
        plan_change(&old, &relaxed).unwrap(),
        ["ALTER TABLE \"metrics_aggregated\" ALTER COLUMN \"service_name\" DROP NOT NULL"]
    );

    let refused = |new: &Dataset, what: &str, fix: &str| {
        let e = plan_change(&old, new).unwrap_err();
        assert_eq!(e.code(), "unsafe_change");
        let msg = e.to_string();
        assert!(msg.contains(what) && msg.contains(fix), "{msg}");
    };
    let mut retyped = old.clone();
    retyped.columns[3].ty = "numeric(10,2)".parse().unwrap();
    refused(
        &retyped,
        "column \"qps\" changed type from double to numeric(10,2)",
        "add a column",
    );
    let mut removed = old.clone();
    removed.columns.pop();
    refused(
        &removed,
        "column \"total_requests\" was removed",
        "put it back",
    );
    let required = with_column(&old, "name = \"region\"\ntype = \"text\"\nrequired = true");
    refused(
        &required,
        "new column \"region\" is required",
        "required = false",
    );
    let mut rekeyed = old.clone();
    rekeyed.key.pop();
    refused(&rekeyed, "the key changed", "declare a new dataset");
    let mut moded = old.clone();
    moded.mode = adit_types::dataset::WriteMode::Upsert;
    refused(&moded, "the mode changed", "declare a new dataset");
    let mut repartitioned = old.clone();
    repartitioned.partition = adit_types::dataset::PartitionInterval::Week;
    refused(
        &repartitioned,
        "the partition changed from [day] to [week]",
        "declare a new dataset",
    );
    let mut tightened = relaxed.clone();
    tightened.columns[1].required = true;
    let e = plan_change(&relaxed, &tightened).unwrap_err().to_string();
    assert!(e.contains("became required"), "{e}");
}
