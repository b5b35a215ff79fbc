//! What must hold for whatever bytes a producer sends, stated once and run by two harnesses:
//! the seeded pass in `cargo test` (`tests/properties/main.rs`) and the coverage-guided
//! cargo-fuzz targets (`tests/fuzz`, run by `scripts/fuzz`).
//!
//! - [`stored_or_dead_lettered`]: any bytes end as a valid order or as a rejection with a
//!   reason (and the field's path when the reason is about a field), and the verdict is the
//!   one the rules give, worked out independently by [`oracle`].
//! - [`comes_back_as_serde_writes_it`]: a valid order comes back byte for byte as serde_json
//!   writes it, through the ingest JSON, the rows of a warm-up and of a miss, and the cache.

pub mod generate;
pub mod oracle;
pub mod rows;

use orders_service::cache::entry::{CacheCompression, unpack};
use orders_service::domain::{Order, RejectReason, ValidOrder, parse_and_validate};
use sha2::{Digest, Sha256};

use generate::ValidCase;
use oracle::Expected;

/// The default `MAX_PAYLOAD_BYTES`.
pub const PAYLOAD_LIMIT: usize = 64 * 1024;

/// How a payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Stored,
    DeadLettered(RejectReason),
}

/// Property (a). `parse_and_validate` returns for any bytes (a panic here is a crash), and:
/// - a rejection carries an ingest reason (never `conflict` or `storage`, which only the
///   database decides), a detail, and a field path exactly when the reason is about a field:
///   always for `invalid` and `inconsistent`, for `schema` unless the top-level object itself
///   is at fault, never for `malformed` or `too_large`;
/// - the verdict is the one [`oracle::expected`] gives: the same reason, the same reported
///   field, every broken field named in the detail; a valid order is exactly the order the
///   bytes hold, and it is then stored and read back as property (b) says.
pub fn stored_or_dead_lettered(payload: &[u8]) -> Result<Verdict, String> {
    let verdict = parse_and_validate(payload, PAYLOAD_LIMIT);
    let expected = oracle::expected(payload, PAYLOAD_LIMIT);
    let rejection = match verdict {
        Ok(valid) => {
            let Expected::Valid(order) = expected else {
                return Err(format!(
                    "accepted an order the rules reject: {expected}\n{:?}",
                    valid.order
                ));
            };
            if valid.order != *order {
                return Err(format!(
                    "the accepted order is not the one the bytes hold:\n accepted {:?}\n     sent {order:?}",
                    valid.order
                ));
            }
            let want = Reference::new(&order);
            check_ingested(&valid, &want)?;
            check_stored(&[want], 1, 1, CacheCompression::Off)?;
            return Ok(Verdict::Stored);
        }
        Err(rejection) => rejection,
    };
    let says = format!("{rejection:?}");
    if rejection.detail.trim().is_empty() {
        return Err(format!("a rejection without a detail: {says}"));
    }
    let field = rejection.field.as_deref();
    let fits = match (&expected, rejection.reason) {
        (Expected::TooLarge, RejectReason::TooLarge) => field.is_none(),
        (Expected::Malformed, RejectReason::Malformed) => field.is_none(),
        (Expected::Schema { field: want }, RejectReason::Schema) => field == want.as_deref(),
        (Expected::Invalid { fields }, RejectReason::Invalid) => {
            field == fields.first().map(String::as_str)
                && fields.iter().all(|f| {
                    rejection.detail.starts_with(&format!("{f}: "))
                        || rejection.detail.contains(&format!("; {f}: "))
                })
        }
        (Expected::Inconsistent { field: want }, RejectReason::Inconsistent) => {
            field == Some(*want)
        }
        _ => false,
    };
    if !fits {
        return Err(format!("expected {expected}, got {says}"));
    }
    Ok(Verdict::DeadLettered(rejection.reason))
}

/// Property (b). Every order of `case` is valid by [`oracle`] (the generator's promise), and
/// comes back byte for byte as `serde_json::to_vec` writes it:
/// - ingest: the producer's bytes (any member order, unknown members, whitespace, escapes)
///   through `parse_and_validate` give back the order, its canonical JSON and the hash of
///   that JSON; each order of the page, sent as serde_json writes it, likewise;
/// - storage: the rows the insert writes are ones PostgreSQL accepts, and read back they give
///   the same JSON on a miss (`find_order`) and in a warm-up page (`orders_in_id_range`,
///   several orders with their lines interleaved by id);
/// - the cache: each of those JSONs packed and unpacked with the case's compression.
pub fn comes_back_as_serde_writes_it(case: &ValidCase) -> Result<(), String> {
    for order in &case.page {
        if !oracle::is_valid(order) {
            return Err(format!(
                "the generator made an invalid order ({:?}, {:?}): {order:?}",
                oracle::violations(order),
                oracle::money_error(order)
            ));
        }
    }
    let page: Vec<Reference> = case.page.iter().map(Reference::new).collect();
    let first = &page[0];
    let limit = case.payload.len().max(PAYLOAD_LIMIT);
    let valid = parse_and_validate(&case.payload, limit).map_err(|r| {
        format!(
            "a valid order, as a producer sent it, was rejected: {r:?}\npayload {}",
            String::from_utf8_lossy(&case.payload)
        )
    })?;
    check_ingested(&valid, first)?;
    served(
        case.compression,
        &valid.json,
        first,
        "the writer's cache entry",
    )?;
    for order in &page[1..] {
        let valid = parse_and_validate(&order.json, order.json.len().max(PAYLOAD_LIMIT))
            .map_err(|r| format!("a valid order was rejected: {r:?}"))?;
        check_ingested(&valid, order)?;
    }
    check_stored(&page, case.first_id, case.id_gap, case.compression)
}

/// An order and what serde_json writes for it: the bytes every path must give back.
struct Reference<'a> {
    order: &'a Order,
    json: Vec<u8>,
}

impl<'a> Reference<'a> {
    fn new(order: &'a Order) -> Self {
        let json = serde_json::to_vec(order).expect("an order serializes");
        Reference { order, json }
    }

    fn same_json(&self, what: &str, got: &[u8]) -> Result<(), String> {
        if got == self.json.as_slice() {
            return Ok(());
        }
        // Where the two part, for the failure message.
        let at = got
            .iter()
            .zip(&self.json)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(self.json.len()));
        let around = |s: &[u8]| {
            String::from_utf8_lossy(&s[at.saturating_sub(40).min(s.len())..(at + 40).min(s.len())])
                .into_owned()
        };
        Err(format!(
            "{what} is not what serde_json writes for the order; they differ at byte {at}:\n  got  …{}…\n  want …{}…",
            around(got),
            around(&self.json)
        ))
    }
}

fn check_ingested(valid: &ValidOrder, want: &Reference) -> Result<(), String> {
    if valid.order != *want.order {
        return Err(format!(
            "ingest changed the order:\n got  {:?}\n want {:?}",
            valid.order, want.order
        ));
    }
    want.same_json("the ingest JSON", &valid.json)?;
    let hash: [u8; 32] = Sha256::digest(&want.json).into();
    if valid.content_hash != hash {
        return Err("the content hash is not the SHA-256 of the canonical JSON".into());
    }
    Ok(())
}

fn served(
    compression: CacheCompression,
    json: &[u8],
    want: &Reference,
    what: &str,
) -> Result<(), String> {
    let entry = compression.pack(json);
    let back = unpack(entry).map_err(|e| format!("{what}: unpacking failed: {e}"))?;
    want.same_json(&format!("{what} ({})", compression.as_str()), &back)
}

/// Stores `page` (ids `first_id`, `first_id + gap`, …) and reads it back as a miss and as a
/// warm-up page.
fn check_stored(
    page: &[Reference],
    first_id: i64,
    gap: i64,
    compression: CacheCompression,
) -> Result<(), String> {
    let mut stored = Vec::with_capacity(page.len());
    let mut id = first_id;
    for want in page {
        stored.push(
            rows::stored(want.order, id)
                .map_err(|e| format!("a valid order cannot be stored: {e}\n{:?}", want.order))?,
        );
        id += gap;
    }
    for (want, rows) in page.iter().zip(&stored) {
        let json = rows::miss(rows);
        want.same_json("a miss", &json)?;
        // A miss answers with its JSON and caches it packed (shared, not copied, when kept
        // as it is).
        let entry = compression.pack_shared(&json.into());
        let back = unpack(entry).map_err(|e| format!("a miss's cache entry: {e}"))?;
        want.same_json("a miss's cache entry", &back)?;
    }
    let warmed = rows::warm_up(&stored);
    if warmed.len() != page.len() {
        return Err(format!(
            "the warm-up rebuilt {} orders from a page of {}",
            warmed.len(),
            page.len()
        ));
    }
    // The page comes newest first.
    for ((uid, json), want) in warmed.iter().zip(page.iter().rev()) {
        if uid != want.order.order_uid.as_str() {
            return Err(format!(
                "the warm-up keyed {uid:?} the JSON of {:?}",
                want.order.order_uid
            ));
        }
        want.same_json("the warm-up's JSON", json)?;
        served(compression, json, want, "the warm-up's cache entry")?;
    }
    Ok(())
}
