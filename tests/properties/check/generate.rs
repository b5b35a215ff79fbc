//! Inputs for the properties, drawn from an [`Unstructured`]: random bytes in the seeded pass,
//! libFuzzer's bytes under cargo-fuzz. Every choice takes its cheapest branch when the bytes
//! run out, so a short input still makes a small valid order.
//!
//! - [`valid_case`]: valid orders at the edges of the rules (any Unicode text within 255
//!   characters, control characters, astral-plane characters, `i64` bounds, RFC 3339 dates
//!   with offsets and fractions, 1 to 1000 items), sent as a producer might encode them.
//! - [`hostile_payload`]: bytes around model.json: random, mutated, valid orders with one
//!   thing broken, oversized.

use std::borrow::Cow;

use arbitrary::{Result, Unstructured};
use compact_str::CompactString;
use orders_service::cache::entry::CacheCompression;
use orders_service::domain::{Delivery, Item, Order, Payment};
use serde_json::{Map, Value};
use validator::ValidateEmail;

/// The reference order of the README.
pub const MODEL_JSON: &str = include_str!("../../fixtures/model.json");

/// A valid order as a producer sent it, with the page the warm-up reads it in.
#[derive(Debug)]
pub struct ValidCase {
    /// The warm-up page, oldest first; the first order is the one `payload` carries.
    pub page: Vec<Order>,
    /// `orders.id` of the first order of the page; the others follow with gaps.
    pub first_id: i64,
    pub id_gap: i64,
    /// The first order as JSON a producer may send: any member order, unknown members, any
    /// whitespace, any escape serde_json reads.
    pub payload: Vec<u8>,
    pub compression: CacheCompression,
}

pub fn valid_case(u: &mut Unstructured) -> Result<ValidCase> {
    // Drawn first, so that a fuzzer reaches pages of several orders early.
    let others = u.int_in_range(0..=2)?;
    let first = valid_order(u)?;
    let payload = producer_json(u, &first)?;
    let mut page = vec![first];
    for _ in 0..others {
        page.push(valid_order(u)?);
    }
    Ok(ValidCase {
        page,
        first_id: u.int_in_range(1..=i64::MAX / 2)?,
        id_gap: u.int_in_range(1..=1000)?,
        payload,
        compression: if u.arbitrary()? {
            CacheCompression::Zstd
        } else {
            CacheCompression::Off
        },
    })
}

/// True one time in `n`; false when the bytes have run out.
fn one_in(u: &mut Unstructured, n: u32) -> Result<bool> {
    Ok(u.int_in_range(1..=n)? == n)
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters that have tripped JSON writers and text columns: separators JavaScript treats
/// as line ends, the BOM, non-characters, the last code point, combining marks.
const SPECIAL: &[char] = &[
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{10ffff}',
    '\u{1f980}',
    '\u{1d11e}',
    '\u{0300}',
    '\u{200d}',
    '<',
    '>',
    '&',
    '\'',
];

/// Whitespace by `char::is_whitespace`, which decides what counts as empty.
const BLANK: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}',
];

fn any_char(u: &mut Unstructured) -> Result<char> {
    let code = match u.int_in_range(0..=9)? {
        0 | 1 => u32::from(*u.choose(ALNUM)?),
        2 => u.int_in_range(0x20..=0x7e)?,
        3 => return Ok(*u.choose(&['"', '\\', '/', '\u{8}', '\u{c}', '\n', '\r', '\t'])?),
        // C0 controls but NUL (no text column holds it), DEL, C1 controls.
        4 => {
            let (c0, c1) = (u.int_in_range(1..=0x1f)?, u.int_in_range(0x80..=0x9f)?);
            *u.choose(&[c0, 0x7f, c1])?
        }
        5 => u.int_in_range(0xa0..=0x7ff)?,
        6 => u.int_in_range(0x800..=0xffff)?,
        7 => u.int_in_range(0x1_0000..=0x10_ffff)?,
        8 => return Ok(*u.choose(SPECIAL)?),
        _ => return Ok(*u.choose(BLANK)?),
    };
    // A surrogate code point is no char: take the replacement character instead.
    Ok(char::from_u32(code).unwrap_or('\u{fffd}'))
}

/// Any string a text field accepts: 0 to 255 characters, no NUL; with `non_blank`, at least
/// one character that is not whitespace.
fn text(u: &mut Unstructured, non_blank: bool) -> Result<CompactString> {
    let len = match u.int_in_range(0..=7)? {
        0..=3 => u.int_in_range(0..=8)?,
        4 => u.int_in_range(9..=40)?,
        5 => 255,
        6 => u.int_in_range(41..=254)?,
        // Around CompactString's 24 inline bytes.
        _ => u.int_in_range(22..=26)?,
    };
    let mut chars: Vec<char> = Vec::with_capacity(len);
    if len > 40 && u.arbitrary()? {
        // A long string from a short pattern: 255 astral characters cost few input bytes.
        let pattern: Vec<char> = (0..u.int_in_range(1..=4)?)
            .map(|_| any_char(u))
            .collect::<Result<_>>()?;
        chars.extend(pattern.iter().cycle().take(len));
    } else {
        for _ in 0..len {
            chars.push(any_char(u)?);
        }
    }
    if non_blank && chars.iter().all(|c| c.is_whitespace()) {
        let visible = loop {
            let c = any_char(u)?;
            if !c.is_whitespace() {
                break c;
            }
            if u.is_empty() {
                break 'x';
            }
        };
        match chars.first_mut() {
            Some(first) => *first = visible,
            None => chars.push(visible),
        }
    }
    Ok(chars.into_iter().collect())
}

fn from_alphabet(u: &mut Unstructured, alphabet: &[u8], len: usize) -> Result<CompactString> {
    (0..len)
        .map(|_| u.choose(alphabet).map(|&b| char::from(b)))
        .collect()
}

fn order_uid(u: &mut Unstructured) -> Result<CompactString> {
    let len = if one_in(u, 4)? {
        64
    } else {
        u.int_in_range(1..=64)?
    };
    from_alphabet(
        u,
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-",
        len,
    )
}

fn phone(u: &mut Unstructured) -> Result<CompactString> {
    let plus = if u.arbitrary()? { "+" } else { "" };
    let len = u.int_in_range(7..=15)?;
    Ok(format!("{plus}{}", from_alphabet(u, b"0123456789", len)?).into())
}

fn currency(u: &mut Unstructured) -> Result<CompactString> {
    from_alphabet(u, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 3)
}

/// An address `validator` accepts (the rule's definition): the HTML5 local part, a domain of
/// ASCII or internationalized labels, or an address literal.
fn email(u: &mut Unstructured) -> Result<CompactString> {
    const LOCAL: &[u8] = b"abcXYZ0189.!#$%&'*+/=?^_`{|}~-";
    const LABEL: &[u8] = b"abcxyz019-";
    let local_len = if one_in(u, 8)? {
        64
    } else {
        u.int_in_range(1..=12)?
    };
    let local = from_alphabet(u, LOCAL, local_len)?;
    let domain = match u.int_in_range(0..=5)? {
        4 => "[127.0.0.1]".to_string(),
        5 => ["bücher.example", "例え.テスト", "xn--bcher-kva.example"][u.int_in_range(0..=2)?]
            .to_string(),
        _ => {
            let labels = u.int_in_range(1..=4)?;
            let mut domain = Vec::new();
            for _ in 0..labels {
                let len = if one_in(u, 8)? {
                    63
                } else {
                    u.int_in_range(1..=10)?
                };
                let mut label = from_alphabet(u, LABEL, len)?.to_string();
                // Labels neither start nor end with a hyphen.
                if label.starts_with('-') {
                    label.replace_range(..1, "a");
                }
                if label.ends_with('-') {
                    label.replace_range(label.len() - 1.., "z");
                }
                domain.push(label);
            }
            domain.join(".")
        }
    };
    let candidate = format!("{local}@{domain}");
    Ok(
        if candidate.chars().count() <= 255 && candidate.validate_email() {
            candidate.into()
        } else {
            "someone@example.com".into()
        },
    )
}

/// An RFC 3339 date-time (section 5.6): any year 0000-9999, the month's days (leap years
/// included), a leap second now and then, 0 to 12 fractional digits, `Z`/`z` or an offset up
/// to ±23:59, `T` or `t`.
fn date(u: &mut Unstructured) -> Result<CompactString> {
    let year = if one_in(u, 4)? {
        *u.choose(&[0, 1, 1969, 1970, 2000, 2038, 9999])?
    } else {
        u.int_in_range(0..=9999)?
    };
    let month = u.int_in_range(1..=12)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = u.int_in_range(1..=days)?;
    let (hour, minute, second) = if one_in(u, 16)? {
        (23, 59, 60)
    } else {
        (
            u.int_in_range(0..=23)?,
            u.int_in_range(0..=59)?,
            u.int_in_range(0..=59)?,
        )
    };
    let t = if one_in(u, 4)? { 't' } else { 'T' };
    let mut s = format!("{year:04}-{month:02}-{day:02}{t}{hour:02}:{minute:02}:{second:02}");
    let fraction = u.int_in_range(0..=12)?;
    if fraction > 0 {
        s.push('.');
        s.push_str(&from_alphabet(u, b"0123456789", fraction)?);
    }
    match u.int_in_range(0..=3)? {
        0 => s.push('Z'),
        1 => s.push('z'),
        _ => {
            let sign = if u.arbitrary()? { '+' } else { '-' };
            let h: u8 = u.int_in_range(0..=23)?;
            let m: u8 = u.int_in_range(0..=59)?;
            s.push_str(&format!("{sign}{h:02}:{m:02}"));
        }
    }
    Ok(s.into())
}

/// A number a `>= 0` field accepts, at most `max`: the bounds, their neighbours, the
/// largest integer a double holds exactly (and one past it), or anything in between.
fn non_negative(u: &mut Unstructured, max: i64) -> Result<i64> {
    let edge = [0, 1, max, max - 1, 1 << 53, (1 << 53) + 1, i64::MAX];
    Ok(match u.int_in_range(0..=3)? {
        0 => u.int_in_range(0..=1000)?,
        1 => *u.choose(&edge)?,
        _ => u.int_in_range(0..=max)?,
    }
    .clamp(0, max))
}

fn any_i64(u: &mut Unstructured) -> Result<i64> {
    Ok(match u.int_in_range(0..=2)? {
        0 => u.int_in_range(-1000..=1000)?,
        1 => *u.choose(&[i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX])?,
        _ => u.arbitrary()?,
    })
}

fn item_count(u: &mut Unstructured) -> Result<usize> {
    // Large orders are rare, and need an input of 2 KiB or more: they cost a hundred small
    // ones, and a coverage-guided fuzzer would otherwise spend most of its time on them.
    Ok(match u.int_in_range(0..=63)? {
        63 if u.len() >= 2048 => 1000,
        62 if u.len() >= 2048 => u.int_in_range(5..=1000)?,
        n => 1 + n as usize % 4,
    })
}

/// An order every rule accepts, whose money adds up with no sum past `i64::MAX`.
pub fn valid_order(u: &mut Unstructured) -> Result<Order> {
    let count = item_count(u)?;
    // A long order repeats a few distinct items (what varies is the count, and the
    // items' total_price may then add up to i64::MAX at most).
    let distinct = count.min(4);
    let copies = i64::try_from(count.div_ceil(distinct)).expect("at most 1000");
    let mut headroom = i64::MAX;
    let mut items = Vec::with_capacity(count);
    for _ in 0..distinct {
        let total_price = non_negative(u, headroom / copies)?;
        headroom -= total_price * copies;
        items.push(Item {
            chrt_id: non_negative(u, i64::MAX)?,
            track_number: text(u, false)?,
            price: non_negative(u, i64::MAX)?,
            rid: text(u, true)?,
            name: text(u, true)?,
            sale: match u.int_in_range(0..=3)? {
                0 => 0,
                1 => 100,
                _ => u.int_in_range(0..=100)?,
            },
            size: text(u, false)?,
            total_price,
            nm_id: non_negative(u, i64::MAX)?,
            brand: text(u, false)?,
            status: non_negative(u, i64::MAX)?,
        });
    }
    let items: Vec<Item> = items.into_iter().cycle().take(count).collect();
    let items_total: i64 = items.iter().map(|i| i.total_price).sum();
    let headroom = i64::MAX - items_total;
    let goods_total = items_total;
    let delivery_cost = non_negative(u, headroom)?;
    let custom_fee = non_negative(u, headroom - delivery_cost)?;
    Ok(Order {
        order_uid: order_uid(u)?,
        track_number: text(u, true)?,
        entry: text(u, true)?,
        delivery: Delivery {
            name: text(u, true)?,
            phone: phone(u)?,
            zip: text(u, false)?,
            city: text(u, true)?,
            address: text(u, true)?,
            region: text(u, false)?,
            email: email(u)?,
        },
        payment: Payment {
            transaction: text(u, true)?,
            request_id: text(u, false)?,
            currency: currency(u)?,
            provider: text(u, true)?,
            amount: goods_total + delivery_cost + custom_fee,
            payment_dt: non_negative(u, i64::MAX)?.max(1),
            bank: text(u, false)?,
            delivery_cost,
            goods_total,
            custom_fee,
        },
        items,
        locale: text(u, false)?,
        internal_signature: text(u, false)?,
        customer_id: text(u, true)?,
        delivery_service: text(u, false)?,
        shardkey: text(u, false)?,
        sm_id: any_i64(u)?,
        date_created: date(u)?,
        oof_shard: text(u, false)?,
    })
}

/// `order` as JSON a producer may send: members in any order, unknown members (any JSON)
/// anywhere, any whitespace between tokens, and each character written as itself or as any
/// escape JSON allows (`\uXXXX`, surrogate pairs, `\/`).
pub fn producer_json(u: &mut Unstructured, order: &Order) -> Result<Vec<u8>> {
    let value = serde_json::to_value(order).expect("an order is JSON");
    let mut out = Vec::new();
    write_value(u, &value, &mut out, true)?;
    space(u, &mut out)?;
    Ok(out)
}

fn space(u: &mut Unstructured, out: &mut Vec<u8>) -> Result<()> {
    if one_in(u, 4)? {
        for _ in 0..u.int_in_range(1..=3)? {
            out.push(*u.choose(b" \t\n\r")?);
        }
    }
    Ok(())
}

fn write_value(u: &mut Unstructured, v: &Value, out: &mut Vec<u8>, known: bool) -> Result<()> {
    space(u, out)?;
    match v {
        Value::Object(map) => write_object(u, map, out, known)?,
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(u, item, out, known)?;
            }
            space(u, out)?;
            out.push(b']');
        }
        Value::String(s) => write_string(u, s, out)?,
        Value::Number(n) => match n.as_i64() {
            Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            None => out.extend_from_slice(n.to_string().as_bytes()),
        },
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
    space(u, out)
}

fn write_object(
    u: &mut Unstructured,
    map: &Map<String, Value>,
    out: &mut Vec<u8>,
    known: bool,
) -> Result<()> {
    let mut members: Vec<(Cow<str>, Cow<Value>)> = map
        .iter()
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v)))
        .collect();
    if known && one_in(u, 3)? {
        // Fisher-Yates: serde reads members in any order.
        for i in (1..members.len()).rev() {
            members.swap(i, u.int_in_range(0..=i)?);
        }
    }
    if known && one_in(u, 3)? {
        for _ in 0..u.int_in_range(1..=3)? {
            let at = u.int_in_range(0..=members.len())?;
            let key = format!("x-{}", text(u, false)?);
            members.insert(at, (key.into(), Cow::Owned(junk(u, 3)?)));
        }
    }
    if !known && !members.is_empty() && one_in(u, 40)? {
        // A member twice: the second must not quietly win.
        let i = u.int_in_range(0..=members.len() - 1)?;
        let key = members[i].0.clone();
        members.insert(i + 1, (key, Cow::Owned(edge_value(u)?)));
    }
    out.push(b'{');
    space(u, out)?;
    for (n, (key, value)) in members.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        space(u, out)?;
        write_string(u, key, out)?;
        space(u, out)?;
        out.push(b':');
        let known = known && !key.starts_with("x-");
        write_value(u, value, out, known)?;
    }
    out.push(b'}');
    Ok(())
}

/// Any JSON value, for unknown members: the service must skip it whatever it is.
fn junk(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let pick = if depth == 0 {
        u.int_in_range(0..=4)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => serde_json::json!(u.arbitrary::<f64>()?.clamp(-1e300, 1e300)),
        3 => serde_json::json!(u.arbitrary::<u64>()?),
        4 => Value::String(text(u, false)?.into()),
        5 => Value::Array(
            (0..u.int_in_range(0..=3)?)
                .map(|_| junk(u, depth - 1))
                .collect::<Result<_>>()?,
        ),
        _ => Value::Object(
            (0..u.int_in_range(0..=3)?)
                .map(|_| Ok((text(u, false)?.into(), junk(u, depth - 1)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

fn write_string(u: &mut Unstructured, s: &str, out: &mut Vec<u8>) -> Result<()> {
    let escape_all = one_in(u, 8)?;
    let mixed = one_in(u, 4)?;
    out.push(b'"');
    if !escape_all && !mixed && !s.contains(|c| c < ' ' || c == '"' || c == '\\') {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    for c in s.chars() {
        let must = c < ' ' || c == '"' || c == '\\';
        let escape = must || escape_all || (mixed && u.arbitrary()?);
        if !escape {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        match short {
            Some(e) if u.arbitrary::<bool>()? || !must => out.extend_from_slice(e.as_bytes()),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let e = if u.arbitrary()? {
                        format!("\\u{unit:04x}")
                    } else {
                        format!("\\u{unit:04X}")
                    };
                    out.extend_from_slice(e.as_bytes());
                }
            }
        }
    }
    out.push(b'"');
    Ok(())
}

/// Bytes a careless or hostile producer may send: random bytes, model.json or a valid order
/// with bytes flipped, cut or spliced, a valid order with one member broken (a value at or
/// past a rule's bound, of another JSON type, removed, repeated, or an object sent as an
/// array), or more than the size limit.
pub fn hostile_payload(u: &mut Unstructured, limit: usize) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=19)? {
        0 | 1 => {
            let len = u.int_in_range(0..=64)?.min(u.len());
            u.bytes(len)?.to_vec()
        }
        2..=4 => mutate_bytes(u, MODEL_JSON.as_bytes().to_vec())?,
        5 | 6 => {
            let order = valid_order(u)?;
            let payload = producer_json(u, &order)?;
            mutate_bytes(u, payload)?
        }
        7 => {
            let mut payload = MODEL_JSON.as_bytes().to_vec();
            payload.resize(limit + u.int_in_range(0..=2)?, b' ');
            payload
        }
        _ => {
            let order = if u.arbitrary()? {
                serde_json::from_str(MODEL_JSON).expect("model.json is an order")
            } else {
                valid_order(u)?
            };
            let mut value = serde_json::to_value(&order).expect("an order is JSON");
            if u.arbitrary()? {
                break_rule(u, &mut value)?;
            } else if one_in(u, 3)? {
                // Money that no longer adds up, in any of the places that sum (or, with no
                // nudge, only when the items below are added).
                let nudge = *u.choose(&[-1, 1, i64::MAX, 0])?;
                let at = match u.int_in_range(0..=4)? {
                    0 => "/payment/amount",
                    1 => "/payment/goods_total",
                    2 => "/payment/delivery_cost",
                    3 => "/payment/custom_fee",
                    _ => "/items/0/total_price",
                };
                if let Some(v) = value.pointer_mut(at) {
                    *v = serde_json::json!(v.as_i64().unwrap_or(0).saturating_add(nudge));
                }
                if one_in(u, 3)? {
                    // Items whose total_price adds up past i64::MAX: one more of i64::MAX, or
                    // i64::MAX, i64::MAX and 2, which add 2^64 and so wrap back to the total
                    // stated (only a sum that wraps would accept it).
                    let added: &[i64] = if u.arbitrary()? {
                        &[i64::MAX]
                    } else {
                        &[i64::MAX, i64::MAX, 2]
                    };
                    if let Some(Value::Array(items)) = value.pointer_mut("/items")
                        && let Some(first) = items.first().cloned()
                    {
                        for &total_price in added {
                            let mut big = first.clone();
                            big["total_price"] = serde_json::json!(total_price);
                            items.push(big);
                        }
                    }
                }
            } else {
                for _ in 0..u.int_in_range(1..=2)? {
                    break_member(u, &mut value, 3)?;
                }
            }
            let mut out = Vec::new();
            write_value(u, &value, &mut out, false)?;
            out
        }
    })
}

/// Every string member, by JSON pointer (items by their first one).
const STRING_FIELDS: &[&str] = &[
    "/order_uid",
    "/track_number",
    "/entry",
    "/delivery/name",
    "/delivery/phone",
    "/delivery/zip",
    "/delivery/city",
    "/delivery/address",
    "/delivery/region",
    "/delivery/email",
    "/payment/transaction",
    "/payment/request_id",
    "/payment/currency",
    "/payment/provider",
    "/payment/bank",
    "/items/0/track_number",
    "/items/0/rid",
    "/items/0/name",
    "/items/0/size",
    "/items/0/brand",
    "/locale",
    "/internal_signature",
    "/customer_id",
    "/delivery_service",
    "/shardkey",
    "/date_created",
    "/oof_shard",
];

/// Every integer member with a rule, and values at or past its bounds.
const NUMBER_FIELDS: &[&str] = &[
    "/payment/amount",
    "/payment/payment_dt",
    "/payment/delivery_cost",
    "/payment/goods_total",
    "/payment/custom_fee",
    "/items/0/chrt_id",
    "/items/0/price",
    "/items/0/sale",
    "/items/0/total_price",
    "/items/0/nm_id",
    "/items/0/status",
];

/// Values that break (or just meet) a format rule, by member.
const FORMATS: &[(&str, &[&str])] = &[
    ("/order_uid", &["", "has space", "ü", "../x", "a/b"]),
    (
        "/delivery/phone",
        &[
            "123456",
            "+1234567890123456",
            "+972-000-0000",
            "++1234567",
            "1234567\n",
        ],
    ),
    (
        "/delivery/email",
        &[
            "",
            "not-an-email",
            "a@b@c",
            "a b@c.d",
            "@example.com",
            "a@-b.c",
        ],
    ),
    ("/payment/currency", &["usd", "USDT", "US", "ÜSD", "U$D"]),
    (
        "/date_created",
        &[
            "26.11.2021",
            "2021-02-29T00:00:00Z",
            "2021-11-26T24:00:00Z",
            "2021-11-26T06:22:19+24:00",
            "2021-11-26T06:22:19",
            "2021-11-26 06:22:19Z",
        ],
    ),
];

/// Breaks one rule of a member (or just meets its bound): what a careless producer sends.
fn break_rule(u: &mut Unstructured, value: &mut Value) -> Result<()> {
    use serde_json::json;
    let (at, bad) = match u.int_in_range(0..=3)? {
        0 => {
            let long = "é".repeat(u.int_in_range(255..=256)?);
            let bad = [String::new(), " \u{3000}\t".into(), long, "a\u{0}b".into()];
            (*u.choose(STRING_FIELDS)?, json!(u.choose(&bad)?))
        }
        1 => {
            let bad = [-1, 0, 1, 100, 101, i64::MIN, i64::MAX];
            (*u.choose(NUMBER_FIELDS)?, json!(*u.choose(&bad)?))
        }
        2 => {
            let (at, bad) = u.choose(FORMATS)?;
            (*at, json!(*u.choose(bad)?))
        }
        _ => {
            // 0 or 1,001 items.
            if let Some(Value::Array(items)) = value.pointer_mut("/items") {
                let first = items.first().cloned().unwrap_or(Value::Null);
                let len = *u.choose(&[0, 1000, 1001])?;
                items.resize(len, first);
                if len == 0 {
                    items.clear();
                }
            }
            return Ok(());
        }
    };
    if let Some(v) = value.pointer_mut(at) {
        *v = bad;
    }
    Ok(())
}

/// Tokens that sit at a JSON parser's edges.
const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83e\\udd80",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-",
    "-0",
    "1e400",
    "0.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "\u{feff}",
    "\u{a0}",
    "\u{0}",
];

fn mutate_bytes(u: &mut Unstructured, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    for _ in 0..u.int_in_range(1..=4)? {
        if bytes.is_empty() {
            break;
        }
        let at = u.int_in_range(0..=bytes.len() - 1)?;
        match u.int_in_range(0..=5)? {
            0 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
            1 => bytes[at] = u.arbitrary()?,
            2 => bytes.truncate(at),
            3 => {
                let end = u.int_in_range(at..=bytes.len().min(at + 16))?;
                bytes.drain(at..end);
            }
            4 => {
                let token = u.choose(TOKENS)?;
                bytes.splice(at..at, token.bytes());
            }
            _ => {
                let digit = u.choose(b"0123456789-+.eE")?;
                bytes.insert(at, *digit);
            }
        }
    }
    Ok(bytes)
}

/// Values at the rules' edges and of every JSON type.
fn edge_value(u: &mut Unstructured) -> Result<Value> {
    use serde_json::json;
    Ok(match u.int_in_range(0..=22)? {
        0 => json!(null),
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(100),
        5 => json!(101),
        6 => json!(i64::MAX),
        7 => json!(u64::MAX),
        8 => json!(i64::MIN),
        9 => json!(1.5),
        10 => json!(""),
        11 => json!(" \u{3000}"),
        12 => json!("x".repeat(255)),
        13 => json!("é".repeat(256)),
        14 => json!("a\u{0}b"),
        15 => json!("+1234567"),
        16 => json!("USD"),
        17 => json!("a@b"),
        18 => json!("2021-11-26 06:22:19"),
        19 => json!([]),
        20 => json!({}),
        21 => json!(u.int_in_range(-3..=3)?),
        _ => Value::String(text(u, false)?.into()),
    })
}

/// Breaks one member somewhere in `value`, up to `depth` levels down.
fn break_member(u: &mut Unstructured, value: &mut Value, depth: u32) -> Result<()> {
    if depth > 0 && u.arbitrary()? {
        let child = match &mut *value {
            Value::Object(map) if !map.is_empty() => {
                let i = u.int_in_range(0..=map.len() - 1)?;
                map.values_mut().nth(i)
            }
            Value::Array(items) if !items.is_empty() => {
                let i = u.int_in_range(0..=items.len() - 1)?;
                items.get_mut(i)
            }
            _ => None,
        };
        if let Some(child) = child.filter(|c| c.is_object() || c.is_array()) {
            return break_member(u, child, depth - 1);
        }
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            let i = u.int_in_range(0..=map.len() - 1)?;
            let key = map.keys().nth(i).cloned().expect("in range");
            match u.int_in_range(0..=7)? {
                0 => {
                    map.shift_remove(&key);
                }
                1 => {
                    // An object sent as the array of its values.
                    if let Some(v) = map.get_mut(&key) {
                        if let Value::Object(inner) = v {
                            *v = Value::Array(inner.values().cloned().collect());
                        } else {
                            *v = edge_value(u)?;
                        }
                    }
                }
                2..=4 => {
                    // Nudge a number by one (money that no longer adds up, a bound crossed),
                    // or put a value of the same type at a rule's edge.
                    if let Some(v) = map.get_mut(&key) {
                        *v = match v {
                            Value::Number(n) => {
                                let n = n.as_i64().unwrap_or(0);
                                serde_json::json!(n.saturating_add(*u.choose(&[-1, 1])?))
                            }
                            Value::String(_) => Value::String(
                                (*u.choose(&["", " ", "\u{3000}", "x", "a\u{0}b", "+1234567"])?)
                                    .to_owned(),
                            ),
                            _ => edge_value(u)?,
                        };
                    }
                }
                5 | 6 => {
                    if let Some(v @ Value::Number(_)) = map.get_mut(&key) {
                        *v =
                            serde_json::json!(*u.choose(&[-1, 0, 100, 101, i64::MAX, i64::MIN])?);
                    }
                }
                _ => {
                    map.insert(key, edge_value(u)?);
                }
            }
        }
        Value::Array(items) => match u.int_in_range(0..=2)? {
            0 => items.clear(),
            1 if !items.is_empty() => {
                let first = items[0].clone();
                items.resize(1001, first);
            }
            _ => items.push(edge_value(u)?),
        },
        _ => {}
    }
    Ok(())
}
