//! `parse_and_validate`: raw Kafka payload → a valid [`Order`] or a [`Rejection`] with a stable
//! reason code and the path of the offending field (README, "The order").
//!
//! Order of checks, each cheaper than the next: size → JSON syntax → schema (every field
//! present with its JSON type; unknown fields ignored) → field rules → money adds up.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use super::order::Order;

/// Why a message was rejected. The string forms are part of the interface: they are stored in
/// `dead_letters.reason`, sent in the DLQ `reason` header and used as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not a UTF-8 JSON object.
    Malformed,
    /// Larger than the configured payload limit.
    TooLarge,
    /// A field is missing or has the wrong JSON type.
    Schema,
    /// A field breaks its rule (format, range, length).
    Invalid,
    /// The money does not add up.
    Inconsistent,
    /// The order_uid is already stored with different content.
    Conflict,
    /// PostgreSQL refused the row itself (a constraint the validator did not foresee).
    Storage,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::Malformed,
        RejectReason::TooLarge,
        RejectReason::Schema,
        RejectReason::Invalid,
        RejectReason::Inconsistent,
        RejectReason::Conflict,
        RejectReason::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::TooLarge => "too_large",
            RejectReason::Schema => "schema",
            RejectReason::Invalid => "invalid",
            RejectReason::Inconsistent => "inconsistent",
            RejectReason::Conflict => "conflict",
            RejectReason::Storage => "storage",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that will not be stored as an order, with what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// Path of the offending field (`delivery.phone`, `items[2].sale`), when there is one.
    pub field: Option<String>,
    /// Human-readable explanation, naming the field.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, field: Option<String>, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// An order that passed every rule, with its canonical JSON and content hash precomputed.
#[derive(Debug, Clone)]
pub struct ValidOrder {
    pub order: Order,
    /// Compact JSON of `order` in model.json's field order: what the API serves.
    pub json: Vec<u8>,
    /// SHA-256 of `json`: same hash ⇔ same content, whatever whitespace or unknown fields
    /// the producer sent. Decides duplicate vs conflict.
    pub content_hash: [u8; 32],
}

impl ValidOrder {
    /// Wraps an order known to be valid (it was validated before it was stored).
    pub fn from_order(order: Order) -> Self {
        let json = order.to_json();
        let content_hash = Sha256::digest(&json).into();
        Self {
            order,
            json,
            content_hash,
        }
    }
}

/// Parses and validates one payload. Never panics, whatever the bytes.
pub fn parse_and_validate(payload: &[u8], max_bytes: usize) -> Result<ValidOrder, Rejection> {
    if payload.len() > max_bytes {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            None,
            format!(
                "payload is {} bytes, the limit is {max_bytes}",
                payload.len()
            ),
        ));
    }
    let order = parse(payload)?;
    validate(&order)?;
    Ok(ValidOrder::from_order(order))
}

fn parse(payload: &[u8]) -> Result<Order, Rejection> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        Rejection::new(
            RejectReason::Malformed,
            None,
            format!("payload is not valid UTF-8: {e}"),
        )
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(Rejection::new(
            RejectReason::Malformed,
            None,
            "payload is not a JSON object",
        ));
    }
    // Most payloads are valid: parse without tracking the path first (path tracking costs
    // on every field), and parse again with it only to explain a failure.
    let mut de = serde_json::Deserializer::from_str(text);
    if let Ok(order) = Order::deserialize(&mut de).and_then(|order| de.end().map(|()| order)) {
        return Ok(order);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let order: Order = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A type error found before a later syntax error is still malformed JSON.
        let well_formed = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        if inner.is_data() && well_formed {
            let field = (path != ".").then_some(path);
            let detail = match &field {
                Some(f) => format!("{f}: {inner}"),
                None => inner.to_string(),
            };
            Rejection::new(RejectReason::Schema, field, detail)
        } else {
            Rejection::new(
                RejectReason::Malformed,
                None,
                format!("payload is not valid JSON: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        Rejection::new(
            RejectReason::Malformed,
            None,
            format!("trailing data after the JSON object: {e}"),
        )
    })?;
    Ok(order)
}

fn validate(order: &Order) -> Result<(), Rejection> {
    if let Err(errors) = order.validate() {
        let mut violations = Vec::new();
        flatten(&errors, String::new(), &mut violations);
        violations.sort();
        let field = violations.first().map(|(path, _)| path.clone());
        let detail = violations
            .iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Rejection::new(RejectReason::Invalid, field, detail));
    }
    check_money(order)
}

/// goods_total = Σ items.total_price and amount = goods_total + delivery_cost + custom_fee,
/// in checked arithmetic so an overflow is a rejection, not a panic.
pub fn check_money(order: &Order) -> Result<(), Rejection> {
    let p = &order.payment;
    let items_total = order
        .items
        .iter()
        .try_fold(0i64, |acc, item| acc.checked_add(item.total_price));
    if items_total != Some(p.goods_total) {
        return Err(Rejection::new(
            RejectReason::Inconsistent,
            Some("payment.goods_total".into()),
            format!(
                "payment.goods_total is {} but the items' total_price adds up to {}",
                p.goods_total,
                items_total.map_or_else(|| "more than i64".to_string(), |t| t.to_string())
            ),
        ));
    }
    let expected = p
        .goods_total
        .checked_add(p.delivery_cost)
        .and_then(|t| t.checked_add(p.custom_fee));
    if expected != Some(p.amount) {
        return Err(Rejection::new(
            RejectReason::Inconsistent,
            Some("payment.amount".into()),
            format!(
                "payment.amount is {} but goods_total + delivery_cost + custom_fee is {}",
                p.amount,
                expected.map_or_else(|| "more than i64".to_string(), |t| t.to_string())
            ),
        ));
    }
    Ok(())
}

/// Turns validator's nested error tree into `(path, message)` pairs.
fn flatten(errors: &ValidationErrors, prefix: String, out: &mut Vec<(String, String)>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map_or_else(|| e.code.to_string(), |m| m.to_string());
                    out.push((path.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten(inner, path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    flatten(inner, format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const LIMIT: usize = 64 * 1024;

    fn model() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/model.json")).expect("model.json")
    }

    fn check(v: &Value) -> Result<ValidOrder, Rejection> {
        parse_and_validate(&serde_json::to_vec(v).expect("json"), LIMIT)
    }

    fn rejected(v: &Value) -> Rejection {
        check(v).expect_err("must be rejected")
    }

    fn with(mutate: impl FnOnce(&mut Value)) -> Rejection {
        let mut v = model();
        mutate(&mut v);
        rejected(&v)
    }

    #[test]
    fn accepts_the_reference_order_and_serializes_it_back_unchanged() {
        let raw = include_bytes!("../../tests/fixtures/model.json");
        let valid = parse_and_validate(raw, LIMIT).expect("model.json is valid");
        let back: Value = serde_json::from_slice(&valid.json).expect("json");
        assert_eq!(back, model());
        // Field order is model.json's, so the bytes match a compact re-encoding of it.
        assert_eq!(valid.json, serde_json::to_vec(&model()).expect("json"));
    }

    #[test]
    fn ignores_unknown_fields_and_whitespace_for_the_content_hash() {
        let plain = check(&model()).expect("valid");
        let mut extra = model();
        extra["something_new"] = json!({"nested": [1, 2]});
        extra["delivery"]["floor"] = json!(3);
        let spaced = serde_json::to_vec_pretty(&extra).expect("json");
        let other = parse_and_validate(&spaced, LIMIT).expect("valid");
        assert_eq!(plain.content_hash, other.content_hash);
    }

    #[test]
    fn rejects_a_payload_over_the_limit_as_too_large() {
        let r = parse_and_validate(&vec![b' '; LIMIT + 1], LIMIT).expect_err("too large");
        assert_eq!(r.reason, RejectReason::TooLarge);
    }

    #[test]
    fn rejects_non_json_non_utf8_and_non_objects_as_malformed() {
        for payload in [
            &b"not json"[..],
            b"{\"order_uid\": ",
            b"\xff\xfe{}",
            b"[1,2,3]",
            b"",
            b"null",
            b"{} trailing",
        ] {
            let r = parse_and_validate(payload, LIMIT).expect_err("malformed");
            assert_eq!(r.reason, RejectReason::Malformed, "{payload:?}: {r}");
        }
    }

    /// A valid order followed by more bytes: the parse that skips path tracking must still
    /// check for the end of input.
    #[test]
    fn a_valid_order_with_trailing_data_is_malformed() {
        let mut payload = serde_json::to_vec(&model()).expect("json");
        payload.extend_from_slice(b" {}");
        let r = parse_and_validate(&payload, LIMIT).expect_err("trailing data");
        assert_eq!(r.reason, RejectReason::Malformed, "{r}");
        assert!(r.detail.contains("trailing"), "{}", r.detail);
    }

    #[test]
    fn rejects_a_missing_field_as_schema_naming_its_path() {
        let r = with(|v| {
            v["delivery"].as_object_mut().expect("obj").remove("zip");
        });
        assert_eq!(r.reason, RejectReason::Schema);
        assert_eq!(r.field.as_deref(), Some("delivery"));
        assert!(r.detail.contains("zip"), "{}", r.detail);
    }

    #[test]
    fn rejects_a_wrongly_typed_field_as_schema_naming_its_path() {
        let r = with(|v| v["items"][0]["price"] = json!("453"));
        assert_eq!(r.reason, RejectReason::Schema);
        assert_eq!(r.field.as_deref(), Some("items[0].price"));
        let r = with(|v| v["payment"]["amount"] = json!(18.17));
        assert_eq!(r.reason, RejectReason::Schema);
        let r = with(|v| v["sm_id"] = Value::Null);
        assert_eq!(r.field.as_deref(), Some("sm_id"));
    }

    /// serde's derive reads a struct from an array of its fields too; the schema says object.
    #[test]
    fn rejects_an_object_sent_as_an_array_as_schema_naming_its_path() {
        let as_array =
            |v: &Value| Value::Array(v.as_object().expect("obj").values().cloned().collect());
        let r = with(|v| v["delivery"] = as_array(&v["delivery"]));
        assert_eq!(r.reason, RejectReason::Schema, "{r}");
        assert_eq!(r.field.as_deref(), Some("delivery"));
        let r = with(|v| v["payment"] = as_array(&v["payment"]));
        assert_eq!(r.reason, RejectReason::Schema, "{r}");
        assert_eq!(r.field.as_deref(), Some("payment"));
        let r = with(|v| v["items"][0] = as_array(&v["items"][0]));
        assert_eq!(r.reason, RejectReason::Schema, "{r}");
        assert_eq!(r.field.as_deref(), Some("items[0]"));
    }

    #[test]
    fn rejects_an_empty_object_as_schema() {
        assert_eq!(rejected(&json!({})).reason, RejectReason::Schema);
    }

    fn assert_invalid(field: &str, mutate: impl FnOnce(&mut Value)) {
        let r = with(mutate);
        assert_eq!(r.reason, RejectReason::Invalid, "{field}: {r}");
        assert_eq!(r.field.as_deref(), Some(field), "{r}");
    }

    #[test]
    fn rejects_an_order_uid_outside_the_id_alphabet() {
        assert_invalid("order_uid", |v| v["order_uid"] = json!("has space"));
        assert_invalid("order_uid", |v| v["order_uid"] = json!(""));
        assert_invalid("order_uid", |v| v["order_uid"] = json!("x".repeat(65)));
    }

    #[test]
    fn rejects_empty_required_strings() {
        for field in ["track_number", "entry", "customer_id"] {
            assert_invalid(field, |v| v[field] = json!(""));
        }
        for field in ["name", "phone", "city", "address"] {
            assert_invalid(&format!("delivery.{field}"), |v| {
                v["delivery"][field] = json!("")
            });
        }
        for field in ["transaction", "provider"] {
            assert_invalid(&format!("payment.{field}"), |v| {
                v["payment"][field] = json!("")
            });
        }
        for field in ["rid", "name"] {
            assert_invalid(&format!("items[0].{field}"), |v| {
                v["items"][0][field] = json!("")
            });
        }
    }

    #[test]
    fn accepts_empty_optional_strings() {
        let mut v = model();
        v["payment"]["request_id"] = json!("");
        v["internal_signature"] = json!("");
        v["delivery"]["region"] = json!("");
        check(&v).expect("still valid");
    }

    #[test]
    fn rejects_a_bad_phone_email_or_currency() {
        assert_invalid("delivery.phone", |v| {
            v["delivery"]["phone"] = json!("12-34")
        });
        assert_invalid("delivery.email", |v| {
            v["delivery"]["email"] = json!("not-an-email")
        });
        assert_invalid("delivery.email", |v| v["delivery"]["email"] = json!(""));
        assert_invalid("payment.currency", |v| {
            v["payment"]["currency"] = json!("usd")
        });
        assert_invalid("payment.currency", |v| {
            v["payment"]["currency"] = json!("USDT")
        });
    }

    #[test]
    fn rejects_negative_money_and_a_non_positive_payment_time() {
        for field in ["delivery_cost", "custom_fee"] {
            assert_invalid(&format!("payment.{field}"), |v| {
                v["payment"][field] = json!(-1)
            });
        }
        assert_invalid("payment.payment_dt", |v| {
            v["payment"]["payment_dt"] = json!(0)
        });
        let r = with(|v| v["payment"]["amount"] = json!(-1));
        assert_eq!(r.reason, RejectReason::Invalid);
    }

    #[test]
    fn rejects_out_of_range_item_numbers() {
        for field in ["price", "total_price", "chrt_id", "nm_id", "status"] {
            assert_invalid(&format!("items[0].{field}"), |v| {
                v["items"][0][field] = json!(-5)
            });
        }
        assert_invalid("items[0].sale", |v| v["items"][0]["sale"] = json!(101));
        assert_invalid("items[0].sale", |v| v["items"][0]["sale"] = json!(-1));
    }

    #[test]
    fn requires_between_one_and_a_thousand_items() {
        assert_invalid("items", |v| v["items"] = json!([]));
        let mut v = model();
        let item = v["items"][0].clone();
        v["items"] = Value::Array(vec![item; 1001]);
        let payload = serde_json::to_vec(&v).expect("json");
        let r = parse_and_validate(&payload, 1 << 20).expect_err("too many items");
        assert_eq!(r.reason, RejectReason::Invalid);
        assert_eq!(r.field.as_deref(), Some("items"));
    }

    #[test]
    fn rejects_strings_over_255_characters_or_with_nul() {
        assert_invalid("delivery.region", |v| {
            v["delivery"]["region"] = json!("r".repeat(256))
        });
        assert_invalid("items[0].brand", |v| {
            v["items"][0]["brand"] = json!("a\u{0}b")
        });
    }

    #[test]
    fn rejects_a_date_that_is_not_rfc3339() {
        assert_invalid("date_created", |v| v["date_created"] = json!("26.11.2021"));
    }

    #[test]
    fn rejects_an_order_whose_goods_total_does_not_add_up() {
        let r = with(|v| v["payment"]["goods_total"] = json!(318));
        assert_eq!(r.reason, RejectReason::Inconsistent);
        assert_eq!(r.field.as_deref(), Some("payment.goods_total"));
    }

    #[test]
    fn rejects_an_order_whose_amount_does_not_add_up() {
        let r = with(|v| v["payment"]["amount"] = json!(1816));
        assert_eq!(r.reason, RejectReason::Inconsistent);
        assert_eq!(r.field.as_deref(), Some("payment.amount"));
    }

    #[test]
    fn treats_overflowing_sums_as_inconsistent_not_a_panic() {
        let r = with(|v| {
            let mut item = v["items"][0].clone();
            item["total_price"] = json!(i64::MAX);
            v["items"] = json!([item.clone(), item]);
        });
        assert_eq!(r.reason, RejectReason::Inconsistent);
    }

    #[test]
    fn lists_every_violation_in_the_detail() {
        let r = with(|v| {
            v["delivery"]["phone"] = json!("x");
            v["payment"]["currency"] = json!("x");
        });
        assert!(r.detail.contains("delivery.phone"), "{}", r.detail);
        assert!(r.detail.contains("payment.currency"), "{}", r.detail);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix of the model and some byte flips.
        let raw = include_bytes!("../../tests/fixtures/model.json");
        for cut in 0..raw.len() {
            let _ = parse_and_validate(&raw[..cut], LIMIT);
        }
        let mut bytes = raw.to_vec();
        for i in (0..bytes.len()).step_by(7) {
            bytes[i] ^= 0x5a;
            let _ = parse_and_validate(&bytes, LIMIT);
        }
    }
}
