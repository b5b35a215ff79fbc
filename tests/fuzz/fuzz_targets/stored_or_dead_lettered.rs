//! Property (a): whatever a producer sends ends stored or dead-lettered with a reason, as
//! the rules say (`tests/properties/check`).
//!
//! An input is the payload itself, unless it starts with 0xFF (which no UTF-8 text does):
//! then the rest drives the generator of near-valid payloads (a valid order with one rule
//! broken or just met, a member missing, repeated or retyped, money that does not add up),
//! which raw byte mutations of JSON text rarely reach.
#![no_main]

#[expect(dead_code, reason = "each target uses part of the shared properties")]
#[path = "../../properties/check/mod.rs"]
mod check;

use arbitrary::Unstructured;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let generated;
    let payload = match input.split_first() {
        Some((0xff, rest)) => {
            // 1 KiB drives a near-valid order of a few items; raw inputs go up to 8 KiB.
            let mut u = Unstructured::new(&rest[..rest.len().min(1024)]);
            let Ok(payload) = check::generate::hostile_payload(&mut u, check::PAYLOAD_LIMIT) else {
                return;
            };
            generated = payload;
            &generated[..]
        }
        _ => input,
    };
    if let Err(failure) = check::stored_or_dead_lettered(payload) {
        panic!("{failure}");
    }
});
