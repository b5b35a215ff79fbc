//! The random building blocks every generated message is drawn from: the seeded generator,
//! unique order ids, digits and letters, picks from constant lists, and the settings a message
//! is drawn under (the date anchor, the payload limit).

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

pub(crate) struct Draw {
    pub(crate) rng: StdRng,
    prefix: String,
    seq: u64,
    /// Orders are dated within the week before this instant (Unix seconds).
    pub(crate) anchor: i64,
    pub(crate) max_payload: usize,
}

/// Compact JSON of a value the emulator builds.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // Plain structs and `Value`s of strings and integers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Draw {
    pub(crate) fn new(rng: StdRng, prefix: String, anchor: i64, max_payload: usize) -> Self {
        Self {
            rng,
            prefix,
            seq: 0,
            anchor,
            max_payload,
        }
    }

    pub(crate) fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| DIGITS[self.rng.random_range(0..16)] as char)
            .collect()
    }

    pub(crate) fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|i| {
                let low = if i == 0 { 1 } else { 0 };
                char::from(b'0' + self.rng.random_range(low..10u8))
            })
            .collect()
    }

    pub(crate) fn upper(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'A' + self.rng.random_range(0..26u8)))
            .collect()
    }

    pub(crate) fn pick<T: Copy>(&mut self, list: &[T]) -> T {
        // Every list here is a non-empty constant.
        *list.choose(&mut self.rng).unwrap_or(&list[0])
    }

    pub(crate) fn random_key(&mut self) -> String {
        format!("key-{}", self.hex(16))
    }

    /// A fresh, unique order_uid: prefix, 8 random hex digits, then the sequence number
    /// (at least 8 digits), so two uids of one run can never be equal.
    pub(crate) fn next_uid(&mut self) -> String {
        let random = self.hex(8);
        let uid = format!("{}{random}{:08}", self.prefix, self.seq);
        self.seq += 1;
        uid
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::SEEDED_ANCHOR;

    /// The service's default payload limit.
    pub(crate) const LIMIT: usize = 64 * 1024;

    /// Seeded building blocks with the usual limit.
    pub(crate) fn draw(seed: u64) -> Draw {
        Draw::new(
            StdRng::seed_from_u64(seed),
            "t_".to_string(),
            SEEDED_ANCHOR,
            LIMIT,
        )
    }
}
