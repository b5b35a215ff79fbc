//! The order as it travels on the wire (README, "The order").
//!
//! Field order follows the reference message so that serializing a parsed order gives back
//! the same JSON a producer sent (unknown fields aside). All money and id fields are `i64`:
//! a negative amount is a *validation* failure (`invalid`), not a type error (`schema`).

use serde::{Deserialize, Serialize};
use validator::Validate;

use super::rules;

/// One order, exactly as model.json shapes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Order {
    #[validate(custom(function = "rules::order_uid"))]
    pub order_uid: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub track_number: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub entry: String,
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
    pub locale: String,
    #[validate(custom(function = "rules::text"))]
    pub internal_signature: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub customer_id: String,
    #[validate(custom(function = "rules::text"))]
    pub delivery_service: String,
    #[validate(custom(function = "rules::text"))]
    pub shardkey: String,
    pub sm_id: i64,
    #[validate(custom(function = "rules::rfc3339"))]
    pub date_created: String,
    #[validate(custom(function = "rules::text"))]
    pub oof_shard: String,
}

impl Order {
    /// The order's canonical JSON, in model.json's field order: what the content hash, the
    /// cache and the API use. A stored order's JSON is written from its rows by
    /// `db::order_json`, whose tests hold it to these same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and lists of structs of them: serde_json fails only on maps with
        // non-string keys or a failing `Serialize` impl, and an `Order` has neither.
        let mut json = Vec::with_capacity(2048);
        serde_json::to_writer(&mut json, self).expect("an Order always serializes");
        json
    }
}

/// Where the order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Delivery {
    #[validate(custom(function = "rules::non_empty_text"))]
    pub name: String,
    #[validate(custom(function = "rules::phone"))]
    pub phone: String,
    #[validate(custom(function = "rules::text"))]
    pub zip: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub city: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub address: String,
    #[validate(custom(function = "rules::text"))]
    pub region: String,
    #[validate(custom(function = "rules::email"))]
    pub email: String,
}

/// How the order was paid. Amounts are integers in the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct Payment {
    #[validate(custom(function = "rules::non_empty_text"))]
    pub transaction: String,
    #[validate(custom(function = "rules::text"))]
    pub request_id: String,
    #[validate(custom(function = "rules::currency"))]
    pub currency: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub provider: String,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub amount: i64,
    #[validate(range(exclusive_min = 0, message = "must be > 0"))]
    pub payment_dt: i64,
    #[validate(custom(function = "rules::text"))]
    pub bank: String,
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
    pub track_number: String,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub price: i64,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub rid: String,
    #[validate(custom(function = "rules::non_empty_text"))]
    pub name: String,
    #[validate(range(min = 0, max = 100, message = "must be between 0 and 100"))]
    pub sale: i64,
    #[validate(custom(function = "rules::text"))]
    pub size: String,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub total_price: i64,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub nm_id: i64,
    #[validate(custom(function = "rules::text"))]
    pub brand: String,
    #[validate(range(min = 0, message = "must be >= 0"))]
    pub status: i64,
}
