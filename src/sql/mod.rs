//! Query text and its `:name` parameters, and the SQL tributary writes around a query.
//!
//! A query is lexed once into literal text and parameter references ([`text`]), then
//! rendered for each kind of shard ([`SqlTemplate`]): SQLite binds the values (numbered
//! placeholders), and so does MySQL (`?`, its own lexer for a fleet of MySQL shards:
//! `mysql_text`); PostgreSQL reads through `COPY`, which cannot bind, so the values are
//! inlined as literals ([`pg_literal`]). Partitions and probes wrap the query in SQL of
//! their own, naming its columns with [`quote_ident`] and its keys' values with
//! [`KeyValue::literal`].

mod key;
mod literal;
mod mysql_text;
mod template;
pub mod text;

pub use key::{KeyValue, mysql_text_literal, quote_ident, quote_ident_mysql};
pub use literal::{ParamValue, Params, pg_literal};
pub use template::{SqlError, SqlTemplate};

/// The parameters of a test, from `(name, value)` pairs.
#[cfg(test)]
fn params(pairs: &[(&str, ParamValue)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
