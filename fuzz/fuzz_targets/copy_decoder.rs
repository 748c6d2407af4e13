//! Feeds arbitrary bytes, cut into arbitrary chunks, to the binary COPY decoder: it must
//! return errors, never panic, and never allocate from a length it was only told about.
//! The first byte picks the chunk size, the second the result's columns (one of a few
//! layouts, so that all-fixed-width rows, the decoder's speculative block walk, are
//! reached as well as mixed and nested ones) and whether a valid file header goes first
//! (so that most inputs reach the tuples).
//!
//!     cargo fuzz run copy_decoder          (RUSTC_BOOTSTRAP=1 on a stable toolchain)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::decode::pgcopy::CopyDecoder;
use tributary::types::{InfinityMode, IntervalMode, PgKind, TimeTzMode, UuidMode};

fn layout(pick: u8) -> Vec<PgKind> {
    use PgKind::*;
    let decimal = |precision, scale, infinity| Decimal {
        precision,
        scale,
        infinity,
    };
    match pick % 5 {
        // Fixed widths only: the block walk's fast case.
        0 => vec![
            Int8,
            Int4,
            Float8,
            Date(InfinityMode::Error),
            TimestampTz(InfinityMode::Clamp),
        ],
        // The benchmark's mix: small decimals, text, bool, nullable everything.
        1 => vec![
            Int8,
            Int4,
            decimal(15, 2, InfinityMode::Error),
            Float8,
            Bool,
            Date(InfinityMode::Null),
            TimestampTz(InfinityMode::Error),
            Text,
            Text,
        ],
        // Wide decimals and the text-like kinds.
        2 => vec![
            decimal(38, 10, InfinityMode::Clamp),
            decimal(20, -2, InfinityMode::Null),
            NumericText,
            NumericFloat,
            Jsonb,
            VersionedText,
            Char,
            Bytea,
            Money,
        ],
        // Times, intervals, network and geometric kinds.
        3 => vec![
            Time,
            TimeTz(TimeTzMode::Struct),
            TimeTz(TimeTzMode::Utc),
            Interval(IntervalMode::Struct),
            Interval(IntervalMode::Duration),
            Uuid(UuidMode::Binary),
            Uuid(UuidMode::String),
            Inet { cidr: false },
            MacAddr,
            Bit,
            Point,
            Int2,
            UInt32,
            UInt64,
            Float4,
        ],
        // Nested: arrays, ranges, composites, hstore, vectors.
        _ => vec![
            Array {
                element: Box::new(Int4),
                dims: 2,
            },
            Array {
                element: Box::new(Text),
                dims: 1,
            },
            Range(Box::new(Date(InfinityMode::Clamp))),
            Multirange(Box::new(Int8)),
            Composite(vec![("a".into(), Int4), ("b".into(), Text)]),
            Hstore,
            Vector,
        ],
    }
}

/// The signature, no flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

fuzz_target!(|data: &[u8]| {
    let [cut, pick, data @ ..] = data else { return };
    let kinds: Vec<(String, PgKind)> = layout(*pick)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (format!("c{i}"), k))
        .collect();
    let mut decoder = CopyDecoder::new(&kinds);
    if pick & 0x80 != 0 && decoder.push(HEADER).is_err() {
        panic!("the decoder refused a valid header");
    }
    let step = usize::from(*cut).max(1) * 7;
    for chunk in data.chunks(step) {
        if decoder.push(chunk).is_err() {
            return;
        }
        if decoder.buffered_rows() > 64 && decoder.take_batch().is_err() {
            return;
        }
    }
    let _ = decoder.finish();
    let _ = decoder.take_batch();
});
