use super::*;

#[test]
fn types_parse_and_print_as_declared() {
    for t in [
        "text",
        "bool",
        "int",
        "bigint",
        "double",
        "numeric(20,2)",
        "timestamptz",
        "text[]",
        "double[]",
        "jsonb",
    ] {
        let ty: ColumnType = t.parse().unwrap();
        assert_eq!(ty.to_string(), t);
    }
    assert_eq!(
        "numeric( 5 , 4 )".parse::<ColumnType>(),
        Ok(ColumnType::Numeric {
            precision: 5,
            scale: 4
        })
    );
    for bad in [
        "varchar",
        "numeric(39,2)",
        "numeric(5,6)",
        "numeric(0,0)",
        "numeric(5)",
    ] {
        let e = bad.parse::<ColumnType>().unwrap_err();
        assert!(e.to_string().contains("unknown type"), "{bad}: {e}");
    }
}

#[test]
fn retention_units() {
    assert_eq!("30d".parse::<Retention>().unwrap().days, 30);
    assert_eq!("12w".parse::<Retention>().unwrap().days, 84);
    assert_eq!("2y".parse::<Retention>().unwrap().days, 730);
    assert!("0d".parse::<Retention>().is_err());
    assert!("30 days".parse::<Retention>().is_err());
    assert!("".parse::<Retention>().is_err());
}

#[test]
fn intervals() {
    assert_eq!(interval_micros("1m"), Some(60_000_000));
    assert_eq!(interval_micros("4h"), Some(4 * 3_600_000_000));
    assert_eq!(interval_micros("1d"), Some(86_400_000_000));
    assert_eq!(interval_micros("0m"), None);
    assert_eq!(interval_micros("1x"), None);
    assert_eq!(interval_micros("m"), None);
}

#[test]
fn a_dataset_answer_has_the_upload_envelope_without_online_counts() {
    let s = DatasetSummary {
        processed: 1,
        rejected: 1,
        errors: vec![crate::RowError {
            index: 1,
            field: "error_rate".into(),
            reason: "1.5 is above the maximum 1".into(),
        }],
    };
    assert_eq!(
        s.render(4),
        r#"{"success":true,"data":{"processed":1,"rejected":1,"processing_time_ms":4,"errors":[{"index":1,"field":"error_rate","reason":"1.5 is above the maximum 1"}]}}"#
    );
}

#[test]
fn sort_defaults_to_key_then_time() {
    let d: Dataset = serde_json::from_value(serde_json::json!({
        "name": "bars", "time_column": "ts", "partition": "day", "retention": "1y",
        "key": ["ts", "asset"], "mode": "upsert",
        "columns": [{"name": "ts", "type": "timestamptz", "required": true},
                    {"name": "asset", "type": "text", "required": true}],
    }))
    .unwrap();
    assert_eq!(d.sort_columns(), ["asset", "ts"]);
    assert!(d.archive);
    assert_eq!(d.table(), "bars");
}
