//! What the tests assert on: rows in the database, committed offsets, emulator ledgers.

use super::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName, Debug)]
pub struct UidCount {
    #[diesel(sql_type = Text)]
    pub order_uid: String,
    #[diesel(sql_type = BigInt)]
    pub items: i64,
}

/// Every stored order with its item count.
pub async fn stored_orders(conn: &mut AsyncPgConnection) -> Vec<UidCount> {
    sql_query(
        "SELECT o.order_uid, count(i.position) AS items FROM orders o \
         LEFT JOIN items i ON i.order_id = o.id GROUP BY o.order_uid",
    )
    .load(conn)
    .await
    .expect("stored orders")
}

#[derive(QueryableByName, Debug)]
pub struct LetterRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub order_uid: Option<String>,
    /// The Kafka message key, as text.
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub key: Option<String>,
    #[diesel(sql_type = Text)]
    pub reason: String,
}

pub async fn dead_letters(conn: &mut AsyncPgConnection) -> Vec<LetterRow> {
    sql_query(
        "SELECT order_uid, convert_from(message_key, 'UTF8') AS key, reason FROM dead_letters",
    )
    .load(conn)
    .await
    .expect("dead letters")
}

pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<N> = sql_query(sql).load(conn).await.expect("count query");
    rows.into_iter().next().map_or(0, |r| r.n)
}

/// Reads an emulator output file of `first<TAB>second` lines.
fn read_pairs(path: &Path, shape: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (first, second) = l.split_once('\t').expect(shape);
            (first.to_string(), second.trim().to_string())
        })
        .collect()
}

/// Reads an emulator `--uids-out` file: uid → item count.
pub fn read_uids(path: &Path) -> HashMap<String, i64> {
    read_pairs(path, "uid<TAB>items")
        .into_iter()
        .map(|(uid, items)| (uid, items.parse().expect("item count")))
        .collect()
}

/// Reads an emulator `--rejects-out` file: (uid or key, expected reason).
pub fn read_rejects(path: &Path) -> Vec<(String, String)> {
    read_pairs(path, "key<TAB>reason")
}

/// Waits until the group has committed the whole topic and returns the final counts.
pub async fn wait_until_drained(env: &TestEnv, timeout: Duration) -> bool {
    let end = env.end_offsets();
    eventually(timeout, || async {
        let committed = env.committed();
        end.iter()
            .all(|(p, high)| *high == 0 || committed.get(p) == Some(high))
    })
    .await
}

/// The stored orders' uids with their item counts; fails if a uid is stored twice.
pub async fn stored_once(conn: &mut AsyncPgConnection) -> HashMap<String, i64> {
    let stored = stored_orders(conn).await;
    let stored_map: HashMap<String, i64> = stored
        .iter()
        .map(|r| (r.order_uid.clone(), r.items))
        .collect();
    assert_eq!(
        stored.len(),
        stored_map.len(),
        "an order_uid is stored twice"
    );
    stored_map
}

/// The checks every fault test ends with: the stored orders are exactly the valid orders
/// produced, each once, with their exact item counts, and no valid order was dead-lettered.
pub async fn assert_exactly_the_valid_orders_are_stored(env: &TestEnv, uids_file: &Path) {
    let expected = read_uids(uids_file);
    assert!(
        !expected.is_empty(),
        "the emulator reported no valid orders"
    );
    let mut conn = env.db().await;
    let stored_map = stored_once(&mut conn).await;
    let missing: Vec<&String> = expected
        .keys()
        .filter(|u| !stored_map.contains_key(*u))
        .collect();
    let unexpected: Vec<&String> = stored_map
        .keys()
        .filter(|u| !expected.contains_key(*u))
        .collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{} valid orders missing (e.g. {:?}), {} unexpected stored (e.g. {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>()
    );
    for (uid, items) in &expected {
        assert_eq!(stored_map[uid], *items, "item count of {uid}");
    }
    let wrongly_rejected: Vec<LetterRow> = dead_letters(&mut conn)
        .await
        .into_iter()
        .filter(|l| l.reason != "conflict")
        .filter(|l| {
            l.order_uid
                .as_ref()
                .is_some_and(|u| expected.contains_key(u))
        })
        .collect();
    assert!(
        wrongly_rejected.is_empty(),
        "valid orders dead-lettered: {wrongly_rejected:?}"
    );
}

/// The stored order ids, most recently stored first.
pub async fn uids_newest_first(env: &TestEnv) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Uid {
        #[diesel(sql_type = Text)]
        order_uid: String,
    }
    let rows: Vec<Uid> = sql_query("SELECT order_uid FROM orders ORDER BY id DESC")
        .load(&mut env.db().await)
        .await
        .expect("stored order ids");
    rows.into_iter().map(|r| r.order_uid).collect()
}
