//! Row types for the order tables and the conversion between rows and [`Order`].
//!
//! Text is a `CompactString` here as in [`Order`]: most values are short (ids, names, codes),
//! and one of up to 24 bytes is kept inline, without a heap allocation of its own, so
//! rebuilding an order from its rows moves its strings without copying them.

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use diesel::prelude::*;
use diesel::result::Error::SerializationError;

use super::schema::{deliveries, items, orders, payments};
use crate::domain::{Delivery, Item, Order, Payment};

/// The `orders` columns needed to rebuild an order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct OrderRow {
    pub id: i64,
    pub order_uid: CompactString,
    pub track_number: CompactString,
    pub entry: CompactString,
    pub locale: CompactString,
    pub internal_signature: CompactString,
    pub customer_id: CompactString,
    pub delivery_service: CompactString,
    pub shardkey: CompactString,
    pub sm_id: i64,
    pub date_created_raw: CompactString,
    pub oof_shard: CompactString,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub name: CompactString,
    pub phone: CompactString,
    pub zip: CompactString,
    pub city: CompactString,
    pub address: CompactString,
    pub region: CompactString,
    pub email: CompactString,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
pub struct PaymentRow {
    pub transaction: CompactString,
    pub request_id: CompactString,
    pub currency: CompactString,
    pub provider: CompactString,
    pub amount: i64,
    pub payment_dt: i64,
    pub bank: CompactString,
    pub delivery_cost: i64,
    pub goods_total: i64,
    pub custom_fee: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = items, check_for_backend(diesel::pg::Pg))]
pub struct ItemRow {
    pub order_id: i64,
    pub chrt_id: i64,
    pub track_number: CompactString,
    pub price: i64,
    pub rid: CompactString,
    pub name: CompactString,
    pub sale: i32,
    pub size: CompactString,
    pub total_price: i64,
    pub nm_id: i64,
    pub brand: CompactString,
    pub status: i64,
}

/// One line of the recent-orders list.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct OrderSummary {
    /// The paging cursor (`/orders?before=`), not part of the order.
    #[serde(skip)]
    pub id: i64,
    pub order_uid: String,
    pub date_created: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub items: i64,
}

/// A stored rejection, as `/dead-letters` shows it: the payload is a preview.
#[derive(Debug, Clone, Queryable)]
pub struct DeadLetterRow {
    pub id: i64,
    pub topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub message_key: Option<Vec<u8>>,
    pub payload_preview: Vec<u8>,
    pub payload_bytes: i32,
    pub reason: String,
    pub field: Option<String>,
    pub detail: String,
    pub order_uid: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// `orders.date_created` as the insert binds it: the producer's RFC 3339 text as an instant
/// (the text itself goes to `date_created_raw`, which is what the order is rebuilt from).
/// Validation parsed the same text, so this fails only for an order that skipped it.
pub fn date_created_column(order: &Order) -> QueryResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&order.date_created)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            SerializationError(format!("order {}: date_created: {e}", order.order_uid).into())
        })
}

/// `items.sale` as the insert binds it (an `integer` column, read back into the order's
/// `i64`). Validation keeps a sale within 0..=100, so this fails only for an order that
/// skipped it.
pub fn sale_column(item: &Item) -> QueryResult<i32> {
    i32::try_from(item.sale).map_err(|_| {
        SerializationError(format!("item sale {} does not fit an integer", item.sale).into())
    })
}

/// Rebuilds the order exactly as it was produced (field for field).
pub fn assemble(o: OrderRow, d: DeliveryRow, p: PaymentRow, item_rows: Vec<ItemRow>) -> Order {
    Order {
        order_uid: o.order_uid,
        track_number: o.track_number,
        entry: o.entry,
        delivery: Delivery {
            name: d.name,
            phone: d.phone,
            zip: d.zip,
            city: d.city,
            address: d.address,
            region: d.region,
            email: d.email,
        },
        payment: Payment {
            transaction: p.transaction,
            request_id: p.request_id,
            currency: p.currency,
            provider: p.provider,
            amount: p.amount,
            payment_dt: p.payment_dt,
            bank: p.bank,
            delivery_cost: p.delivery_cost,
            goods_total: p.goods_total,
            custom_fee: p.custom_fee,
        },
        items: item_rows
            .into_iter()
            .map(|i| Item {
                chrt_id: i.chrt_id,
                track_number: i.track_number,
                price: i.price,
                rid: i.rid,
                name: i.name,
                sale: i64::from(i.sale),
                size: i.size,
                total_price: i.total_price,
                nm_id: i.nm_id,
                brand: i.brand,
                status: i.status,
            })
            .collect(),
        locale: o.locale,
        internal_signature: o.internal_signature,
        customer_id: o.customer_id,
        delivery_service: o.delivery_service,
        shardkey: o.shardkey,
        sm_id: o.sm_id,
        date_created: o.date_created_raw,
        oof_shard: o.oof_shard,
    }
}
