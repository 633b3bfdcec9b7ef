//! A declaration that changes: `adit migrate` adds a nullable column online
//! and refuses what it cannot do safely, through the library and through
//! `adit migrate --datasets-dir`.

use std::path::Path;

use super::*;

const V1: &str = r#"
name = "sensor"
time_column = "ts"
partition = "day"
retention = "100y"
key = ["probe", "ts"]
[[columns]]
name = "ts"
type = "timestamptz"
required = true
[[columns]]
name = "probe"
type = "text"
required = true
[[columns]]
name = "value"
type = "double"
"#;

fn with_column(toml_column: &str) -> String {
    format!("{V1}[[columns]]\n{toml_column}\n")
}

fn adit_migrate(url: &str, dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(["migrate", "--database-url", url, "--datasets-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_new_nullable_column_is_added_online_and_unsafe_changes_are_refused() {
    let db = TestDb::new("datasets_evolve").await;
    let mut client = adit_testkit::connect(db.url()).await;
    let dir = write_dir("evolve", &[("sensor.toml", V1)]);
    let out = adit_migrate(db.url(), &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Created the table of dataset sensor."),
        "{stderr}"
    );
    assert!(stderr.contains("6 dataset(s) declared"), "{stderr}");

    // A row stored before the change keeps NULL in the new column.
    let v1 = Catalog::load(Some(&dir)).unwrap();
    let tx = client.transaction().await.unwrap();
    let row = r#"{"ts":"2025-07-01T10:00:00Z","probe":"p1","value":1.5}"#;
    copy_rows(&tx, v1.get("sensor").unwrap(), "sensor", 1, row).await;
    tx.commit().await.unwrap();

    std::fs::write(
        dir.join("sensor.toml"),
        with_column("name = \"unit\"\ntype = \"text\""),
    )
    .unwrap();
    let v2 = Catalog::load(Some(&dir)).unwrap();
    let (_, applied) = migrate_with(&mut client, &v2).await.unwrap();
    assert_eq!(
        applied,
        [Applied::Changed {
            dataset: "sensor".into(),
            statements: vec![
                "ALTER TABLE \"sensor\" ADD COLUMN IF NOT EXISTS \"unit\" text".into()
            ],
        }]
    );
    let tx = client.transaction().await.unwrap();
    let row = r#"{"ts":"2025-07-01T10:01:00Z","probe":"p1","value":2,"unit":"C"}"#;
    copy_rows(&tx, v2.get("sensor").unwrap(), "sensor", 1, row).await;
    tx.commit().await.unwrap();
    assert_eq!(
        texts(&client, "SELECT probe, value, unit FROM sensor ORDER BY ts").await,
        [["p1", "1.5", "NULL"], ["p1", "2", "C"]]
    );
    let (_, again) = migrate_with(&mut client, &v2).await.unwrap();
    assert!(again.is_empty(), "idempotent: {again:?}");

    // Refused, with what to do; the table and the record stay as they were.
    for (declaration, what) in [
        (V1.replace("type = \"double\"", "type = \"bigint\""), "changed type from double to bigint"),
        (V1.to_string(), "column \"unit\" was removed"),
        (
            format!("{}[[columns]]\nname = \"unit\"\ntype = \"text\"\n[[columns]]\nname = \"must\"\ntype = \"int\"\nrequired = true\n", V1),
            "new column \"must\" is required",
        ),
        (
            with_column("name = \"unit\"\ntype = \"text\"").replace("key = [\"probe\", \"ts\"]", "key = [\"ts\"]"),
            "the key changed",
        ),
    ] {
        std::fs::write(dir.join("sensor.toml"), &declaration).unwrap();
        let out = adit_migrate(db.url(), &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {stderr}");
        assert!(stderr.contains(what), "{what}: {stderr}");
        assert!(stderr.contains("dataset sensor"), "{stderr}");
    }
    let recorded = texts(
        &client,
        "SELECT jsonb_array_length(declaration->'columns') FROM dataset_declarations \
         WHERE dataset = 'sensor'",
    )
    .await;
    assert_eq!(recorded, [["4"]]);

    // A declaration file that does not parse names its file.
    std::fs::write(
        dir.join("sensor.toml"),
        V1.replace("\"double\"", "\"float\""),
    )
    .unwrap();
    let out = adit_migrate(db.url(), &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("sensor.toml") && stderr.contains("unknown type \"float\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_table_adit_did_not_create_is_never_taken_over() {
    let db = TestDb::new("datasets_foreign").await;
    let mut client = adit_testkit::connect(db.url()).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    client
        .batch_execute("CREATE TABLE sensor (id int)")
        .await
        .unwrap();
    let dir = write_dir("foreign", &[("sensor.toml", V1)]);
    let catalog = Catalog::load(Some(&dir)).unwrap();
    let e = format!(
        "{:#}",
        migrate_with(&mut client, &catalog).await.unwrap_err()
    );
    assert!(
        e.contains("table sensor already exists but adit did not create it"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
