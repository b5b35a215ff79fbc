//! The valid-order property of `tests/properties` against a real PostgreSQL: generated valid
//! orders, stored by the writers' own transaction (`ingest::store::write_batch`), read back
//! as a miss (`queries::find_order`) and as a warm-up page (`queries::orders_in_id_range`),
//! give the bytes serde_json writes for them. `tests/properties` checks the rows the insert
//! binds without a server; this checks what only a server shows: each array in its column,
//! text and numbers as PostgreSQL keeps them, every date validation accepts bound as a
//! `timestamptz`.

use arbitrary::Unstructured;
use orders_service::db::queries;
use orders_service::domain::{Order, parse_and_validate};
use orders_service::ingest::store::write_batch;
use orders_service::ingest::{Incoming, Outcome, Position};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::helpers::*;

#[expect(dead_code, reason = "only the valid orders of the shared generators")]
#[path = "../properties/check/generate.rs"]
mod generate;

/// Where two JSON texts part, for a failure message.
fn difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |s: &[u8]| {
        String::from_utf8_lossy(&s[at.saturating_sub(40).min(s.len())..(at + 40).min(s.len())])
            .into_owned()
    };
    format!(
        "they differ at byte {at}:\n  got  …{}…\n  want …{}…",
        around(got),
        around(want)
    )
}

/// Catches: a column bound from another field or another row of the insert's arrays, text or
/// a number PostgreSQL keeps otherwise than sent (astral-plane characters, control
/// characters, `i64` bounds), a valid date PostgreSQL refuses (offsets, leap seconds, 12
/// fractional digits, year 9999), a valid order refused by a CHECK constraint, lines read
/// out of position order or given to another order of a page.
#[tokio::test]
async fn valid_orders_come_back_from_postgresql_as_serde_writes_them() {
    let seed = std::env::var("PROPERTY_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("PROPERTY_SEED is a number"))
        .unwrap_or_else(|| rand::rng().random());
    let cases: u64 = std::env::var("PROPERTY_CASES")
        .ok()
        .map(|s| s.parse().expect("PROPERTY_CASES is a number"))
        .unwrap_or(60);
    println!("seed {seed} (PROPERTY_SEED={seed} replays it), {cases} pages");
    let mut rng = StdRng::seed_from_u64(seed);

    let env = TestEnv::with_topics(
        "round_trip",
        Topics {
            orders: false,
            dlq: false,
        },
    )
    .await;
    env.migrate();
    let mut conn = env.db().await;
    let mut offset = 0;
    let mut highest = 0;
    let mut items = 0;
    for n in 0..cases {
        let mut bytes = vec![0; rng.random_range(0..16_384)];
        rng.fill_bytes(&mut bytes);
        let case = generate::valid_case(&mut Unstructured::new(&bytes))
            .expect("the generator never fails");
        // Uids of their own: the generator's may repeat, and a repeated uid is a duplicate.
        let page: Vec<Order> = case
            .page
            .into_iter()
            .zip(0..)
            .map(|(mut order, i)| {
                let uid = format!("{n}_{i}_{}", order.order_uid);
                order.order_uid = uid[..uid.len().min(64)].into();
                order
            })
            .collect();
        items = items.max(page.iter().map(|o| o.items.len()).max().unwrap_or(0));
        let wants: Vec<Vec<u8>> = page
            .iter()
            .map(|o| serde_json::to_vec(o).expect("an order serializes"))
            .collect();
        let batch: Vec<Incoming> = wants
            .iter()
            .map(|json| {
                offset += 1;
                Incoming {
                    position: Position {
                        partition: 0,
                        offset,
                    },
                    key: None,
                    payload: json.clone(),
                    verdict: parse_and_validate(json, json.len().max(64 * 1024)),
                }
            })
            .collect();
        for (incoming, order) in batch.iter().zip(&page) {
            if let Err(r) = &incoming.verdict {
                panic!("page {n} of seed {seed}: a valid order was rejected: {r:?}\n{order:?}");
            }
        }
        let outcomes = write_batch(&mut conn, "orders", &batch)
            .await
            .unwrap_or_else(|e| panic!("page {n} of seed {seed}: the batch failed: {e}"));
        for (outcome, order) in outcomes.iter().zip(&page) {
            assert!(
                matches!(outcome, Outcome::Stored),
                "page {n} of seed {seed}: {outcome:?} for a valid order\n{order:?}"
            );
        }

        for (order, want) in page.iter().zip(&wants) {
            let got = queries::find_order(&mut conn, &order.order_uid)
                .await
                .expect("find_order")
                .unwrap_or_else(|| panic!("page {n}: {} is not stored", order.order_uid))
                .to_json();
            assert!(
                got == *want,
                "page {n} of seed {seed}: a miss is not what serde_json writes; {}",
                difference(&got, want)
            );
        }

        // The page the warm-up reads: these orders (newest first, by the ids PostgreSQL gave).
        let (_, hi) = queries::order_id_bounds(&mut conn)
            .await
            .expect("order_id_bounds")
            .expect("orders are stored");
        let warmed = queries::orders_in_id_range(&mut conn, highest, hi)
            .await
            .expect("orders_in_id_range");
        highest = hi;
        assert_eq!(
            warmed.len(),
            page.len(),
            "page {n} of seed {seed}: the warm-up read another number of orders"
        );
        let mut json = Vec::new();
        for got in &warmed {
            let Some(want) = page
                .iter()
                .position(|o| o.order_uid == got.order_uid)
                .map(|i| &wants[i])
            else {
                panic!(
                    "page {n} of seed {seed}: the warm-up read {}, not of this page",
                    got.order_uid
                );
            };
            json.clear();
            got.write_json(&mut json);
            assert!(
                json == *want,
                "page {n} of seed {seed}: the warm-up's JSON is not what serde_json writes; {}",
                difference(&json, want)
            );
        }
    }
    println!("{cases} pages stored and read back, most items in an order: {items}");
}
