//! The order as it travels on the wire (README, "The order").
//!
//! Field order follows the reference message so that serializing a parsed order gives back
//! the same JSON a producer sent (unknown fields aside). All money and id fields are `i64`:
//! a negative amount is a *validation* failure (`invalid`), not a type error (`schema`).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::rules;

/// One order, exactly as model.json shapes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Order {
    #[validate(custom(function = "rules::order_uid"))]
    pub order_uid: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub track_number: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub entry: CompactString,
    #[validate(nested)]
    pub delivery: Delivery,
    #[validate(nested)]
    pub payment: Payment,
    #[validate(
        length(min = 1, max = 1000, message = "must hold 1 to 1000 items"),
        nested
    )]
    pub items: Vec<Item>,
    #[validate(custom(function = "rules::text"))]
    pub locale: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub internal_signature: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub customer_id: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub delivery_service: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub shardkey: CompactString,
    pub sm_id: i64,
    #[validate(custom(function = "rules::rfc3339"))]
    pub date_created: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub oof_shard: CompactString,
}

// The order's JSON (`Order::to_json`, `Order::write_json`) is written in `super::json`.

/// Where the order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Delivery {
    #[validate(custom(function = "rules::non_empty_text"))]
    pub name: CompactString,
    #[validate(custom(function = "rules::phone"))]
    pub phone: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub zip: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub city: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub address: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub region: CompactString,
    #[validate(custom(function = "rules::email"))]
    pub email: CompactString,
}

/// How the order was paid. Amounts are integers in the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Payment {
    #[validate(custom(function = "rules::non_empty_text"))]
    pub transaction: CompactString,
    #[validate(custom(function = "rules::text"))]
    pub request_id: CompactString,
    #[validate(custom(function = "rules::currency"))]
    pub currency: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub provider: CompactString,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub amount: i64,
    #[validate(range(exclusive_min = 0, message = "must be > 0"))]
    pub payment_dt: i64,
    #[validate(custom(function = "rules::text"))]
    pub bank: CompactString,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub delivery_cost: i64,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub goods_total: i64,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub custom_fee: i64,
}

/// One line of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Item {
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub chrt_id: i64,
    #[validate(custom(function = "rules::text"))]
    pub track_number: CompactString,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub price: i64,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub rid: CompactString,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub name: CompactString,
    #[validate(range(min = 0, max = 100, message = "must be between 0 and 100"))]
    pub sale: i64,
    #[validate(custom(function = "rules::text"))]
    pub size: CompactString,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub total_price: i64,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub nm_id: i64,
    #[validate(custom(function = "rules::text"))]
    pub brand: CompactString,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub status: i64,
}
