//! The cache's form of an order: its JSON as it is, or compressed with zstd
//! (`CACHE_COMPRESSION=zstd`). Compression trades CPU — a decompression per hit on the HTTP
//! worker, a compression per entry wherever it is made (writers, warm-up readers, the
//! CacheActor for misses, the admin worker for replays) — for entries about half the size,
//! so the same `CACHE_MAX_BYTES` holds more orders (figures in docs/benchmarks.md, Warm-up and memory).
//!
//! An entry says what it is: a zstd frame starts with the magic number `28 B5 2F FD`, and
//! JSON text starts with `{` (or whitespace), so reading an entry needs no setting.

use std::cell::RefCell;
use std::io;

use actix_web::web::Bytes;

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// zstd's fastest regular level: about half the size for the emulator's orders, where the
/// default level 3 gains a few percent more for about twice the time.
const ZSTD_LEVEL: i32 = 1;
/// Most bytes an entry may expand to: far above any order the service accepts, so a damaged
/// entry cannot make a lookup allocate much.
const MAX_JSON_BYTES: usize = 64 << 20;

/// How the cache keeps orders (`CACHE_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheCompression {
    /// The JSON as it is: a hit is sent without any work.
    #[default]
    Off,
    /// zstd level 1 frames, decompressed on the HTTP worker for each hit.
    Zstd,
}

impl CacheCompression {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "none" => Some(Self::Off),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Zstd => "zstd",
        }
    }

    /// The cache's form of an order's JSON, in an allocation of exactly its size (serde's
    /// buffer grows by doubling and `Bytes::from(Vec)` would keep the spare capacity, so an
    /// entry could otherwise hold up to twice its size). Should compression fail (zstd only
    /// fails to allocate its context), the JSON is kept as it is: entries say what they are.
    pub fn pack(self, json: &[u8]) -> Bytes {
        match self {
            Self::Off => Bytes::copy_from_slice(json),
            Self::Zstd => compress(json).unwrap_or_else(|e| {
                log::warn!("compressing a cache entry failed, keeping it uncompressed: {e}");
                Bytes::copy_from_slice(json)
            }),
        }
    }

    /// [`pack`](Self::pack) for JSON already in an exact-size `Bytes` (a miss's answer):
    /// shared rather than copied when the cache keeps JSON as it is.
    pub fn pack_shared(self, json: &Bytes) -> Bytes {
        match self {
            Self::Off => json.clone(),
            Self::Zstd => self.pack(json),
        }
    }
}

/// The JSON of a cache entry (or of a miss's answer, which is JSON already: returned as is).
pub fn unpack(entry: Bytes) -> io::Result<Bytes> {
    if !entry.starts_with(&ZSTD_MAGIC) {
        return Ok(entry);
    }
    with_context(&DECOMPRESSOR, zstd::bulk::Decompressor::new, |d| {
        d.decompress(&entry, MAX_JSON_BYTES).map(Bytes::from)
    })
}

/// Per thread, created on first use: a context is ~100 KB to set up, an entry ~1 KB to
/// compress, so reusing it is most of the speed.
struct Compressor {
    context: zstd::bulk::Compressor<'static>,
    /// The compressed frame before its exact-size copy (see [`CacheCompression::pack`]).
    scratch: Vec<u8>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn compress(json: &[u8]) -> io::Result<Bytes> {
    let new = || {
        let mut context = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
        // 4 bytes per entry so that a damaged one is an error, never other bytes served.
        context.include_checksum(true)?;
        Ok(Compressor {
            context,
            scratch: Vec::new(),
        })
    };
    with_context(&COMPRESSOR, new, |c| {
        c.scratch.clear();
        c.scratch
            .reserve(zstd::zstd_safe::compress_bound(json.len()));
        c.context.compress_to_buffer(json, &mut c.scratch)?;
        Ok(Bytes::copy_from_slice(&c.scratch))
    })
}

fn with_context<C: 'static, T>(
    key: &'static std::thread::LocalKey<RefCell<Option<C>>>,
    new: impl FnOnce() -> io::Result<C>,
    work: impl FnOnce(&mut C) -> io::Result<T>,
) -> io::Result<T> {
    key.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match &mut *slot {
            Some(context) => context,
            empty => empty.insert(new()?),
        };
        work(context)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order shaped like the emulator's: repeated keys across its items, as real ones.
    fn order_json() -> Vec<u8> {
        let items: Vec<_> = (0..3)
            .map(|i| {
                serde_json::json!({
                    "chrt_id": 9934930 + i, "track_number": "WBILMTESTTRACK", "price": 453,
                    "rid": format!("ab4219087a764ae0btest{i}"), "name": "Mascaras", "sale": 30,
                    "size": "0", "total_price": 317, "nm_id": 2389212, "brand": "Vivienne Sabo",
                    "status": 202
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "order_uid": "b563feb7b2b84b6test", "track_number": "WBILMTESTTRACK",
            "entry": "WBIL", "items": items, "locale": "en", "customer_id": "test",
            "delivery": {"name": "Test Testov", "phone": "+9720000000", "zip": "2639809",
                         "city": "Kiryat Mozkin", "address": "Ploshad Mira 15",
                         "region": "Kraiot", "email": "test@gmail.com"},
        }))
        .expect("json")
    }

    #[test]
    fn zstd_entries_are_smaller_and_unpack_to_the_same_bytes() {
        let json = order_json();
        let entry = CacheCompression::Zstd.pack(&json);
        assert!(entry.starts_with(&ZSTD_MAGIC), "a zstd frame");
        assert!(
            entry.len() * 10 < json.len() * 7,
            "{} bytes packed from {}",
            entry.len(),
            json.len()
        );
        assert_eq!(unpack(entry).expect("unpacks"), json);
        // The context is reused: a second entry on the same thread unpacks as well.
        let other = br#"{"order_uid":"x"}"#;
        let entry = CacheCompression::Zstd.pack(other);
        assert_eq!(unpack(entry).expect("unpacks"), &other[..]);
    }

    #[test]
    fn plain_entries_and_miss_answers_are_sent_as_they_are() {
        let json = Bytes::from(order_json());
        let entry = CacheCompression::Off.pack(&json);
        assert_eq!(entry, json);
        let shared = CacheCompression::Off.pack_shared(&json);
        assert_eq!(shared.as_ptr(), json.as_ptr(), "shared, not copied");
        assert_eq!(unpack(json.clone()).expect("as is"), json);
        assert_eq!(
            unpack(CacheCompression::Zstd.pack_shared(&json)).expect("unpacks"),
            json
        );
    }

    #[test]
    fn a_damaged_entry_is_an_error_not_a_panic_or_garbage() {
        let entry = CacheCompression::Zstd.pack(&order_json()).to_vec();
        let mut truncated = entry.clone();
        truncated.truncate(entry.len() - 8);
        assert!(unpack(Bytes::from(truncated)).is_err(), "truncated");
        // One flipped bit in each byte after the magic number: an error, or (a bit zstd does
        // not read) the same JSON; the checksum refuses any other bytes.
        let json = order_json();
        for at in 4..entry.len() {
            let mut flipped = entry.clone();
            flipped[at] ^= 0x10;
            if let Ok(unpacked) = unpack(Bytes::from(flipped)) {
                assert!(unpacked == json, "byte {at} flipped: other bytes served");
            }
        }
    }

    #[test]
    fn the_setting_reads_off_or_zstd() {
        assert_eq!(
            CacheCompression::parse(" ZSTD "),
            Some(CacheCompression::Zstd)
        );
        assert_eq!(CacheCompression::parse("off"), Some(CacheCompression::Off));
        assert_eq!(
            CacheCompression::parse(""),
            Some(CacheCompression::Off),
            "empty: the default"
        );
        assert_eq!(CacheCompression::parse("lz4"), None);
        assert_eq!(CacheCompression::default(), CacheCompression::Off);
    }
}
