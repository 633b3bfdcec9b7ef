//! Bodies: sample rows as JSON, arrays of them, gzip.

use std::io::Write as _;

/// `data` gzipped at the default level.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_at(data, flate2::Compression::default())
}

/// `data` gzipped at the best level (small members for big bodies).
pub fn gzip_best(data: &[u8]) -> Vec<u8> {
    gzip_at(data, flate2::Compression::best())
}

fn gzip_at(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `body` as JSON, or a panic that shows it.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `n` valid sample rows with distinct miner ids `{prefix}-{i}`.
pub fn rows(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"miner_id":"{prefix}-{i}","online":{},"hashrate_ghs":{}.5,"temperature_max":70,"accepted_shares":{i}}}"#,
                i % 10 != 0,
                100_000 + i
            )
        })
        .collect()
}

/// The rows as one JSON array.
pub fn array(rows: &[String]) -> String {
    format!("[{}]", rows.join(","))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn rows_are_distinct_json_objects_in_an_array() {
        let body = array(&rows("m", 12));
        let v = json(&body);
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 12);
        assert_eq!(rows[3]["miner_id"], "m-3");
        assert_eq!(rows[0]["online"], false);
        assert_eq!(rows[1]["online"], true);
    }

    #[test]
    fn gzip_round_trips() {
        for packed in [gzip(b"[1,2]"), gzip_best(b"[1,2]")] {
            let mut out = String::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "[1,2]");
        }
    }
}
