//! The values given for a query's parameters, and the PostgreSQL literal each one is
//! inlined as where a statement cannot bind it (`COPY`).
//!
//! # Inlining
//!
//! [`pg_literal`] renders each value as a parenthesised literal that stands for it exactly
//! as a bound parameter would, whatever text surrounds it: `1-:n` with `n = -0.0` reads
//! `1-('-0.0'::float8)`, never a `--` comment. In return a parameter is always a value,
//! as a bound one is: `ORDER BY :n` sorts by a constant, not by column `n`; a type
//! modifier (`numeric(:p)`) or a typed literal (`DATE :d`) is an error: write `:d::date`
//! or `CAST(:d AS date)`.

use std::collections::BTreeMap;
use std::fmt;

/// A parameter's value. Values from the command line are text; a job file may give
/// numbers and booleans too.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Text(s) => f.write_str(s),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

pub type Params = BTreeMap<String, ParamValue>;

/// A PostgreSQL literal for `value`, standing for it exactly as a bound parameter would.
///
/// Every literal is parenthesised, so that no neighbouring text can change what it means:
/// `1-:n` with `n = -0.0` must not become `1--0.0`, a comment; a prefix (`E:s`, `X:s`)
/// must not turn a string into an escape or bit string; a following quote must not
/// continue the string; `1.:n` must not read as one number.
///
/// Text holding a backslash is an `E''` string with the backslashes doubled (as libpq's
/// `PQescapeLiteral` does), so it reads the same whatever `standard_conforming_strings`
/// is; text stays an untyped literal, so that `d = :day` compares with a date. Numbers and
/// booleans are their text cast to a type, read by the type's input function as a bound
/// value is: integers as `int4` when they fit and `int8` otherwise (the type PostgreSQL
/// gives their literal), floats as `float8` (keeping -0, subnormals, infinities and NaN).
/// A cast rather than a bare constant, because PostgreSQL's grammar treats constants
/// specially where a value is meant: `-(-2147483648)` folds into the `int8` 2147483648
/// where a bound `int4` overflows, `ORDER BY (2)` sorts by the second column and
/// `ORDER BY (TRUE)` is an error, where bound values sort by a constant.
pub fn pg_literal(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) => {
            let quoted = s.replace('\'', "''");
            if s.contains('\\') {
                format!("(E'{}')", quoted.replace('\\', "\\\\"))
            } else {
                format!("('{quoted}')")
            }
        }
        ParamValue::Int(i) => {
            let ty = if i32::try_from(*i).is_ok() {
                "int4"
            } else {
                "int8"
            };
            format!("('{i}'::{ty})")
        }
        ParamValue::Float(x) => {
            let text = if x.is_nan() {
                "NaN".to_string()
            } else if x.is_infinite() {
                if *x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                // Debug prints the shortest text that reads back as the same double.
                format!("{x:?}")
            };
            format!("('{text}'::float8)")
        }
        ParamValue::Bool(b) => if *b {
            "(TRUE::boolean)"
        } else {
            "(FALSE::boolean)"
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{SqlTemplate, params};

    #[test]
    fn pg_literals_are_quoted() {
        let t = SqlTemplate::parse("SELECT :s, :b, x-:n, :f, :t").unwrap();
        let p = params(&[
            ("s", ParamValue::Text("it's'; DROP TABLE x; --".into())),
            ("b", ParamValue::Text(r"back\slash'".into())),
            ("n", ParamValue::Int(-5)),
            ("f", ParamValue::Float(f64::NAN)),
            ("t", ParamValue::Bool(true)),
        ]);
        t.check_params(&p).unwrap();
        assert_eq!(
            t.render_pg_literals(&p),
            r"SELECT ('it''s''; DROP TABLE x; --'), (E'back\\slash'''), x-('-5'::int4), ('NaN'::float8), (TRUE::boolean)"
        );
    }

    fn inline(sql: &str, value: ParamValue) -> String {
        let t = SqlTemplate::parse(sql).unwrap();
        let p = params(&[("v", value)]);
        t.check_params(&p).unwrap();
        t.render_pg_literals(&p)
    }

    #[test]
    fn negative_zero_after_a_minus_is_no_comment() {
        assert_eq!(
            inline(
                "SELECT * FROM t WHERE quantity > 1-:v AND region = 'zz'",
                ParamValue::Float(-0.0)
            ),
            "SELECT * FROM t WHERE quantity > 1-('-0.0'::float8) AND region = 'zz'"
        );
    }

    #[test]
    fn every_literal_is_parenthesised() {
        let cases = [
            (ParamValue::Int(0), "('0'::int4)"),
            (ParamValue::Int(7), "('7'::int4)"),
            (ParamValue::Int(-7), "('-7'::int4)"),
            (ParamValue::Int(i64::MIN), "('-9223372036854775808'::int8)"),
            (ParamValue::Int(i64::MAX), "('9223372036854775807'::int8)"),
            (ParamValue::Float(0.0), "('0.0'::float8)"),
            (ParamValue::Float(-0.0), "('-0.0'::float8)"),
            (ParamValue::Float(1.5), "('1.5'::float8)"),
            (ParamValue::Float(-1.5), "('-1.5'::float8)"),
            (ParamValue::Float(5e-324), "('5e-324'::float8)"),
            (
                ParamValue::Float(-f64::MAX),
                "('-1.7976931348623157e308'::float8)",
            ),
            (ParamValue::Float(f64::INFINITY), "('Infinity'::float8)"),
            (
                ParamValue::Float(f64::NEG_INFINITY),
                "('-Infinity'::float8)",
            ),
            (ParamValue::Float(-f64::NAN), "('NaN'::float8)"),
            (ParamValue::Int(i32::MIN.into()), "('-2147483648'::int4)"),
            (ParamValue::Int(1 << 31), "('2147483648'::int8)"),
            (ParamValue::Bool(false), "(FALSE::boolean)"),
            (ParamValue::Text(String::new()), "('')"),
            (ParamValue::Text("-- /* '".into()), "('-- /* ''')"),
            (ParamValue::Text(r"\".into()), r"(E'\\')"),
        ];
        for (value, literal) in cases {
            // Glued to a word, a number, a minus, a slash and a quote on either side.
            assert_eq!(
                inline("SELECT E:v'x', 1.:v.5, 1-:v-1, 1/:v/*c*/", value.clone()),
                format!("SELECT E{literal}'x', 1.{literal}.5, 1-{literal}-1, 1/{literal}/*c*/"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_parenthesised_parameter_is_a_slice_bound() {
        assert_eq!(
            inline(
                "SELECT (ARRAY[1,2,3,4])[(:v):hi], arr[:v]",
                ParamValue::Int(2)
            ),
            "SELECT (ARRAY[1,2,3,4])[(('2'::int4)):hi], arr[:v]"
        );
        let t = SqlTemplate::parse("SELECT arr[(:lo):(:hi)]").unwrap();
        let p = params(&[("lo", ParamValue::Int(2)), ("hi", ParamValue::Int(3))]);
        assert_eq!(
            t.render_pg_literals(&p),
            "SELECT arr[(('2'::int4)):(('3'::int4))]"
        );
        assert_eq!(t.render_numbered(&p).0, "SELECT arr[(?1):(?2)]");
    }
}
