//! Any bytes, as any accepted encoding, through decompress → parse and
//! validate → COPY encode: never a panic, and the invariants of
//! `adit_ingest::fuzzing::check` hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::new();
    adit_ingest::fuzzing::check(data, |sample| {
        adit_writer::copy::encode_sample(&mut buf, 1, None, sample);
    });
});
