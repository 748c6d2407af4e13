//! The column that holds two shards' types exactly: the merged schema's rule, a join
//! that gives the same result whatever order the shards answer in.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields};

use super::DECIMAL128_MAX_PRECISION;

/// Field metadata marking a Utf8 column of numeric text, so that a column typed
/// `numeric(p,s)` on one shard and `numeric` on another unifies (to the exact text).
pub const NUMERIC_TEXT_KEY: &str = "tributary.numeric_text";

/// The column that holds both shards' values exactly. Shards are described in whatever
/// order they answer, so this is a join: commutative and associative, with the same
/// result (or the same refusal) in any order.
///
/// - The names must be equal (the merger pairs columns by position).
/// - Nullable if either is.
/// - Metadata: the union of both; the same key with two values refuses. Extension
///   types (UUID, JSON) must agree.
/// - Exact numbers (int2, int4, int8, oid, decimals and numeric text) join into the
///   narrowest that holds both (see [`unify`]); when no Decimal128 does (more than 38
///   digits), into numeric text, which holds them all. Numeric text joins exact numbers
///   only: plain text beside it would let the order decide whether a third shard's
///   decimals fit.
/// - Otherwise [`unify`], field by field inside lists and structs.
pub fn unify_fields(a: &Field, b: &Field) -> Option<Field> {
    if a == b {
        return Some(a.clone());
    }
    if a.name() != b.name() || a.extension_type_name() != b.extension_type_name() {
        return None;
    }
    let mut metadata = a.metadata().clone();
    for (key, value) in b.metadata() {
        match metadata.get(key) {
            Some(mine) if mine != value => return None,
            Some(_) => {}
            None => {
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    let data_type = match (Exact::of_field(a), Exact::of_field(b)) {
        (Some(x), Some(y)) => match x.join(y) {
            Exact::Text => {
                metadata.insert(NUMERIC_TEXT_KEY.to_string(), "true".to_string());
                DataType::Utf8
            }
            joined => joined.data_type(),
        },
        (Some(Exact::Text), _) | (_, Some(Exact::Text)) => return None,
        _ => unify(a.data_type(), b.data_type())?,
    };
    Some(
        a.clone()
            .with_data_type(data_type)
            .with_nullable(a.is_nullable() || b.is_nullable())
            .with_metadata(metadata),
    )
}

/// A type of exact numbers, placed in the order by which they join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exact {
    /// A signed integer of this many bits.
    Int(u8),
    /// An unsigned integer of this many bits, less than 64 (MySQL's TINYINT UNSIGNED
    /// to INT UNSIGNED, PostgreSQL's oid).
    UInt(u8),
    Decimal {
        /// Digits before the point.
        int: i16,
        scale: i16,
    },
    /// Numeric text: the exact decimal text, which holds every other.
    Text,
}

impl Exact {
    fn of(t: &DataType) -> Option<Exact> {
        use DataType::*;
        Some(match t {
            Int8 => Exact::Int(8),
            Int16 => Exact::Int(16),
            Int32 => Exact::Int(32),
            Int64 => Exact::Int(64),
            UInt8 => Exact::UInt(8),
            UInt16 => Exact::UInt(16),
            UInt32 => Exact::UInt(32),
            Decimal128(p, s) if *s >= 0 && s.unsigned_abs() <= *p => Exact::Decimal {
                int: (*p - s.unsigned_abs()).into(),
                scale: (*s).into(),
            },
            _ => return None,
        })
    }

    fn of_field(f: &Field) -> Option<Exact> {
        if f.data_type() == &DataType::Utf8 && f.metadata().contains_key(NUMERIC_TEXT_KEY) {
            Some(Exact::Text)
        } else {
            Exact::of(f.data_type())
        }
    }

    /// Digits before and after the point. An unsigned integer counts as the signed one
    /// it joins signed integers into (oid as int8), so that joining with integers first
    /// or with decimals first agrees.
    fn digits(self) -> (i16, i16) {
        match self {
            Exact::Int(8) => (3, 0),
            Exact::Int(16) | Exact::UInt(8) => (5, 0),
            Exact::Int(32) | Exact::UInt(16) => (10, 0),
            Exact::Int(_) | Exact::UInt(_) => (19, 0),
            Exact::Decimal { int, scale } => (int, scale),
            Exact::Text => (i16::MAX, 0),
        }
    }

    fn join(self, other: Exact) -> Exact {
        match (self, other) {
            (Exact::Text, _) | (_, Exact::Text) => Exact::Text,
            (Exact::Int(a), Exact::Int(b)) => Exact::Int(a.max(b)),
            (Exact::UInt(a), Exact::UInt(b)) => Exact::UInt(a.max(b)),
            // The signed integer twice as wide holds every unsigned value.
            (Exact::UInt(u), Exact::Int(i)) | (Exact::Int(i), Exact::UInt(u)) => {
                Exact::Int(i.max(u * 2).min(64))
            }
            _ => {
                let (ia, sa) = self.digits();
                let (ib, sb) = other.digits();
                let (int, scale) = (ia.max(ib), sa.max(sb));
                if int + scale > DECIMAL128_MAX_PRECISION as i16 {
                    Exact::Text
                } else {
                    Exact::Decimal { int, scale }
                }
            }
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Exact::Int(8) => DataType::Int8,
            Exact::Int(16) => DataType::Int16,
            Exact::Int(32) => DataType::Int32,
            Exact::Int(_) => DataType::Int64,
            Exact::UInt(8) => DataType::UInt8,
            Exact::UInt(16) => DataType::UInt16,
            Exact::UInt(_) => DataType::UInt32,
            Exact::Decimal { int, scale } => DataType::Decimal128((int + scale) as u8, scale as i8),
            Exact::Text => DataType::Utf8,
        }
    }
}

/// The type that holds every value of both `a` and `b` exactly, if there is one: Int8 <
/// int2 < int4 < int8; an unsigned integer (MySQL's, or oid) beside a signed one becomes
/// the signed one twice as wide (oid < int8), beside UInt64 (xid8, BIGINT UNSIGNED)
/// UInt64; float4 < float8, integers and decimals into
/// a decimal with enough digits on both sides of the point (at most 38; oid counts 19
/// digits, as the int8 it becomes beside signed integers), field by field inside lists
/// and structs (see [`unify_fields`]). Commutative and associative: the result depends
/// only on the set of types.
pub fn unify(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    if let (Some(x), Some(y)) = (Exact::of(a), Exact::of(b)) {
        return match x.join(y) {
            // Only a field can say its text is numeric text (see `unify_fields`).
            Exact::Text => None,
            joined => Some(joined.data_type()),
        };
    }
    match (a, b) {
        (Float32, Float64) | (Float64, Float32) => Some(Float64),
        (UInt8 | UInt16 | UInt32, UInt64) | (UInt64, UInt8 | UInt16 | UInt32) => Some(UInt64),
        (List(fa), List(fb)) => Some(List(Arc::new(unify_fields(fa, fb)?))),
        (Struct(fa), Struct(fb)) if fa.len() == fb.len() => {
            let fields: Option<Vec<Field>> = fa
                .iter()
                .zip(fb.iter())
                .map(|(x, y)| unify_fields(x, y))
                .collect();
            Some(Struct(Fields::from(fields?)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;
    use tokio_postgres::types::Type;

    use crate::types::{ColumnPlan, TypeOptions};

    /// The field the type table makes for a column of this type and type modifier.
    fn field(ty: &Type, typmod: i32) -> Field {
        ColumnPlan::of(ty, typmod, &TypeOptions::default())
            .decoder_kind()
            .field("n")
    }
    #[test]
    fn unification_widens_never_narrows() {
        use DataType::*;
        assert_eq!(unify(&Int32, &Int64), Some(Int64));
        assert_eq!(unify(&Int64, &Int16), Some(Int64));
        assert_eq!(unify(&Float32, &Float64), Some(Float64));
        assert_eq!(
            unify(&Decimal128(10, 2), &Decimal128(12, 2)),
            Some(Decimal128(12, 2))
        );
        // Integer digits of one and fraction digits of the other.
        assert_eq!(
            unify(&Decimal128(10, 2), &Decimal128(8, 4)),
            Some(Decimal128(12, 4))
        );
        assert_eq!(unify(&Int32, &Decimal128(5, 2)), Some(Decimal128(12, 2)));
        assert_eq!(unify(&Decimal128(38, 0), &Decimal128(38, 10)), None);
        assert_eq!(unify(&Int32, &Utf8), None);
        assert_eq!(unify(&Int64, &Float64), None);
        let list = |t| List(Arc::new(Field::new_list_field(t, true)));
        assert_eq!(unify(&list(Int32), &list(Int64)), Some(list(Int64)));
        let tz = Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(unify(&Timestamp(TimeUnit::Microsecond, None), &tz), None);
    }

    #[test]
    fn numeric_text_takes_decimals_but_plain_text_does_not() {
        let text = field(&Type::NUMERIC, -1);
        let decimal = field(&Type::NUMERIC, (10 << 16 | 2) + 4);
        assert_eq!(unify_fields(&decimal, &text), Some(text.clone()));
        assert_eq!(unify_fields(&text, &decimal), Some(text.clone()));
        let plain = field(&Type::TEXT, -1);
        assert_eq!(unify_fields(&plain, &decimal), None);
        // Plain text beside numeric text is refused: joined first, it would take a third
        // shard's decimals; joined after them, not (the order would decide).
        assert_eq!(unify_fields(&plain, &text), None);
        assert_eq!(unify_fields(&text, &plain), None);
        // No Decimal128 holds numeric(38,0) and numeric(38,10): the exact text does,
        // as it does when a shard sends numeric text.
        let wide = field(&Type::NUMERIC, (38 << 16) + 4);
        let deep = field(&Type::NUMERIC, (38 << 16 | 10) + 4);
        assert_eq!(unify_fields(&wide, &deep), Some(text.clone()));
        let uuid = field(&Type::UUID, -1);
        let binary = Field::new("n", DataType::FixedSizeBinary(16), true);
        assert_eq!(unify_fields(&uuid, &binary), None);
    }

    /// Every field the property test below joins: the exact numbers, the other
    /// chains, text with and without the numeric-text mark, extension types, other
    /// metadata, and lists and structs of some of them; each nullable or not.
    fn unify_pool() -> Vec<Field> {
        use DataType::*;
        let mark = |f: Field, k: &str, v: &str| {
            let mut m = f.metadata().clone();
            m.insert(k.to_string(), v.to_string());
            f.with_metadata(m)
        };
        let mut types = vec![
            Int16,
            Int32,
            Int64,
            UInt32,
            UInt64,
            Float32,
            Float64,
            Utf8,
            Decimal128(5, 2),
            Decimal128(10, 0),
            Decimal128(12, 2),
            Decimal128(20, 4),
            Decimal128(38, 0),
            Decimal128(38, 10),
            Date32,
            Int8,
            UInt8,
            UInt16,
        ];
        let scalars = types.clone();
        for t in [Int32, Int64, Decimal128(38, 0), Decimal128(38, 10), Utf8] {
            types.push(List(Arc::new(Field::new_list_field(t.clone(), true))));
            types.push(List(Arc::new(Field::new_list_field(t, false))));
        }
        for (a, b) in [(Int16, Utf8), (Int64, Utf8), (Decimal128(12, 2), Float32)] {
            types.push(Struct(Fields::from(vec![
                Field::new("a", a.clone(), true),
                Field::new("b", b.clone(), true),
            ])));
            types.push(Struct(Fields::from(vec![
                Field::new("b", a, true),
                Field::new("a", b, true),
            ])));
        }
        let mut fields = Vec::new();
        for t in types {
            for nullable in [true, false] {
                fields.push(Field::new("n", t.clone(), nullable));
            }
        }
        for t in &scalars[..4] {
            fields.push(mark(Field::new("n", t.clone(), true), "origin", "a"));
            fields.push(mark(Field::new("n", t.clone(), false), "origin", "b"));
        }
        let text = field(&Type::NUMERIC, -1);
        fields.push(text.clone());
        fields.push(text.clone().with_nullable(false));
        fields.push(mark(text, "origin", "a"));
        fields.push(field(&Type::UUID, -1));
        fields.push(Field::new("n", FixedSizeBinary(16), true));
        fields.push(field(&Type::JSONB, -1));
        fields.push(Field::new("m", Int32, true));
        fields
    }

    /// The merged schema must not depend on the order the shards answer: any two fields
    /// join the same both ways, and any three the same in all six orders (a refusal
    /// included).
    #[test]
    fn unify_is_commutative_and_associative() {
        use rand::{Rng, SeedableRng};
        let pool = unify_pool();
        for a in &pool {
            for b in &pool {
                assert_eq!(unify_fields(a, b), unify_fields(b, a), "{a:?} | {b:?}");
                assert_eq!(
                    unify(a.data_type(), b.data_type()),
                    unify(b.data_type(), a.data_type()),
                    "{a:?} | {b:?}"
                );
            }
            assert_eq!(unify_fields(a, a).as_ref(), Some(a), "{a:?}");
        }
        let fold = |fields: &[&Field]| -> Option<Field> {
            let mut acc = fields[0].clone();
            for f in &fields[1..] {
                acc = unify_fields(&acc, f)?;
            }
            Some(acc)
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
        let mut joined = 0;
        for _ in 0..30_000 {
            let pick: Vec<&Field> = (0..3)
                .map(|_| &pool[rng.random_range(0..pool.len())])
                .collect();
            let (a, b, c) = (pick[0], pick[1], pick[2]);
            let want = fold(&[a, b, c]);
            for order in [[a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]] {
                assert_eq!(fold(&order), want, "{order:?}");
            }
            joined += want.is_some() as usize;
        }
        // The check means something only if many triples join and many do not.
        assert!(
            (1_000..29_000).contains(&joined),
            "{joined} of 30000 joined"
        );
    }
}
