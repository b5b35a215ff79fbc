//! The verdict a payload deserves, worked out without the service's code: the JSON is read
//! against a table of the schema (serde_json's tokenizer, every member seen in document
//! order), the rules of the README's "The order" are written out again by hand and the
//! money is added up in `i128`. Only what the rules themselves name is borrowed:
//! `validator`'s e-mail check and chrono's RFC 3339 parser.
//!
//! Where JSON leaves a choice, the oracle states the one the service makes: text that
//! serde_json cannot decode (an unpaired surrogate escape such as `"\ud800"`) makes a
//! payload malformed where it is read (a known member, any member name of the order's
//! objects), and is skipped like any other content inside an unknown member's value.

use std::cell::RefCell;
use std::fmt;

use compact_str::CompactString;
use orders_service::domain::{Delivery, Item, Order, Payment};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use validator::ValidateEmail;

/// What `parse_and_validate` must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    TooLarge,
    Malformed,
    /// A member missing, repeated or of the wrong JSON type; `field` is the path where it
    /// shows (the object for a missing or repeated member, `None` for the top level).
    Schema {
        field: Option<String>,
    },
    /// Every field that breaks its rule, sorted as text (the first is the one reported).
    Invalid {
        fields: Vec<String>,
    },
    Inconsistent {
        field: &'static str,
    },
    Valid(Box<Order>),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::TooLarge => f.write_str("too_large"),
            Expected::Malformed => f.write_str("malformed"),
            Expected::Schema { field } => write!(f, "schema at {field:?}"),
            Expected::Invalid { fields } => write!(f, "invalid at {fields:?}"),
            Expected::Inconsistent { field } => write!(f, "inconsistent at {field}"),
            Expected::Valid(_) => f.write_str("a valid order"),
        }
    }
}

/// The verdict the rules give `payload` under a size limit of `limit` bytes.
pub fn expected(payload: &[u8], limit: usize) -> Expected {
    if payload.len() > limit {
        return Expected::TooLarge;
    }
    let Ok(text) = std::str::from_utf8(payload) else {
        return Expected::Malformed;
    };
    // One JSON value and nothing after it; an object.
    if serde_json::from_str::<IgnoredAny>(text).is_err()
        || !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
    {
        return Expected::Malformed;
    }
    let first_error = RefCell::new(None);
    let walk = Walk {
        kind: Object(ORDER),
        path: String::new(),
        first_error: &first_error,
    };
    let tree = walk.deserialize(&mut serde_json::Deserializer::from_str(text));
    if let Some(path) = first_error.into_inner() {
        return Expected::Schema {
            field: (!path.is_empty()).then_some(path),
        };
    }
    let Ok(Json::Object(members)) = tree else {
        // serde_json refused what it was asked to decode before any schema error.
        return Expected::Malformed;
    };
    let order = decode(&members);
    let fields = violations(&order);
    if !fields.is_empty() {
        return Expected::Invalid { fields };
    }
    match money_error(&order) {
        Some(field) => Expected::Inconsistent { field },
        None => Expected::Valid(Box::new(order)),
    }
}

/// Is `order` one the service must store?
pub fn is_valid(order: &Order) -> bool {
    violations(order).is_empty() && money_error(order).is_none()
}

/// The known part of a payload, members in document order.
#[derive(Debug)]
enum Json {
    Int(i64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// The JSON type each member must have.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// An integer token within `i64`.
    Int,
    Object(&'static [(&'static str, Kind)]),
    Objects(&'static [(&'static str, Kind)]),
}

use Kind::{Int, Object, Objects, Str};

const DELIVERY: &[(&str, Kind)] = &[
    ("name", Str),
    ("phone", Str),
    ("zip", Str),
    ("city", Str),
    ("address", Str),
    ("region", Str),
    ("email", Str),
];
const PAYMENT: &[(&str, Kind)] = &[
    ("transaction", Str),
    ("request_id", Str),
    ("currency", Str),
    ("provider", Str),
    ("amount", Int),
    ("payment_dt", Int),
    ("bank", Str),
    ("delivery_cost", Int),
    ("goods_total", Int),
    ("custom_fee", Int),
];
const ITEM: &[(&str, Kind)] = &[
    ("chrt_id", Int),
    ("track_number", Str),
    ("price", Int),
    ("rid", Str),
    ("name", Str),
    ("sale", Int),
    ("size", Str),
    ("total_price", Int),
    ("nm_id", Int),
    ("brand", Str),
    ("status", Int),
];
const ORDER: &[(&str, Kind)] = &[
    ("order_uid", Str),
    ("track_number", Str),
    ("entry", Str),
    ("delivery", Object(DELIVERY)),
    ("payment", Object(PAYMENT)),
    ("items", Objects(ITEM)),
    ("locale", Str),
    ("internal_signature", Str),
    ("customer_id", Str),
    ("delivery_service", Str),
    ("shardkey", Str),
    ("sm_id", Int),
    ("date_created", Str),
    ("oof_shard", Str),
];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads one value expected to be of `kind`, as a streaming decoder does: the first schema
/// error in document order is kept in `first_error` and stops the walk. A known member of
/// the wrong type fails at its own path; a member repeated or missing fails at its object's.
struct Walk<'a> {
    kind: Kind,
    path: String,
    first_error: &'a RefCell<Option<String>>,
}

impl Walk<'_> {
    fn fail<T, E: de::Error>(&self, path: &str) -> Result<T, E> {
        self.first_error
            .borrow_mut()
            .get_or_insert_with(|| path.to_owned());
        Err(E::custom("schema error"))
    }

    fn child(&self, kind: Kind, path: String) -> Walk<'_> {
        Walk {
            kind,
            path,
            first_error: self.first_error,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member of an order")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        match self.kind {
            Str => Ok(Json::String(v.to_owned())),
            _ => self.fail(&self.path),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        match self.kind {
            Int => Ok(Json::Int(v)),
            _ => self.fail(&self.path),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        match (self.kind, i64::try_from(v)) {
            (Int, Ok(v)) => Ok(Json::Int(v)),
            _ => self.fail(&self.path),
        }
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        self.fail(&self.path)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        self.fail(&self.path)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        self.fail(&self.path)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let Objects(fields) = self.kind else {
            return self.fail(&self.path);
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(
            self.child(Object(fields), format!("{}[{}]", self.path, items.len())),
        )? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let Object(fields) = self.kind else {
            return self.fail(&self.path);
        };
        let mut members = Vec::new();
        let mut seen = vec![false; fields.len()];
        while let Some(key) = map.next_key::<String>()? {
            let Some(i) = fields.iter().position(|(name, _)| *name == key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if seen[i] {
                return self.fail(&self.path);
            }
            seen[i] = true;
            let value = map.next_value_seed(self.child(fields[i].1, join(&self.path, &key)))?;
            members.push((key, value));
        }
        if seen.contains(&false) {
            return self.fail(&self.path);
        }
        Ok(Json::Object(members))
    }
}

/// Reads the members of an object that passed the schema walk.
struct Members<'a>(&'a [(String, Json)]);

impl<'a> Members<'a> {
    fn get(&self, key: &str) -> &'a Json {
        let found = self.0.iter().find(|(k, _)| k == key);
        &found.expect("the schema check found every member").1
    }
    fn str(&self, key: &str) -> CompactString {
        match self.get(key) {
            Json::String(s) => s.into(),
            other => unreachable!("{key} is a string, not {other:?}"),
        }
    }
    fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            Json::Int(v) => *v,
            other => unreachable!("{key} is an integer, not {other:?}"),
        }
    }
    fn object(&self, key: &str) -> Members<'a> {
        match self.get(key) {
            Json::Object(members) => Members(members),
            other => unreachable!("{key} is an object, not {other:?}"),
        }
    }
}

fn decode(members: &[(String, Json)]) -> Order {
    let o = Members(members);
    let d = o.object("delivery");
    let p = o.object("payment");
    let Json::Array(items) = o.get("items") else {
        unreachable!("the schema check found an array")
    };
    Order {
        order_uid: o.str("order_uid"),
        track_number: o.str("track_number"),
        entry: o.str("entry"),
        delivery: Delivery {
            name: d.str("name"),
            phone: d.str("phone"),
            zip: d.str("zip"),
            city: d.str("city"),
            address: d.str("address"),
            region: d.str("region"),
            email: d.str("email"),
        },
        payment: Payment {
            transaction: p.str("transaction"),
            request_id: p.str("request_id"),
            currency: p.str("currency"),
            provider: p.str("provider"),
            amount: p.int("amount"),
            payment_dt: p.int("payment_dt"),
            bank: p.str("bank"),
            delivery_cost: p.int("delivery_cost"),
            goods_total: p.int("goods_total"),
            custom_fee: p.int("custom_fee"),
        },
        items: items
            .iter()
            .map(|item| {
                let Json::Object(members) = item else {
                    unreachable!("the schema check found objects")
                };
                let i = Members(members);
                Item {
                    chrt_id: i.int("chrt_id"),
                    track_number: i.str("track_number"),
                    price: i.int("price"),
                    rid: i.str("rid"),
                    name: i.str("name"),
                    sale: i.int("sale"),
                    size: i.str("size"),
                    total_price: i.int("total_price"),
                    nm_id: i.int("nm_id"),
                    brand: i.str("brand"),
                    status: i.int("status"),
                }
            })
            .collect(),
        locale: o.str("locale"),
        internal_signature: o.str("internal_signature"),
        customer_id: o.str("customer_id"),
        delivery_service: o.str("delivery_service"),
        shardkey: o.str("shardkey"),
        sm_id: o.int("sm_id"),
        date_created: o.str("date_created"),
        oof_shard: o.str("oof_shard"),
    }
}

/// At most 255 characters and no NUL: what every string field may hold.
fn text_ok(s: &str) -> bool {
    s.chars().count() <= 255 && !s.contains('\0')
}

fn non_empty_ok(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace()) && text_ok(s)
}

fn order_uid_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn phone_ok(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn currency_ok(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn email_ok(s: &str) -> bool {
    text_ok(s) && s.validate_email()
}

fn rfc3339_ok(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// The path of every field that breaks its rule, sorted as text, each once.
pub fn violations(o: &Order) -> Vec<String> {
    let mut bad = Vec::new();
    let mut item_bad = Vec::new();
    let mut check = |ok: bool, path: &str| {
        if !ok {
            bad.push(path.to_owned());
        }
    };
    // Item paths are written only for a broken field: most orders break nothing.
    let mut check_item = |ok: bool, n: usize, field: &str| {
        if !ok {
            item_bad.push(format!("items[{n}].{field}"));
        }
    };
    check(order_uid_ok(&o.order_uid), "order_uid");
    check(non_empty_ok(&o.track_number), "track_number");
    check(non_empty_ok(&o.entry), "entry");
    let d = &o.delivery;
    check(non_empty_ok(&d.name), "delivery.name");
    check(phone_ok(&d.phone), "delivery.phone");
    check(text_ok(&d.zip), "delivery.zip");
    check(non_empty_ok(&d.city), "delivery.city");
    check(non_empty_ok(&d.address), "delivery.address");
    check(text_ok(&d.region), "delivery.region");
    check(email_ok(&d.email), "delivery.email");
    let p = &o.payment;
    check(non_empty_ok(&p.transaction), "payment.transaction");
    check(text_ok(&p.request_id), "payment.request_id");
    check(currency_ok(&p.currency), "payment.currency");
    check(non_empty_ok(&p.provider), "payment.provider");
    check(p.amount >= 0, "payment.amount");
    check(p.payment_dt > 0, "payment.payment_dt");
    check(text_ok(&p.bank), "payment.bank");
    check(p.delivery_cost >= 0, "payment.delivery_cost");
    check(p.goods_total >= 0, "payment.goods_total");
    check(p.custom_fee >= 0, "payment.custom_fee");
    check((1..=1000).contains(&o.items.len()), "items");
    for (n, i) in o.items.iter().enumerate() {
        check_item(i.chrt_id >= 0, n, "chrt_id");
        check_item(text_ok(&i.track_number), n, "track_number");
        check_item(i.price >= 0, n, "price");
        check_item(non_empty_ok(&i.rid), n, "rid");
        check_item(non_empty_ok(&i.name), n, "name");
        check_item((0..=100).contains(&i.sale), n, "sale");
        check_item(text_ok(&i.size), n, "size");
        check_item(i.total_price >= 0, n, "total_price");
        check_item(i.nm_id >= 0, n, "nm_id");
        check_item(text_ok(&i.brand), n, "brand");
        check_item(i.status >= 0, n, "status");
    }
    check(text_ok(&o.locale), "locale");
    check(text_ok(&o.internal_signature), "internal_signature");
    check(non_empty_ok(&o.customer_id), "customer_id");
    check(text_ok(&o.delivery_service), "delivery_service");
    check(text_ok(&o.shardkey), "shardkey");
    check(rfc3339_ok(&o.date_created), "date_created");
    check(text_ok(&o.oof_shard), "oof_shard");
    bad.append(&mut item_bad);
    bad.sort();
    bad.dedup();
    bad
}

/// The money field that does not add up, summed without overflow.
pub fn money_error(o: &Order) -> Option<&'static str> {
    let p = &o.payment;
    let items: i128 = o.items.iter().map(|i| i128::from(i.total_price)).sum();
    if items != i128::from(p.goods_total) {
        return Some("payment.goods_total");
    }
    let total = i128::from(p.goods_total) + i128::from(p.delivery_cost) + i128::from(p.custom_fee);
    (total != i128::from(p.amount)).then_some("payment.amount")
}
