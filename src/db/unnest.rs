//! Batch inserts as `INSERT INTO t (a, b, …) SELECT * FROM unnest($1::text[], $2::int8[], …)`:
//! one array per column, so a batch of any size is one statement with a fixed number of
//! bind parameters. Each insert lists its columns once, each with its name and its values;
//! the statement's column list, its casts and its binds all come from that list, so they
//! cannot disagree, and columns of different lengths (which `unnest` would pad with NULLs)
//! are refused before anything is sent.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::result::Error::QueryBuilderError;
use diesel::sql_types::{Array, Bytea, Int4, Int8, Nullable, Text, Timestamptz};
use diesel::{QueryResult, sql_query};

/// One column's values, one per row, with the PostgreSQL array type they are bound as.
#[derive(Debug)]
pub enum Values<'a> {
    Text(Vec<&'a str>),
    NullableText(Vec<Option<&'a str>>),
    Int4(Vec<i32>),
    Int8(Vec<i64>),
    Bytea(Vec<&'a [u8]>),
    NullableBytea(Vec<Option<&'a [u8]>>),
    Timestamptz(Vec<DateTime<Utc>>),
}

impl<'a> Values<'a> {
    pub fn text<R>(rows: &'a [R], f: impl Fn(&'a R) -> &'a str) -> Self {
        Self::Text(rows.iter().map(f).collect())
    }

    pub fn nullable_text<R>(rows: &'a [R], f: impl Fn(&'a R) -> Option<&'a str>) -> Self {
        Self::NullableText(rows.iter().map(f).collect())
    }

    pub fn int4<R>(rows: &'a [R], f: impl Fn(&'a R) -> i32) -> Self {
        Self::Int4(rows.iter().map(f).collect())
    }

    pub fn int8<R>(rows: &'a [R], f: impl Fn(&'a R) -> i64) -> Self {
        Self::Int8(rows.iter().map(f).collect())
    }

    pub fn bytea<R>(rows: &'a [R], f: impl Fn(&'a R) -> &'a [u8]) -> Self {
        Self::Bytea(rows.iter().map(f).collect())
    }

    pub fn nullable_bytea<R>(rows: &'a [R], f: impl Fn(&'a R) -> Option<&'a [u8]>) -> Self {
        Self::NullableBytea(rows.iter().map(f).collect())
    }

    /// A column whose values are converted, each of which may fail (the first failure is
    /// the error).
    pub fn try_timestamptz<R>(
        rows: &'a [R],
        f: impl Fn(&'a R) -> QueryResult<DateTime<Utc>>,
    ) -> QueryResult<Self> {
        rows.iter()
            .map(f)
            .collect::<QueryResult<_>>()
            .map(Self::Timestamptz)
    }

    /// [`Self::try_timestamptz`] for an `int4` column.
    pub fn try_int4<R>(rows: &'a [R], f: impl Fn(&'a R) -> QueryResult<i32>) -> QueryResult<Self> {
        rows.iter()
            .map(f)
            .collect::<QueryResult<_>>()
            .map(Self::Int4)
    }

    fn array_type(&self) -> &'static str {
        match self {
            Self::Text(_) | Self::NullableText(_) => "text[]",
            Self::Int4(_) => "int4[]",
            Self::Int8(_) => "int8[]",
            Self::Bytea(_) | Self::NullableBytea(_) => "bytea[]",
            Self::Timestamptz(_) => "timestamptz[]",
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::NullableText(v) => v.len(),
            Self::Int4(v) => v.len(),
            Self::Int8(v) => v.len(),
            Self::Bytea(v) => v.len(),
            Self::NullableBytea(v) => v.len(),
            Self::Timestamptz(v) => v.len(),
        }
    }
}

/// The insert of `columns` into `table`, followed by `tail` (`ON CONFLICT …`, `RETURNING …`).
pub fn insert<'a>(
    table: &str,
    columns: Vec<(&str, Values<'a>)>,
    tail: &str,
) -> QueryResult<BoxedSqlQuery<'a, Pg, SqlQuery>> {
    if let Some((first, rest)) = columns.split_first()
        && let Some((name, values)) = rest.iter().find(|(_, v)| v.len() != first.1.len())
    {
        return Err(QueryBuilderError(
            format!(
                "{table}: column {name} has {} values, {} has {}",
                values.len(),
                first.0,
                first.1.len()
            )
            .into(),
        ));
    }
    let mut query = sql_query(statement(table, &columns, tail)).into_boxed();
    for (_, values) in columns {
        query = match values {
            Values::Text(v) => query.bind::<Array<Text>, _>(v),
            Values::NullableText(v) => query.bind::<Array<Nullable<Text>>, _>(v),
            Values::Int4(v) => query.bind::<Array<Int4>, _>(v),
            Values::Int8(v) => query.bind::<Array<Int8>, _>(v),
            Values::Bytea(v) => query.bind::<Array<Bytea>, _>(v),
            Values::NullableBytea(v) => query.bind::<Array<Nullable<Bytea>>, _>(v),
            Values::Timestamptz(v) => query.bind::<Array<Timestamptz>, _>(v),
        };
    }
    Ok(query)
}

fn statement(table: &str, columns: &[(&str, Values<'_>)], tail: &str) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = columns
        .iter()
        .zip(1..)
        .map(|((_, values), n)| format!("${n}::{}", values.array_type()))
        .collect();
    let mut sql = format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({})",
        names.join(", "),
        arrays.join(", ")
    );
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_lists_each_column_once_with_its_array_type_in_order() {
        let rows = [("a", 1_i64), ("b", 2)];
        let columns = vec![
            ("name", Values::text(&rows, |r| r.0)),
            ("n", Values::int8(&rows, |r| r.1)),
            ("note", Values::nullable_text(&rows, |_| None)),
        ];
        assert_eq!(
            statement("t", &columns, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (name, n, note) SELECT * FROM unnest($1::text[], $2::int8[], \
             $3::text[]) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn columns_of_different_lengths_are_refused_naming_them() {
        let rows = [1_i64, 2];
        let columns = vec![
            ("a", Values::int8(&rows, |r| *r)),
            ("b", Values::int8(&rows[..1], |r| *r)),
        ];
        let Err(err) = insert("t", columns, "") else {
            panic!("unnest would pad the shorter column with NULLs");
        };
        assert!(
            err.to_string().contains("column b has 1 values, a has 2"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_conversion_is_the_column_error() {
        let rows = [1_i64, 1 << 40];
        let err = Values::try_int4(&rows, |r| {
            i32::try_from(*r).map_err(|_| QueryBuilderError(format!("{r} is too big").into()))
        })
        .expect_err("the second does not fit");
        assert!(
            err.to_string().contains("1099511627776 is too big"),
            "{err}"
        );
    }
}
