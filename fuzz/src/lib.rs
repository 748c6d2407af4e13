//! The body of the `copy_decoder` fuzz target, shared by the libFuzzer target
//! (`cargo +nightly fuzz run copy_decoder`) and the stable driver (`fuzz_stable`, which
//! replays `corpus/copy_decoder` and then mutates it for a bounded time).
//!
//! The input's first byte picks the chunk size, the second the result's columns (one of
//! a few layouts, so that all-fixed-width rows, the decoder's speculative block walk, are
//! reached as well as mixed and nested ones) and whether a valid file header goes first
//! (so that most inputs reach the tuples). The decoder must return errors, never panic,
//! and never allocate from a length it was only told about.

use tributary::decode::pgcopy::CopyDecoder;
use tributary::types::{ArrayBoundsMode, InfinityMode, IntervalMode, PgKind, TimeTzMode, UuidMode};

/// How many layouts the second byte chooses from (its low bits, modulo this).
pub const LAYOUTS: u8 = 5;

/// The columns of layout `pick % LAYOUTS`.
pub fn layout(pick: u8) -> Vec<PgKind> {
    use PgKind::*;
    let decimal = |precision, scale, infinity| Decimal {
        precision,
        scale,
        infinity,
    };
    match pick % LAYOUTS {
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
            Time(InfinityMode::Null),
            TimeTz(TimeTzMode::Struct, InfinityMode::Clamp),
            TimeTz(TimeTzMode::Utc, InfinityMode::Error),
            Interval(IntervalMode::Struct, InfinityMode::Null),
            Interval(IntervalMode::Duration, InfinityMode::Clamp),
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
                bounds: ArrayBoundsMode::Error,
            },
            Array {
                element: Box::new(Text),
                dims: 1,
                bounds: ArrayBoundsMode::Ignore,
            },
            Range(Box::new(Date(InfinityMode::Clamp))),
            Multirange(Box::new(Range(Box::new(Int8)))),
            Composite(vec![("a".into(), Int4), ("b".into(), Text)]),
            Hstore,
            Vector,
        ],
    }
}

/// The signature, no flags, no header extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// One fuzz input through the decoder; panics only if the decoder does.
pub fn copy_decoder(data: &[u8]) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus is worth mutating only if its streams decode whole: three rows,
    /// no error, whatever the chunk size (`make_corpus.sh` captured them from PostgreSQL).
    #[test]
    fn the_corpus_decodes_whole() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/copy_decoder");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let kinds: Vec<(String, PgKind)> = layout(input[1])
                .into_iter()
                .enumerate()
                .map(|(i, k)| (format!("c{i}"), k))
                .collect();
            let mut decoder = CopyDecoder::new(&kinds);
            if input[1] & 0x80 != 0 {
                decoder.push(HEADER).unwrap();
            }
            for chunk in input[2..].chunks(usize::from(input[0]).max(1) * 7) {
                decoder
                    .push(chunk)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            decoder.finish().unwrap();
            let batch = decoder
                .take_batch()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(batch.num_rows(), 3, "{}", path.display());
            seen += 1;
        }
        assert_eq!(seen, 4 * LAYOUTS as usize);
    }
}
