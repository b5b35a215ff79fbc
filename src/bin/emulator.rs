//! `emulator` — feeds the `orders` topic (README, "Emulator").
//!
//! Produces realistic random orders (consistent money, 1–5 items, unique uids) at a given rate
//! and count, optionally mixed with invalid messages of every rejection reason, byte-identical
//! duplicates and same-uid conflicts; or sends given JSON files as they are. It can write what
//! should end up stored (`--uids-out`) and what should be rejected (`--rejects-out`), so tests
//! can check what arrived.
//!
//! Every generated message is checked against `orders_service::domain::parse_and_validate` in
//! debug builds, so a generator that drifts from the validation rules fails loudly.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use futures::StreamExt;
use futures::channel::oneshot::Canceled;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orders_service::domain::{Delivery, Item, Order, Payment, RejectReason, parse_and_validate};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer as KafkaProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
const DEFAULT_TOPIC: &str = "orders";
const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Delivery futures kept in flight before waiting for the oldest ones.
const MAX_IN_FLIGHT: usize = 10_000;
/// Sent valid orders remembered as candidates for duplicates and conflicts.
const POOL_CAP: usize = 4_096;
/// Timestamp anchor for seeded runs (2025-01-01T00:00:00Z), so their output is reproducible.
const SEEDED_ANCHOR: i64 = 1_735_689_600;
const CURRENCIES: [&str; 5] = ["USD", "EUR", "RUB", "KZT", "GBP"];

/// Command-line interface (`emulator --help`).
#[derive(Parser, Debug)]
#[command(
    name = "emulator",
    version,
    about = "Produces orders to Kafka: realistic random ones, optionally mixed with invalid \
             messages, duplicates and conflicts, or the given JSON files."
)]
struct Args {
    /// Kafka bootstrap servers [env: KAFKA_BROKERS] [default: 127.0.0.1:19092]
    #[arg(long, value_name = "HOST:PORT[,...]")]
    brokers: Option<String>,

    /// Topic to produce to [env: KAFKA_TOPIC] [default: orders]
    #[arg(long)]
    topic: Option<String>,

    /// Number of messages to produce (all kinds together)
    #[arg(long, default_value_t = 100, conflicts_with = "files")]
    count: u64,

    /// Messages per second; 0 sends as fast as the broker accepts them
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,

    /// Seed for the random generator: the same seed (and --uid-prefix) gives byte-identical
    /// messages; timestamps are then anchored at 2025-01-01T00:00:00Z instead of now
    #[arg(long, conflicts_with = "files")]
    seed: Option<u64>,

    /// Prefix of every generated order_uid ([A-Za-z0-9_-], at most 32 characters)
    /// [default: 8 random hex digits and "_", so separate runs never collide]
    #[arg(long, value_parser = parse_prefix, conflicts_with = "files")]
    uid_prefix: Option<String>,

    /// Fraction (0..1) of messages that are invalid, cycling through every rejection reason:
    /// malformed, too_large, schema, invalid, inconsistent
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    invalid_ratio: f64,

    /// Fraction (0..1) of messages that re-send an already sent valid order byte-identical
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    duplicate_ratio: f64,

    /// Fraction (0..1) of messages that re-send an already sent order_uid with different
    /// content (another delivery_cost and amount; otherwise valid)
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    conflict_ratio: f64,

    /// The service's payload limit: too_large messages are made just bigger than this; also
    /// used to classify --file payloads [env: MAX_PAYLOAD_BYTES] [default: 65536]
    #[arg(long, value_name = "BYTES")]
    max_payload_bytes: Option<usize>,

    /// Send this JSON file as it is instead of generating (repeatable); the key is its
    /// order_uid when it has one
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,

    /// With --file: send each file this many times
    #[arg(long, default_value_t = 1, requires = "files",
          value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,

    /// Write "order_uid<TAB>item_count" for each distinct valid order that should be stored
    /// (first version of each uid only)
    #[arg(long, value_name = "PATH")]
    uids_out: Option<PathBuf>,

    /// Write "order_uid_or_key<TAB>expected_reason" for each invalid or conflicting message
    #[arg(long, value_name = "PATH")]
    rejects_out: Option<PathBuf>,

    /// Give up on a message not acknowledged by the broker within this many milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    message_timeout_ms: u64,

    /// No progress output and no log lines below warnings (the final summary is still printed)
    #[arg(long, short)]
    quiet: bool,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v == 0.0 || (0.001..=10_000_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a rate: use 0 (unlimited) or 0.001 to 10000000 messages per second"
        )),
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a uid prefix: at most 32 characters of A-Z a-z 0-9 _ -"
        ))
    }
}

// ------------------------------------------------------------------ messages

/// What a message is meant to do to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A new valid order: stored.
    Valid,
    /// A byte-identical re-send of a valid order: acknowledged, nothing changes.
    Duplicate,
    /// A known uid with different content: dead-lettered as `conflict`.
    Conflict,
    /// Rejected with this reason.
    Invalid(RejectReason),
}

/// One message ready to produce.
#[derive(Debug, Clone)]
struct Outgoing {
    key: String,
    payload: Vec<u8>,
    kind: Kind,
    /// Number of items (for `--uids-out`); 0 when unknown.
    items: usize,
}

/// Does `parse_and_validate` treat the message the way its kind says?
fn behaves_as_intended(msg: &Outgoing, max_payload: usize) -> Result<(), String> {
    match (parse_and_validate(&msg.payload, max_payload), msg.kind) {
        (Ok(_), Kind::Valid | Kind::Duplicate | Kind::Conflict) => Ok(()),
        (Err(r), Kind::Invalid(reason)) if r.reason == reason => Ok(()),
        (Ok(_), kind) => Err(format!("{kind:?} message {} was accepted", msg.key)),
        (Err(r), kind) => Err(format!("{kind:?} message {} was rejected: {r}", msg.key)),
    }
}

// ------------------------------------------------------------------ built-in data

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Ivan", "Anna", "Maria", "Alexei", "Olga", "Dmitry", "Elena", "Sergei", "Aigerim", "Nursultan",
    "John", "Emma", "Liam", "Sophie", "Lukas", "Mia", "Noah", "Chloe", "Yusuf", "Leila",
];
#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Ivanov", "Petrova", "Smirnov", "Kuznetsova", "Popov", "Sokolova", "Nurlanov", "Akhmetova",
    "Smith", "Johnson", "Brown", "Muller", "Schmidt", "Dubois", "Martin", "Rossi", "Garcia",
    "Cohen", "Levi", "Novak",
];

struct City {
    name: &'static str,
    region: &'static str,
    /// Telephone country code.
    country_code: &'static str,
    locale: &'static str,
    currency: &'static str,
    zip_digits: usize,
}

const fn city(
    name: &'static str,
    region: &'static str,
    country_code: &'static str,
    locale: &'static str,
    currency: &'static str,
    zip_digits: usize,
) -> City {
    City {
        name,
        region,
        country_code,
        locale,
        currency,
        zip_digits,
    }
}

const CITIES: &[City] = &[
    city("Moscow", "Moscow", "7", "ru", "RUB", 6),
    city("Saint Petersburg", "Leningrad Oblast", "7", "ru", "RUB", 6),
    city("Kazan", "Tatarstan", "7", "ru", "RUB", 6),
    city("Novosibirsk", "Novosibirsk Oblast", "7", "ru", "RUB", 6),
    city("Almaty", "Almaty Region", "7", "kk", "KZT", 6),
    city("Astana", "Akmola Region", "7", "kk", "KZT", 6),
    city("London", "Greater London", "44", "en", "GBP", 0),
    city("Manchester", "Greater Manchester", "44", "en", "GBP", 0),
    city("Berlin", "Berlin", "49", "de", "EUR", 5),
    city("Munich", "Bavaria", "49", "de", "EUR", 5),
    city("Paris", "Ile-de-France", "33", "fr", "EUR", 5),
    city("New York", "New York", "1", "en", "USD", 5),
    city("Austin", "Texas", "1", "en", "USD", 5),
    city("Kiryat Motzkin", "Kraiot", "972", "en", "USD", 7),
];
#[rustfmt::skip]
const STREETS: &[&str] = &[
    "Lenina St", "Tverskaya St", "Nevsky Prospekt", "Ploshad Mira", "Abay Ave", "Baker Street",
    "Unter den Linden", "Rue de Rivoli", "Main Street", "Oak Avenue", "Market Street",
    "Hauptstrasse",
];
#[rustfmt::skip]
const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com", "yandex.ru", "mail.ru", "outlook.com", "proton.me", "icloud.com", "example.org",
];

struct Product {
    name: &'static str,
    brands: &'static [&'static str],
    sizes: &'static [&'static str],
    price: (i64, i64),
}

const fn product(
    name: &'static str,
    brands: &'static [&'static str],
    sizes: &'static [&'static str],
    price: (i64, i64),
) -> Product {
    Product {
        name,
        brands,
        sizes,
        price,
    }
}

const CLOTHES: &[&str] = &["XS", "S", "M", "L", "XL", "44", "46", "48"];
const SHOES: &[&str] = &["38", "39", "40", "41", "42", "43", "44"];
const NO_SIZE: &[&str] = &["0"];
#[rustfmt::skip]
const PRODUCTS: &[Product] = &[
    product("Mascaras", &["Vivienne Sabo", "Maybelline", "L'Oreal"], NO_SIZE, (150, 1_500)),
    product("Lipstick", &["MAC", "Maybelline", "Nyx"], NO_SIZE, (200, 2_500)),
    product("Sneakers", &["Nike", "Adidas", "Puma", "New Balance"], SHOES, (3_000, 15_000)),
    product("T-shirt", &["Uniqlo", "H&M", "Zara"], CLOTHES, (500, 3_000)),
    product("Jeans", &["Levi's", "Wrangler", "Lee"], CLOTHES, (2_000, 9_000)),
    product("Phone case", &["Spigen", "OtterBox", "Baseus"], NO_SIZE, (300, 2_000)),
    product("Headphones", &["Sony", "JBL", "Sennheiser"], NO_SIZE, (1_500, 30_000)),
    product("Backpack", &["Xiaomi", "Samsonite", "Herschel"], NO_SIZE, (1_200, 12_000)),
    product("Coffee beans 1kg", &["Lavazza", "Illy", "Jacobs"], NO_SIZE, (900, 3_500)),
    product("Paperback book", &["Penguin", "Eksmo", "AST"], NO_SIZE, (250, 1_200)),
    product("Power bank", &["Anker", "Xiaomi", "Baseus"], NO_SIZE, (1_000, 6_000)),
    product("Electric kettle", &["Tefal", "Bosch", "Philips"], NO_SIZE, (1_500, 7_000)),
];
const SALES: &[i64] = &[0, 0, 0, 0, 5, 10, 15, 20, 25, 30, 40, 50, 70];
const ITEM_STATUSES: &[i64] = &[202, 202, 200, 201, 300, 400];
const ENTRIES: &[&str] = &["WBIL", "WBRU", "WBKZ", "WBEU"];
const PROVIDERS: &[&str] = &["wbpay", "sbp", "visa", "mastercard", "applepay"];
#[rustfmt::skip]
const BANKS: &[&str] = &[
    "alpha", "sber", "tinkoff", "vtb", "kaspi", "halyk", "barclays", "deutsche", "chase",
];
const DELIVERY_SERVICES: &[&str] = &["meest", "cdek", "dhl", "boxberry", "pochta", "ups", "dpd"];
const DELIVERY_COSTS: &[i64] = &[0, 0, 200, 350, 500, 990, 1_500];

// ------------------------------------------------------------------ invalid variants

/// One way of breaking a message, each rejected with exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
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
const INVALID_REASONS: [RejectReason; 5] = [
    RejectReason::Malformed,
    RejectReason::TooLarge,
    RejectReason::Schema,
    RejectReason::Invalid,
    RejectReason::Inconsistent,
];

impl Variant {
    #[cfg(test)]
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

    fn of(reason: RejectReason) -> &'static [Variant] {
        match reason {
            RejectReason::Malformed => &[Variant::Truncated, Variant::NonUtf8, Variant::JsonArray],
            RejectReason::TooLarge => &[Variant::Oversized],
            RejectReason::Schema => &[Variant::MissingField, Variant::WrongType],
            RejectReason::Invalid => &[
                Variant::BadPhone,
                Variant::BadCurrency,
                Variant::BadSale,
                Variant::EmptyName,
                Variant::BadUid,
                Variant::NoItems,
                Variant::BadDate,
            ],
            RejectReason::Inconsistent => &[Variant::AmountOff, Variant::GoodsTotalOff],
            RejectReason::Conflict | RejectReason::Storage => &[],
        }
    }
}

// ------------------------------------------------------------------ generator

/// The share of each message kind; the rest are new valid orders.
#[derive(Debug, Clone, Copy, Default)]
struct Mix {
    invalid: f64,
    duplicate: f64,
    conflict: f64,
}

/// A sent valid order, kept for duplicates and conflicts.
struct Original {
    order: Order,
    payload: Vec<u8>,
}

struct Generator {
    rng: StdRng,
    prefix: String,
    seq: u64,
    /// Orders are dated within the week before this instant (Unix seconds).
    anchor: i64,
    max_payload: usize,
    pool: Vec<Original>,
    /// Next entry of [`INVALID_REASONS`] to produce.
    reason_cycle: usize,
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // Plain structs and `Value`s of strings and integers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Generator {
    fn new(rng: StdRng, prefix: String, anchor: i64, max_payload: usize) -> Self {
        Self {
            rng,
            prefix,
            seq: 0,
            anchor,
            max_payload,
            pool: Vec::new(),
            reason_cycle: 0,
        }
    }

    /// The next message under `mix`.
    fn next_message(&mut self, mix: Mix) -> Outgoing {
        let mut r: f64 = self.rng.random();
        if r < mix.invalid {
            let reason = INVALID_REASONS[self.reason_cycle % INVALID_REASONS.len()];
            self.reason_cycle += 1;
            let variant = *Variant::of(reason)
                .choose(&mut self.rng)
                .unwrap_or(&Variant::Truncated);
            return self.invalid(variant);
        }
        r -= mix.invalid;
        let reuse = if r < mix.duplicate {
            self.duplicate()
        } else if r < mix.duplicate + mix.conflict {
            self.conflict()
        } else {
            None
        };
        // Nothing sent yet to repeat: a new order instead.
        reuse.unwrap_or_else(|| self.valid())
    }

    fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| DIGITS[self.rng.random_range(0..16)] as char)
            .collect()
    }

    fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|i| {
                let low = if i == 0 { 1 } else { 0 };
                char::from(b'0' + self.rng.random_range(low..10u8))
            })
            .collect()
    }

    fn upper(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'A' + self.rng.random_range(0..26u8)))
            .collect()
    }

    fn pick<T: Copy>(&mut self, list: &[T]) -> T {
        // Every list here is a non-empty constant.
        *list.choose(&mut self.rng).unwrap_or(&list[0])
    }

    fn random_key(&mut self) -> String {
        format!("key-{}", self.hex(16))
    }

    /// A fresh, unique order_uid: prefix, 8 random hex digits, then the sequence number
    /// (at least 8 digits), so two uids of one run can never be equal.
    fn next_uid(&mut self) -> String {
        let random = self.hex(8);
        let uid = format!("{}{random}{:08}", self.prefix, self.seq);
        self.seq += 1;
        uid
    }

    /// A realistic valid order whose money adds up.
    fn order(&mut self) -> Order {
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
                    track_number: track_number.clone(),
                    price,
                    rid: format!("{}test", self.hex(17)),
                    name: product.name.to_string(),
                    sale,
                    size: self.pick(product.sizes).to_string(),
                    total_price: price * (100 - sale) / 100,
                    nm_id: self.rng.random_range(100_000..10_000_000),
                    brand: self.pick(product.brands).to_string(),
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
            order_uid: uid.clone(),
            track_number,
            entry: self.pick(ENTRIES).to_string(),
            delivery: Delivery {
                name: format!("{first} {last}"),
                phone,
                zip,
                city: city.name.to_string(),
                address,
                region: city.region.to_string(),
                email,
            },
            payment: Payment {
                transaction: uid,
                request_id,
                currency: currency.to_string(),
                provider: self.pick(PROVIDERS).to_string(),
                amount: goods_total + delivery_cost + custom_fee,
                payment_dt: created + self.rng.random_range(0..=900),
                bank: self.pick(BANKS).to_string(),
                delivery_cost,
                goods_total,
                custom_fee,
            },
            items,
            locale: city.locale.to_string(),
            internal_signature: String::new(),
            customer_id,
            delivery_service: self.pick(DELIVERY_SERVICES).to_string(),
            shardkey: self.rng.random_range(0..10).to_string(),
            sm_id: self.rng.random_range(1..=200),
            date_created,
            oof_shard: self.rng.random_range(1..=2).to_string(),
        }
    }

    /// A new valid order, remembered for later duplicates and conflicts.
    fn valid(&mut self) -> Outgoing {
        let order = self.order();
        let payload = to_json(&order);
        let msg = Outgoing {
            key: order.order_uid.clone(),
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

    fn remembered(&mut self) -> Option<&Original> {
        if self.pool.is_empty() {
            return None;
        }
        let slot = self.rng.random_range(0..self.pool.len());
        self.pool.get(slot)
    }

    /// A byte-identical re-send of a sent valid order.
    fn duplicate(&mut self) -> Option<Outgoing> {
        let original = self.remembered()?;
        Some(Outgoing {
            key: original.order.order_uid.clone(),
            payload: original.payload.clone(),
            kind: Kind::Duplicate,
            items: original.order.items.len(),
        })
    }

    /// A sent uid with different (still valid) content: another delivery_cost and amount.
    fn conflict(&mut self) -> Option<Outgoing> {
        let mut order = self.remembered()?.order.clone();
        let extra = self.rng.random_range(1..=500);
        order.payment.delivery_cost += extra;
        order.payment.amount += extra;
        Some(Outgoing {
            key: order.order_uid.clone(),
            payload: to_json(&order),
            kind: Kind::Conflict,
            items: order.items.len(),
        })
    }

    /// A message broken in the given way, keyed by its order_uid where it has one.
    fn invalid(&mut self, variant: Variant) -> Outgoing {
        let mut order = self.order();
        let mut key = order.order_uid.clone();
        let item = self.rng.random_range(0..order.items.len());
        let payload = match variant {
            Variant::Truncated => {
                let mut bytes = to_json(&order);
                let cut = self.rng.random_range(bytes.len() / 4..bytes.len() - 1);
                bytes.truncate(cut);
                bytes
            }
            Variant::NonUtf8 => {
                // A Latin-1 encoded name, as a legacy producer would send it.
                const MARK: &str = "@@u-umlaut@@";
                order.delivery.name = format!("J{MARK}rgen M{MARK}ller");
                replace_bytes(&to_json(&order), MARK.as_bytes(), &[0xFC])
            }
            Variant::JsonArray => to_json(&json!([order])),
            Variant::Oversized => {
                let mut value = json!(order);
                let base = to_json(&value).len();
                let pad =
                    self.max_payload.saturating_sub(base) + 1 + self.rng.random_range(0..1024);
                value["x_padding"] = Value::String("x".repeat(pad));
                to_json(&value)
            }
            Variant::MissingField | Variant::WrongType => {
                let mut value = json!(order);
                let sections = ["", "delivery", "payment", "items"];
                let section = self.pick(&sections);
                let object = match section {
                    "" => &mut value,
                    "items" => &mut value["items"][item],
                    other => &mut value[other],
                };
                if let Some(map) = object.as_object_mut() {
                    let names: Vec<String> = map.keys().cloned().collect();
                    let field = self
                        .pick(&names.iter().map(String::as_str).collect::<Vec<_>>())
                        .to_string();
                    if variant == Variant::MissingField {
                        map.remove(&field);
                        if section.is_empty() && field == "order_uid" {
                            key = self.random_key();
                        }
                    } else if let Some(slot) = map.get_mut(&field) {
                        *slot = wrong_type(slot);
                    }
                }
                to_json(&value)
            }
            Variant::BadPhone => {
                order.delivery.phone = self
                    .pick(&[
                        "12-34-56",
                        "+7 (912) 345-67-89",
                        "123",
                        "call me",
                        "+1234567890123456",
                    ])
                    .to_string();
                to_json(&order)
            }
            Variant::BadCurrency => {
                order.payment.currency = self
                    .pick(&["usd", "US", "DOLLAR", "€", "RU1", ""])
                    .to_string();
                to_json(&order)
            }
            Variant::BadSale => {
                order.items[item].sale = self.pick(&[150, 101, 250, -10]);
                to_json(&order)
            }
            Variant::EmptyName => {
                if self.rng.random_bool(0.5) {
                    order.delivery.name = self.pick(&["", "   "]).to_string();
                } else {
                    order.items[item].name = String::new();
                }
                to_json(&order)
            }
            Variant::BadUid => {
                order.order_uid = match self.rng.random_range(0..4) {
                    0 => format!("{key} copy"),
                    1 => format!("../{key}"),
                    2 => format!("{key}{}", "x".repeat(65)),
                    _ => String::new(),
                };
                key = if order.order_uid.is_empty() {
                    self.random_key()
                } else {
                    order.order_uid.clone()
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
                order.date_created = self
                    .pick(&[
                        "26.11.2021",
                        "2021-11-26 06:22:19",
                        "yesterday",
                        "2021-13-40T25:61:00Z",
                        "1637907727",
                        "",
                    ])
                    .to_string();
                to_json(&order)
            }
            Variant::AmountOff => {
                let off = self.rng.random_range(1..=1_000);
                let p = &mut order.payment;
                p.amount = if p.amount > off && self.rng.random_bool(0.5) {
                    p.amount - off
                } else {
                    p.amount + off
                };
                to_json(&order)
            }
            Variant::GoodsTotalOff => {
                let off = self.rng.random_range(1..=1_000);
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

/// Generated messages, `remaining` more of them.
struct Generated {
    generator: Generator,
    mix: Mix,
    remaining: u64,
}

impl Iterator for Generated {
    type Item = Outgoing;

    fn next(&mut self) -> Option<Outgoing> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let msg = self.generator.next_message(self.mix);
        debug_assert!(
            behaves_as_intended(&msg, self.generator.max_payload).is_ok(),
            "generator bug: {:?}",
            behaves_as_intended(&msg, self.generator.max_payload)
        );
        Some(msg)
    }
}

// ------------------------------------------------------------------ files

/// One `--file`, read and classified once.
struct FileMessage {
    key: String,
    payload: Vec<u8>,
    /// uid, content hash and item count of a valid order; the reason otherwise.
    verdict: Result<(String, [u8; 32], usize), RejectReason>,
}

/// The given files, each sent `repeat` times, classified as they go: the first valid version
/// of a uid is new, the same content again a duplicate, other content a conflict.
struct Files {
    files: Vec<FileMessage>,
    repeat: u64,
    next: u64,
    seen: HashMap<String, [u8; 32]>,
}

impl Files {
    fn load(paths: &[PathBuf], repeat: u64, max_payload: usize, rng: &mut StdRng) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let payload =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let uid = serde_json::from_slice::<Value>(&payload)
                .ok()
                .and_then(|v| v.get("order_uid")?.as_str().map(str::to_string))
                .filter(|uid| !uid.is_empty());
            let key = uid.unwrap_or_else(|| format!("key-{:016x}", rng.random::<u64>()));
            let verdict = match parse_and_validate(&payload, max_payload) {
                Ok(valid) => Ok((
                    valid.order.order_uid.clone(),
                    valid.content_hash,
                    valid.order.items.len(),
                )),
                Err(rejection) => {
                    log::info!("{} will be rejected: {rejection}", path.display());
                    Err(rejection.reason)
                }
            };
            files.push(FileMessage {
                key,
                payload,
                verdict,
            });
        }
        Ok(Self {
            files,
            repeat,
            next: 0,
            seen: HashMap::new(),
        })
    }

    fn total(&self) -> u64 {
        self.files.len() as u64 * self.repeat
    }
}

impl Iterator for Files {
    type Item = Outgoing;

    fn next(&mut self) -> Option<Outgoing> {
        if self.next >= self.total() {
            return None;
        }
        let file = &self.files[(self.next % self.files.len() as u64) as usize];
        self.next += 1;
        let (kind, items) = match &file.verdict {
            Err(reason) => (Kind::Invalid(*reason), 0),
            Ok((uid, hash, items)) => match self.seen.get(uid) {
                None => {
                    self.seen.insert(uid.clone(), *hash);
                    (Kind::Valid, *items)
                }
                Some(seen) if seen == hash => (Kind::Duplicate, *items),
                Some(_) => (Kind::Conflict, *items),
            },
        };
        Some(Outgoing {
            key: file.key.clone(),
            payload: file.payload.clone(),
            kind,
            items,
        })
    }
}

// ------------------------------------------------------------------ bookkeeping

/// What was sent, by kind, and the `--uids-out` / `--rejects-out` files.
#[derive(Default)]
struct Ledger {
    valid: u64,
    invalid: u64,
    duplicates: u64,
    conflicts: u64,
    uids: Option<(PathBuf, BufWriter<File>)>,
    rejects: Option<(PathBuf, BufWriter<File>)>,
}

fn create(path: &Option<PathBuf>) -> Result<Option<(PathBuf, BufWriter<File>)>> {
    path.as_ref()
        .map(|p| {
            let file = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Ok((p.clone(), BufWriter::new(file)))
        })
        .transpose()
}

fn write_line(out: &mut Option<(PathBuf, BufWriter<File>)>, key: &str, what: &str) -> Result<()> {
    if let Some((path, w)) = out {
        writeln!(w, "{key}\t{what}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

impl Ledger {
    fn record(&mut self, msg: &Outgoing) -> Result<()> {
        match msg.kind {
            Kind::Valid => {
                self.valid += 1;
                write_line(&mut self.uids, &msg.key, &msg.items.to_string())
            }
            Kind::Duplicate => {
                self.duplicates += 1;
                Ok(())
            }
            Kind::Conflict => {
                self.conflicts += 1;
                write_line(&mut self.rejects, &msg.key, RejectReason::Conflict.as_str())
            }
            Kind::Invalid(reason) => {
                self.invalid += 1;
                write_line(&mut self.rejects, &msg.key, reason.as_str())
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        for (path, w) in [&mut self.uids, &mut self.rejects].into_iter().flatten() {
            w.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Progress on stderr: a bar on a terminal for long runs, else a log line every 10 %.
enum Progress {
    Silent,
    Bar(ProgressBar),
    Log {
        total: u64,
        next_tenth: u64,
        start: Instant,
    },
}

impl Progress {
    fn new(total: u64, quiet: bool) -> Self {
        if quiet || total == 0 {
            return Progress::Silent;
        }
        if total > 1000 && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {rate} eta {eta}",
            ) {
                let style = style.progress_chars("=> ").with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} msg/s", state.per_sec());
                    },
                );
                bar.set_style(style);
            }
            return Progress::Bar(bar);
        }
        Progress::Log {
            total,
            next_tenth: 1,
            start: Instant::now(),
        }
    }

    fn update(&mut self, done: u64) {
        match self {
            Progress::Silent => {}
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Log {
                total,
                next_tenth,
                start,
            } => {
                let reached = (done * 10 / *total).min(10);
                if reached >= *next_tenth {
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    log::info!(
                        "{}% ({done}/{total}) acknowledged, {:.0} msg/s",
                        reached * 10,
                        done as f64 / secs
                    );
                    *next_tenth = reached + 1;
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Delivery outcomes as the broker reports them.
struct Deliveries {
    in_flight: FuturesUnordered<DeliveryFuture>,
    acknowledged: u64,
    failed: u64,
    first_error: Option<String>,
    progress: Progress,
}

impl Deliveries {
    fn settle(&mut self, outcome: Result<OwnedDeliveryResult, Canceled>) {
        match outcome {
            Ok(Ok(_)) => self.acknowledged += 1,
            Ok(Err((error, _message))) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| error.to_string());
            }
            Err(Canceled) => {
                self.failed += 1;
                self.first_error
                    .get_or_insert_with(|| "the producer dropped the message".to_string());
            }
        }
        self.progress.update(self.acknowledged + self.failed);
    }

    /// Waits for one delivery; false when none is in flight.
    async fn settle_one(&mut self) -> bool {
        match self.in_flight.next().await {
            Some(outcome) => {
                self.settle(outcome);
                true
            }
            None => false,
        }
    }

    /// Enqueues one message, waiting for deliveries while too many are in flight or the
    /// producer queue is full.
    async fn send(&mut self, producer: &FutureProducer, topic: &str, msg: &Outgoing) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.settle_one().await;
        }
        let mut record = FutureRecord::to(topic).key(&msg.key).payload(&msg.payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if !self.settle_one().await {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((error, _)) => {
                    return Err(error).with_context(|| {
                        format!(
                            "cannot enqueue message {} ({} bytes)",
                            msg.key,
                            msg.payload.len()
                        )
                    });
                }
            }
        }
    }
}

// ------------------------------------------------------------------ main

fn env_or(value: Option<String>, var: &str, default: &str) -> String {
    value
        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_string())
}

fn max_payload(arg: Option<usize>) -> Result<usize> {
    if let Some(n) = arg {
        return Ok(n);
    }
    match std::env::var("MAX_PAYLOAD_BYTES") {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("MAX_PAYLOAD_BYTES={v:?} is not a number of bytes")),
        _ => Ok(DEFAULT_MAX_PAYLOAD_BYTES),
    }
}

/// librdkafka's client callbacks: log lines go to `log` as usual, but each kind of client-wide
/// error is reported once (an unreachable broker would otherwise flood the terminal).
#[derive(Default)]
struct KafkaContext {
    errors_seen: Mutex<HashSet<String>>,
}

impl ClientContext for KafkaContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = format!("{:?}", error.rdkafka_error_code());
        let first = self
            .errors_seen
            .lock()
            .map(|mut seen| seen.insert(kind))
            .unwrap_or(true);
        if first {
            log::warn!("kafka: {error}: {reason}");
        } else {
            log::debug!("kafka: {error}: {reason}");
        }
    }
}

type FutureProducer = KafkaProducer<KafkaContext>;

fn producer(brokers: &str, message_timeout_ms: u64) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "orders-emulator")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", message_timeout_ms.to_string())
        .create_with_context(KafkaContext::default())
        .context("cannot create the Kafka producer")
}

async fn check_reachable(producer: &FutureProducer, brokers: &str) -> Result<()> {
    let probe = producer.clone();
    tokio::task::spawn_blocking(move || {
        probe
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
    })
    .await
    .context("metadata probe failed")?
    .with_context(|| format!("cannot reach Kafka at {brokers} (is the broker running?)"))
}

fn summary(sent: u64, ledger: &Ledger, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    format!(
        "sent {sent} messages ({} valid, {} invalid, {} duplicates, {} conflicts) in {secs:.2} s ({:.0} msg/s)",
        ledger.valid,
        ledger.invalid,
        ledger.duplicates,
        ledger.conflicts,
        sent as f64 / secs.max(1e-9)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match emulate().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emulator: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn emulate() -> Result<()> {
    dotenvy::dotenv().ok();
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if args.quiet {
        "warn"
    } else {
        "info"
    }))
    .init();

    let brokers = env_or(args.brokers.clone(), "KAFKA_BROKERS", DEFAULT_BROKERS);
    let topic = env_or(args.topic.clone(), "KAFKA_TOPIC", DEFAULT_TOPIC);
    let max_payload = max_payload(args.max_payload_bytes)?;
    let mix = Mix {
        invalid: args.invalid_ratio,
        duplicate: args.duplicate_ratio,
        conflict: args.conflict_ratio,
    };
    if mix.invalid + mix.duplicate + mix.conflict > 1.0 + 1e-9 {
        bail!("--invalid-ratio + --duplicate-ratio + --conflict-ratio must not exceed 1");
    }

    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let (source, total): (Box<dyn Iterator<Item = Outgoing>>, u64) = if args.files.is_empty() {
        let prefix = args
            .uid_prefix
            .clone()
            .unwrap_or_else(|| format!("{:08x}_", rand::rng().random::<u32>()));
        let anchor = if args.seed.is_some() {
            SEEDED_ANCHOR
        } else {
            Utc::now().timestamp()
        };
        log::info!(
            "producing {} messages to {topic} at {brokers} (uid prefix {prefix:?}, rate {})",
            args.count,
            if args.rate > 0.0 {
                format!("{}/s", args.rate)
            } else {
                "unlimited".to_string()
            }
        );
        let generator = Generator::new(rng, prefix, anchor, max_payload);
        let source = Generated {
            generator,
            mix,
            remaining: args.count,
        };
        (Box::new(source), args.count)
    } else {
        let files = Files::load(&args.files, args.repeat, max_payload, &mut rng)?;
        let total = files.total();
        log::info!(
            "sending {} file(s) x{} to {topic} at {brokers}",
            args.files.len(),
            args.repeat
        );
        (Box::new(files), total)
    };

    let mut ledger = Ledger {
        uids: create(&args.uids_out)?,
        rejects: create(&args.rejects_out)?,
        ..Ledger::default()
    };
    let producer = producer(&brokers, args.message_timeout_ms)?;
    check_reachable(&producer, &brokers).await?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }

    let mut deliveries = Deliveries {
        in_flight: FuturesUnordered::new(),
        acknowledged: 0,
        failed: 0,
        first_error: None,
        progress: Progress::new(total, args.quiet),
    };
    let start = Instant::now();
    let result = run(
        source,
        &producer,
        &topic,
        args.rate,
        &mut deliveries,
        &mut ledger,
        &interrupted,
    )
    .await;
    // Whatever happened, wait for what is already on its way.
    while deliveries.settle_one().await {}
    let elapsed = start.elapsed();
    deliveries.progress.finish();
    ledger.finish()?;
    result?;

    if deliveries.failed > 0 {
        bail!(
            "{} of {} messages were not delivered to {topic} at {brokers}: {}",
            deliveries.failed,
            deliveries.failed + deliveries.acknowledged,
            deliveries.first_error.unwrap_or_default()
        );
    }
    println!("{}", summary(deliveries.acknowledged, &ledger, elapsed));
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted after {} messages", deliveries.acknowledged);
    }
    Ok(())
}

/// Sends everything `source` yields, at most `rate` messages per second (0: no limit), until
/// it is exhausted, a delivery fails or the user interrupts.
async fn run(
    mut source: Box<dyn Iterator<Item = Outgoing>>,
    producer: &FutureProducer,
    topic: &str,
    rate: f64,
    deliveries: &mut Deliveries,
    ledger: &mut Ledger,
    interrupted: &AtomicBool,
) -> Result<()> {
    let start = Instant::now();
    // Ticks of at least 5 ms: at high rates each tick sends a batch.
    let period = if rate > 0.0 {
        Duration::from_secs_f64((1.0 / rate).max(0.005))
    } else {
        Duration::from_millis(5)
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: u64 = 0;
    loop {
        let budget = if rate > 0.0 {
            (start.elapsed().as_secs_f64() * rate) as u64 + 1
        } else {
            u64::MAX
        };
        while sent < budget {
            if interrupted.load(Ordering::Relaxed) || deliveries.failed > 0 {
                return Ok(());
            }
            let Some(msg) = source.next() else {
                return Ok(());
            };
            deliveries.send(producer, topic, &msg).await?;
            ledger.record(&msg)?;
            sent += 1;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            Some(outcome) = deliveries.in_flight.next(), if !deliveries.in_flight.is_empty() => {
                deliveries.settle(outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn generator(seed: u64) -> Generator {
        Generator::new(
            StdRng::seed_from_u64(seed),
            "t_".to_string(),
            SEEDED_ANCHOR,
            LIMIT,
        )
    }

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

    #[test]
    fn every_invalid_variant_is_rejected_with_its_reason() {
        let mut g = generator(7);
        for variant in Variant::ALL {
            assert!(Variant::of(variant.reason()).contains(&variant));
            for _ in 0..40 {
                let msg = g.invalid(variant);
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
        let mut g = Generator::new(StdRng::seed_from_u64(1), "t_".into(), SEEDED_ANCHOR, 2048);
        let msg = g.invalid(Variant::Oversized);
        assert!(msg.payload.len() > 2048);
        let r = parse_and_validate(&msg.payload, 2048).expect_err("too large");
        assert_eq!(r.reason, RejectReason::TooLarge);
    }

    #[test]
    fn the_mix_cycles_through_every_reason_and_kind() {
        let mut g = generator(3);
        let mix = Mix {
            invalid: 0.4,
            duplicate: 0.2,
            conflict: 0.2,
        };
        let mut kinds = HashSet::new();
        for _ in 0..500 {
            let msg = g.next_message(mix);
            behaves_as_intended(&msg, LIMIT).unwrap_or_else(|e| panic!("{e}"));
            kinds.insert(format!("{:?}", msg.kind));
        }
        for reason in INVALID_REASONS {
            assert!(
                kinds.contains(&format!("{:?}", Kind::Invalid(reason))),
                "{reason}"
            );
        }
        for kind in [Kind::Valid, Kind::Duplicate, Kind::Conflict] {
            assert!(kinds.contains(&format!("{kind:?}")), "{kind:?}");
        }
    }

    #[test]
    fn duplicates_are_byte_identical_and_conflicts_differ_in_content() {
        let mut g = generator(5);
        let first = g.valid();
        let dup = g.duplicate().expect("pool has an order");
        assert_eq!(dup.payload, first.payload);
        assert_eq!(dup.key, first.key);
        let conflict = g.conflict().expect("pool has an order");
        assert_eq!(conflict.key, first.key);
        let a = parse_and_validate(&first.payload, LIMIT).expect("valid");
        let b = parse_and_validate(&conflict.payload, LIMIT).expect("conflict is valid");
        assert_eq!(a.order.order_uid, b.order.order_uid);
        assert_ne!(a.content_hash, b.content_hash);
    }

    #[test]
    fn the_same_seed_gives_the_same_messages() {
        let mix = Mix {
            invalid: 0.3,
            duplicate: 0.1,
            conflict: 0.1,
        };
        let (mut a, mut b) = (generator(9), generator(9));
        for _ in 0..200 {
            let (x, y) = (a.next_message(mix), b.next_message(mix));
            assert_eq!((x.key, x.payload), (y.key, y.payload));
        }
    }

    #[test]
    fn files_are_classified_as_new_duplicate_conflict_or_rejected() {
        let dir = std::env::temp_dir().join(format!("emulator-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut g = generator(11);
        let order = g.valid();
        let conflict = g.conflict().expect("conflict");
        let paths = [
            (dir.join("a.json"), order.payload.clone()),
            (dir.join("b.json"), conflict.payload.clone()),
            (dir.join("c.json"), b"[1,2]".to_vec()),
        ];
        for (path, bytes) in &paths {
            std::fs::write(path, bytes).expect("write");
        }
        let list: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let files = Files::load(&list, 2, LIMIT, &mut rng).expect("load");
        let kinds: Vec<Kind> = files.map(|m| m.kind).collect();
        let malformed = Kind::Invalid(RejectReason::Malformed);
        assert_eq!(
            kinds,
            [
                Kind::Valid,
                Kind::Conflict,
                malformed,
                Kind::Duplicate,
                Kind::Conflict,
                malformed
            ]
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn arguments_are_checked_by_clap() {
        assert!(Args::try_parse_from(["emulator", "--invalid-ratio", "1.5"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--rate", "-1"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--uid-prefix", "bad prefix"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--repeat", "2"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--file", "x", "--count", "3"]).is_err());
        let args = Args::try_parse_from(["emulator", "--count", "5", "--rate", "20000"])
            .expect("valid arguments");
        assert_eq!((args.count, args.rate), (5, 20_000.0));
    }
}
