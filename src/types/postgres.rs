//! The table itself: which [`PgKind`] a PostgreSQL type (with its type modifier and the
//! column's options) is decoded as, or why it is read as text instead ([`ColumnPlan`]);
//! and the Arrow type and field each kind makes.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use tokio_postgres::types::{Kind, Type};

use super::{
    ArrayBoundsMode, DECIMAL128_MAX_PRECISION, EnumMode, InfinityMode, IntervalMode,
    MAX_ARRAY_DIMS, MONEY_SCALE, NUMERIC_TEXT_KEY, NumericMode, TimeTzMode, TypeOptions, UuidMode,
};

/// How one PostgreSQL value is decoded from its binary COPY form: a row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    /// oid, xid, cid: unsigned 32-bit.
    UInt32,
    /// xid8: unsigned 64-bit.
    UInt64,
    Float4,
    Float8,
    /// numeric as Decimal128(p, s), exactly; values that do not fit are errors.
    Decimal {
        precision: u8,
        scale: i8,
        infinity: InfinityMode,
    },
    /// numeric as its exact decimal text.
    NumericText,
    /// numeric rounded to Float64 (option `numeric = float64`).
    NumericFloat,
    /// money: int8 minor units as Decimal128(19, MONEY_SCALE).
    Money,
    /// Text sent as UTF-8 text (text, varchar, xml, enums, citext, ...).
    Text,
    /// Text after a format version byte (1): ltree, lquery, ltxtquery, jsonpath.
    VersionedText,
    /// "char": one byte.
    Char,
    Json,
    /// jsonb: a version byte, then the JSON text.
    Jsonb,
    /// An enum label as a dictionary entry.
    EnumDictionary,
    Bytea,
    Date(InfinityMode),
    /// time; the mode decides what becomes of 24:00:00, past Time64's last value.
    Time(InfinityMode),
    /// timetz; the infinity mode applies to its time as for `Time`.
    TimeTz(TimeTzMode, InfinityMode),
    Timestamp(InfinityMode),
    TimestampTz(InfinityMode),
    /// interval; the infinity mode applies to PostgreSQL 17's ±infinity.
    Interval(IntervalMode, InfinityMode),
    Uuid(UuidMode),
    /// inet or cidr (cidr prints its mask always).
    Inet {
        cidr: bool,
    },
    /// macaddr (6 bytes) or macaddr8 (8 bytes).
    MacAddr,
    /// bit and varbit, as a string of 0 and 1.
    Bit,
    Point,
    Hstore,
    /// pgvector's `vector`.
    Vector,
    /// An array of `dims` dimensions: `dims` levels of List around the element.
    Array {
        element: Box<PgKind>,
        dims: u8,
        /// Whether subscripts that do not start at 1 are an error or dropped.
        bounds: ArrayBoundsMode,
    },
    Range(Box<PgKind>),
    /// A multirange: a List of its ranges.
    Multirange(Box<PgKind>),
    /// A composite type: a Struct of its fields, in order.
    Composite(Vec<(String, PgKind)>),
}

/// Why a column is read through a server-side `::text` cast rather than decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReason {
    /// The table maps this type to PostgreSQL's text, or the user asked for it.
    Documented,
    /// The type has no row in the table (a type from an unknown extension, a pseudo-type):
    /// the run warns, naming the column.
    NoMapping { type_name: String },
}

/// What the table says about a result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPlan {
    Decode(PgKind),
    /// Cast to text on the server (`col::text` in the COPY query), then read as Utf8.
    ServerText(TextReason),
}

impl ColumnPlan {
    /// Looks a result column's type up in the table. `typmod` is the column's type
    /// modifier (numeric's precision and scale).
    pub fn of(ty: &Type, typmod: i32, options: &TypeOptions) -> ColumnPlan {
        if options.text {
            return ColumnPlan::ServerText(TextReason::Documented);
        }
        match PgKind::of(ty, typmod, options, 0) {
            Ok(kind) => ColumnPlan::Decode(kind),
            Err(reason) => ColumnPlan::ServerText(reason),
        }
    }

    /// The kind the COPY decoder uses for the column.
    pub fn decoder_kind(&self) -> PgKind {
        match self {
            ColumnPlan::Decode(kind) => kind.clone(),
            ColumnPlan::ServerText(_) => PgKind::Text,
        }
    }
}

/// Composite types and ranges nest; past this depth a type is read as text.
const MAX_NESTING: usize = 16;

impl PgKind {
    /// The table's row for a type, or why it is read as text. `depth` guards against
    /// composite types that nest without end.
    fn of(ty: &Type, typmod: i32, o: &TypeOptions, depth: usize) -> Result<PgKind, TextReason> {
        if depth > MAX_NESTING {
            return Err(no_mapping(ty));
        }
        if let Some(kind) = PgKind::builtin(ty, typmod, o, depth)? {
            return Ok(kind);
        }
        if documented_text(ty) {
            return Err(TextReason::Documented);
        }
        PgKind::of_kind(ty, typmod, o, depth)
    }

    /// The rows of built-in types decoded from their binary form; `None` for other types.
    fn builtin(
        ty: &Type,
        typmod: i32,
        o: &TypeOptions,
        depth: usize,
    ) -> Result<Option<PgKind>, TextReason> {
        use TextReason::Documented;
        Ok(Some(match *ty {
            Type::BOOL => PgKind::Bool,
            Type::INT2 => PgKind::Int2,
            Type::INT4 => PgKind::Int4,
            Type::INT8 => PgKind::Int8,
            Type::OID | Type::XID | Type::CID => PgKind::UInt32,
            Type::XID8 => PgKind::UInt64,
            Type::FLOAT4 => PgKind::Float4,
            Type::FLOAT8 => PgKind::Float8,
            Type::NUMERIC => numeric(typmod, o),
            Type::MONEY => PgKind::Money,
            Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::XML
            | Type::REFCURSOR => PgKind::Text,
            Type::CHAR => PgKind::Char,
            Type::JSONPATH => PgKind::VersionedText,
            Type::JSON => PgKind::Json,
            Type::JSONB => PgKind::Jsonb,
            Type::BYTEA => PgKind::Bytea,
            Type::DATE => PgKind::Date(o.infinity),
            Type::TIME => PgKind::Time(o.infinity),
            Type::TIMETZ if o.timetz == TimeTzMode::Text => return Err(Documented),
            Type::TIMETZ => PgKind::TimeTz(o.timetz, o.infinity),
            Type::TIMESTAMP => PgKind::Timestamp(o.infinity),
            Type::TIMESTAMPTZ => PgKind::TimestampTz(o.infinity),
            Type::INTERVAL if o.interval == IntervalMode::Text => return Err(Documented),
            Type::INTERVAL => PgKind::Interval(o.interval, o.infinity),
            // pandas cannot convert lists of FixedSizeBinary at all (pyarrow 26 raises
            // ArrowNotImplementedError for the whole file): a nested uuid is its text.
            Type::UUID if depth > 0 => PgKind::Uuid(UuidMode::String),
            Type::UUID => PgKind::Uuid(o.uuid),
            Type::INET => PgKind::Inet { cidr: false },
            Type::CIDR => PgKind::Inet { cidr: true },
            Type::MACADDR | Type::MACADDR8 => PgKind::MacAddr,
            Type::BIT | Type::VARBIT => PgKind::Bit,
            Type::POINT => PgKind::Point,
            _ => return Ok(None),
        }))
    }

    /// The rows of types known by what they are rather than by their OID: domains, enums,
    /// arrays, ranges, multiranges, composites, and extension types by name.
    fn of_kind(
        ty: &Type,
        typmod: i32,
        o: &TypeOptions,
        depth: usize,
    ) -> Result<PgKind, TextReason> {
        Ok(match ty.kind() {
            // A domain is sent in its base type's binary form. Its own type modifier
            // (e.g. numeric(10,2)) is not in the row description: see docs/types.md.
            Kind::Domain(base) => return PgKind::of(base, -1, o, depth),
            Kind::Enum(_) => match o.enums {
                EnumMode::Text => PgKind::Text,
                EnumMode::Dictionary => PgKind::EnumDictionary,
            },
            Kind::Array(element) => {
                // An array's type modifier is its element's.
                let element = PgKind::of(element, typmod, o, depth + 1)?;
                PgKind::Array {
                    element: Box::new(element),
                    dims: o.array_dims.clamp(1, MAX_ARRAY_DIMS),
                    bounds: o.array_bounds,
                }
            }
            Kind::Range(sub) => PgKind::Range(Box::new(PgKind::of(sub, -1, o, depth + 1)?)),
            // tokio-postgres names the element type for built-in multiranges and the
            // range type for others: both read as a List of ranges.
            Kind::Multirange(inner) => match PgKind::of(inner, -1, o, depth + 1)? {
                range @ PgKind::Range(_) => PgKind::Multirange(Box::new(range)),
                element => PgKind::Multirange(Box::new(PgKind::Range(Box::new(element)))),
            },
            Kind::Composite(fields) if !fields.is_empty() => {
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    out.push((
                        f.name().to_string(),
                        PgKind::of(f.type_(), -1, o, depth + 1)?,
                    ));
                }
                PgKind::Composite(out)
            }
            Kind::Simple => match ty.name() {
                "citext" => PgKind::Text,
                "ltree" | "lquery" | "ltxtquery" => PgKind::VersionedText,
                "hstore" => PgKind::Hstore,
                "vector" => PgKind::Vector,
                _ => return Err(no_mapping(ty)),
            },
            _ => return Err(no_mapping(ty)),
        })
    }

    /// The Arrow type of values of this kind.
    pub fn data_type(&self) -> DataType {
        match self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::UInt32 => DataType::UInt32,
            PgKind::UInt64 => DataType::UInt64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 | PgKind::NumericFloat => DataType::Float64,
            PgKind::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            PgKind::Money => DataType::Decimal128(19, MONEY_SCALE),
            PgKind::NumericText
            | PgKind::Text
            | PgKind::VersionedText
            | PgKind::Char
            | PgKind::Json
            | PgKind::Jsonb
            | PgKind::Inet { .. }
            | PgKind::MacAddr
            | PgKind::Bit
            | PgKind::Uuid(UuidMode::String) => DataType::Utf8,
            PgKind::EnumDictionary => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            PgKind::Bytea => DataType::Binary,
            PgKind::Date(_) => DataType::Date32,
            PgKind::Time(_) | PgKind::TimeTz(TimeTzMode::Utc, _) => {
                DataType::Time64(TimeUnit::Microsecond)
            }
            PgKind::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::TimestampTz(_) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            PgKind::Interval(IntervalMode::Duration, _) => {
                DataType::Duration(TimeUnit::Microsecond)
            }
            PgKind::Uuid(_) => DataType::FixedSizeBinary(16),
            PgKind::Vector => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
            }
            PgKind::Hstore => DataType::Map(hstore_entries(), false),
            PgKind::Array { element, dims, .. } => {
                let mut field = element.nested_field("item");
                for _ in 1..*dims {
                    field = Field::new("item", DataType::List(Arc::new(field)), true);
                }
                DataType::List(Arc::new(field))
            }
            PgKind::Multirange(range) => DataType::List(Arc::new(range.nested_field("item"))),
            PgKind::TimeTz(..)
            | PgKind::Interval(..)
            | PgKind::Point
            | PgKind::Range(_)
            | PgKind::Composite(_) => DataType::Struct(self.struct_fields()),
        }
    }

    /// The fields of kinds rendered as a Struct.
    pub fn struct_fields(&self) -> Fields {
        let f = |name: &str, t: DataType| Field::new(name, t, true);
        match self {
            PgKind::TimeTz(..) => Fields::from(vec![
                f("time", DataType::Time64(TimeUnit::Microsecond)),
                f("utc_offset", DataType::Int32),
            ]),
            PgKind::Interval(..) => Fields::from(vec![
                f("months", DataType::Int32),
                f("days", DataType::Int32),
                f("microseconds", DataType::Int64),
            ]),
            PgKind::Point => {
                Fields::from(vec![f("x", DataType::Float64), f("y", DataType::Float64)])
            }
            PgKind::Range(bound) => Fields::from(vec![
                bound.nested_field("lower"),
                bound.nested_field("upper"),
                f("lower_inclusive", DataType::Boolean),
                f("upper_inclusive", DataType::Boolean),
                f("empty", DataType::Boolean),
            ]),
            PgKind::Composite(fields) => {
                Fields::from_iter(fields.iter().map(|(name, kind)| kind.nested_field(name)))
            }
            _ => Fields::empty(),
        }
    }

    /// The Arrow field for a column of this kind, with canonical extension types (UUID,
    /// JSON) where Parquet has a logical type for them.
    pub fn field(&self, name: &str) -> Field {
        let field = self.nested_field(name);
        match self {
            PgKind::Uuid(UuidMode::Binary) => {
                field.with_extension_type(arrow_schema::extension::Uuid)
            }
            PgKind::Json | PgKind::Jsonb => {
                field.with_extension_type(arrow_schema::extension::Json::default())
            }
            PgKind::NumericText => field.with_metadata(
                [(NUMERIC_TEXT_KEY.to_string(), "true".to_string())]
                    .into_iter()
                    .collect(),
            ),
            _ => field,
        }
    }

    /// The Arrow field for a value nested in a list or struct. Nested values carry no
    /// extension type: pandas cannot convert a list of `arrow.uuid` at all (pyarrow 26
    /// raises ArrowNotImplementedError for the whole file).
    pub fn nested_field(&self, name: &str) -> Field {
        Field::new(name, self.data_type(), true)
    }
}

/// hstore's map entries: text keys (never NULL) to text values (NULL allowed).
pub fn hstore_entries() -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    ))
}

/// Types the table reads as PostgreSQL's text (a server-side cast): their own text is
/// the clearest exact form.
fn documented_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TS_VECTOR
            | Type::TSQUERY
            | Type::GTS_VECTOR
            | Type::PG_LSN
            | Type::TID
            | Type::TXID_SNAPSHOT
            | Type::PG_SNAPSHOT
            | Type::LINE
            | Type::LSEG
            | Type::BOX
            | Type::PATH
            | Type::POLYGON
            | Type::CIRCLE
            | Type::REGPROC
            | Type::REGPROCEDURE
            | Type::REGOPER
            | Type::REGOPERATOR
            | Type::REGCLASS
            | Type::REGTYPE
            | Type::REGCONFIG
            | Type::REGDICTIONARY
            | Type::REGNAMESPACE
            | Type::REGROLE
            | Type::REGCOLLATION
            | Type::ACLITEM
            | Type::INT2_VECTOR
            | Type::OID_VECTOR
            | Type::PG_NODE_TREE
    )
}

fn no_mapping(ty: &Type) -> TextReason {
    TextReason::NoMapping {
        type_name: ty.name().to_string(),
    }
}

/// numeric's type modifier is `((precision << 16) | scale) + 4`, or -1 when undeclared.
fn numeric(typmod: i32, o: &TypeOptions) -> PgKind {
    match o.numeric {
        NumericMode::Text => return PgKind::NumericText,
        NumericMode::Float64 => return PgKind::NumericFloat,
        NumericMode::Decimal { precision, scale } => {
            return PgKind::Decimal {
                precision,
                scale,
                infinity: o.infinity,
            };
        }
        NumericMode::Exact => {}
    }
    if typmod < 4 {
        return PgKind::NumericText;
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    // The scale is an 11-bit signed field since PostgreSQL 15 (negative scales round to
    // tens, hundreds, ...).
    let scale = (((typmod - 4) & 0x7ff) ^ 0x400) - 0x400;
    if precision == 0
        || precision > DECIMAL128_MAX_PRECISION as i32
        || scale < 0
        || scale > precision
    {
        // Decimal128(p, s) cannot hold these with the same meaning: keep the text.
        return PgKind::NumericText;
    }
    PgKind::Decimal {
        precision: precision as u8,
        scale: scale as i8,
        infinity: o.infinity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{TypeOptionError, TypeOverrides, TypeRules};
    fn plan(ty: &Type, typmod: i32) -> ColumnPlan {
        ColumnPlan::of(ty, typmod, &TypeOptions::default())
    }

    fn kind(ty: &Type, typmod: i32) -> PgKind {
        match plan(ty, typmod) {
            ColumnPlan::Decode(k) => k,
            other => panic!("{ty}: {other:?}"),
        }
    }

    #[test]
    fn numeric_typmods() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(
            kind(&Type::NUMERIC, (12 << 16 | 2) + 4),
            PgKind::Decimal {
                precision: 12,
                scale: 2,
                infinity: InfinityMode::Error
            }
        );
        assert_eq!(
            kind(&Type::NUMERIC, (38 << 16) + 4).data_type(),
            DataType::Decimal128(38, 0)
        );
        assert_eq!(kind(&Type::NUMERIC, -1), PgKind::NumericText);
        assert_eq!(
            kind(&Type::NUMERIC, (39 << 16 | 2) + 4),
            PgKind::NumericText
        );
        // numeric(5,-2) (PostgreSQL 15): the scale field is 11-bit signed.
        assert_eq!(
            kind(&Type::NUMERIC, ((5 << 16) | (0x7ff & -2i32)) + 4),
            PgKind::NumericText
        );
        // numeric(2,4): scale above precision.
        assert_eq!(kind(&Type::NUMERIC, (2 << 16 | 4) + 4), PgKind::NumericText);
    }

    #[test]
    fn numeric_options_are_explicit() {
        let mut rules = TypeRules::default();
        rules.global.set("numeric", "float64").unwrap();
        let mut col = TypeOverrides::default();
        col.set("numeric", "decimal(20, 4)").unwrap();
        rules.columns.insert("price".into(), col);
        let k = |name: &str| {
            ColumnPlan::of(&Type::NUMERIC, -1, &rules.for_column(name))
                .decoder_kind()
                .data_type()
        };
        assert_eq!(k("other"), DataType::Float64);
        assert_eq!(k("price"), DataType::Decimal128(20, 4));
        assert!("decimal(39,2)".parse::<NumericMode>().is_err());
        assert!("decimal(3,4)".parse::<NumericMode>().is_err());
        assert_eq!(
            "decimal(10)".parse::<NumericMode>().unwrap().to_string(),
            "decimal(10,0)"
        );
        let err = TypeOverrides::default().set("infinty", "null").unwrap_err();
        assert_eq!(
            err,
            TypeOptionError::UnknownKey {
                key: "infinty".into()
            }
        );
        assert!(err.to_string().contains("infinity"), "{err}");
        let err = TypeOverrides::default().set("uuid", "text").unwrap_err();
        assert_eq!(err.to_string(), "uuid: `text` is not one of binary, string");
    }

    #[test]
    fn documented_and_unknown_text_casts() {
        assert_eq!(
            plan(&Type::TS_VECTOR, -1),
            ColumnPlan::ServerText(TextReason::Documented)
        );
        assert_eq!(
            plan(&Type::VOID, -1),
            ColumnPlan::ServerText(TextReason::NoMapping {
                type_name: "void".into()
            })
        );
        // An array of a type read as text is read as text whole.
        assert_eq!(
            plan(&Type::TS_VECTOR_ARRAY, -1),
            ColumnPlan::ServerText(TextReason::Documented)
        );
        let text = TypeOptions {
            text: true,
            ..Default::default()
        };
        assert_eq!(
            ColumnPlan::of(&Type::INT4, -1, &text),
            ColumnPlan::ServerText(TextReason::Documented)
        );
    }

    #[test]
    fn multiranges_are_lists_of_ranges() {
        let k = kind(&Type::DATEMULTI_RANGE, -1);
        assert_eq!(
            k,
            PgKind::Multirange(Box::new(PgKind::Range(Box::new(PgKind::Date(
                InfinityMode::Error
            )))))
        );
    }

    #[test]
    fn arrays_nest_once_per_dimension() {
        let k = kind(&Type::INT4_ARRAY, -1);
        assert_eq!(
            k.data_type(),
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)))
        );
        let two = TypeOptions {
            array_dims: 2,
            ..Default::default()
        };
        let k = ColumnPlan::of(&Type::TEXT_ARRAY, -1, &two).decoder_kind();
        assert_eq!(k.data_type().to_string(), "List(List(Utf8))");
        // numeric(10,2)[]: the array's typmod is its element's.
        let k = kind(&Type::NUMERIC_ARRAY, (10 << 16 | 2) + 4);
        assert_eq!(k.data_type().to_string(), "List(Decimal128(10, 2))");
    }

    #[test]
    fn timestamptz_is_utc_and_uuid_is_tagged() {
        let f = kind(&Type::TIMESTAMPTZ, -1).field("t");
        assert_eq!(
            f.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let f = kind(&Type::UUID, -1).field("u");
        assert_eq!(f.extension_type_name(), Some("arrow.uuid"));
        let f = kind(&Type::JSONB, -1).field("j");
        assert_eq!(f.extension_type_name(), Some("arrow.json"));
        let o = TypeOptions {
            uuid: UuidMode::String,
            ..Default::default()
        };
        let f = ColumnPlan::of(&Type::UUID, -1, &o)
            .decoder_kind()
            .field("u");
        assert_eq!(
            (f.data_type(), f.extension_type_name()),
            (&DataType::Utf8, None)
        );
    }
}
