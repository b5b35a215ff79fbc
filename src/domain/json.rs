//! An order's canonical JSON, written by hand.
//!
//! The same bytes as serde_json's serialization of [`Order`] (model.json's field order), which
//! stays the reference: the tests below hold the two to the same output. Written by hand
//! because serde_json escapes each of an order's ~45 keys one byte at a time, and the warm-up
//! writes ~100,000 orders a second: here keys are literals, and a value is copied as it is
//! unless it holds a byte JSON must escape, in which case serde_json writes it, so escaping
//! stays serde_json's.

use super::order::Order;

impl Order {
    /// The order's canonical JSON, in model.json's field order: what the content hash, the
    /// cache and the API use. The one place an order becomes bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(2048);
        self.write_json(&mut json);
        json
    }

    /// [`Self::to_json`] appended to `out`: a caller serializing many orders reuses one
    /// buffer instead of growing a new one for each (the warm-up's cost was a third malloc).
    /// Written by hand (below), byte for byte what serde_json writes for an `Order`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_order(out, self);
    }
}

/// Appends the order's JSON to `out`.
fn write_order(out: &mut Vec<u8>, o: &Order) {
    let mut order = Object::open(out);
    order.str("order_uid", &o.order_uid);
    order.str("track_number", &o.track_number);
    order.str("entry", &o.entry);
    order.key("delivery");
    let d = &o.delivery;
    let mut delivery = Object::open(order.out);
    delivery.str("name", &d.name);
    delivery.str("phone", &d.phone);
    delivery.str("zip", &d.zip);
    delivery.str("city", &d.city);
    delivery.str("address", &d.address);
    delivery.str("region", &d.region);
    delivery.str("email", &d.email);
    delivery.close();
    order.key("payment");
    let p = &o.payment;
    let mut payment = Object::open(order.out);
    payment.str("transaction", &p.transaction);
    payment.str("request_id", &p.request_id);
    payment.str("currency", &p.currency);
    payment.str("provider", &p.provider);
    payment.int("amount", p.amount);
    payment.int("payment_dt", p.payment_dt);
    payment.str("bank", &p.bank);
    payment.int("delivery_cost", p.delivery_cost);
    payment.int("goods_total", p.goods_total);
    payment.int("custom_fee", p.custom_fee);
    payment.close();
    order.key("items");
    order.out.push(b'[');
    for (n, i) in o.items.iter().enumerate() {
        if n > 0 {
            order.out.push(b',');
        }
        let mut item = Object::open(order.out);
        item.int("chrt_id", i.chrt_id);
        item.str("track_number", &i.track_number);
        item.int("price", i.price);
        item.str("rid", &i.rid);
        item.str("name", &i.name);
        item.int("sale", i.sale);
        item.str("size", &i.size);
        item.int("total_price", i.total_price);
        item.int("nm_id", i.nm_id);
        item.str("brand", &i.brand);
        item.int("status", i.status);
        item.close();
    }
    order.out.push(b']');
    order.str("locale", &o.locale);
    order.str("internal_signature", &o.internal_signature);
    order.str("customer_id", &o.customer_id);
    order.str("delivery_service", &o.delivery_service);
    order.str("shardkey", &o.shardkey);
    order.int("sm_id", o.sm_id);
    order.str("date_created", &o.date_created);
    order.str("oof_shard", &o.oof_shard);
    order.close();
}

/// A JSON object being written: puts the commas between its members.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// The member's key and colon; `name` is one of the literals above, which need no
    /// escaping.
    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        write_str(self.out, value);
    }

    fn int(&mut self, name: &str, value: i64) {
        self.key(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// A JSON string. JSON escapes only `"`, `\` and control characters; most values hold none,
/// and are copied in one piece.
fn write_str(out: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(out, value).expect("a str always serializes");
    } else {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use compact_str::CompactString;
    use rand::rngs::StdRng;
    use rand::seq::IndexedRandom;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::domain::order::{Delivery, Item, Payment};

    fn by_hand(o: &Order) -> Vec<u8> {
        let mut out = Vec::new();
        write_order(&mut out, o);
        out
    }

    fn by_serde(o: &Order) -> Vec<u8> {
        serde_json::to_vec(o).expect("json")
    }

    /// Strings that need every kind of care: escapes, control characters, non-ASCII (copied,
    /// not `\u`-escaped), a slash (not escaped), empty, and longer than `CompactString`'s
    /// inline 24 bytes.
    const TRICKY: &[&str] = &[
        "",
        "plain",
        "quote \" inside",
        "back\\slash",
        "tab\tnew\nline\r",
        "\u{1}\u{1f}\u{7f}",
        "кириллица и 中文 🦀",
        "a/b </script>",
        "a string comfortably longer than twenty-four bytes",
    ];

    fn text(rng: &mut StdRng) -> CompactString {
        if rng.random_bool(0.5) {
            (*TRICKY.choose(rng).expect("non-empty")).into()
        } else {
            let len = rng.random_range(0..40);
            (0..len)
                .map(|_| char::from_u32(rng.random_range(0..0x500)).unwrap_or('?'))
                .collect()
        }
    }

    fn number(rng: &mut StdRng) -> i64 {
        *[0, 1, -1, i64::MAX, i64::MIN, rng.random()]
            .choose(rng)
            .expect("non-empty")
    }

    fn random_order(rng: &mut StdRng) -> Order {
        Order {
            order_uid: text(rng),
            track_number: text(rng),
            entry: text(rng),
            delivery: Delivery {
                name: text(rng),
                phone: text(rng),
                zip: text(rng),
                city: text(rng),
                address: text(rng),
                region: text(rng),
                email: text(rng),
            },
            payment: Payment {
                transaction: text(rng),
                request_id: text(rng),
                currency: text(rng),
                provider: text(rng),
                amount: number(rng),
                payment_dt: number(rng),
                bank: text(rng),
                delivery_cost: number(rng),
                goods_total: number(rng),
                custom_fee: number(rng),
            },
            items: (0..rng.random_range(0..4))
                .map(|_| Item {
                    chrt_id: number(rng),
                    track_number: text(rng),
                    price: number(rng),
                    rid: text(rng),
                    name: text(rng),
                    sale: rng.random_range(0..=100),
                    size: text(rng),
                    total_price: number(rng),
                    nm_id: number(rng),
                    brand: text(rng),
                    status: number(rng),
                })
                .collect(),
            locale: text(rng),
            internal_signature: text(rng),
            customer_id: text(rng),
            delivery_service: text(rng),
            shardkey: text(rng),
            sm_id: number(rng),
            date_created: text(rng),
            oof_shard: text(rng),
        }
    }

    #[test]
    fn the_reference_order_is_written_as_serde_writes_it() {
        let model: Order = serde_json::from_str(include_str!("../../tests/fixtures/model.json"))
            .expect("the reference order parses");
        assert_eq!(
            String::from_utf8(by_hand(&model)),
            String::from_utf8(by_serde(&model))
        );
        // `to_json`, what every path uses, is this writer.
        assert_eq!(model.to_json(), by_hand(&model));
    }

    /// Catches a member left out, misplaced or misnamed (a field added to `Order` but not
    /// here), a missing comma with zero or several items, and any escape done differently.
    #[test]
    fn random_orders_are_written_byte_for_byte_as_serde_writes_them() {
        let seed: u64 = rand::rng().random();
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        for n in 0..2_000 {
            let order = random_order(&mut rng);
            assert_eq!(
                String::from_utf8_lossy(&by_hand(&order)),
                String::from_utf8_lossy(&by_serde(&order)),
                "order {n} of seed {seed}"
            );
        }
    }

    #[test]
    fn strings_are_escaped_only_where_json_requires_it() {
        for s in TRICKY {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).expect("json"), "{s:?}");
        }
    }
}
