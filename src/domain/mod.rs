//! The order and its validation: pure functions, no I/O.

mod json;
mod order;
pub mod rules;
mod validate;

pub use order::{Delivery, Item, Order, Payment};
pub use validate::{RejectReason, Rejection, ValidOrder, check_money, parse_and_validate};
