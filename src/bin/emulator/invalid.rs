//! Messages the service must not store as new orders: invalid ones of every rejection reason,
//! byte-identical duplicates and same-uid conflicts.

use compact_str::CompactString;
use orders_service::domain::RejectReason;
use rand::Rng;
use serde_json::{Value, json};

use crate::draw::{Draw, to_json};
use crate::message::{Kind, Outgoing};
use crate::valid::{Sent, order};

/// One way of breaking a message, each rejected with exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Truncated,
    NonUtf8,
    JsonArray,
    Oversized,
    MissingField,
    WrongType,
    BadPhone,
    BadCurrency,
    BadSale,
    EmptyName,
    BadUid,
    NoItems,
    BadDate,
    AmountOff,
    GoodsTotalOff,
}

/// The reasons invalid messages cycle through (conflicts come from --conflict-ratio).
pub(crate) const INVALID_REASONS: [RejectReason; 5] = [
    RejectReason::Malformed,
    RejectReason::TooLarge,
    RejectReason::Schema,
    RejectReason::Invalid,
    RejectReason::Inconsistent,
];

impl Variant {
    const ALL: [Variant; 15] = [
        Variant::Truncated,
        Variant::NonUtf8,
        Variant::JsonArray,
        Variant::Oversized,
        Variant::MissingField,
        Variant::WrongType,
        Variant::BadPhone,
        Variant::BadCurrency,
        Variant::BadSale,
        Variant::EmptyName,
        Variant::BadUid,
        Variant::NoItems,
        Variant::BadDate,
        Variant::AmountOff,
        Variant::GoodsTotalOff,
    ];

    fn reason(self) -> RejectReason {
        match self {
            Variant::Truncated | Variant::NonUtf8 | Variant::JsonArray => RejectReason::Malformed,
            Variant::Oversized => RejectReason::TooLarge,
            Variant::MissingField | Variant::WrongType => RejectReason::Schema,
            Variant::BadPhone
            | Variant::BadCurrency
            | Variant::BadSale
            | Variant::EmptyName
            | Variant::BadUid
            | Variant::NoItems
            | Variant::BadDate => RejectReason::Invalid,
            Variant::AmountOff | Variant::GoodsTotalOff => RejectReason::Inconsistent,
        }
    }

    /// The variants that produce `reason` (none for `conflict` and `storage`), in [`Self::ALL`]'s
    /// order: derived from [`Self::reason`], so the two cannot disagree.
    pub(crate) fn of(reason: RejectReason) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| v.reason() == reason)
            .collect()
    }
}

/// A byte-identical re-send of a sent valid order (none before the first).
pub(crate) fn duplicate(draw: &mut Draw, sent: &Sent) -> Option<Outgoing> {
    let original = sent.any(draw)?;
    Some(Outgoing {
        key: original.order.order_uid.to_string(),
        payload: original.payload.clone(),
        kind: Kind::Duplicate,
        items: original.order.items.len(),
    })
}

/// A sent uid with different (still valid) content: another delivery_cost and amount.
pub(crate) fn conflict(draw: &mut Draw, sent: &Sent) -> Option<Outgoing> {
    let mut order = sent.any(draw)?.order.clone();
    let extra = draw.rng.random_range(1..=500);
    order.payment.delivery_cost += extra;
    order.payment.amount += extra;
    Some(Outgoing {
        key: order.order_uid.to_string(),
        payload: to_json(&order),
        kind: Kind::Conflict,
        items: order.items.len(),
    })
}

/// A message broken in the given way, keyed by its order_uid where it has one.
pub(crate) fn invalid(draw: &mut Draw, variant: Variant) -> Outgoing {
    let mut order = order(draw);
    let mut key = order.order_uid.to_string();
    let item = draw.rng.random_range(0..order.items.len());
    let payload = match variant {
        Variant::Truncated => {
            let mut bytes = to_json(&order);
            let cut = draw.rng.random_range(bytes.len() / 4..bytes.len() - 1);
            bytes.truncate(cut);
            bytes
        }
        Variant::NonUtf8 => {
            // A Latin-1 encoded name, as a legacy producer would send it.
            const MARK: &str = "@@u-umlaut@@";
            order.delivery.name = format!("J{MARK}rgen M{MARK}ller").into();
            replace_bytes(&to_json(&order), MARK.as_bytes(), &[0xFC])
        }
        Variant::JsonArray => to_json(&json!([order])),
        Variant::Oversized => {
            let mut value = json!(order);
            let base = to_json(&value).len();
            let pad = draw.max_payload.saturating_sub(base) + 1 + draw.rng.random_range(0..1024);
            value["x_padding"] = Value::String("x".repeat(pad));
            to_json(&value)
        }
        Variant::MissingField | Variant::WrongType => {
            let mut value = json!(order);
            let sections = ["", "delivery", "payment", "items"];
            let section = draw.pick(&sections);
            let object = match section {
                "" => &mut value,
                "items" => &mut value["items"][item],
                other => &mut value[other],
            };
            if let Some(map) = object.as_object_mut() {
                let names: Vec<String> = map.keys().cloned().collect();
                let field = draw
                    .pick(&names.iter().map(String::as_str).collect::<Vec<_>>())
                    .to_string();
                if variant == Variant::MissingField {
                    map.remove(&field);
                    if section.is_empty() && field == "order_uid" {
                        key = draw.random_key();
                    }
                } else if let Some(slot) = map.get_mut(&field) {
                    *slot = wrong_type(slot);
                }
            }
            to_json(&value)
        }
        Variant::BadPhone => {
            order.delivery.phone = draw
                .pick(&[
                    "12-34-56",
                    "+7 (912) 345-67-89",
                    "123",
                    "call me",
                    "+1234567890123456",
                ])
                .into();
            to_json(&order)
        }
        Variant::BadCurrency => {
            order.payment.currency = draw.pick(&["usd", "US", "DOLLAR", "€", "RU1", ""]).into();
            to_json(&order)
        }
        Variant::BadSale => {
            order.items[item].sale = draw.pick(&[150, 101, 250, -10]);
            to_json(&order)
        }
        Variant::EmptyName => {
            if draw.rng.random_bool(0.5) {
                order.delivery.name = draw.pick(&["", "   "]).into();
            } else {
                order.items[item].name = CompactString::default();
            }
            to_json(&order)
        }
        Variant::BadUid => {
            order.order_uid = match draw.rng.random_range(0..4) {
                0 => format!("{key} copy").into(),
                1 => format!("../{key}").into(),
                2 => format!("{key}{}", "x".repeat(65)).into(),
                _ => CompactString::default(),
            };
            key = if order.order_uid.is_empty() {
                draw.random_key()
            } else {
                order.order_uid.to_string()
            };
            to_json(&order)
        }
        Variant::NoItems => {
            order.items.clear();
            order.payment.goods_total = 0;
            order.payment.amount = order.payment.delivery_cost + order.payment.custom_fee;
            to_json(&order)
        }
        Variant::BadDate => {
            order.date_created = draw
                .pick(&[
                    "26.11.2021",
                    "2021-11-26 06:22:19",
                    "yesterday",
                    "2021-13-40T25:61:00Z",
                    "1637907727",
                    "",
                ])
                .into();
            to_json(&order)
        }
        Variant::AmountOff => {
            let off = draw.rng.random_range(1..=1_000);
            let p = &mut order.payment;
            p.amount = if p.amount > off && draw.rng.random_bool(0.5) {
                p.amount - off
            } else {
                p.amount + off
            };
            to_json(&order)
        }
        Variant::GoodsTotalOff => {
            let off = draw.rng.random_range(1..=1_000);
            order.payment.goods_total += off;
            order.payment.amount += off;
            to_json(&order)
        }
    };
    Outgoing {
        key,
        payload,
        kind: Kind::Invalid(variant.reason()),
        items: 0,
    }
}

/// The same value with a JSON type serde will refuse for that field.
fn wrong_type(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(12345),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(_) => json!({"0": "not a list"}),
        Value::Object(_) => json!("n/a"),
        Value::Bool(_) | Value::Null => json!([]),
    }
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use orders_service::domain::parse_and_validate;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::SEEDED_ANCHOR;
    use crate::draw::tests::{LIMIT, draw};
    use crate::valid::valid;

    #[test]
    fn every_invalid_variant_is_rejected_with_its_reason() {
        let mut d = draw(7);
        for variant in Variant::ALL {
            for _ in 0..40 {
                let msg = invalid(&mut d, variant);
                let rejection = parse_and_validate(&msg.payload, LIMIT)
                    .expect_err("an invalid message was accepted");
                assert_eq!(
                    rejection.reason,
                    variant.reason(),
                    "{variant:?}: {rejection} in {}",
                    String::from_utf8_lossy(&msg.payload)
                );
                assert_eq!(msg.kind, Kind::Invalid(variant.reason()));
                assert!(!msg.key.is_empty());
            }
        }
    }

    #[test]
    fn too_large_follows_the_configured_limit() {
        let mut d = Draw::new(StdRng::seed_from_u64(1), "t_".into(), SEEDED_ANCHOR, 2048);
        let msg = invalid(&mut d, Variant::Oversized);
        assert!(msg.payload.len() > 2048);
        let r = parse_and_validate(&msg.payload, 2048).expect_err("too large");
        assert_eq!(r.reason, RejectReason::TooLarge);
    }

    #[test]
    fn duplicates_are_byte_identical_and_conflicts_differ_in_content() {
        let (mut d, mut sent) = (draw(5), Sent::default());
        let first = valid(&mut d, &mut sent);
        let dup = duplicate(&mut d, &sent).expect("pool has an order");
        assert_eq!(dup.payload, first.payload);
        assert_eq!(dup.key, first.key);
        let conflict = conflict(&mut d, &sent).expect("pool has an order");
        assert_eq!(conflict.key, first.key);
        let a = parse_and_validate(&first.payload, LIMIT).expect("valid");
        let b = parse_and_validate(&conflict.payload, LIMIT).expect("conflict is valid");
        assert_eq!(a.order.order_uid, b.order.order_uid);
        assert_ne!(a.content_hash, b.content_hash);
    }
}
