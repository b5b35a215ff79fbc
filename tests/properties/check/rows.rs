//! An order through PostgreSQL without PostgreSQL: the rows the insert writes, read back the
//! way a miss (`queries::find_order`) and the warm-up (`queries::orders_in_id_range`) read
//! them.
//!
//! The rows are built from the values `queries::insert_orders` and `insert_children` bind:
//! text and `bigint` columns bound as the order holds them, `items.position` the item's
//! index, and the two conversions that can fail are the library's own
//! ([`models::date_created_column`], [`models::sale_column`]). What cannot be reached
//! without a server is stated as a check instead: every value is one the column accepts
//! (text without NUL, the tables' CHECK constraints, a timestamptz in range). That the SQL
//! puts each array in its column is the integration tests' part (`tests/api`, against a real
//! PostgreSQL).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use orders_service::db::models::{
    self, DeliveryRow, ItemRow, OrderRow, PaymentRow, assemble, date_created_column,
};
use orders_service::db::queries::assemble_page;
use orders_service::domain::Order;

/// One stored order: its head (the joined `orders`, `deliveries` and `payments` rows) and its
/// lines in position order.
#[derive(Debug, Clone)]
pub struct Stored {
    head: (OrderRow, DeliveryRow, PaymentRow),
    lines: Vec<ItemRow>,
}

/// The rows the insert writes for `order` under `orders.id = id`, or what the database (or
/// the insert itself) would refuse.
pub fn stored(order: &Order, id: i64) -> Result<Stored, String> {
    let created =
        date_created_column(order).map_err(|e| format!("the insert cannot bind it: {e}"))?;
    timestamptz_in_range(created)?;
    for text in texts(order) {
        if text.contains('\0') {
            return Err(format!("PostgreSQL text cannot hold NUL: {text:?}"));
        }
    }
    let p = &order.payment;
    let checks = [
        ("payments.amount >= 0", p.amount >= 0),
        ("payments.payment_dt > 0", p.payment_dt > 0),
        ("payments.delivery_cost >= 0", p.delivery_cost >= 0),
        ("payments.goods_total >= 0", p.goods_total >= 0),
        ("payments.custom_fee >= 0", p.custom_fee >= 0),
    ];
    if let Some((check, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(format!("the row breaks CHECK ({check})"));
    }
    let mut lines = Vec::with_capacity(order.items.len());
    for (item, position) in order.items.iter().zip(0i32..) {
        let sale = models::sale_column(item).map_err(|e| format!("items[{position}]: {e}"))?;
        let checks = [
            ("chrt_id >= 0", item.chrt_id >= 0),
            ("price >= 0", item.price >= 0),
            ("sale BETWEEN 0 AND 100", (0..=100).contains(&sale)),
            ("total_price >= 0", item.total_price >= 0),
            ("nm_id >= 0", item.nm_id >= 0),
            ("status >= 0", item.status >= 0),
        ];
        if let Some((check, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!("items[{position}]: the row breaks CHECK ({check})"));
        }
        lines.push(ItemRow {
            order_id: id,
            chrt_id: item.chrt_id,
            track_number: item.track_number.clone(),
            price: item.price,
            rid: item.rid.clone(),
            name: item.name.clone(),
            sale,
            size: item.size.clone(),
            total_price: item.total_price,
            nm_id: item.nm_id,
            brand: item.brand.clone(),
            status: item.status,
        });
    }
    let o = order;
    let d = &order.delivery;
    let head = (
        OrderRow {
            id,
            order_uid: o.order_uid.clone(),
            track_number: o.track_number.clone(),
            entry: o.entry.clone(),
            locale: o.locale.clone(),
            internal_signature: o.internal_signature.clone(),
            customer_id: o.customer_id.clone(),
            delivery_service: o.delivery_service.clone(),
            shardkey: o.shardkey.clone(),
            sm_id: o.sm_id,
            date_created_raw: o.date_created.clone(),
            oof_shard: o.oof_shard.clone(),
        },
        DeliveryRow {
            name: d.name.clone(),
            phone: d.phone.clone(),
            zip: d.zip.clone(),
            city: d.city.clone(),
            address: d.address.clone(),
            region: d.region.clone(),
            email: d.email.clone(),
        },
        PaymentRow {
            transaction: p.transaction.clone(),
            request_id: p.request_id.clone(),
            currency: p.currency.clone(),
            provider: p.provider.clone(),
            amount: p.amount,
            payment_dt: p.payment_dt,
            bank: p.bank.clone(),
            delivery_cost: p.delivery_cost,
            goods_total: p.goods_total,
            custom_fee: p.custom_fee,
        },
    );
    Ok(Stored { head, lines })
}

/// What a miss serves: `find_order`'s head and lines (by position) assembled, as JSON.
pub fn miss(stored: &Stored) -> Vec<u8> {
    let (o, d, p) = stored.head.clone();
    assemble(o, d, p, stored.lines.clone()).to_json()
}

/// What the warm-up caches for a page: heads newest first, lines by order id then position,
/// assembled by `assemble_page`, each written into one reused buffer as the warm-up does.
/// Returns `(order_uid, json)` in the page's order (newest first).
pub fn warm_up(page: &[Stored]) -> Vec<(String, Vec<u8>)> {
    let mut heads: Vec<_> = page.iter().map(|s| s.head.clone()).collect();
    heads.sort_by_key(|(o, _, _)| std::cmp::Reverse(o.id));
    let mut lines: Vec<ItemRow> = page.iter().flat_map(|s| s.lines.clone()).collect();
    // Stable: lines of one order keep their position order.
    lines.sort_by_key(|l| l.order_id);
    let mut json = Vec::with_capacity(4096);
    assemble_page(heads, lines)
        .into_iter()
        .map(|o| {
            json.clear();
            o.write_json(&mut json);
            (o.order_uid.into_string(), json.clone())
        })
        .collect()
}

fn texts(o: &Order) -> impl Iterator<Item = &str> {
    let d = &o.delivery;
    let p = &o.payment;
    [
        &o.order_uid,
        &o.track_number,
        &o.entry,
        &d.name,
        &d.phone,
        &d.zip,
        &d.city,
        &d.address,
        &d.region,
        &d.email,
        &p.transaction,
        &p.request_id,
        &p.currency,
        &p.provider,
        &p.bank,
        &o.locale,
        &o.internal_signature,
        &o.customer_id,
        &o.delivery_service,
        &o.shardkey,
        &o.date_created,
        &o.oof_shard,
    ]
    .into_iter()
    .chain(
        o.items
            .iter()
            .flat_map(|i| [&i.track_number, &i.rid, &i.name, &i.size, &i.brand]),
    )
    .map(|s| s.as_str())
}

/// diesel sends a timestamptz as microseconds since 2000-01-01 in an `i64`, and PostgreSQL
/// holds the years 4713 BC to 294276 AD.
fn timestamptz_in_range(t: DateTime<Utc>) -> Result<(), String> {
    let pg_epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    let micros = (t.naive_utc() - pg_epoch).num_microseconds();
    if micros.is_none() || !(-4712..=294_276).contains(&t.year()) {
        return Err(format!("date_created {t} is out of timestamptz's range"));
    }
    Ok(())
}
