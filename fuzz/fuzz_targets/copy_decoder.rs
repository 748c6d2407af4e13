//! Feeds arbitrary bytes, cut into arbitrary chunks, to the binary COPY decoder: it must
//! return errors, never panic, and never allocate from a length it was only told about.
//!
//!     cargo +nightly fuzz run copy_decoder
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::decode::pgcopy::CopyDecoder;
use tributary::types::PgKind;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let kinds: Vec<(String, PgKind)> = [
        PgKind::Bool,
        PgKind::Int8,
        PgKind::Float8,
        PgKind::Decimal { precision: 20, scale: 4 },
        PgKind::NumericText,
        PgKind::Text,
        PgKind::Jsonb,
        PgKind::Bytea,
        PgKind::Date,
        PgKind::TimestampTz,
        PgKind::Uuid,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| (format!("c{i}"), k))
    .collect();
    let mut decoder = CopyDecoder::new(&kinds);
    let step = usize::from(cut).max(1);
    for chunk in data.chunks(step) {
        if decoder.push(chunk).is_err() {
            return;
        }
        if decoder.buffered_rows() > 64 {
            let _ = decoder.take_batch();
        }
    }
    let _ = decoder.finish();
    let _ = decoder.take_batch();
});
