//! The queries the service makes: the SQL primitives, each one statement (or, for an order
//! read, two pipelined ones). What a batch of messages becomes, and in which transaction, is
//! decided by `ingest::store`, which calls these. Inserts go through [`super::unnest`]: one
//! array per column, so a batch of any size is one statement per table.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Int8, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{
    DeliveryRow, ItemRow, OrderRow, OrderSummary, PaymentRow, assemble, date_created_column,
    sale_column,
};
use super::schema::{deliveries, items, orders, payments};
use super::unnest::{Values, insert};
use crate::domain::{Item, Order, Rejection};

/// An order to insert, with what its row records besides the order.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder<'a> {
    pub order: &'a Order,
    pub content_hash: &'a [u8],
    pub partition: i32,
    pub offset: i64,
}

/// A dead letter to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewDeadLetter<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub rejection: &'a Rejection,
    /// The order id, when the payload or the key names one.
    pub order_uid: Option<&'a str>,
}

/// An order the insert created.
#[derive(Debug, QueryableByName)]
pub struct InsertedOrder {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub order_uid: String,
}

/// Inserts the order rows whose uid is not stored yet; returns those it created (an order
/// already stored, by an earlier batch or a concurrent writer, is left alone).
pub async fn insert_orders(
    conn: &mut AsyncPgConnection,
    new: &[NewOrder<'_>],
) -> QueryResult<Vec<InsertedOrder>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let columns = vec![
        ("order_uid", Values::text(new, |n| &n.order.order_uid)),
        ("track_number", Values::text(new, |n| &n.order.track_number)),
        ("entry", Values::text(new, |n| &n.order.entry)),
        ("locale", Values::text(new, |n| &n.order.locale)),
        (
            "internal_signature",
            Values::text(new, |n| &n.order.internal_signature),
        ),
        ("customer_id", Values::text(new, |n| &n.order.customer_id)),
        (
            "delivery_service",
            Values::text(new, |n| &n.order.delivery_service),
        ),
        ("shardkey", Values::text(new, |n| &n.order.shardkey)),
        ("sm_id", Values::int8(new, |n| n.order.sm_id)),
        (
            "date_created",
            Values::try_timestamptz(new, |n| date_created_column(n.order))?,
        ),
        (
            "date_created_raw",
            Values::text(new, |n| &n.order.date_created),
        ),
        ("oof_shard", Values::text(new, |n| &n.order.oof_shard)),
        ("content_hash", Values::bytea(new, |n| n.content_hash)),
        ("kafka_partition", Values::int4(new, |n| n.partition)),
        ("kafka_offset", Values::int8(new, |n| n.offset)),
    ];
    insert(
        "orders",
        columns,
        "ON CONFLICT (order_uid) DO NOTHING RETURNING id, order_uid",
    )?
    .load(conn)
    .await
}

/// Inserts the delivery, payment and item rows of orders just created (`id`, order).
pub async fn insert_children(
    conn: &mut AsyncPgConnection,
    new: &[(i64, &Order)],
) -> QueryResult<()> {
    if new.is_empty() {
        return Ok(());
    }
    let deliveries = vec![
        ("order_id", Values::int8(new, |(id, _)| *id)),
        ("name", Values::text(new, |(_, o)| &o.delivery.name)),
        ("phone", Values::text(new, |(_, o)| &o.delivery.phone)),
        ("zip", Values::text(new, |(_, o)| &o.delivery.zip)),
        ("city", Values::text(new, |(_, o)| &o.delivery.city)),
        ("address", Values::text(new, |(_, o)| &o.delivery.address)),
        ("region", Values::text(new, |(_, o)| &o.delivery.region)),
        ("email", Values::text(new, |(_, o)| &o.delivery.email)),
    ];
    insert("deliveries", deliveries, "")?.execute(conn).await?;

    let payments = vec![
        ("order_id", Values::int8(new, |(id, _)| *id)),
        (
            "transaction",
            Values::text(new, |(_, o)| &o.payment.transaction),
        ),
        (
            "request_id",
            Values::text(new, |(_, o)| &o.payment.request_id),
        ),
        ("currency", Values::text(new, |(_, o)| &o.payment.currency)),
        ("provider", Values::text(new, |(_, o)| &o.payment.provider)),
        ("amount", Values::int8(new, |(_, o)| o.payment.amount)),
        (
            "payment_dt",
            Values::int8(new, |(_, o)| o.payment.payment_dt),
        ),
        ("bank", Values::text(new, |(_, o)| &o.payment.bank)),
        (
            "delivery_cost",
            Values::int8(new, |(_, o)| o.payment.delivery_cost),
        ),
        (
            "goods_total",
            Values::int8(new, |(_, o)| o.payment.goods_total),
        ),
        (
            "custom_fee",
            Values::int8(new, |(_, o)| o.payment.custom_fee),
        ),
    ];
    insert("payments", payments, "")?.execute(conn).await?;

    // One row per item: (order id, position in the order, item).
    let lines: Vec<(i64, i32, &Item)> = new
        .iter()
        .flat_map(|(id, o)| {
            o.items
                .iter()
                .zip(0i32..)
                .map(move |(item, position)| (*id, position, item))
        })
        .collect();
    let items = vec![
        ("order_id", Values::int8(&lines, |(id, _, _)| *id)),
        ("position", Values::int4(&lines, |(_, p, _)| *p)),
        ("chrt_id", Values::int8(&lines, |(_, _, i)| i.chrt_id)),
        (
            "track_number",
            Values::text(&lines, |(_, _, i)| &i.track_number),
        ),
        ("price", Values::int8(&lines, |(_, _, i)| i.price)),
        ("rid", Values::text(&lines, |(_, _, i)| &i.rid)),
        ("name", Values::text(&lines, |(_, _, i)| &i.name)),
        (
            "sale",
            Values::try_int4(&lines, |(_, _, i)| sale_column(i))?,
        ),
        ("size", Values::text(&lines, |(_, _, i)| &i.size)),
        (
            "total_price",
            Values::int8(&lines, |(_, _, i)| i.total_price),
        ),
        ("nm_id", Values::int8(&lines, |(_, _, i)| i.nm_id)),
        ("brand", Values::text(&lines, |(_, _, i)| &i.brand)),
        ("status", Values::int8(&lines, |(_, _, i)| i.status)),
    ];
    insert("items", items, "")?.execute(conn).await?;
    Ok(())
}

/// The content hash of each of these orders that is stored.
pub async fn stored_hashes(
    conn: &mut AsyncPgConnection,
    uids: &[&str],
) -> QueryResult<HashMap<String, Vec<u8>>> {
    if uids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(orders::table
        .filter(orders::order_uid.eq_any(uids))
        .select((orders::order_uid, orders::content_hash))
        .load::<(String, Vec<u8>)>(conn)
        .await?
        .into_iter()
        .collect())
}

/// Inserts dead letters of `topic`; one already stored for the same Kafka position is left
/// alone.
pub async fn insert_dead_letters(
    conn: &mut AsyncPgConnection,
    topic: &str,
    letters: &[NewDeadLetter<'_>],
) -> QueryResult<usize> {
    if letters.is_empty() {
        return Ok(0);
    }
    let columns = vec![
        ("topic", Values::text(letters, |_| topic)),
        ("kafka_partition", Values::int4(letters, |l| l.partition)),
        ("kafka_offset", Values::int8(letters, |l| l.offset)),
        ("message_key", Values::nullable_bytea(letters, |l| l.key)),
        ("payload", Values::bytea(letters, |l| l.payload)),
        (
            "reason",
            Values::text(letters, |l| l.rejection.reason.as_str()),
        ),
        (
            "field",
            Values::nullable_text(letters, |l| l.rejection.field.as_deref()),
        ),
        ("detail", Values::text(letters, |l| &l.rejection.detail)),
        ("order_uid", Values::nullable_text(letters, |l| l.order_uid)),
    ];
    insert(
        "dead_letters",
        columns,
        "ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING",
    )?
    .execute(conn)
    .await
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
    let (heads, lines) = futures::try_join!(heads, lines)?;
    Ok(assemble_page(heads, lines))
}

/// A warm-up page's orders, from its heads as `orders_in_id_range` selects them (newest
/// first) and its lines (by order id, then position).
pub fn assemble_page(
    heads: Vec<(OrderRow, DeliveryRow, PaymentRow)>,
    mut lines: Vec<ItemRow>,
) -> Vec<Order> {
    heads
        .into_iter()
        .map(|(o, d, p)| {
            let own = take_lines(&mut lines, o.id);
            assemble(o, d, p, own)
        })
        .collect()
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
