//! Every input in `fuzz/regressions/` (crashes the fuzzer found, kept once
//! fixed) and the seed corpus still holds the properties of
//! `adit_ingest::fuzzing::check`, through the writer's COPY encoder as the
//! fuzz target runs them.

#[test]
fn regressions_and_seeds_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut buf = bytes::BytesMut::new();
    let mut n = 0;
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                adit_ingest::fuzzing::check(&std::fs::read(&path).unwrap(), |sample| {
                    buf.clear();
                    adit_writer::copy::encode_sample(&mut buf, 1, None, sample);
                });
                n += 1;
            }
        }
    }
    assert!(n >= 5, "only {n} fuzz inputs found under fuzz/");
}
