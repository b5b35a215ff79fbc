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
use crate::draw::{Draw, to_json};
use crate::message::{Kind, Outgoing};

/// Most sent valid orders remembered as candidates for duplicates and conflicts.
const POOL_CAP: usize = 4_096;

/// A sent valid order, kept for duplicates and conflicts.
pub(crate) struct Original {
    pub(crate) order: Order,
    pub(crate) payload: Vec<u8>,
}

/// Valid orders already sent: a bounded random sample, what duplicates and conflicts re-send.
#[derive(Default)]
pub(crate) struct Sent {
    pool: Vec<Original>,
}

impl Sent {
    fn remember(&mut self, draw: &mut Draw, original: Original) {
        if self.pool.len() < POOL_CAP {
            self.pool.push(original);
        } else {
            let slot = draw.rng.random_range(0..POOL_CAP);
            self.pool[slot] = original;
        }
    }

    /// One of the sent orders, at random; none before the first.
    pub(crate) fn any(&self, draw: &mut Draw) -> Option<&Original> {
        if self.pool.is_empty() {
            return None;
        }
        self.pool.get(draw.rng.random_range(0..self.pool.len()))
    }
}

/// A realistic valid order whose money adds up.
pub(crate) fn order(draw: &mut Draw) -> Order {
    let uid = draw.next_uid();
    let first = draw.pick(FIRST_NAMES);
    let last = draw.pick(LAST_NAMES);
    let city = &CITIES[draw.rng.random_range(0..CITIES.len())];
    let track_number = format!("WB{}", draw.upper(12));

    let subscriber_len = if city.country_code.len() == 1 { 10 } else { 9 };
    let phone = format!("+{}{}", city.country_code, draw.digits(subscriber_len));
    let zip = if city.zip_digits == 0 {
        let (a, b) = (draw.upper(2), draw.upper(2));
        format!(
            "{a}{} {}{b}",
            draw.rng.random_range(1..10),
            draw.rng.random_range(0..10)
        )
    } else {
        draw.digits(city.zip_digits)
    };
    let mut address = format!("{} {}", draw.pick(STREETS), draw.rng.random_range(1..200));
    if draw.rng.random_bool(0.5) {
        address.push_str(&format!(", apt {}", draw.rng.random_range(1..400)));
    }
    let email = format!(
        "{}.{}{}@{}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase(),
        draw.rng.random_range(1..1000),
        draw.pick(EMAIL_DOMAINS)
    );

    let item_count = draw.rng.random_range(1..=5);
    let items: Vec<Item> = (0..item_count)
        .map(|_| {
            let product = &PRODUCTS[draw.rng.random_range(0..PRODUCTS.len())];
            let price = draw.rng.random_range(product.price.0..=product.price.1);
            let sale = draw.pick(SALES);
            Item {
                chrt_id: draw.rng.random_range(1_000_000..100_000_000),
                track_number: track_number.clone().into(),
                price,
                rid: format!("{}test", draw.hex(17)).into(),
                name: product.name.into(),
                sale,
                size: draw.pick(product.sizes).into(),
                total_price: price * (100 - sale) / 100,
                nm_id: draw.rng.random_range(100_000..10_000_000),
                brand: draw.pick(product.brands).into(),
                status: draw.pick(ITEM_STATUSES),
            }
        })
        .collect();

    let goods_total: i64 = items.iter().map(|i| i.total_price).sum();
    let delivery_cost = draw.pick(DELIVERY_COSTS);
    let custom_fee = if draw.rng.random_bool(0.15) {
        draw.rng.random_range(1..=500)
    } else {
        0
    };
    let created = draw.anchor - draw.rng.random_range(0..7 * 86_400);
    let date_created = DateTime::<Utc>::from_timestamp(created, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let request_id = if draw.rng.random_bool(0.2) {
        draw.hex(16)
    } else {
        String::new()
    };
    // Mostly the local currency; now and then a cross-border purchase.
    let currency = if draw.rng.random_bool(0.1) {
        draw.pick(&CURRENCIES)
    } else {
        city.currency
    };
    let customer_id = format!(
        "{}{}",
        first.to_ascii_lowercase(),
        draw.rng.random_range(1..100_000)
    );

    Order {
        order_uid: uid.clone().into(),
        track_number: track_number.into(),
        entry: draw.pick(ENTRIES).into(),
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
            provider: draw.pick(PROVIDERS).into(),
            amount: goods_total + delivery_cost + custom_fee,
            payment_dt: created + draw.rng.random_range(0..=900),
            bank: draw.pick(BANKS).into(),
            delivery_cost,
            goods_total,
            custom_fee,
        },
        items,
        locale: city.locale.into(),
        internal_signature: CompactString::default(),
        customer_id: customer_id.into(),
        delivery_service: draw.pick(DELIVERY_SERVICES).into(),
        shardkey: draw.rng.random_range(0..10).to_compact_string(),
        sm_id: draw.rng.random_range(1..=200),
        date_created: date_created.into(),
        oof_shard: draw.rng.random_range(1..=2).to_compact_string(),
    }
}

/// A new valid order, remembered in `sent` for later duplicates and conflicts.
pub(crate) fn valid(draw: &mut Draw, sent: &mut Sent) -> Outgoing {
    let order = order(draw);
    let payload = to_json(&order);
    let msg = Outgoing {
        key: order.order_uid.to_string(),
        payload: payload.clone(),
        kind: Kind::Valid,
        items: order.items.len(),
    };
    sent.remember(draw, Original { order, payload });
    msg
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use orders_service::domain::parse_and_validate;

    use super::*;
    use crate::catalogue::CURRENCIES;
    use crate::draw::tests::{LIMIT, draw};

    #[test]
    fn a_thousand_generated_orders_are_all_valid_realistic_and_unique() {
        let (mut d, mut sent) = (draw(42), Sent::default());
        let mut uids = HashSet::new();
        for _ in 0..1000 {
            let msg = valid(&mut d, &mut sent);
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
