//! Which versions of a key the table may hold after a run.

use std::time::{Duration, Instant};

use super::*;

fn bar(ts: &str, close: &str) -> String {
    format!(
        r#"{{"timestamp":"{ts}","asset":"BTC/USDT","timeframe":"1m","open":1,"high":9,"low":1,"close":{close},"volume":1}}"#
    )
}

fn upload(body: usize, sent: Instant, acked: Instant) -> AckedUpload {
    AckedUpload {
        target: 0,
        body,
        sent,
        acked,
        processed: 0,
    }
}

fn market() -> Arc<Declared> {
    Catalog::shipped()
        .unwrap()
        .get("market_data")
        .unwrap()
        .clone()
}

#[test]
fn a_version_sent_after_another_was_acked_supersedes_it() {
    let t0 = Instant::now();
    let s = |ms: u64| t0 + Duration::from_millis(ms);
    let bodies = vec![
        format!("[{}]", bar("2025-07-01T10:00:00Z", "2")),
        format!(
            "[{},{}]",
            bar("2025-07-01T10:00:00Z", "3"),
            bar("2025-07-01T10:01:00Z", "4")
        ),
    ];
    let (first, second) = (upload(0, s(0), s(10)), upload(1, s(20), s(30)));
    let rows = expected_rows(&market(), &bodies, &[&first, &second]).unwrap();
    let mut rows: Vec<&str> = rows;
    rows.sort_unstable();
    assert_eq!(
        rows,
        [
            bar("2025-07-01T10:00:00Z", "3").as_str(),
            bar("2025-07-01T10:01:00Z", "4").as_str()
        ],
        "the bar sent later replaces the first"
    );
    // In flight together: either may have committed last.
    let overlapping = upload(1, s(5), s(30));
    let rows = expected_rows(&market(), &bodies, &[&first, &overlapping]).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    // The same body sent twice gives one expected row per key.
    let again = upload(0, s(40), s(50));
    let rows = expected_rows(&market(), &bodies, &[&first, &again]).unwrap();
    assert_eq!(rows, [bar("2025-07-01T10:00:00Z", "2").as_str()]);
}

#[test]
fn within_one_upload_the_last_row_of_a_key_wins() {
    let t0 = Instant::now();
    let bodies = vec![format!(
        "[{},{}]",
        bar("2025-07-01T10:00:00Z", "2"),
        bar("2025-07-01T10:00:00Z", "5")
    )];
    let u = upload(0, t0, t0 + Duration::from_millis(1));
    let rows = expected_rows(&market(), &bodies, &[&u]).unwrap();
    assert_eq!(rows, [bar("2025-07-01T10:00:00Z", "5").as_str()]);
}

#[test]
fn append_counts_must_match_per_site() {
    let acked = HashMap::from([(
        1,
        Acked {
            rows: 10,
            accepted_sum: 0,
        },
    )]);
    let exact = HashMap::from([(
        1,
        Acked {
            rows: 10,
            accepted_sum: 0,
        },
    )]);
    let doubled = HashMap::from([(
        1,
        Acked {
            rows: 20,
            accepted_sum: 0,
        },
    )]);
    assert!(compare_counts(&[1], &exact, &acked));
    assert!(!compare_counts(&[1], &doubled, &acked));
    assert!(!compare_counts(&[1, 2], &exact, &HashMap::new()));
}
