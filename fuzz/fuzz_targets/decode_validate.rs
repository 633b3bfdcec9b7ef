//! Any bytes, as any accepted encoding, through decompress → parse and
//! validate → COPY encode: never a panic, and the invariants of
//! `adit_ingest::fuzzing::check` hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    adit_ingest::fuzzing::check(data);
});
