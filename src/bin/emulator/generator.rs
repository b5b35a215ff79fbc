//! The random message generator: the mix of message kinds, the random building blocks and
//! the stream of generated messages.

use orders_service::domain::Order;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use crate::invalid::{INVALID_REASONS, Variant};
use crate::message::{Outgoing, behaves_as_intended};

/// The share of each message kind; the rest are new valid orders.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mix {
    pub(crate) invalid: f64,
    pub(crate) duplicate: f64,
    pub(crate) conflict: f64,
}

/// A sent valid order, kept for duplicates and conflicts.
pub(crate) struct Original {
    pub(crate) order: Order,
    pub(crate) payload: Vec<u8>,
}

/// Random messages of every kind; its parts live in `valid` (new orders) and `invalid`
/// (broken messages, duplicates, conflicts).
pub(crate) struct Generator {
    pub(crate) rng: StdRng,
    prefix: String,
    seq: u64,
    /// Orders are dated within the week before this instant (Unix seconds).
    pub(crate) anchor: i64,
    pub(crate) max_payload: usize,
    pub(crate) pool: Vec<Original>,
    /// Next entry of [`INVALID_REASONS`] to produce.
    reason_cycle: usize,
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // Plain structs and `Value`s of strings and integers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Generator {
    pub(crate) fn new(rng: StdRng, prefix: String, anchor: i64, max_payload: usize) -> Self {
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
                .expect("every reason of INVALID_REASONS has a variant");
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

/// Generated messages, `remaining` more of them.
pub(crate) struct Generated {
    pub(crate) generator: Generator,
    pub(crate) mix: Mix,
    pub(crate) remaining: u64,
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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;
    use crate::SEEDED_ANCHOR;
    use crate::message::Kind;

    /// The service's default payload limit.
    pub(crate) const LIMIT: usize = 64 * 1024;

    /// A seeded generator with the usual limit.
    pub(crate) fn generator(seed: u64) -> Generator {
        Generator::new(
            StdRng::seed_from_u64(seed),
            "t_".to_string(),
            SEEDED_ANCHOR,
            LIMIT,
        )
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
}
