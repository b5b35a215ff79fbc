//! New valid orders: realistic (names, addresses and prices that fit the city), consistent
//! money, 1–5 items and a unique order_uid.

use chrono::{DateTime, SecondsFormat, Utc};
use compact_str::{CompactString, ToCompactString};
use orders_service::domain::{Delivery, Item, Order, Payment};
use rand::Rng;

use crate::catalogue::{
    BANKS, CITIES, CURRENCIES, DELIVERY_COSTS, DELIVERY_SERVICES, EMAIL_DOMAINS, ENTRIES,
    FIRST_NAMES, ITEM_STATUSES, LAST_NAMES, PRODUCTS, PROVIDERS, SALES, STREETS,
};
use crate::generator::{Generator, Original, to_json};
use crate::message::{Kind, Outgoing};

/// Sent valid orders remembered as candidates for duplicates and conflicts.
const POOL_CAP: usize = 4_096;

impl Generator {
    /// A realistic valid order whose money adds up.
    pub(crate) fn order(&mut self) -> Order {
        let uid = self.next_uid();
        let first = self.pick(FIRST_NAMES);
        let last = self.pick(LAST_NAMES);
        let city = &CITIES[self.rng.random_range(0..CITIES.len())];
        let track_number = format!("WB{}", self.upper(12));

        let subscriber_len = if city.country_code.len() == 1 { 10 } else { 9 };
        let phone = format!("+{}{}", city.country_code, self.digits(subscriber_len));
        let zip = if city.zip_digits == 0 {
            let (a, b) = (self.upper(2), self.upper(2));
            format!(
                "{a}{} {}{b}",
                self.rng.random_range(1..10),
                self.rng.random_range(0..10)
            )
        } else {
            self.digits(city.zip_digits)
        };
        let mut address = format!("{} {}", self.pick(STREETS), self.rng.random_range(1..200));
        if self.rng.random_bool(0.5) {
            address.push_str(&format!(", apt {}", self.rng.random_range(1..400)));
        }
        let email = format!(
            "{}.{}{}@{}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
            self.rng.random_range(1..1000),
            self.pick(EMAIL_DOMAINS)
        );

        let item_count = self.rng.random_range(1..=5);
        let items: Vec<Item> = (0..item_count)
            .map(|_| {
                let product = &PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
                let price = self.rng.random_range(product.price.0..=product.price.1);
                let sale = self.pick(SALES);
                Item {
                    chrt_id: self.rng.random_range(1_000_000..100_000_000),
                    track_number: track_number.clone().into(),
                    price,
                    rid: format!("{}test", self.hex(17)).into(),
                    name: product.name.into(),
                    sale,
                    size: self.pick(product.sizes).into(),
                    total_price: price * (100 - sale) / 100,
                    nm_id: self.rng.random_range(100_000..10_000_000),
                    brand: self.pick(product.brands).into(),
                    status: self.pick(ITEM_STATUSES),
                }
            })
            .collect();

        let goods_total: i64 = items.iter().map(|i| i.total_price).sum();
        let delivery_cost = self.pick(DELIVERY_COSTS);
        let custom_fee = if self.rng.random_bool(0.15) {
            self.rng.random_range(1..=500)
        } else {
            0
        };
        let created = self.anchor - self.rng.random_range(0..7 * 86_400);
        let date_created = DateTime::<Utc>::from_timestamp(created, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let request_id = if self.rng.random_bool(0.2) {
            self.hex(16)
        } else {
            String::new()
        };
        // Mostly the local currency; now and then a cross-border purchase.
        let currency = if self.rng.random_bool(0.1) {
            self.pick(&CURRENCIES)
        } else {
            city.currency
        };
        let customer_id = format!(
            "{}{}",
            first.to_ascii_lowercase(),
            self.rng.random_range(1..100_000)
        );

        Order {
            order_uid: uid.clone().into(),
            track_number: track_number.into(),
            entry: self.pick(ENTRIES).into(),
            delivery: Delivery {
                name: format!("{first} {last}").into(),
                phone: phone.into(),
                zip: zip.into(),
                city: city.name.into(),
                address: address.into(),
                region: city.region.into(),
                email: email.into(),
            },
            payment: Payment {
                transaction: uid.into(),
                request_id: request_id.into(),
                currency: currency.into(),
                provider: self.pick(PROVIDERS).into(),
                amount: goods_total + delivery_cost + custom_fee,
                payment_dt: created + self.rng.random_range(0..=900),
                bank: self.pick(BANKS).into(),
                delivery_cost,
                goods_total,
                custom_fee,
            },
            items,
            locale: city.locale.into(),
            internal_signature: CompactString::default(),
            customer_id: customer_id.into(),
            delivery_service: self.pick(DELIVERY_SERVICES).into(),
            shardkey: self.rng.random_range(0..10).to_compact_string(),
            sm_id: self.rng.random_range(1..=200),
            date_created: date_created.into(),
            oof_shard: self.rng.random_range(1..=2).to_compact_string(),
        }
    }

    /// A new valid order, remembered for later duplicates and conflicts.
    pub(crate) fn valid(&mut self) -> Outgoing {
        let order = self.order();
        let payload = to_json(&order);
        let msg = Outgoing {
            key: order.order_uid.to_string(),
            payload: payload.clone(),
            kind: Kind::Valid,
            items: order.items.len(),
        };
        let original = Original { order, payload };
        if self.pool.len() < POOL_CAP {
            self.pool.push(original);
        } else {
            let slot = self.rng.random_range(0..POOL_CAP);
            self.pool[slot] = original;
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use orders_service::domain::parse_and_validate;

    use crate::catalogue::CURRENCIES;
    use crate::generator::tests::{LIMIT, generator};

    #[test]
    fn a_thousand_generated_orders_are_all_valid_realistic_and_unique() {
        let mut g = generator(42);
        let mut uids = HashSet::new();
        for _ in 0..1000 {
            let msg = g.valid();
            let valid = parse_and_validate(&msg.payload, LIMIT)
                .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(&msg.payload)));
            let order = valid.order;
            assert_eq!(msg.key, order.order_uid);
            assert!(uids.insert(order.order_uid.clone()), "uid repeated");
            assert!((1..=5).contains(&order.items.len()));
            assert_eq!(msg.items, order.items.len());
            assert!(CURRENCIES.contains(&order.payment.currency.as_str()));
            assert!(order.date_created.ends_with('Z') && order.date_created.len() == 20);
            assert!(order.payment.payment_dt > 0);
            for item in &order.items {
                assert_eq!(item.total_price, item.price * (100 - item.sale) / 100);
            }
        }
    }
}
