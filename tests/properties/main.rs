//! The ingest properties (`check`), a short seeded pass for every `cargo test`: no database
//! or broker needed. The same properties run coverage-guided for millions of cases with
//! `scripts/fuzz` (cargo-fuzz, `tests/fuzz`).
//!
//! Each test prints its seed; `PROPERTY_SEED=<seed>` replays a failure and `PROPERTY_CASES=<n>`
//! runs longer.

mod check;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use arbitrary::Unstructured;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use check::{PAYLOAD_LIMIT, Verdict};
use orders_service::domain::RejectReason;

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?} is not a number")),
    )
}

fn seeded(test: &str) -> (u64, StdRng) {
    let seed = env_number("PROPERTY_SEED").unwrap_or_else(|| rand::rng().random());
    println!("{test}: seed {seed} (PROPERTY_SEED={seed} replays it)");
    (seed, StdRng::seed_from_u64(seed))
}

fn cases(default: u64) -> u64 {
    env_number("PROPERTY_CASES").unwrap_or(default)
}

/// `len` random bytes for the generators to draw from.
fn entropy(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// Runs one case, turning a panic into a failure that names the case.
fn run<T>(what: impl Fn() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(what)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panicked: {message}"))
    })
}

/// Catches: a panic on some input, a rejection without a reason, detail or field path, a
/// field reported that is not the broken one, an order accepted that a rule refuses
/// (say a sale of 101, 1,001 items, a NUL, an object sent as an array), an order rejected
/// that every rule accepts, and an accepted order that would not store or read back.
#[test]
fn any_bytes_end_stored_or_dead_lettered_with_a_reason() {
    let (seed, mut rng) = seeded("any_bytes_end_stored_or_dead_lettered_with_a_reason");
    let mut seen: BTreeMap<Verdict, u64> = BTreeMap::new();
    for n in 0..cases(2_000) {
        let len = rng.random_range(0..4096);
        let bytes = entropy(&mut rng, len);
        let payload =
            check::generate::hostile_payload(&mut Unstructured::new(&bytes), PAYLOAD_LIMIT)
                .expect("the generator never fails");
        match run(|| check::stored_or_dead_lettered(&payload)) {
            Ok(verdict) => *seen.entry(verdict).or_default() += 1,
            Err(e) => panic!(
                "case {n} of seed {seed}: {e}\npayload ({} bytes): {:?}",
                payload.len(),
                payload.escape_ascii().to_string()
            ),
        }
    }
    println!("verdicts: {seen:?}");
    // The generator reaches every ending, or the pass proves less than it claims.
    let mut endings = vec![Verdict::Stored];
    endings.extend(
        [
            RejectReason::Malformed,
            RejectReason::TooLarge,
            RejectReason::Schema,
            RejectReason::Invalid,
            RejectReason::Inconsistent,
        ]
        .map(Verdict::DeadLettered),
    );
    for ending in endings {
        assert!(
            seen.contains_key(&ending),
            "seed {seed}: no case ended {ending:?} ({seen:?})"
        );
    }
}

/// Catches: a member written out of model.json's order or under another name, an escape
/// written differently from serde_json (or left out), a number written differently, a field
/// lost or swapped between the order and its rows or back, lines given to the wrong order of
/// a warm-up page, a valid order rejected (a date, an e-mail, a 255-character text the rules
/// allow), and a cache entry that does not unpack to the same bytes.
#[test]
fn valid_orders_come_back_byte_for_byte_as_serde_writes_them() {
    let (seed, mut rng) = seeded("valid_orders_come_back_byte_for_byte_as_serde_writes_them");
    let mut items = 0;
    let mut longest = 0;
    for n in 0..cases(250) {
        let len = rng.random_range(0..16_384);
        let bytes = entropy(&mut rng, len);
        let case = check::generate::valid_case(&mut Unstructured::new(&bytes))
            .expect("the generator never fails");
        items = items.max(case.page[0].items.len());
        longest = longest.max(case.page[0].delivery.name.chars().count());
        if let Err(e) = run(|| check::comes_back_as_serde_writes_it(&case)) {
            panic!("case {n} of seed {seed}: {e}");
        }
    }
    println!("most items {items}, longest delivery.name {longest} characters");
}
