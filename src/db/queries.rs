//! The queries the service makes. Writes use `unnest` over one array per column, so a batch
//! of any size is one statement per table with a fixed number of bind parameters.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Int4, Int8, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::models::{DeliveryRow, ItemRow, OrderRow, OrderSummary, PaymentRow, assemble};
use super::schema::{deliveries, items, orders, payments};
use crate::domain::{Order, Rejection};
use crate::ingest::{Incoming, Outcome, decide, insert_candidates};

#[derive(QueryableByName)]
struct InsertedOrder {
    #[diesel(sql_type = Int8)]
    id: i64,
    #[diesel(sql_type = Text)]
    order_uid: String,
}

/// Writes a batch in one transaction: new orders with all their rows, and a dead letter for
/// every rejected or conflicting message. Returns each message's outcome, in batch order.
/// On error nothing of the batch is written.
///
/// The transaction is synchronous whatever the server's or the database's default: the
/// reader commits offsets once this returns, so the commit must be on disk. `SET LOCAL`, not
/// a session setting, so a pooler (pgbouncer in transaction mode) cannot lose it.
pub async fn write_batch(
    conn: &mut AsyncPgConnection,
    topic: &str,
    batch: &[Incoming],
) -> QueryResult<Vec<Outcome>> {
    conn.transaction(async |c| {
        diesel::sql_query("SET LOCAL synchronous_commit TO on")
            .execute(c)
            .await?;
        write_batch_in_transaction(c, topic, batch).await
    })
    .await
}

async fn write_batch_in_transaction(
    conn: &mut AsyncPgConnection,
    topic: &str,
    batch: &[Incoming],
) -> QueryResult<Vec<Outcome>> {
    let candidates = insert_candidates(batch);
    let valid = |i: usize| batch[i].verdict.as_ref().ok();
    let chosen: Vec<(usize, &crate::domain::ValidOrder)> = candidates
        .iter()
        .filter_map(|&i| valid(i).map(|v| (i, v)))
        .collect();

    let inserted_rows = insert_orders(conn, batch, &chosen).await?;
    let ids: HashMap<String, i64> = inserted_rows
        .into_iter()
        .map(|r| (r.order_uid, r.id))
        .collect();

    let new_orders: Vec<(i64, &Order)> = chosen
        .iter()
        .filter_map(|(_, v)| {
            ids.get(v.order.order_uid.as_str())
                .map(|id| (*id, &v.order))
        })
        .collect();
    insert_children(conn, &new_orders).await?;

    let missing: Vec<&str> = chosen
        .iter()
        .map(|(_, v)| v.order.order_uid.as_str())
        .filter(|uid| !ids.contains_key(*uid))
        .collect();
    let existing: HashMap<String, Vec<u8>> = if missing.is_empty() {
        HashMap::new()
    } else {
        orders::table
            .filter(orders::order_uid.eq_any(&missing))
            .select((orders::order_uid, orders::content_hash))
            .load::<(String, Vec<u8>)>(conn)
            .await?
            .into_iter()
            .collect()
    };

    let inserted: HashSet<String> = ids.into_keys().collect();
    let outcomes = decide(batch, &inserted, &existing);
    let letters: Vec<(&Incoming, &Rejection)> = batch
        .iter()
        .zip(&outcomes)
        .filter_map(|(incoming, outcome)| match outcome {
            Outcome::DeadLettered(r) => Some((incoming, r)),
            _ => None,
        })
        .collect();
    insert_dead_letters(conn, topic, &letters).await?;
    Ok(outcomes)
}

async fn insert_orders(
    conn: &mut AsyncPgConnection,
    batch: &[Incoming],
    chosen: &[(usize, &crate::domain::ValidOrder)],
) -> QueryResult<Vec<InsertedOrder>> {
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let col =
        |f: fn(&Order) -> &str| -> Vec<&str> { chosen.iter().map(|(_, v)| f(&v.order)).collect() };
    let created: Vec<DateTime<Utc>> = chosen
        .iter()
        .map(|(_, v)| {
            DateTime::parse_from_rfc3339(&v.order.date_created)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| {
                    diesel::result::Error::SerializationError(
                        format!("order {}: date_created: {e}", v.order.order_uid).into(),
                    )
                })
        })
        .collect::<QueryResult<_>>()?;
    diesel::sql_query(
        "INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature, \
         customer_id, delivery_service, shardkey, sm_id, date_created, date_created_raw, \
         oof_shard, content_hash, kafka_partition, kafka_offset) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int8[], $10::timestamptz[], $11::text[], \
         $12::text[], $13::bytea[], $14::int4[], $15::int8[]) \
         ON CONFLICT (order_uid) DO NOTHING RETURNING id, order_uid",
    )
    .bind::<Array<Text>, _>(col(|o| &o.order_uid))
    .bind::<Array<Text>, _>(col(|o| &o.track_number))
    .bind::<Array<Text>, _>(col(|o| &o.entry))
    .bind::<Array<Text>, _>(col(|o| &o.locale))
    .bind::<Array<Text>, _>(col(|o| &o.internal_signature))
    .bind::<Array<Text>, _>(col(|o| &o.customer_id))
    .bind::<Array<Text>, _>(col(|o| &o.delivery_service))
    .bind::<Array<Text>, _>(col(|o| &o.shardkey))
    .bind::<Array<Int8>, _>(
        chosen
            .iter()
            .map(|(_, v)| v.order.sm_id)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Timestamptz>, _>(created)
    .bind::<Array<Text>, _>(col(|o| &o.date_created))
    .bind::<Array<Text>, _>(col(|o| &o.oof_shard))
    .bind::<Array<Bytea>, _>(
        chosen
            .iter()
            .map(|(_, v)| v.content_hash.to_vec())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int4>, _>(
        chosen
            .iter()
            .map(|(i, _)| batch[*i].position.partition)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int8>, _>(
        chosen
            .iter()
            .map(|(i, _)| batch[*i].position.offset)
            .collect::<Vec<_>>(),
    )
    .load::<InsertedOrder>(conn)
    .await
}

async fn insert_children(conn: &mut AsyncPgConnection, new: &[(i64, &Order)]) -> QueryResult<()> {
    if new.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = new.iter().map(|(id, _)| *id).collect();
    let d = |f: fn(&Order) -> &str| -> Vec<&str> { new.iter().map(|(_, o)| f(o)).collect() };
    diesel::sql_query(
        "INSERT INTO deliveries (order_id, name, phone, zip, city, address, region, email) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[])",
    )
    .bind::<Array<Int8>, _>(&ids)
    .bind::<Array<Text>, _>(d(|o| &o.delivery.name))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.phone))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.zip))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.city))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.address))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.region))
    .bind::<Array<Text>, _>(d(|o| &o.delivery.email))
    .execute(conn)
    .await?;

    let n = |f: fn(&Order) -> i64| -> Vec<i64> { new.iter().map(|(_, o)| f(o)).collect() };
    diesel::sql_query(
        "INSERT INTO payments (order_id, transaction, request_id, currency, provider, amount, \
         payment_dt, bank, delivery_cost, goods_total, custom_fee) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::int8[], $7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[])",
    )
    .bind::<Array<Int8>, _>(&ids)
    .bind::<Array<Text>, _>(d(|o| &o.payment.transaction))
    .bind::<Array<Text>, _>(d(|o| &o.payment.request_id))
    .bind::<Array<Text>, _>(d(|o| &o.payment.currency))
    .bind::<Array<Text>, _>(d(|o| &o.payment.provider))
    .bind::<Array<Int8>, _>(n(|o| o.payment.amount))
    .bind::<Array<Int8>, _>(n(|o| o.payment.payment_dt))
    .bind::<Array<Text>, _>(d(|o| &o.payment.bank))
    .bind::<Array<Int8>, _>(n(|o| o.payment.delivery_cost))
    .bind::<Array<Int8>, _>(n(|o| o.payment.goods_total))
    .bind::<Array<Int8>, _>(n(|o| o.payment.custom_fee))
    .execute(conn)
    .await?;

    let lines: Vec<(i64, i32, &crate::domain::Item)> = new
        .iter()
        .flat_map(|(id, o)| {
            o.items
                .iter()
                .zip(0i32..)
                .map(move |(item, position)| (*id, position, item))
        })
        .collect();
    let s = |f: fn(&crate::domain::Item) -> &str| -> Vec<&str> {
        lines.iter().map(|(_, _, i)| f(i)).collect()
    };
    let i = |f: fn(&crate::domain::Item) -> i64| -> Vec<i64> {
        lines.iter().map(|(_, _, i)| f(i)).collect()
    };
    let sales = lines
        .iter()
        .map(|(_, _, item)| {
            i32::try_from(item.sale).map_err(|_| {
                diesel::result::Error::SerializationError(
                    format!("item sale {} does not fit an integer", item.sale).into(),
                )
            })
        })
        .collect::<QueryResult<Vec<i32>>>()?;
    diesel::sql_query(
        "INSERT INTO items (order_id, position, chrt_id, track_number, price, rid, name, sale, \
         size, total_price, nm_id, brand, status) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::text[], $5::int8[], \
         $6::text[], $7::text[], $8::int4[], $9::text[], $10::int8[], $11::int8[], \
         $12::text[], $13::int8[])",
    )
    .bind::<Array<Int8>, _>(lines.iter().map(|(id, _, _)| *id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(lines.iter().map(|(_, p, _)| *p).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(i(|x| x.chrt_id))
    .bind::<Array<Text>, _>(s(|x| &x.track_number))
    .bind::<Array<Int8>, _>(i(|x| x.price))
    .bind::<Array<Text>, _>(s(|x| &x.rid))
    .bind::<Array<Text>, _>(s(|x| &x.name))
    .bind::<Array<Int4>, _>(sales)
    .bind::<Array<Text>, _>(s(|x| &x.size))
    .bind::<Array<Int8>, _>(i(|x| x.total_price))
    .bind::<Array<Int8>, _>(i(|x| x.nm_id))
    .bind::<Array<Text>, _>(s(|x| &x.brand))
    .bind::<Array<Int8>, _>(i(|x| x.status))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts dead letters; one already stored for the same Kafka position is left alone.
pub async fn insert_dead_letters(
    conn: &mut AsyncPgConnection,
    topic: &str,
    letters: &[(&Incoming, &Rejection)],
) -> QueryResult<usize> {
    if letters.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, message_key, payload, \
         reason, field, detail, order_uid) \
         SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::bytea[], $5::bytea[], \
         $6::text[], $7::text[], $8::text[], $9::text[]) \
         ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING",
    )
    .bind::<Text, _>(topic)
    .bind::<Array<Int4>, _>(
        letters
            .iter()
            .map(|(m, _)| m.position.partition)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int8>, _>(
        letters
            .iter()
            .map(|(m, _)| m.position.offset)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Bytea>>, _>(
        letters
            .iter()
            .map(|(m, _)| m.key.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Bytea>, _>(
        letters
            .iter()
            .map(|(m, _)| m.payload.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        letters
            .iter()
            .map(|(_, r)| r.reason.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        letters
            .iter()
            .map(|(_, r)| r.field.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        letters
            .iter()
            .map(|(_, r)| r.detail.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        letters
            .iter()
            .map(|(m, _)| {
                m.order_uid()
                    .map(str::to_string)
                    .or_else(|| uid_from_key(m))
            })
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
}

/// The message key as text, when it is a plausible order id: lets an operator find the dead
/// letters of an order even when its payload could not be parsed.
fn uid_from_key(m: &Incoming) -> Option<String> {
    let key = std::str::from_utf8(m.key.as_deref()?).ok()?;
    crate::domain::rules::is_valid_order_uid(key).then(|| key.to_string())
}

/// Loads one order by uid, rebuilt exactly as it was produced.
///
/// Both queries select by the uid, so they go out together (diesel-async pipelines futures
/// polled concurrently on a shared connection): a miss waits for one round trip to
/// PostgreSQL, not two. Stored orders are never updated, so the second statement's
/// snapshot holds the same items for an order the first one found.
pub async fn find_order(conn: &mut AsyncPgConnection, uid: &str) -> QueryResult<Option<Order>> {
    let conn: &AsyncPgConnection = conn;
    let head = orders::table
        .inner_join(deliveries::table)
        .inner_join(payments::table)
        .filter(orders::order_uid.eq(uid))
        .select((
            OrderRow::as_select(),
            DeliveryRow::as_select(),
            PaymentRow::as_select(),
        ))
        .first::<(OrderRow, DeliveryRow, PaymentRow)>(&mut &*conn);
    let head = async { head.await.optional() };
    let lines = items::table
        .inner_join(orders::table)
        .filter(orders::order_uid.eq(uid))
        .order(items::position.asc())
        .select(ItemRow::as_select())
        .load::<ItemRow>(&mut &*conn);
    let (head, lines) = futures::try_join!(head, lines)?;
    Ok(head.map(|(o, d, p)| assemble(o, d, p, lines)))
}

/// The stored orders with `lo < id <= hi`, newest first (a warm-up page). Id ranges rather
/// than a cursor let the next page be requested before this one is processed.
pub async fn orders_in_id_range(
    conn: &mut AsyncPgConnection,
    lo: i64,
    hi: i64,
) -> QueryResult<Vec<Order>> {
    // Both statements go out together, as in `find_order`: the page costs one round trip,
    // and PostgreSQL reads the lines while the heads are still arriving.
    let conn: &AsyncPgConnection = conn;
    let heads = orders::table
        .inner_join(deliveries::table)
        .inner_join(payments::table)
        // The range on every table lets the planner join three index ranges instead of
        // scanning deliveries or payments whole for each page.
        .filter(orders::id.gt(lo).and(orders::id.le(hi)))
        .filter(deliveries::order_id.gt(lo).and(deliveries::order_id.le(hi)))
        .filter(payments::order_id.gt(lo).and(payments::order_id.le(hi)))
        .select((
            OrderRow::as_select(),
            DeliveryRow::as_select(),
            PaymentRow::as_select(),
        ))
        .order(orders::id.desc())
        .load::<(OrderRow, DeliveryRow, PaymentRow)>(&mut &*conn);
    let lines = items::table
        .filter(items::order_id.gt(lo).and(items::order_id.le(hi)))
        .order((items::order_id.asc(), items::position.asc()))
        .select(ItemRow::as_select())
        .load::<ItemRow>(&mut &*conn);
    let (heads, mut lines) = futures::try_join!(heads, lines)?;
    Ok(heads
        .into_iter()
        .map(|(o, d, p)| {
            let own = take_lines(&mut lines, o.id);
            assemble(o, d, p, own)
        })
        .collect())
}

/// Takes the lines of order `id` off the end of `lines` (sorted by order id, then position),
/// which the heads visit newest first: each order's lines are the last run of what is left,
/// so no map is needed to find them. Lines of a higher id (no head of its own) are dropped.
fn take_lines(lines: &mut Vec<ItemRow>, id: i64) -> Vec<ItemRow> {
    while lines.last().is_some_and(|l| l.order_id > id) {
        lines.pop();
    }
    let start = lines
        .iter()
        .rposition(|l| l.order_id != id)
        .map_or(0, |i| i + 1);
    lines.split_off(start)
}

/// The lowest and highest `orders.id`, if any order is stored.
pub async fn order_id_bounds(conn: &mut AsyncPgConnection) -> QueryResult<Option<(i64, i64)>> {
    let (lo, hi): (Option<i64>, Option<i64>) = orders::table
        .select((diesel::dsl::min(orders::id), diesel::dsl::max(orders::id)))
        .first(conn)
        .await?;
    Ok(lo.zip(hi))
}

/// The newest stored orders, summarised for the page's recent list.
pub async fn recent_summaries(
    conn: &mut AsyncPgConnection,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<OrderSummary>> {
    let item_count =
        diesel::dsl::sql::<Int8>("(SELECT count(*) FROM items WHERE items.order_id = orders.id)");
    let mut query = orders::table.inner_join(payments::table).into_boxed();
    if let Some(before) = before {
        query = query.filter(orders::id.lt(before));
    }
    query
        .order(orders::id.desc())
        .limit(limit)
        .select((
            orders::id,
            orders::order_uid,
            orders::date_created_raw,
            orders::customer_id,
            payments::amount,
            payments::currency,
            item_count,
        ))
        .load(conn)
        .await
}

/// Number of stored orders (for `/stats`).
pub async fn count_orders(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    orders::table.count().get_result(conn).await
}

/// A cheap round trip proving the database answers.
pub async fn ping(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1")
        .execute(conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(order_id: i64, position: i64) -> ItemRow {
        ItemRow {
            order_id,
            chrt_id: position,
            track_number: "T".into(),
            price: 0,
            rid: "r".into(),
            name: "n".into(),
            sale: 0,
            size: "0".into(),
            total_price: 0,
            nm_id: 0,
            brand: "b".into(),
            status: 0,
        }
    }

    fn ids(lines: &[ItemRow]) -> Vec<(i64, i64)> {
        lines.iter().map(|l| (l.order_id, l.chrt_id)).collect()
    }

    /// Heads 9, 7, 5, 2 (newest first); order 8 has lines but no head, 5 has no lines.
    #[test]
    fn each_head_gets_its_own_lines_in_position_order() {
        let lines = [
            (2, 1),
            (2, 2),
            (7, 1),
            (8, 1),
            (8, 2),
            (9, 1),
            (9, 2),
            (9, 3),
        ]
        .map(|(o, p)| line(o, p));
        let mut lines = lines.to_vec();
        assert_eq!(ids(&take_lines(&mut lines, 9)), [(9, 1), (9, 2), (9, 3)]);
        assert_eq!(ids(&take_lines(&mut lines, 7)), [(7, 1)]);
        assert!(take_lines(&mut lines, 5).is_empty());
        assert_eq!(ids(&take_lines(&mut lines, 2)), [(2, 1), (2, 2)]);
        assert!(lines.is_empty());
        assert!(take_lines(&mut lines, 1).is_empty());
    }
}
