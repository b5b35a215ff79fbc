//! Row types for the order tables; [`super::order_json`] writes an order's JSON from them.
//!
//! Their text columns are `CompactString`s: the emulator's and model.json's values are short
//! (ids, names, codes), and a string of up to 24 bytes is kept inline instead of in a heap
//! allocation of its own, which made up a fifth of the warm-up's CPU time (README, "Where
//! warm-up and ingest time goes").

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use diesel::prelude::*;

use super::schema::{deliveries, items, orders, payments};

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
