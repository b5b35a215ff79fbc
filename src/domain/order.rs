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
    #[serde(deserialize_with = "object::one")]
    pub delivery: Delivery,
    #[validate(nested)]
    #[serde(deserialize_with = "object::one")]
    pub payment: Payment,
    #[validate(
        length(min = 1, max = 1000, message = "must hold 1 to 1000 items"),
        nested
    )]
    #[serde(deserialize_with = "object::each")]
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

/// Nested structs from JSON objects only. serde's derive also reads a struct from an array of
/// its fields in declaration order (`"delivery": ["Test Testov", "+9720000000", …]`), so an
/// array would pass where the schema says object; read through [`ObjectOnly`], it is a
/// `schema` rejection ("invalid type: sequence, expected struct Delivery").
mod object {
    use serde::de::{Deserialize, Deserializer, Visitor};

    pub(super) fn one<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        T::deserialize(ObjectOnly(d))
    }

    pub(super) fn each<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        let objects = Vec::<Object<T>>::deserialize(d)?;
        Ok(objects.into_iter().map(|o| o.0).collect())
    }

    /// One element of an array of objects.
    #[repr(transparent)]
    struct Object<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            one(d).map(Object)
        }
    }

    /// Asks the underlying deserializer for a map whatever the derive asks for, so a
    /// sequence is an "invalid type" error where it stands (its path included).
    struct ObjectOnly<D>(D);

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(visitor)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(visitor)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
}
