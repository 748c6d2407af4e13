//! The decoder fed with streams built here and captured from PostgreSQL: every kind,
//! any chunking, and malformed input, which must be an error and never a panic.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int32Type};

use super::block::{BLOCK_ROWS, MAX_HEADER_EXTENSION, SIGNATURE};
use super::numeric::{
    NUMERIC_NAN, NUMERIC_NEG, NUMERIC_NINF, NUMERIC_PINF, NUMERIC_POS, Numeric, any_decimal,
    decimal, small_decimal,
};
use super::scalar::{MICROS_PER_DAY, PG_EPOCH_DAYS, PG_EPOCH_MICROS, ipv6_text};
use super::{CopyDecoder, CopyError, Malformed, ValueError};
use crate::types::{ArrayBoundsMode, InfinityMode, IntervalMode, PgKind, TimeTzMode, UuidMode};

fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend((digits.len() as u16).to_be_bytes());
    v.extend(weight.to_be_bytes());
    v.extend(sign.to_be_bytes());
    v.extend(dscale.to_be_bytes());
    for d in digits {
        v.extend(d.to_be_bytes());
    }
    v
}

#[test]
fn numeric_text_and_decimal() {
    // 12345.678 = 1|2345|6780 with weight 1
    let b = numeric_bytes(1, NUMERIC_POS, 3, &[1, 2345, 6780]);
    let n = Numeric::parse(&b).unwrap();
    assert_eq!(n.to_text(), "12345.678");
    assert_eq!(n.to_i128(3).unwrap(), 12_345_678);
    assert_eq!(n.to_i128(5).unwrap(), 1_234_567_800);
    assert!(
        n.to_i128(2)
            .unwrap_err()
            .to_string()
            .contains("more than 2 decimal places")
    );

    // -0.0042 = weight -1, digits [42], dscale 4
    let b = numeric_bytes(-1, NUMERIC_NEG, 4, &[42]);
    let n = Numeric::parse(&b).unwrap();
    assert_eq!(n.to_text(), "-0.0042");
    assert_eq!(n.to_i128(4).unwrap(), -42);

    // 1000000 = [100] weight 1 (100 * 10000)
    let b = numeric_bytes(1, NUMERIC_POS, 0, &[100]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "1000000");
    // 0 with scale 2
    let b = numeric_bytes(0, NUMERIC_POS, 2, &[]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "0.00");
    let b = numeric_bytes(0, NUMERIC_NAN, 0, &[]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "NaN");
    assert!(Numeric::parse(&b).unwrap().to_i128(2).is_err());
    // 38 significant digits whose last base-10000 group is padded with zeros.
    let b = numeric_bytes(
        6,
        NUMERIC_POS,
        10,
        &[9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9900],
    );
    let n = Numeric::parse(&b).unwrap();
    assert_eq!(n.to_text(), "9999999999999999999999999999.9999999999");
    assert_eq!(n.to_i128(10).unwrap(), 10i128.pow(38) - 1);
    assert!(
        n.to_i128(11)
            .unwrap_err()
            .to_string()
            .contains("does not fit")
    );
    // A digit above 9999 is malformed.
    assert!(Numeric::parse(&numeric_bytes(0, NUMERIC_POS, 0, &[10000])).is_err());
}

#[test]
fn the_decimal_fast_path_agrees_with_the_general_one() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let signs = [
        NUMERIC_POS,
        NUMERIC_NEG,
        NUMERIC_NAN,
        NUMERIC_PINF,
        NUMERIC_NINF,
    ];
    let mut fast = 0;
    for _ in 0..200_000 {
        let ndigits = rng.random_range(0..=6);
        let mut digits: Vec<u16> = (0..ndigits).map(|_| rng.random_range(0..10_000)).collect();
        match rng.random_range(0..10) {
            // Trailing zeros, as in prices: 12.50 is [12, 5000].
            0..=3 if ndigits > 0 => digits[ndigits - 1] = rng.random_range(0..100) * 100,
            4 if ndigits > 0 => digits[0] = 10_000, // malformed
            _ => {}
        }
        let sign = if rng.random_range(0..10) == 0 {
            signs[rng.random_range(0..signs.len())]
        } else {
            signs[rng.random_range(0..2)]
        };
        let v = numeric_bytes(rng.random_range(-6..6), sign, 2, &digits);
        let precision = rng.random_range(1..=38u8);
        let scale = rng.random_range(0..=precision.min(8)) as i8;
        let infinity =
            [InfinityMode::Error, InfinityMode::Null, InfinityMode::Clamp][rng.random_range(0..3)];
        let general = any_decimal(&v, precision, scale, infinity);
        assert_eq!(
            decimal(&v, precision, scale, infinity),
            general,
            "{v:?} as numeric({precision},{scale})"
        );
        fast += small_decimal(&v, scale).is_some() as usize;
    }
    // The comparison means something only if both paths were taken often.
    assert!(
        (30_000..170_000).contains(&fast),
        "{fast} of 200000 took the fast path"
    );
}

/// Columns of every kind decoded a block at a time, and one (jsonb) decoded a value at
/// a time, with NULLs in every position of a block.
#[test]
fn blocks_decode_every_row_whatever_the_chunks_and_batches() {
    use rand::{Rng, SeedableRng};
    let kinds: Vec<(String, PgKind)> = [
        PgKind::Int4,
        PgKind::Int8,
        PgKind::Bool,
        PgKind::Float8,
        PgKind::Text,
        PgKind::Decimal {
            precision: 15,
            scale: 2,
            infinity: InfinityMode::Error,
        },
        PgKind::Date(InfinityMode::Null),
        PgKind::TimestampTz(InfinityMode::Error),
        PgKind::Jsonb,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| (format!("c{i}"), k))
    .collect();
    let rows = 3 * BLOCK_ROWS + 77;
    let null = |r: usize, c: usize| (r * 7 + c * 3).is_multiple_of(13);
    let data: Vec<Vec<Option<Vec<u8>>>> = (0..rows)
        .map(|r| {
            let values = [
                (r as i32 - 500).to_be_bytes().to_vec(),
                (r as i64 * 1_000_000_007).to_be_bytes().to_vec(),
                vec![(r % 2) as u8],
                (r as f64 / 8.0).to_be_bytes().to_vec(),
                format!("row {r} ü").into_bytes(),
                numeric_bytes(0, NUMERIC_POS, 2, &[r as u16, 2500]),
                // Every 10th date is infinity, read as NULL.
                if r % 10 == 9 { i32::MAX } else { r as i32 }
                    .to_be_bytes()
                    .to_vec(),
                (r as i64 * 1_000_000).to_be_bytes().to_vec(),
                [&[1u8][..], format!("{{\"r\": {r}}}").as_bytes()].concat(),
            ];
            values
                .into_iter()
                .enumerate()
                .map(|(c, v)| (!null(r, c)).then_some(v))
                .collect()
        })
        .collect();
    let bytes = stream(&data);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    for _ in 0..20 {
        let mut dec = CopyDecoder::new(&kinds);
        let mut batches = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + rng.random_range(1..4000)).min(bytes.len());
            dec.push(&bytes[at..end]).unwrap();
            at = end;
            if rng.random_range(0..4) == 0 {
                batches.push(dec.take_batch().unwrap());
            }
        }
        dec.finish().unwrap();
        batches.push(dec.take_batch().unwrap());
        let batch = arrow::compute::concat_batches(dec.schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), rows);
        for r in 0..rows {
            let shown: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, r).unwrap())
                .collect();
            let ts = arrow::util::display::array_value_to_string(
                &arrow::array::TimestampMicrosecondArray::from(vec![
                    PG_EPOCH_MICROS + r as i64 * 1_000_000,
                ])
                .with_timezone("UTC"),
                0,
            )
            .unwrap();
            let date = arrow::util::display::array_value_to_string(
                &arrow::array::Date32Array::from(vec![PG_EPOCH_DAYS + r as i32]),
                0,
            )
            .unwrap();
            let want = [
                (r as i32 - 500).to_string(),
                (r as i64 * 1_000_000_007).to_string(),
                (r % 2 == 1).to_string(),
                format!("{:?}", r as f64 / 8.0),
                format!("row {r} ü"),
                format!("{r}.25"),
                if r % 10 == 9 { String::new() } else { date },
                ts,
                format!("{{\"r\": {r}}}"),
            ];
            for (c, (got, want)) in shown.iter().zip(&want).enumerate() {
                let want = if null(r, c) { "" } else { want.as_str() };
                assert_eq!(got, want, "row {r}, column {c}");
                assert_eq!(
                    batch.column(c).is_null(r),
                    null(r, c) || (c == 6 && r % 10 == 9)
                );
            }
        }
    }
}

#[test]
fn wide_tuples_are_decoded_before_the_block_fills() {
    let kinds = vec![
        ("i".to_string(), PgKind::Int4),
        ("t".to_string(), PgKind::Text),
    ];
    let wide = |r: usize| format!("{r:>60000}");
    let rows: Vec<Vec<Option<Vec<u8>>>> = (0..20)
        .map(|r| {
            vec![
                Some((r as i32).to_be_bytes().to_vec()),
                Some(wide(r).into_bytes()),
            ]
        })
        .collect();
    let data = stream(&rows);
    let tuple = 2 + (4 + 4) + (4 + 60_000);
    // Four tuples (240 KB) wait in the block; the fifth passes 256 KiB and all five
    // are decoded.
    let mut dec = CopyDecoder::new(&kinds);
    dec.push(&data[..19 + 4 * tuple]).unwrap();
    assert_eq!(dec.fields.len(), 4 * 2);
    dec.push(&data[19 + 4 * tuple..19 + 5 * tuple]).unwrap();
    assert!(dec.block.is_empty() && dec.fields.is_empty());
    assert_eq!(dec.buffered_rows(), 5);
    let mut dec = CopyDecoder::new(&kinds);
    dec.push(&data).unwrap();
    dec.finish().unwrap();
    let batch = dec.take_batch().unwrap();
    let text = batch.column(1).as_string::<i32>();
    for r in 0..20 {
        assert_eq!(
            batch.column(0).as_primitive::<Int32Type>().value(r),
            r as i32
        );
        assert_eq!(text.value(r), wide(r));
    }
}

#[test]
fn a_bad_value_fails_the_push_that_completes_its_block_or_the_batch() {
    let kinds = vec![("i".to_string(), PgKind::Int4)];
    let mut rows: Vec<Vec<Option<Vec<u8>>>> = (0..BLOCK_ROWS as i32)
        .map(|r| vec![Some(r.to_be_bytes().to_vec())])
        .collect();
    rows[5] = vec![Some(vec![1, 2])];
    let mut bytes = stream(&rows);
    bytes.truncate(bytes.len() - 2); // no trailer
    // The bad value is the sixth tuple's field: after the header and five tuples.
    let want = CopyError::Value {
        column: "i".into(),
        offset: Some(19 + 5 * (2 + 4 + 4) + 2),
        problem: ValueError::Size {
            expected: 4,
            got: 2,
        },
    };
    // One row short of a block: the push succeeds, taking the batch reports it.
    let last = bytes.len() - (2 + 4 + 4);
    let mut dec = CopyDecoder::new(&kinds);
    dec.push(&bytes[..last]).unwrap();
    assert_eq!(dec.take_batch().unwrap_err(), want);
    assert!(
        dec.push(&bytes[last..]).is_err(),
        "nothing more is accepted"
    );
    // The whole block: the push reports it.
    let mut dec = CopyDecoder::new(&kinds);
    assert_eq!(dec.push(&bytes).unwrap_err(), want);
}

fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut v = SIGNATURE.to_vec();
    v.extend(0i32.to_be_bytes());
    v.extend(0i32.to_be_bytes());
    for row in rows {
        v.extend((row.len() as i16).to_be_bytes());
        for f in row {
            match f {
                None => v.extend((-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend((b.len() as i32).to_be_bytes());
                    v.extend(b);
                }
            }
        }
    }
    v.extend((-1i16).to_be_bytes());
    v
}

fn kinds() -> Vec<(String, PgKind)> {
    vec![
        ("i".into(), PgKind::Int4),
        ("t".into(), PgKind::Text),
        (
            "d".into(),
            PgKind::Decimal {
                precision: 10,
                scale: 2,
                infinity: InfinityMode::Error,
            },
        ),
    ]
}

fn sample() -> Vec<u8> {
    stream(&[
        vec![
            Some(7i32.to_be_bytes().to_vec()),
            Some(b"seven".to_vec()),
            Some(numeric_bytes(0, NUMERIC_POS, 2, &[7, 5000])),
        ],
        vec![None, None, None],
        vec![
            Some((-1i32).to_be_bytes().to_vec()),
            Some("ünï".as_bytes().to_vec()),
            Some(numeric_bytes(0, NUMERIC_NEG, 2, &[1])),
        ],
    ])
}

fn check(batch: &RecordBatch) {
    assert_eq!(batch.num_rows(), 3);
    let i = batch.column(0).as_primitive::<Int32Type>();
    assert_eq!((i.value(0), i.is_null(1), i.value(2)), (7, true, -1));
    let t = batch.column(1).as_string::<i32>();
    assert_eq!(
        (t.value(0), t.is_null(1), t.value(2)),
        ("seven", true, "ünï")
    );
    let d = batch.column(2).as_primitive::<Decimal128Type>();
    assert_eq!((d.value(0), d.is_null(1), d.value(2)), (750, true, -100));
}

#[test]
fn decodes_whole_stream() {
    let mut dec = CopyDecoder::new(&kinds());
    dec.push(&sample()).unwrap();
    dec.finish().unwrap();
    check(&dec.take_batch().unwrap());
}

#[test]
fn text_that_is_not_utf8_fails_its_batch() {
    let kinds = vec![("t".to_string(), PgKind::Text)];
    // Each value alone is invalid, though their concatenation is valid UTF-8: a
    // check of the whole buffer must also find values split inside a character.
    let cases: [&[&[u8]]; 3] = [
        &[b"fine", b"bad \xff byte"],
        &[b"a\xc3", b"\xa9b"],
        &[b"\xe2\x82", b"\xac"],
    ];
    for values in cases {
        let rows: Vec<Vec<Option<Vec<u8>>>> =
            values.iter().map(|v| vec![Some(v.to_vec())]).collect();
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&stream(&rows)).unwrap();
        let err = dec.take_batch().unwrap_err();
        assert!(
            matches!(&err, CopyError::Value { column, problem: ValueError::Utf8(_), .. } if column == "t"),
            "{values:?}: {err:?}"
        );
        assert!(dec.push(&[0, 1]).is_err(), "nothing more is accepted");
    }
    // Valid multibyte text comes back as sent, however the stream is cut into
    // batches (each batch's builders are sized by the one before).
    let words = ["Grüße", "€", "", "日本語", "a"];
    let rows: Vec<_> = (0..3)
        .flat_map(|_| words.iter())
        .map(|w| vec![Some(w.as_bytes().to_vec())])
        .collect();
    let data = stream(&rows);
    for size in [1, 7, 40, data.len()] {
        let mut dec = CopyDecoder::new(&kinds);
        let mut seen = Vec::new();
        for chunk in data.chunks(size) {
            dec.push(chunk).unwrap();
            let batch = dec.take_batch().unwrap();
            let text = batch.column(0).as_string::<i32>();
            seen.extend(text.iter().flatten().map(str::to_string));
        }
        dec.finish().unwrap();
        assert_eq!(seen, words.repeat(3), "chunks of {size}");
    }
}

#[test]
fn any_chunking_gives_the_same_result() {
    let data = sample();
    for size in 1..data.len() {
        let mut dec = CopyDecoder::new(&kinds());
        for chunk in data.chunks(size) {
            dec.push(chunk).unwrap();
        }
        dec.finish().unwrap();
        check(&dec.take_batch().unwrap());
    }
}

#[test]
fn truncation_is_detected() {
    let data = sample();
    for cut in 0..data.len() - 1 {
        let mut dec = CopyDecoder::new(&kinds());
        let r = dec.push(&data[..cut]);
        assert!(
            r.is_err()
                || matches!(
                    dec.finish(),
                    Err(CopyError::Malformed {
                        problem: Malformed::Truncated,
                        ..
                    })
                ),
            "cut at {cut}"
        );
    }
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    // Wrong field count, bad signature, absurd lengths, wrong fixed sizes.
    let bad_count = stream(&[vec![None]]);
    assert!(CopyDecoder::new(&kinds()).push(&bad_count).is_err());
    assert!(CopyDecoder::new(&kinds()).push(b"PGCOPX\n").is_err());
    let wrong_size = stream(&[vec![Some(vec![1, 2]), None, None]]);
    let err = CopyDecoder::new(&kinds()).push(&wrong_size).unwrap_err();
    assert_eq!(
        err,
        CopyError::Value {
            column: "i".into(),
            offset: Some(19 + 2),
            problem: ValueError::Size {
                expected: 4,
                got: 2
            },
        }
    );
    let mut neg = stream(&[]);
    neg.truncate(19);
    neg.extend(3i16.to_be_bytes());
    neg.extend((-7i32).to_be_bytes());
    assert!(CopyDecoder::new(&kinds()).push(&neg).is_err());
    let mut huge = stream(&[]);
    huge.truncate(19);
    huge.extend(3i16.to_be_bytes());
    huge.extend(i32::MAX.to_be_bytes());
    assert!(
        CopyDecoder::new(&kinds()).push(&huge).is_err(),
        "a claimed 2 GiB field is refused at once"
    );
    let mut after = sample();
    after.push(0);
    assert!(CopyDecoder::new(&kinds()).push(&after).is_err());
}

/// One row of `COPY (SELECT ...) TO STDOUT (FORMAT binary)` captured from PostgreSQL 15:
/// '1 year 2 mons -3 days 04:05:06.789'::interval, '12:34:56.789+02'::timetz,
/// '2001:db8::1/64'::inet, '::ffff:1.2.3.4'::inet, '10.0.0.0/8'::cidr,
/// '08:00:2b:01:02:03'::macaddr, '1010000011'::varbit, '(1.5,-2)'::point,
/// 'a=>1, b=>NULL'::hstore, '{{1,2},{3,NULL}}'::int4[], '[1,5)'::int4range,
/// '{[2024-01-01,2024-01-10), (,2000-01-01)}'::datemultirange, ROW(7, 'x')::pair2,
/// 'NaN'::numeric, '-12.34'::money, 'a.b'::ltree, '{"k": 1}'::jsonb,
/// 'infinity'::date, 'empty'::int4range
const CAPTURED: &str = "5047434f50590aff0d0a000000000000000000001300000010000000036c97ca88fffffffd0000000e0000000c0000000a8be62608ffffe3e0000000140340001020010db8000000000000000000000001000000140380001000000000000000000000ffff0102030400000008020801040a0000000000000608002b010203000000060000000aa0c0000000103ff8000000000000c0000000000000000000001700000002000000016100000001310000000162ffffffff0000003800000002000000010000001700000002000000010000000200000001000000040000000100000004000000020000000400000003ffffffff0000001102000000040000000100000004000000050000002600000002000000090800000004000000000000001102000000040000223e000000040000224700000019000000020000001700000004000000070000001900000001780000000800000000c000000000000008fffffffffffffb2e0000000401612e6200000009017b226b223a20317d000000047fffffff0000000101ffff";

fn captured_kinds(infinity: InfinityMode) -> Vec<(String, PgKind)> {
    let int4_range = PgKind::Range(Box::new(PgKind::Int4));
    [
        PgKind::Interval(IntervalMode::Struct, InfinityMode::Error),
        PgKind::TimeTz(TimeTzMode::Struct, InfinityMode::Error),
        PgKind::Inet { cidr: false },
        PgKind::Inet { cidr: false },
        PgKind::Inet { cidr: true },
        PgKind::MacAddr,
        PgKind::Bit,
        PgKind::Point,
        PgKind::Hstore,
        PgKind::Array {
            element: Box::new(PgKind::Int4),
            dims: 2,
            bounds: ArrayBoundsMode::Error,
        },
        int4_range.clone(),
        PgKind::Multirange(Box::new(PgKind::Range(Box::new(PgKind::Date(
            InfinityMode::Error,
        ))))),
        PgKind::Composite(vec![("n".into(), PgKind::Int4), ("s".into(), PgKind::Text)]),
        PgKind::NumericText,
        PgKind::Money,
        PgKind::VersionedText,
        PgKind::Jsonb,
        PgKind::Date(infinity),
        int4_range,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| (format!("c{i}"), k))
    .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn captured_values_decode_as_postgres_prints_them() {
    let mut dec = CopyDecoder::new(&captured_kinds(InfinityMode::Null));
    dec.push(&hex(CAPTURED)).unwrap();
    dec.finish().unwrap();
    let batch = dec.take_batch().unwrap();
    let shown: Vec<String> = batch
        .columns()
        .iter()
        .map(|c| arrow::util::display::array_value_to_string(c, 0).unwrap())
        .collect();
    assert_eq!(
        shown,
        [
            "{months: 14, days: -3, microseconds: 14706789000}",
            "{time: 12:34:56.789, utc_offset: 7200}",
            "2001:db8::1/64",
            "::ffff:1.2.3.4",
            "10.0.0.0/8",
            "08:00:2b:01:02:03",
            "1010000011",
            "{x: 1.5, y: -2.0}",
            "{a: 1, b: }",
            "[[1, 2], [3, ]]",
            "{lower: 1, upper: 5, lower_inclusive: true, upper_inclusive: false, empty: false}",
            // PostgreSQL sends a multirange's ranges in order.
            "[{lower: , upper: 2000-01-01, lower_inclusive: false, upper_inclusive: false, empty: false}, {lower: 2024-01-01, upper: 2024-01-10, lower_inclusive: true, upper_inclusive: false, empty: false}]",
            "{n: 7, s: x}",
            "NaN",
            "-12.34",
            "a.b",
            "{\"k\": 1}",
            "",
            "{lower: , upper: , lower_inclusive: false, upper_inclusive: false, empty: true}",
        ]
    );
    assert!(batch.column(17).is_null(0), "infinity read as NULL");
    // The default for infinity is an error naming what to choose.
    let err = CopyDecoder::new(&captured_kinds(InfinityMode::Error))
        .push(&hex(CAPTURED))
        .unwrap_err();
    assert!(
        matches!(&err, CopyError::Value { column, problem: ValueError::Infinite { what: "date", positive: true }, .. } if column == "c17")
            && err.to_string().contains("clamp"),
        "{err:?}"
    );
}

#[test]
fn captured_bytes_cut_or_corrupted_never_panic() {
    use rand::{Rng, SeedableRng};
    let valid = hex(CAPTURED);
    let kinds = captured_kinds(InfinityMode::Clamp);
    for cut in 0..valid.len() {
        let mut dec = CopyDecoder::new(&kinds);
        let _ = dec.push(&valid[..cut]).and_then(|_| dec.finish());
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    for _ in 0..5000 {
        let mut data = valid.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(19..data.len());
            data[i] = rng.random();
        }
        let mut dec = CopyDecoder::new(&kinds);
        let _ = dec.push(&data).and_then(|_| dec.finish());
        // Accepted or not, what the decoder holds makes a valid batch.
        let _ = dec.take_batch();
    }
}

#[test]
fn vectors_and_uuids_as_text() {
    // pgvector's binary form: int16 dimensions, int16 unused, then float4s.
    let mut vector = Vec::new();
    vector.extend(3u16.to_be_bytes());
    vector.extend(0u16.to_be_bytes());
    for f in [1.5f32, -0.0, f32::MAX] {
        vector.extend(f.to_be_bytes());
    }
    let uuid: Vec<u8> = (0u8..16).collect();
    let kinds = vec![
        ("v".to_string(), PgKind::Vector),
        ("u".to_string(), PgKind::Uuid(UuidMode::String)),
    ];
    let mut dec = CopyDecoder::new(&kinds);
    dec.push(&stream(&[vec![Some(vector.clone()), Some(uuid)]]))
        .unwrap();
    let batch = dec.take_batch().unwrap();
    let shown = arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap();
    assert_eq!(shown, "[1.5, -0.0, 3.4028235e38]");
    assert_eq!(
        batch.column(1).as_string::<i32>().value(0),
        "00010203-0405-0607-0809-0a0b0c0d0e0f"
    );
    // A dimension count the value cannot hold is an error.
    vector[1] = 4;
    let err = CopyDecoder::new(&kinds)
        .push(&stream(&[vec![Some(vector), None]]))
        .unwrap_err();
    assert!(
        matches!(&err, CopyError::Value { column, problem: ValueError::Count { count: 4, bytes: 16, .. }, .. } if column == "v"),
        "{err:?}"
    );
}

#[test]
fn arrays_refuse_shapes_they_cannot_hold() {
    let kinds = vec![(
        "a".to_string(),
        PgKind::Array {
            element: Box::new(PgKind::Int4),
            dims: 1,
            bounds: ArrayBoundsMode::Error,
        },
    )];
    let array = |ndim: i32, dims: &[i32], elements: &[i32]| {
        let mut v = Vec::new();
        v.extend(ndim.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        v.extend(23i32.to_be_bytes());
        for d in dims {
            v.extend(d.to_be_bytes());
            v.extend(1i32.to_be_bytes());
        }
        for e in elements {
            v.extend(4i32.to_be_bytes());
            v.extend(e.to_be_bytes());
        }
        v
    };
    let decode = |v: Vec<u8>| CopyDecoder::new(&kinds).push(&stream(&[vec![Some(v)]]));
    decode(array(1, &[2], &[1, 2])).unwrap();
    // Two dimensions in a one-dimensional column: the message says what to set.
    let err = decode(array(2, &[1, 2], &[1, 2])).unwrap_err();
    assert!(format!("{err}").contains("array_dims = 2"), "{err}");
    // A huge claimed size with no elements behind it allocates nothing and fails.
    assert!(decode(array(2, &[i32::MAX, i32::MAX], &[])).is_err());
    assert!(decode(array(1, &[-1], &[])).is_err());
    assert!(decode(array(7, &[1; 7], &[1])).is_err());
    // Elements left over after the shape.
    assert!(decode(array(1, &[1], &[1, 2])).is_err());
}

/// A tuple of `fields` (raw length words and bytes) after a valid header.
fn raw_tuple(fields: &[(i32, &[u8])]) -> Vec<u8> {
    let mut v = stream(&[]);
    v.truncate(19);
    v.extend((fields.len() as i16).to_be_bytes());
    for (len, bytes) in fields {
        v.extend(len.to_be_bytes());
        v.extend(*bytes);
    }
    v
}

/// Regression: -2 was the walk's mark for variable-width columns, so a field length
/// of -2 in a fixed-width column matched it and overflowed `at += width as usize`
/// (a panic in debug builds, a mis-walked tuple in release).
#[test]
fn field_length_minus_two_is_a_protocol_error_not_a_panic() {
    let kinds = vec![
        ("a".to_string(), PgKind::Int8),
        ("b".to_string(), PgKind::Int4),
        ("t".to_string(), PgKind::Text),
    ];
    for (at, column) in [(0, "a"), (1, "b"), (2, "t")] {
        for bad in [-2, -3, -7, i32::MIN] {
            let mut fields: Vec<(i32, &[u8])> = vec![(8, &[0; 8]), (4, &[0; 4]), (1, b"x")];
            fields[at] = (bad, b"");
            let data = raw_tuple(&fields);
            // The length word's offset: header, field count, the fields before.
            let offset = 19 + 2 + [0, 12, 20][at];
            for size in [1, 3, data.len()] {
                let mut dec = CopyDecoder::new(&kinds);
                let err = data
                    .chunks(size)
                    .map(|chunk| dec.push(chunk))
                    .find_map(Result::err)
                    .expect("refused");
                assert_eq!(
                    err,
                    CopyError::Malformed {
                        offset,
                        column: Some(column.into()),
                        problem: Malformed::NegativeLength(bad),
                    },
                    "{bad} in `{column}`, chunks of {size}"
                );
            }
        }
    }
    let err = CopyDecoder::new(&kinds)
        .push(&raw_tuple(&[(-2, b""), (4, &[0; 4]), (-1, b"")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed COPY stream at byte 21, column `a`: negative field length -2 (only -1, NULL, is allowed)"
    );
}

#[test]
fn protocol_errors_say_where_they_are() {
    // A bad field count in the third tuple, pushed a byte at a time.
    let mut data = sample();
    data.truncate(data.len() - 2);
    let third = data.len();
    data.extend(2i16.to_be_bytes());
    let mut dec = CopyDecoder::new(&kinds());
    let err = data
        .chunks(1)
        .map(|chunk| dec.push(chunk))
        .find_map(Result::err)
        .unwrap();
    assert_eq!(
        err,
        CopyError::Malformed {
            offset: third as u64,
            column: None,
            problem: Malformed::FieldCount {
                found: 2,
                expected: 3
            },
        }
    );
    // Data after the trailer, and a stream cut short.
    let mut after = sample();
    let end = after.len() as u64;
    after.extend([0, 0]);
    let err = CopyDecoder::new(&kinds()).push(&after).unwrap_err();
    assert!(
        matches!(err, CopyError::Malformed { offset, problem: Malformed::AfterTrailer, .. } if offset == end),
        "{err:?}"
    );
    let cut = sample();
    let mut dec = CopyDecoder::new(&kinds());
    dec.push(&cut[..30]).unwrap();
    assert!(matches!(
        dec.finish(),
        Err(CopyError::Malformed {
            problem: Malformed::Truncated,
            ..
        })
    ));
}

#[test]
fn header_flags_and_extension_are_checked() {
    let header = |flags: u32, ext: &[u8]| {
        let mut v = SIGNATURE.to_vec();
        v.extend(flags.to_be_bytes());
        v.extend((ext.len() as u32).to_be_bytes());
        v.extend(ext);
        v
    };
    let with_rows = |mut v: Vec<u8>| {
        v.extend(&sample()[19..]);
        v
    };
    let push = |v: &[u8]| CopyDecoder::new(&kinds()).push(v);
    // Bit 16: every tuple would carry an OID the columns do not have.
    assert_eq!(
        push(&header(1 << 16, b"")).unwrap_err(),
        CopyError::Malformed {
            offset: 11,
            column: None,
            problem: Malformed::Oids
        }
    );
    // Any other critical bit (16-31) is refused too.
    for bit in [17, 24, 31] {
        assert_eq!(
            push(&header(1 << bit, b"")).unwrap_err(),
            CopyError::Malformed {
                offset: 11,
                column: None,
                problem: Malformed::CriticalFlags(1 << bit)
            }
        );
    }
    // Bits 0-15 are backwards-compatible: ignored. An extension is skipped.
    for v in [header(0xffff, b""), header(0, b"abcd"), header(3, &[0; 9])] {
        let mut dec = CopyDecoder::new(&kinds());
        dec.push(&with_rows(v)).unwrap();
        dec.finish().unwrap();
        check(&dec.take_batch().unwrap());
    }
    // An extension longer than 1 MiB is refused before it is waited for.
    let mut long = SIGNATURE.to_vec();
    long.extend(0u32.to_be_bytes());
    long.extend((MAX_HEADER_EXTENSION + 1).to_be_bytes());
    assert_eq!(
        push(&long).unwrap_err(),
        CopyError::Malformed {
            offset: 15,
            column: None,
            problem: Malformed::ExtensionTooLong(MAX_HEADER_EXTENSION + 1)
        }
    );
}

/// PostgreSQL 17's infinite intervals, in its binary form (only 15 runs here):
/// every field at its largest value, or its smallest.
#[test]
fn infinite_intervals_follow_the_infinity_option() {
    let interval = |micros: i64, days: i32, months: i32| {
        let mut v = micros.to_be_bytes().to_vec();
        v.extend(days.to_be_bytes());
        v.extend(months.to_be_bytes());
        v
    };
    let rows = vec![
        vec![Some(interval(i64::MAX, i32::MAX, i32::MAX))],
        vec![Some(interval(i64::MIN, i32::MIN, i32::MIN))],
        vec![Some(interval(1, 2, 3))],
    ];
    let decode = |mode: IntervalMode, infinity: InfinityMode| {
        let kinds = vec![("i".to_string(), PgKind::Interval(mode, infinity))];
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&stream(&rows))?;
        dec.take_batch()
    };
    let shown = |batch: RecordBatch| -> Vec<String> {
        (0..3)
            .map(|r| arrow::util::display::array_value_to_string(batch.column(0), r).unwrap())
            .collect()
    };
    for mode in [IntervalMode::Struct, IntervalMode::Duration] {
        let err = decode(mode, InfinityMode::Error).unwrap_err();
        assert!(
            matches!(
                &err,
                CopyError::Value {
                    problem: ValueError::Infinite {
                        what: "interval",
                        positive: true
                    },
                    ..
                }
            ),
            "{err:?}"
        );
        let nulls = decode(mode, InfinityMode::Null).unwrap();
        assert_eq!(nulls.column(0).null_count(), 2, "{mode:?}");
    }
    assert_eq!(
        shown(decode(IntervalMode::Struct, InfinityMode::Null).unwrap())[2],
        "{months: 3, days: 2, microseconds: 1}"
    );
    assert_eq!(
        shown(decode(IntervalMode::Struct, InfinityMode::Clamp).unwrap()),
        [
            "{months: 2147483647, days: 2147483647, microseconds: 9223372036854775807}",
            "{months: -2147483647, days: -2147483647, microseconds: -9223372036854775807}",
            "{months: 3, days: 2, microseconds: 1}",
        ]
    );
    let clamped = decode(IntervalMode::Duration, InfinityMode::Clamp).unwrap();
    let micros = clamped
        .column(0)
        .as_primitive::<arrow::datatypes::DurationMicrosecondType>();
    assert_eq!(
        micros.values().to_vec(),
        [i64::MAX, -i64::MAX, 1 + (3 * 30 + 2) * MICROS_PER_DAY]
    );
}

#[test]
fn time_24_00_follows_the_infinity_option() {
    let day = MICROS_PER_DAY.to_be_bytes().to_vec();
    let noon = (MICROS_PER_DAY / 2).to_be_bytes().to_vec();
    let tz = |t: &[u8], west: i32| [t, &west.to_be_bytes()[..]].concat();
    let rows = vec![
        vec![Some(day.clone()), Some(tz(&day, -7200)), Some(tz(&day, 0))],
        vec![
            Some(noon.clone()),
            Some(tz(&noon, 0)),
            Some(tz(&noon, 3600)),
        ],
    ];
    let decode = |infinity: InfinityMode| {
        let kinds = vec![
            ("t".to_string(), PgKind::Time(infinity)),
            (
                "s".to_string(),
                PgKind::TimeTz(TimeTzMode::Struct, infinity),
            ),
            ("u".to_string(), PgKind::TimeTz(TimeTzMode::Utc, infinity)),
        ];
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&stream(&rows))?;
        dec.take_batch()
    };
    let err = decode(InfinityMode::Error).unwrap_err();
    assert_eq!(
        err,
        CopyError::Value {
            column: "t".into(),
            offset: Some(19 + 2),
            problem: ValueError::EndOfDay
        }
    );
    let shown = |batch: &RecordBatch, c: usize| -> Vec<String> {
        (0..2)
            .map(|r| arrow::util::display::array_value_to_string(batch.column(c), r).unwrap())
            .collect()
    };
    let clamped = decode(InfinityMode::Clamp).unwrap();
    assert_eq!(shown(&clamped, 0), ["23:59:59.999999", "12:00:00"]);
    assert_eq!(
        shown(&clamped, 1),
        [
            "{time: 23:59:59.999999, utc_offset: 7200}",
            "{time: 12:00:00, utc_offset: 0}"
        ]
    );
    // Moved to UTC, times wrap around midnight whatever the option: 24:00 UTC is
    // 00:00, as 12:00 one hour west is 13:00.
    assert_eq!(shown(&clamped, 2), ["00:00:00", "13:00:00"]);
    let nulls = decode(InfinityMode::Null).unwrap();
    assert_eq!(shown(&nulls, 0), ["", "12:00:00"]);
    assert_eq!(
        shown(&nulls, 1)[0],
        "{time: , utc_offset: 7200}",
        "the offset is kept"
    );
    // Past 24:00 is not a time at all. (Found by the stable fuzz driver: such a
    // timetz overflowed the move to UTC.)
    let late = (MICROS_PER_DAY + 1).to_be_bytes().to_vec();
    let huge = 0x7fff_ffff_4743_bc00i64.to_be_bytes();
    for (kind, value) in [
        (PgKind::Time(InfinityMode::Clamp), late.clone()),
        (
            PgKind::TimeTz(TimeTzMode::Utc, InfinityMode::Clamp),
            tz(&late, 0),
        ),
        (
            PgKind::TimeTz(TimeTzMode::Utc, InfinityMode::Clamp),
            tz(&huge, 18000),
        ),
        (
            PgKind::TimeTz(TimeTzMode::Struct, InfinityMode::Clamp),
            tz(&huge, 0),
        ),
    ] {
        let err = CopyDecoder::new(&[("t".to_string(), kind)])
            .push(&stream(&[vec![Some(value)]]))
            .unwrap_err();
        assert!(
            matches!(
                err,
                CopyError::Value {
                    problem: ValueError::OutOfRange("time"),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn array_lower_bounds_are_an_error_unless_ignored() {
    let array = |lower: i32| {
        let mut v = Vec::new();
        for word in [1, 0, 23, 3, lower] {
            v.extend(word.to_be_bytes());
        }
        for e in [1i32, 2, 3] {
            v.extend(4i32.to_be_bytes());
            v.extend(e.to_be_bytes());
        }
        v
    };
    let decode = |bounds: ArrayBoundsMode, lower: i32| {
        let kinds = vec![(
            "a".to_string(),
            PgKind::Array {
                element: Box::new(PgKind::Int4),
                dims: 1,
                bounds,
            },
        )];
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&stream(&[vec![Some(array(lower))]]))?;
        dec.take_batch()
    };
    let shown = |b: RecordBatch| arrow::util::display::array_value_to_string(b.column(0), 0);
    assert_eq!(
        shown(decode(ArrayBoundsMode::Error, 1).unwrap()).unwrap(),
        "[1, 2, 3]"
    );
    for lower in [0, -5, 2] {
        let err = decode(ArrayBoundsMode::Error, lower).unwrap_err();
        assert!(
            matches!(&err, CopyError::Value { column, problem: ValueError::ArrayLowerBound { lower: l }, .. } if column == "a" && *l == lower),
            "{err:?}"
        );
        assert!(err.to_string().contains("array_bounds"), "{err}");
        let kept = decode(ArrayBoundsMode::Ignore, lower).unwrap();
        assert_eq!(shown(kept).unwrap(), "[1, 2, 3]");
    }
}

#[test]
fn ipv6_text_follows_postgres() {
    let v6 = |s: &str| ipv6_text(&s.parse::<std::net::Ipv6Addr>().unwrap().octets());
    assert_eq!(v6("::"), "::");
    assert_eq!(v6("::1"), "::1");
    assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
    assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
    assert_eq!(v6("fe80:0:0:1:0:0:0:1"), "fe80:0:0:1::1");
    assert_eq!(v6("1:0:1:0:1:0:1:0"), "1:0:1:0:1:0:1:0");
    assert_eq!(v6("2001:db8::"), "2001:db8::");
}

#[test]
fn reordered_chunks_are_errors_not_panics() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let valid = sample();
    for _ in 0..1000 {
        let size = rng.random_range(1..12);
        let mut chunks: Vec<&[u8]> = valid.chunks(size).collect();
        chunks.shuffle(&mut rng);
        let mut dec = CopyDecoder::new(&kinds());
        let mut result = Ok(());
        for chunk in &chunks {
            result = dec.push(chunk);
            if result.is_err() {
                break;
            }
        }
        let ordered = chunks.windows(2).all(|w| w[0].as_ptr() < w[1].as_ptr());
        if !ordered {
            // Whatever the decoder made of it, it never claims a complete, valid stream
            // unless the bytes happen to form one.
            let rebuilt: Vec<u8> = chunks.concat();
            if result.is_ok() && dec.finish().is_ok() {
                assert!(CopyDecoder::new(&kinds()).push(&rebuilt).is_ok());
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let valid = sample();
    for _ in 0..2000 {
        let mut data = valid.clone();
        for _ in 0..rng.random_range(1..6) {
            let i = rng.random_range(0..data.len());
            data[i] = rng.random();
        }
        let cut = rng.random_range(0..=data.len());
        let mut dec = CopyDecoder::new(&kinds());
        let _ = dec.push(&data[..cut]).and_then(|_| dec.finish());
    }
}
