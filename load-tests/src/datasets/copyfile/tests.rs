//! The COPY file holds exactly the rows the load sends, in its order.

use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: crate::LoadArgs,
}

#[test]
fn the_file_holds_the_rows_the_load_sends_in_its_order() {
    let now = chrono::Utc::now().timestamp_micros();
    for dataset in ["metrics_aggregated", "market_data"] {
        let args = Cli::parse_from([
            "load",
            "--dataset",
            dataset,
            "--rows",
            "150",
            "--bodies-per-site",
            "3",
        ])
        .load;
        let sites = vec![(1000, "k0".to_string()), (1001, "k1".to_string())];
        let targets = crate::build_dataset_targets(&args, dataset, sites, now).unwrap();
        // The load sends upload n to site n % 2, body n / 2.
        let d = declared(dataset).unwrap();
        let mut sent = BytesMut::new();
        copy::begin(&mut sent);
        for body in 0..3 {
            for t in &targets {
                let mut json = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&t.bodies[body].gzip[..]),
                    &mut json,
                )
                .unwrap();
                let decoded =
                    decode(&d, &json, BodyFormat::JsonArray, &Limits::default(), now).unwrap();
                assert!(decoded.rejects.is_empty());
                copy::encode_batch(&mut sent, &d, t.site_id, &decoded.batch);
            }
        }
        copy::end(&mut sent);
        let plan = Plan {
            dataset: dataset.to_string(),
            sites: vec![1000, 1001],
            rows_per_site: 450,
            rows_per_upload: 150,
            seed: args.seed,
            now,
        };
        let mut file = Vec::new();
        assert_eq!(write(&plan, &mut file).unwrap(), 900);
        assert!(
            file == sent[..],
            "{dataset}: the file differs from the uploads"
        );
    }
}

#[test]
fn the_psql_script_loads_as_adit_writes() {
    let append = psql_script("metrics_aggregated", "/tmp/x.copy").unwrap();
    assert!(append.starts_with("\\copy \"metrics_aggregated\" (\"site_id\", \"timestamp\""));
    assert!(append.contains("FROM '/tmp/x.copy' WITH (FORMAT binary)"));
    let upsert = psql_script("market_data", "/tmp/it's.copy").unwrap();
    let d = declared("market_data").unwrap();
    assert!(upsert.starts_with("BEGIN;\n"));
    assert!(upsert.contains(&ddl::create_stage(d.dataset())));
    assert!(upsert.contains("\\copy \"adit_stage_market_data\""));
    assert!(upsert.contains("FROM '/tmp/it''s.copy'"));
    assert!(upsert.contains(&ddl::upsert(d.dataset())));
    assert!(upsert.ends_with("COMMIT;\n"));
}
