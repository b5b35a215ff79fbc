//! Property (b) on valid orders built from libFuzzer's bytes: each comes back byte for byte
//! as serde_json writes it, through ingest, the warm-up's and a miss's rows, and the cache
//! (`tests/properties/check`).
#![no_main]

#[expect(dead_code, reason = "each target uses part of the shared properties")]
#[path = "../../properties/check/mod.rs"]
mod check;

use arbitrary::Unstructured;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    // The generator takes its cheapest choice when the bytes run out: it always makes a case.
    let Ok(case) = check::generate::valid_case(&mut Unstructured::new(bytes)) else {
        return;
    };
    if let Err(failure) = check::comes_back_as_serde_writes_it(&case) {
        panic!("{failure}");
    }
});
