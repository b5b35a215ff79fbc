//! A message to produce and what it is meant to do to the service.

use orders_service::domain::{RejectReason, parse_and_validate};

/// What a message is meant to do to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new valid order: stored.
    Valid,
    /// A byte-identical re-send of a valid order: acknowledged, nothing changes.
    Duplicate,
    /// A known uid with different content: dead-lettered as `conflict`.
    Conflict,
    /// Rejected with this reason.
    Invalid(RejectReason),
}

/// One message ready to produce.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) key: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) kind: Kind,
    /// Number of items (for `--uids-out`); 0 when unknown.
    pub(crate) items: usize,
}

/// Does `parse_and_validate` treat the message the way its kind says?
pub(crate) fn behaves_as_intended(msg: &Outgoing, max_payload: usize) -> Result<(), String> {
    match (parse_and_validate(&msg.payload, max_payload), msg.kind) {
        (Ok(_), Kind::Valid | Kind::Duplicate | Kind::Conflict) => Ok(()),
        (Err(r), Kind::Invalid(reason)) if r.reason == reason => Ok(()),
        (Ok(_), kind) => Err(format!("{kind:?} message {} was accepted", msg.key)),
        (Err(r), kind) => Err(format!("{kind:?} message {} was rejected: {r}", msg.key)),
    }
}
