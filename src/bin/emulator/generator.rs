//! The random message generator: the mix of message kinds and the stream of generated
//! messages.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use crate::draw::Draw;
use crate::invalid::{INVALID_REASONS, Variant, conflict, duplicate, invalid};
use crate::message::{Outgoing, behaves_as_intended};
use crate::valid::{Sent, valid};

/// The share of each message kind; the rest are new valid orders.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mix {
    pub(crate) invalid: f64,
    pub(crate) duplicate: f64,
    pub(crate) conflict: f64,
}

/// Random messages of every kind, drawn from [`Draw`]'s building blocks: new orders
/// (`valid`), broken messages, duplicates and conflicts (`invalid`).
pub(crate) struct Generator {
    draw: Draw,
    /// Valid orders sent so far (a sample), for duplicates and conflicts.
    sent: Sent,
    /// Next entry of [`INVALID_REASONS`] to produce.
    reason_cycle: usize,
}

impl Generator {
    pub(crate) fn new(rng: StdRng, prefix: String, anchor: i64, max_payload: usize) -> Self {
        Self {
            draw: Draw::new(rng, prefix, anchor, max_payload),
            sent: Sent::default(),
            reason_cycle: 0,
        }
    }

    /// The next message under `mix`.
    fn next_message(&mut self, mix: Mix) -> Outgoing {
        let draw = &mut self.draw;
        let mut r: f64 = draw.rng.random();
        if r < mix.invalid {
            let reason = INVALID_REASONS[self.reason_cycle % INVALID_REASONS.len()];
            self.reason_cycle += 1;
            let variant = *Variant::of(reason)
                .choose(&mut draw.rng)
                .expect("every reason of INVALID_REASONS has a variant");
            return invalid(draw, variant);
        }
        r -= mix.invalid;
        let reuse = if r < mix.duplicate {
            duplicate(draw, &self.sent)
        } else if r < mix.duplicate + mix.conflict {
            conflict(draw, &self.sent)
        } else {
            None
        };
        // Nothing sent yet to repeat: a new order instead.
        reuse.unwrap_or_else(|| valid(draw, &mut self.sent))
    }

    fn max_payload(&self) -> usize {
        self.draw.max_payload
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
            behaves_as_intended(&msg, self.generator.max_payload()).is_ok(),
            "generator bug: {:?}",
            behaves_as_intended(&msg, self.generator.max_payload())
        );
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;
    use crate::SEEDED_ANCHOR;
    use crate::draw::tests::LIMIT;
    use crate::message::Kind;

    fn generator(seed: u64) -> Generator {
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
